//! A small log-linear latency histogram (HdrHistogram's layout with 7 bits of sub-bucket
//! precision): values below 256 ns are exact, larger ones land in one of 128 buckets per power
//! of two, so a reported percentile is within 0.8% of the true value. Values are nanoseconds.

/// Sub-buckets per power of two above 256.
const SUB: usize = 128;
/// Powers of two covered above 256: up to 2^(8 + 40) ns, far beyond any timeout here.
const OCTAVES: usize = 40;

/// Counts of latencies.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; 256 + OCTAVES * SUB],
            total: 0,
            max: 0,
            sum: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < 256 {
        return v as usize;
    }
    let bits = 64 - v.leading_zeros() as usize; // 9.. for v >= 256
    let shift = bits - 8;
    let top = (v >> shift) as usize; // 128..256
    (256 + (shift - 1) * SUB + (top - SUB)).min(256 + OCTAVES * SUB - 1)
}

/// The middle of the bucket at `i`.
fn value(i: usize) -> u64 {
    if i < 256 {
        return i as u64;
    }
    let shift = (i - 256) / SUB + 1;
    let top = ((i - 256) % SUB + SUB) as u64;
    (top << shift) + (1u64 << shift) / 2
}

impl Histogram {
    /// Adds one value.
    pub fn record(&mut self, nanos: u64) {
        self.counts[index(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(nanos);
        self.sum += u128::from(nanos);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value below which `q` (0..=1) of the values lie; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return value(i).min(self.max);
            }
        }
        self.max
    }

    /// The largest value.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The mean.
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// p50, p90, p99, p99.9, max and mean in microseconds, as JSON fields with `prefix`.
    pub fn summary_us(&self, prefix: &str) -> serde_json::Map<String, serde_json::Value> {
        let us = |ns: u64| (ns as f64 / 1000.0 * 10.0).round() / 10.0;
        let mut m = serde_json::Map::new();
        for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
            m.insert(format!("{prefix}{name}_us"), us(self.quantile(q)).into());
        }
        m.insert(format!("{prefix}max_us"), us(self.max()).into());
        m.insert(
            format!("{prefix}mean_us"),
            ((self.mean() / 100.0).round() / 10.0).into(),
        );
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_within_one_percent() {
        for v in [0u64, 1, 255, 256, 257, 1000, 12_345, 1_000_000, 987_654_321] {
            let back = value(index(v));
            let err = (back as f64 - v as f64).abs() / (v.max(1) as f64);
            assert!(err <= 0.008, "{v} -> {back}");
        }
    }

    #[test]
    fn quantiles_of_a_uniform_range() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 / 50_000_000.0 - 1.0).abs() < 0.01, "{p50}");
        assert!((p99 / 99_000_000.0 - 1.0).abs() < 0.01, "{p99}");
        assert_eq!(h.count(), 100_000);
    }
}
