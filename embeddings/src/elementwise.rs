//! Softmax and layer norm, the encoder's elementwise passes, compiled twice: for AVX2 + FMA
//! (chosen at run time, eight lanes a vector) and for the baseline target (SSE's four lanes).
//! Both give the same bits: Rust never fuses a multiply and an add on its own, and every sum
//! runs in an explicit order of eight lanes.
#![allow(unsafe_code)]

use crate::matmul::has_avx2_fma;

/// Softmax of each `n`-long row of `scores` in place.
pub(crate) fn softmax_rows(scores: &mut [f32], n: usize) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: `has_avx2_fma` found AVX2 and FMA on this CPU at run time, which is all
        // `softmax_rows_avx2` requires.
        unsafe { softmax_rows_avx2(scores, n) };
        return;
    }
    for row in scores.chunks_exact_mut(n) {
        softmax(row);
    }
}

/// [`softmax_rows`] with `softmax` inlined into AVX2 + FMA code.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_rows_avx2(scores: &mut [f32], n: usize) {
    for row in scores.chunks_exact_mut(n) {
        softmax(row);
    }
}

/// Layer norm of each `gamma.len()`-wide row of `x` in place (biased variance, as PyTorch).
pub(crate) fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: as in `softmax_rows`: both features were found at run time.
        unsafe { layer_norm_avx2(x, gamma, beta, eps) };
        return;
    }
    layer_norm_one(x, gamma, beta, eps);
}

/// [`layer_norm`] inlined into AVX2 + FMA code.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn layer_norm_avx2(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    layer_norm_one(x, gamma, beta, eps);
}

/// Layer norm of each `gamma.len()`-wide row of `x` in place (biased variance, as PyTorch).
#[inline(always)]
fn layer_norm_one(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let h = gamma.len();
    for row in x.chunks_exact_mut(h) {
        let mean = sum8(row, |v| v) / h as f32;
        let var = sum8(row, |v| (v - mean) * (v - mean)) / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// The sum of `f(v)` over `values` in eight interleaved lanes (a vectorizable order; a plain sum is one
/// dependent chain of additions).
#[inline(always)]
fn sum8(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let (chunks, tail) = values.as_chunks::<8>();
    let mut lanes = [0.0f32; 8];
    for c in chunks {
        for (s, &v) in lanes.iter_mut().zip(c) {
            *s += f(v);
        }
    }
    lanes.iter().sum::<f32>() + tail.iter().map(|&v| f(v)).sum::<f32>()
}

/// Softmax of one row in place. The maximum, the exponentials and the sum each run over eight
/// lanes, so that they vectorize (one loop computing and summing in the sum's plain order stayed
/// scalar: 17 % of a document's time went there).
#[inline(always)]
fn softmax(row: &mut [f32]) {
    let (chunks, tail) = row.as_chunks::<8>();
    let mut lanes = [f32::NEG_INFINITY; 8];
    for c in chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = if v > *m { v } else { *m };
        }
    }
    let max = lanes.iter().chain(tail).copied().fold(f32::NEG_INFINITY, f32::max);
    // The exponentials and their sum in one pass, in `sum8`'s order (eight lanes, then the tail).
    let (chunks, tail) = row.as_chunks_mut::<8>();
    let mut sums = [0.0f32; 8];
    for c in chunks {
        for (s, v) in sums.iter_mut().zip(c) {
            *v = exp(*v - max);
            *s += *v;
        }
    }
    for v in tail.iter_mut() {
        *v = exp(*v - max);
    }
    let inv = 1.0 / (sums.iter().sum::<f32>() + tail.iter().sum::<f32>());
    row.iter_mut().for_each(|v| *v *= inv);
}

/// eˣ for x ≤ 0 (softmax's shifted scores), within 2 ulp down to -87 and 0 below: x = k·ln 2 + r
/// with |r| ≤ ln 2 / 2, eʳ by its degree-6 Taylor polynomial (Cephes' `expf` coefficients), 2ᵏ by
/// building the float's exponent. Branch-free, so the loop vectorizes.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 0.0);
    // Round to nearest by the 1.5·2²³ trick (`f32::round` is a libm call without SSE4.1).
    const SHIFTER: f32 = 12_582_912.0;
    let shifted = x * std::f32::consts::LOG2_E + SHIFTER;
    let k = shifted - SHIFTER;
    // k as an integer from the shifted float's bits (-126..=0 here), without a saturating cast.
    let k_int = shifted.to_bits().wrapping_sub(SHIFTER.to_bits()) as i32;
    let r = x - k * LN2_HI - k * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5e-1;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((k_int + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_is_within_a_few_ulp_of_std() {
        let mut worst = 0.0f32;
        for i in 0..=870_000 {
            let x = -(i as f32) / 10_000.0;
            let (got, want) = (super::exp(x), x.exp());
            worst = worst.max((got - want).abs() / want.max(f32::MIN_POSITIVE));
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
        assert_eq!(super::exp(-1000.0), super::exp(-87.0));
        assert_eq!(super::exp(0.0), 1.0);
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_the_order() {
        let mut row = [0.5f32, -3.0, 2.0, 2.0, -40.0];
        super::softmax(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(row[2] > row[0] && row[0] > row[1] && row[1] > row[4] && row[4] > 0.0);
        assert_eq!(row[2], row[3]);
    }

    #[test]
    fn both_compilations_give_the_same_bits() {
        let n = 29;
        let scores: Vec<f32> = (0..n * n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
        let (mut wide, mut plain) = (scores.clone(), scores.clone());
        super::softmax_rows(&mut wide, n);
        plain.chunks_exact_mut(n).for_each(super::softmax);
        assert_eq!(wide, plain);
        let gamma: Vec<f32> = (0..n).map(|i| 1.0 + i as f32 / 50.0).collect();
        let beta: Vec<f32> = (0..n).map(|i| i as f32 / 30.0 - 0.4).collect();
        let (mut wide, mut plain) = (scores.clone(), scores);
        super::layer_norm(&mut wide, &gamma, &beta, 1e-12);
        super::layer_norm_one(&mut plain, &gamma, &beta, 1e-12);
        assert_eq!(wide, plain);
    }
}
