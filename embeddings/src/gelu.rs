//! GELU (the erf form) in place, fast: libm's `erff` once per element would cost more than the
//! attention. Here erf is a rational approximation (the one Eigen and XLA use for f32: odd
//! degree-13 numerator over an even degree-8 denominator, inputs clamped to ±4; within 5e-7 of
//! erf in f32 arithmetic), a loop the compiler vectorizes.

const ALPHA: [f32; 7] = [
    -1.609_603_3e-2,
    -2.954_6e-3,
    -7.349_906_4e-4,
    -5.692_506_2e-5,
    -2.101_024e-6,
    2.770_681_5e-8,
    -2.726_142_4e-10,
];
const BETA: [f32; 5] =
    [-1.426_473_9e-2, -7.373_329_3e-3, -1.682_827e-3, -2.133_740_5e-4, -1.456_607_15e-5];

/// erf(x), within 5e-7 of the exact value.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = ALPHA[6];
    for a in ALPHA[..6].iter().rev() {
        p = p * x2 + a;
    }
    let mut q = BETA[4];
    for b in BETA[..4].iter().rev() {
        q = q * x2 + b;
    }
    x * p / q
}

/// `v = GELU(v)` for every element (the erf form, as BERT's `gelu`). Always inlined, so that
/// inside the AVX2 panel kernel it vectorizes over eight lanes.
#[inline(always)]
pub(crate) fn gelu_slice(values: &mut [f32]) {
    for v in values {
        *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_is_within_a_millionth_of_the_series() {
        let mut worst = 0.0f64;
        for i in -60_000..=60_000 {
            let x = i as f32 / 10_000.0;
            worst = worst.max((f64::from(erf(x)) - series_erf(f64::from(x))).abs());
        }
        assert!(worst < 1e-6, "worst error {worst}");
    }

    /// erf in f64 by its Taylor series (|x| ≤ 3) or its asymptotic tail, as a reference.
    fn series_erf(x: f64) -> f64 {
        if x.abs() > 3.0 {
            // erfc(x) ≈ exp(-x²)/(x√π) · (1 - 1/(2x²) + 3/(4x⁴)): far below 1e-7 beyond 3.
            let t = (-x * x).exp() / (x.abs() * std::f64::consts::PI.sqrt())
                * (1.0 - 1.0 / (2.0 * x * x) + 3.0 / (4.0 * x.powi(4)));
            return x.signum() * (1.0 - t);
        }
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 {
            n += 1.0;
            term *= -x * x / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn gelu_matches_candles_on_a_large_tensor() {
        let values: Vec<f32> = (0..200_000).map(|i| ((i as f32) * 0.001).sin() * 5.0).collect();
        let x =
            candle_core::Tensor::from_vec(values.clone(), (400, 500), &candle_core::Device::Cpu)
                .unwrap();
        let reference: Vec<f32> = x.gelu_erf().unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let mut fast = values;
        gelu_slice(&mut fast);
        let worst = reference.iter().zip(&fast).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-5, "worst difference {worst}");
    }
}
