//! Matrix products on slices, through the `gemm` crate (the kernels candle itself uses: runtime
//! dispatch to AVX2/FMA or AVX-512 microkernels, packing, optional rayon threads), behind one
//! safe function that checks every index the product can touch before handing raw pointers over;
//! and [`packed_product`] for a few rows against a weight packed once ([`Packed`]), with an
//! AVX2/FMA kernel of twelve accumulators chosen at run time.
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

/// Columns of one block of a [`Packed`] matrix.
const BLOCK: usize = 16;

/// Rows one step of the kernel accumulates at once (twelve AVX accumulators).
const ROWS: usize = 6;

/// Rows of a block one pass of the kernel reads: 16 KiB, half a first-level cache.
const DEPTH: usize = 256;

/// A `k × n` matrix stored block by block: for each run of [`BLOCK`] columns, its `k` rows of
/// [`BLOCK`] floats one after another (the last block padded with zeros), so that a product
/// streams it front to back.
pub(crate) struct Packed {
    data: Vec<f32>,
    k: usize,
    n: usize,
}

impl Packed {
    /// Packs a row-major `k × n` matrix.
    ///
    /// # Panics
    ///
    /// When `row_major` does not hold `k × n` floats (a bug in the caller: shapes come from the
    /// model's configuration).
    pub(crate) fn new(row_major: &[f32], k: usize, n: usize) -> Packed {
        assert_eq!(row_major.len(), k * n, "Packed::new: a {k}×{n} matrix");
        let blocks = n.div_ceil(BLOCK);
        let mut data = vec![0.0; blocks * k * BLOCK];
        for (b, block) in data.chunks_exact_mut(k * BLOCK).enumerate() {
            let c0 = b * BLOCK;
            let cols = BLOCK.min(n - c0);
            for (i, dst) in block.chunks_exact_mut(BLOCK).enumerate() {
                dst[..cols].copy_from_slice(&row_major[i * n + c0..][..cols]);
            }
        }
        Packed { data, k, n }
    }
}

/// `dst += lhs × rhs`: `lhs` is `m × k` row-major (rows `k` apart), `dst` is `m × n` with rows
/// `dst_rs` apart. Column blocks are split over `threads` scoped threads (the calling thread
/// takes the last share).
///
/// # Panics
///
/// When a matrix does not fit its slice (a bug in the caller, as for [`matmul`]).
pub(crate) fn packed_product(
    m: usize,
    dst: &mut [f32],
    dst_rs: usize,
    lhs: &[f32],
    rhs: &Packed,
    threads: usize,
) {
    let (n, k) = (rhs.n, rhs.k);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(lhs.len() >= m * k, "packed_product: lhs does not hold {m}×{k}");
    assert!(dst_rs >= n && dst.len() >= (m - 1) * dst_rs + n, "packed_product: dst too small");
    let blocks = n.div_ceil(BLOCK);
    let threads = threads.clamp(1, blocks);
    let per = blocks.div_ceil(threads) * BLOCK;
    let mut parts: Vec<Vec<&mut [f32]>> = (0..threads).map(|_| Vec::with_capacity(m)).collect();
    for row in dst.chunks_mut(dst_rs).take(m) {
        let mut rest = &mut row[..n];
        for part in parts.iter_mut() {
            let (mine, tail) = rest.split_at_mut(per.min(rest.len()));
            part.push(mine);
            rest = tail;
        }
    }
    let fast = has_avx2_fma();
    std::thread::scope(|scope| {
        let count = parts.len();
        let mut handles = Vec::with_capacity(count);
        for (t, mut part) in parts.into_iter().enumerate() {
            if part.first().is_none_or(|r| r.is_empty()) {
                continue;
            }
            let first_block = t * per / BLOCK;
            let mut work = move || columns(&mut part, &lhs[..m * k], rhs, first_block, fast);
            if t + 1 == count {
                work();
            } else {
                handles.push(scope.spawn(work));
            }
        }
        for h in handles {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx2_fma() -> bool {
    false
}

/// `rows[r][c] += Σ_i lhs[r·k + i] · rhs(i, first_block·BLOCK + c)` for every row and column of
/// `rows`.
fn columns(rows: &mut [&mut [f32]], lhs: &[f32], rhs: &Packed, first_block: usize, fast: bool) {
    let k = rhs.k;
    let width = rows.first().map_or(0, |r| r.len());
    for (b, c0) in (0..width).step_by(BLOCK).enumerate() {
        let cols = BLOCK.min(width - c0);
        let block = &rhs.data[(first_block + b) * k * BLOCK..][..k * BLOCK];
        // Depth in runs of DEPTH, so that a run of the block stays in the first-level cache
        // while every row block passes over it.
        for i0 in (0..k).step_by(DEPTH) {
            let depth = DEPTH.min(k - i0);
            let run = &block[i0 * BLOCK..][..depth * BLOCK];
            let mut r0 = 0;
            while r0 < rows.len() {
                let nr = ROWS.min(rows.len() - r0);
                let mut acc = [[0.0f32; BLOCK]; ROWS];
                let x: [&[f32]; ROWS] = std::array::from_fn(|r| {
                    let r = (r0 + r).min(r0 + nr - 1);
                    &lhs[r * k + i0..][..depth]
                });
                row_block(&mut acc, x, run, fast);
                for (r, a) in acc.iter().enumerate().take(nr) {
                    for (d, a) in rows[r0 + r][c0..c0 + cols].iter_mut().zip(a) {
                        *d += a;
                    }
                }
                r0 += ROWS;
            }
        }
    }
}

/// `acc[r] = Σ_i x[r][i] · block[i]` for [`ROWS`] rows and one block (`block` holds `k` runs of
/// [`BLOCK`] floats, each `x[r]` holds `k`).
fn row_block(acc: &mut [[f32; BLOCK]; ROWS], x: [&[f32]; ROWS], block: &[f32], fast: bool) {
    let k = block.len() / BLOCK;
    assert!(x.iter().all(|x| x.len() == k), "row_block: rows of {k}");
    #[cfg(target_arch = "x86_64")]
    if fast {
        // SAFETY: `fast` is true only when `has_avx2_fma` found AVX2 and FMA on this CPU at run
        // time, which is all `row_block_avx2` requires; its lengths are asserted above.
        unsafe { row_block_avx2(acc, x, block) };
        return;
    }
    let _ = fast;
    for (i, w) in block.chunks_exact(BLOCK).enumerate() {
        for (a, x) in acc.iter_mut().zip(&x) {
            let x = x[i];
            for (a, w) in a.iter_mut().zip(w) {
                *a += x * w;
            }
        }
    }
}

/// [`row_block`] with twelve AVX accumulators: [`ROWS`] rows by two halves of the block.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_block_avx2(acc: &mut [[f32; BLOCK]; ROWS], x: [&[f32]; ROWS], block: &[f32]) {
    use std::arch::x86_64::{
        __m256, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_setzero_ps,
        _mm256_storeu_ps,
    };
    let mut a: [[__m256; 2]; ROWS] = [[_mm256_setzero_ps(); 2]; ROWS];
    for (i, w) in block.chunks_exact(BLOCK).enumerate() {
        // SAFETY: `w` holds BLOCK = 16 floats: two unaligned loads of 8 read inside it.
        let (w0, w1) = unsafe { (_mm256_loadu_ps(w.as_ptr()), _mm256_loadu_ps(w[8..].as_ptr())) };
        for (a, x) in a.iter_mut().zip(&x) {
            let b = _mm256_set1_ps(x[i]);
            a[0] = _mm256_fmadd_ps(b, w0, a[0]);
            a[1] = _mm256_fmadd_ps(b, w1, a[1]);
        }
    }
    for (out, a) in acc.iter_mut().zip(&a) {
        // SAFETY: each `out` row holds 16 floats: two unaligned stores of 8 write inside it.
        unsafe {
            _mm256_storeu_ps(out.as_mut_ptr(), a[0]);
            _mm256_storeu_ps(out[8..].as_mut_ptr(), a[1]);
        }
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

    #[test]
    fn packed_products_match_the_naive_loop() {
        let shapes =
            [(20, 1536, 384, 2), (7, 37, 45, 2), (1, 5, 3, 3), (190, 48, 16, 1), (9, 16, 1, 2)];
        for &(m, n, k, threads) in &shapes {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0).collect();
            let want = naive(m, n, k, View::rows(&a, k), View::rows(&b, n));
            // Rows 3 columns wider than the product, starting at 1.5: accumulated onto.
            let rs = n + 3;
            let mut dst = vec![1.5f32; m * rs];
            packed_product(m, &mut dst, rs, &a, &Packed::new(&b, k, n), threads);
            for r in 0..m {
                for c in 0..rs {
                    let got = dst[r * rs + c];
                    let expect = if c < n { want[r * n + c] + 1.5 } else { 1.5 };
                    assert!(
                        (got - expect).abs() <= 1e-3 * expect.abs().max(1.0),
                        "{m}x{n}x{k}: ({r}, {c}) = {got}, want {expect}"
                    );
                }
            }
        }
    }
}
