//! Latency recording: one [`LatencyHistogram`] per thread, merged at the end of a workload.
//! Latencies are recorded in nanoseconds with three significant digits (HDR histogram) and
//! reported in microseconds.

use std::time::Duration;

use hdrhistogram::Histogram;

/// The longest latency recorded exactly; longer ones are clamped to it (and still counted).
pub const MAX_TRACKED: Duration = Duration::from_secs(60);

/// An HDR histogram of operation latencies.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    hist: Histogram<u64>,
}

/// The percentiles a report shows, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Slowest operation.
    pub max_us: f64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram tracking 1 ns to [`MAX_TRACKED`].
    #[expect(
        clippy::expect_used,
        reason = "constant bounds (1 ns to 60 s, 3 digits) that hdrhistogram always accepts"
    )]
    pub fn new() -> Self {
        let high = MAX_TRACKED.as_nanos() as u64;
        let hist = Histogram::new_with_bounds(1, high, 3).expect("valid histogram bounds");
        LatencyHistogram { hist }
    }

    /// Records one operation that took `d`.
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.hist.saturating_record(ns);
    }

    /// Adds every sample of `other` to this histogram.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Both histograms have the same bounds, and samples were clamped when recorded, so
        // adding cannot fail; saturate sample by sample should it ever.
        if self.hist.add(&other.hist).is_err() {
            for v in other.hist.iter_recorded() {
                let value = v.value_iterated_to();
                for _ in 0..v.count_at_value() {
                    self.hist.saturating_record(value);
                }
            }
        }
    }

    /// The number of operations recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The latency at quantile `q` (0.0 to 1.0).
    pub fn quantile(&self, q: f64) -> Duration {
        Duration::from_nanos(self.hist.value_at_quantile(q))
    }

    /// The report's percentiles.
    pub fn percentiles(&self) -> Percentiles {
        let us = |ns: u64| ns as f64 / 1000.0;
        Percentiles {
            p50_us: us(self.hist.value_at_quantile(0.50)),
            p90_us: us(self.hist.value_at_quantile(0.90)),
            p99_us: us(self.hist.value_at_quantile(0.99)),
            p999_us: us(self.hist.value_at_quantile(0.999)),
            max_us: us(self.hist.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_and_keeps_extremes() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        for us in 1..=100u64 {
            a.record(Duration::from_micros(us));
        }
        for _ in 0..100 {
            b.record(Duration::from_millis(5));
        }
        b.record(Duration::from_secs(3600)); // clamped, still counted
        a.merge(&b);
        assert_eq!(a.count(), 201);
        let p = a.percentiles();
        // Half the samples are 1..=100 us and half 5 ms.
        assert!((49.0..=51.0).contains(&p.p50_us) || (4990.0..=5010.0).contains(&p.p50_us));
        assert!((4990.0..=5010.0).contains(&p.p90_us), "{p:?}");
        assert!(p.max_us >= 59.0e6, "clamped to the tracked maximum: {p:?}");
        assert!(p.p50_us <= p.p90_us && p.p90_us <= p.p99_us && p.p99_us <= p.p999_us);
    }

    #[test]
    fn percentiles_within_three_digits() {
        let mut h = LatencyHistogram::new();
        for ns in 1..=10_000u64 {
            h.record(Duration::from_nanos(ns * 100));
        }
        let p = h.percentiles();
        assert!((p.p50_us - 500.0).abs() / 500.0 < 0.002, "{p:?}");
        assert!((p.p99_us - 990.0).abs() / 990.0 < 0.002, "{p:?}");
        assert!((p.max_us - 1000.0).abs() / 1000.0 < 0.002, "{p:?}");
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let h = LatencyHistogram::new();
        assert_eq!(h.count(), 0);
        assert_eq!(h.percentiles(), Percentiles::default());
    }
}
