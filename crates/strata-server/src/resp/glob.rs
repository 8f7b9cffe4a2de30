//! Redis-style glob matching for `SCAN MATCH` and `KEYS`: `*`, `?`, `[abc]`, `[^a]`, `[a-z]` and
//! `\` escapes. Star backtracking keeps the cost at O(pattern × key), never exponential.

/// True when `key` matches `pattern`.
pub fn matches(pattern: &[u8], key: &[u8]) -> bool {
    let (mut p, mut k) = (0usize, 0usize);
    // Where to resume after the last `*`: (pattern index after it, key index it covers up to).
    let mut star: Option<(usize, usize)> = None;
    while k < key.len() {
        if let Some((next_p, ok)) = step(pattern, p, key.get(k).copied()) {
            if ok {
                p = next_p;
                k += 1;
                continue;
            }
        } else if pattern.get(p) == Some(&b'*') {
            while pattern.get(p) == Some(&b'*') {
                p += 1;
            }
            star = Some((p, k));
            continue;
        }
        match star {
            Some((sp, sk)) => {
                p = sp;
                k = sk + 1;
                star = Some((sp, sk + 1));
            }
            None => return false,
        }
    }
    while pattern.get(p) == Some(&b'*') {
        p += 1;
    }
    p == pattern.len()
}

/// Matches one key byte against the pattern element at `p`. `None` when the element is `*` or
/// the pattern is exhausted; otherwise the index after the element and whether it matched.
fn step(pattern: &[u8], p: usize, c: Option<u8>) -> Option<(usize, bool)> {
    let c = c?;
    match *pattern.get(p)? {
        b'*' => None,
        b'?' => Some((p + 1, true)),
        b'\\' => match pattern.get(p + 1) {
            Some(&e) => Some((p + 2, e == c)),
            None => Some((p + 1, c == b'\\')),
        },
        b'[' => {
            let mut i = p + 1;
            let negate = pattern.get(i) == Some(&b'^');
            if negate {
                i += 1;
            }
            let mut hit = false;
            loop {
                match pattern.get(i) {
                    None => break,
                    Some(b']') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        if pattern.get(i + 1) == Some(&c) {
                            hit = true;
                        }
                        i += 2;
                    }
                    Some(&lo) if pattern.get(i + 1) == Some(&b'-') => match pattern.get(i + 2) {
                        Some(&hi) if hi != b']' => {
                            let (a, b) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                            if (a..=b).contains(&c) {
                                hit = true;
                            }
                            i += 3;
                        }
                        _ => {
                            if lo == c {
                                hit = true;
                            }
                            i += 1;
                        }
                    },
                    Some(&x) => {
                        if x == c {
                            hit = true;
                        }
                        i += 1;
                    }
                }
            }
            Some((i, hit != negate))
        }
        lit => Some((p + 1, lit == c)),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        assert!(matches(b"*", b""));
        assert!(matches(b"*", b"anything"));
        assert!(matches(b"user:*", b"user:1"));
        assert!(!matches(b"user:*", b"usr:1"));
        assert!(matches(b"h?llo", b"hello"));
        assert!(matches(b"h[ae]llo", b"hallo"));
        assert!(!matches(b"h[^e]llo", b"hello"));
        assert!(matches(b"h[a-c]llo", b"hbllo"));
        assert!(matches(b"a\\*b", b"a*b"));
        assert!(!matches(b"a\\*b", b"axb"));
        assert!(matches(b"*a*b*c*", b"xxaxxbxxcxx"));
        assert!(!matches(b"*a*b*c*d", b"xxaxxbxxcxx"));
        let long = vec![b'a'; 5000];
        assert!(!matches(b"*a*a*a*a*a*a*b", &long));
    }
}
