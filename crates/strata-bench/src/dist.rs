//! Random numbers for the workloads: a small fast generator ([`Rng`]), YCSB's (scrambled)
//! zipfian distribution ([`Zipfian`]) and the [`KeyChooser`] that picks key numbers.
//!
//! The generator is ours rather than a crate's so that runs are reproducible from a seed across
//! dependency upgrades, and so that drawing a key costs a few nanoseconds inside the timed loop.

/// xoshiro256** seeded through splitmix64: fast, good enough for choosing keys, not for secrets.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut st = seed;
        Rng {
            s: [
                splitmix64(&mut st),
                splitmix64(&mut st),
                splitmix64(&mut st),
                splitmix64(&mut st),
            ],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let [s0, s1, s2, s3] = &mut self.s;
        let result = s1.wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = *s1 << 17;
        *s2 ^= *s0;
        *s3 ^= *s1;
        *s1 ^= *s2;
        *s0 ^= *s3;
        *s2 ^= t;
        *s3 = s3.rotate_left(45);
        result
    }

    /// A number drawn uniformly from `[0, n)` (`n` must be positive).
    pub fn below(&mut self, n: u64) -> u64 {
        // Lemire's multiply-shift: the bias is below 2^-64 * n, far under what a benchmark sees.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A float drawn uniformly from `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// The zipfian constant YCSB uses.
pub const YCSB_ZIPFIAN_CONSTANT: f64 = 0.99;

/// YCSB's zipfian generator over `[0, items)`: item 0 is the most popular, item 1 the next, and
/// so on. [`Zipfian::next_scrambled`] spreads the popular items over the key space, as YCSB's
/// `ScrambledZipfianGenerator` does, so hot keys do not all sit in one table.
#[derive(Debug, Clone)]
pub struct Zipfian {
    items: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| 1.0 / (i as f64).powf(theta)).sum()
}

impl Zipfian {
    /// A generator over `[0, items)` with skew `theta` (0 < theta < 1; YCSB uses 0.99).
    pub fn new(items: u64, theta: f64) -> Self {
        let items = items.max(1);
        let zetan = zeta(items, theta);
        let zeta2 = zeta(2, theta);
        let eta = (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan);
        Zipfian {
            items,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta,
        }
    }

    /// The number of items.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// The next item by popularity rank (0 is the most popular).
    pub fn next_rank(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1.min(self.items - 1);
        }
        let v = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        v.min(self.items - 1)
    }

    /// The next item, with ranks scattered over `[0, items)` by a hash.
    pub fn next_scrambled(&self, rng: &mut Rng) -> u64 {
        fnv1a64(self.next_rank(rng)) % self.items
    }
}

/// FNV-1a over the eight little-endian bytes of `v`, as YCSB's `Utils.fnvhash64`.
pub fn fnv1a64(v: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// How YCSB workloads choose keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Every key in `[0, num)` equally likely.
    Uniform,
    /// YCSB's scrambled zipfian (constant 0.99).
    Zipfian,
}

/// Picks key numbers in `[0, num)` from a distribution; cheap to clone per thread.
#[derive(Debug, Clone)]
pub enum KeyChooser {
    /// Uniform over `[0, n)`.
    Uniform(u64),
    /// Scrambled zipfian.
    Zipfian(std::sync::Arc<Zipfian>),
}

impl KeyChooser {
    /// A chooser over `[0, num)`; the zipfian one computes its constants once (O(num)).
    pub fn new(dist: Distribution, num: u64) -> Self {
        match dist {
            Distribution::Uniform => KeyChooser::Uniform(num.max(1)),
            Distribution::Zipfian => KeyChooser::Zipfian(std::sync::Arc::new(Zipfian::new(
                num,
                YCSB_ZIPFIAN_CONSTANT,
            ))),
        }
    }

    /// The next key number.
    pub fn next(&self, rng: &mut Rng) -> u64 {
        match self {
            KeyChooser::Uniform(n) => rng.below(*n),
            KeyChooser::Zipfian(z) => z.next_scrambled(rng),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Rng::new(7);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            let v = rng.below(10);
            seen[v as usize] += 1;
        }
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
    }

    #[test]
    fn zipfian_ranks_fall_off_and_stay_in_range() {
        let n = 1000;
        let z = Zipfian::new(n, YCSB_ZIPFIAN_CONSTANT);
        let mut rng = Rng::new(42);
        let mut counts = vec![0u64; n as usize];
        let draws = 200_000;
        for _ in 0..draws {
            let r = z.next_rank(&mut rng);
            assert!(r < n);
            counts[r as usize] += 1;
        }
        // Rank 0 is the most popular, and popularity falls with rank.
        assert!(counts[0] > counts[1] && counts[1] > counts[10] && counts[10] > counts[500]);
        // With theta 0.99 over 1000 items, item 0 takes about 1/zeta(1000) = 13% of draws.
        let p0 = counts[0] as f64 / draws as f64;
        let expected = 1.0 / zeta(n, YCSB_ZIPFIAN_CONSTANT);
        assert!((p0 - expected).abs() < 0.02, "p0 {p0} expected {expected}");
        // The top 10% of items take well over half the draws.
        let top: u64 = counts[..100].iter().sum();
        assert!(top as f64 / draws as f64 > 0.6);
    }

    #[test]
    fn scrambled_zipfian_is_skewed_but_scattered() {
        let n = 10_000;
        let chooser = KeyChooser::new(Distribution::Zipfian, n);
        let mut rng = Rng::new(1);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..100_000 {
            let k = chooser.next(&mut rng);
            assert!(k < n);
            *counts.entry(k).or_insert(0u32) += 1;
        }
        let hottest = counts.iter().max_by_key(|e| e.1).map(|e| *e.0).unwrap();
        // The hottest key is where rank 0 hashes to, not key 0.
        assert_eq!(hottest, fnv1a64(0) % n);
        assert!(
            counts.len() < 9_000,
            "zipfian should leave many keys untouched"
        );
    }
}
