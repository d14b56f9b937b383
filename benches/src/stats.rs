//! Percentiles of measured times, one definition for every bench program.

/// The value at quantile `p` (0..=1) of `sorted` (ascending), nearest rank; NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// Sorts `v` and returns its p50, p99 and mean.
pub fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    (percentile(&v, 0.5), percentile(&v, 0.99), mean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let (p50, p99, mean) = stats((1..=101).rev().map(f64::from).collect());
        assert_eq!((p50, p99, mean), (51.0, 100.0, 51.0));
        assert!(percentile(&[], 0.5).is_nan());
    }
}
