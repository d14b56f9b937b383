//! Matrix products on slices, through the `gemm` crate (the kernels candle itself uses: runtime
//! dispatch to AVX2/FMA or AVX-512 microkernels, packing, optional rayon threads), behind one
//! safe function that checks every index the product can touch before handing raw pointers over.
#![allow(unsafe_code)]

pub(crate) use gemm::Parallelism;

/// A read-only matrix in a slice: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

impl<'a> View<'a> {
    /// A row-major matrix with rows `rs` apart.
    pub(crate) fn rows(data: &'a [f32], rs: usize) -> Self {
        View { data, rs, cs: 1 }
    }

    /// Whether every element of a `rows × cols` matrix lies inside the slice.
    fn holds(&self, rows: usize, cols: usize) -> bool {
        let last = (rows - 1)
            .checked_mul(self.rs)
            .and_then(|a| (cols - 1).checked_mul(self.cs).and_then(|b| a.checked_add(b)));
        last.is_some_and(|last| last < self.data.len())
    }
}

fn stride(s: usize) -> isize {
    isize::try_from(s).expect("a stride inside a slice fits an isize")
}

/// `dst = (accumulate ? dst : 0) + scale × lhs × rhs`, where `dst` is `m × n` row-major with
/// rows `dst_rs` apart, `lhs` is `m × k` and `rhs` is `k × n`.
///
/// # Panics
///
/// When a matrix does not fit its slice (a bug in the caller, never input-dependent: the
/// encoder sizes everything from the model's shapes and the at most 256 tokens).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: View<'_>,
    rhs: View<'_>,
    scale: f32,
    parallelism: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    let out = View { data: dst, rs: dst_rs, cs: 1 };
    assert!(out.holds(m, n), "matmul: the {m}×{n} product does not fit its slice");
    if k == 0 {
        if !accumulate {
            for row in dst.chunks_mut(dst_rs).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    assert!(lhs.holds(m, k) && rhs.holds(k, n), "matmul: an operand does not fit its slice");
    // SAFETY: `gemm` reads `lhs` at `(r, c)` for r < m, c < k through `ptr + r*rs + c*cs`, `rhs`
    // likewise for r < k, c < n, and reads (when `accumulate`) and writes `dst` at r < m, c < n
    // through `ptr + r*dst_rs + c`; the asserts above prove every one of those offsets lies
    // inside its slice (strides are non-negative, computed without overflow). `dst` is a unique
    // borrow, so it aliases neither operand, and all three outlive the call, which returns only
    // once every thread it started is done. f32 needs no conjugation (the flags are ignored).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            stride(dst_rs),
            accumulate,
            lhs.data.as_ptr(),
            stride(lhs.cs),
            stride(lhs.rs),
            rhs.data.as_ptr(),
            stride(rhs.cs),
            stride(rhs.rs),
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: View<'_>, b: View<'_>) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for r in 0..m {
            for c in 0..n {
                out[r * n + c] =
                    (0..k).map(|i| a.data[r * a.rs + i * a.cs] * b.data[i * b.rs + c * b.cs]).sum();
            }
        }
        out
    }

    #[test]
    fn strided_products_match_the_naive_loop() {
        let (m, n, k) = (37, 29, 45);
        let a: Vec<f32> = (0..m * k * 2).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
        let b: Vec<f32> = (0..k * n * 3).map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0).collect();
        // lhs rows 2k apart (every other block), rhs transposed (column-major, columns 3k apart).
        let lhs = View { data: &a, rs: 2 * k, cs: 1 };
        let rhs = View { data: &b, rs: 1, cs: 3 * k };
        let expected = naive(m, n, k, lhs, rhs);
        for parallelism in [Parallelism::None, Parallelism::Rayon(2)] {
            let mut dst = vec![1.0; m * n];
            matmul((m, n, k), &mut dst, n, true, lhs, rhs, 0.5, parallelism);
            for (got, want) in dst.iter().zip(&expected) {
                assert!((got - (1.0 + 0.5 * want)).abs() < 1e-3, "{got} vs 1 + {want}/2");
            }
            matmul((m, n, k), &mut dst, n, false, lhs, rhs, 1.0, parallelism);
            for (got, want) in dst.iter().zip(&expected) {
                assert!((got - want).abs() < 1e-3, "{got} vs {want}");
            }
        }
    }
}
