//! Matrix products on slices. Attention's small products go through the `gemm` crate (runtime
//! dispatch to AVX2/FMA or AVX-512 microkernels), behind one safe function that checks every
//! index the product can touch before handing raw pointers over. The linear layers multiply by a
//! weight packed once ([`Packed`]): [`few_product`] streams it for a few rows (a query's),
//! [`panel_product`] packs many rows (a document's) in panels of six; both run a 6 × 16 AVX2/FMA
//! kernel of twelve accumulators chosen at run time (a scalar loop elsewhere).
#![allow(unsafe_code)]

pub(crate) use gemm::Parallelism;

use crate::gelu::gelu_slice;

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

/// Rows of a block one pass of the kernel reads: 8 KiB, a quarter of a first-level cache, so
/// that the run being read, the next one being prefetched and the input rows all stay there.
const DEPTH: usize = 128;

/// Rows [`few_product`] takes at most (a query's products, with a margin).
const GROUP: usize = 36;

/// A `k × n` matrix stored block by block: for each run of [`BLOCK`] columns, its `k` rows of
/// [`BLOCK`] floats one after another (the last block padded with zeros), so that a product
/// streams it front to back.
pub(crate) struct Packed {
    data: Aligned,
    k: usize,
    n: usize,
}

/// Floats whose first one starts a 64-byte cache line, so that no 32-byte load of a run of
/// [`BLOCK`] floats straddles two lines (a large `Vec<f32>` from the allocator starts 16 bytes
/// into a line: every other load would).
pub(crate) struct Aligned {
    buf: Vec<f32>,
    start: usize,
    len: usize,
}

impl Aligned {
    /// `len` zeros.
    pub(crate) fn zeros(len: usize) -> Aligned {
        let buf = vec![0.0f32; len + 16];
        // The offset, in floats, of the first 64-byte boundary; at most 15 for an f32 buffer.
        let start = buf.as_ptr().align_offset(64).min(16);
        Aligned { buf, start, len }
    }

    pub(crate) fn as_slice(&self) -> &[f32] {
        &self.buf[self.start..self.start + self.len]
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.buf[self.start..self.start + self.len]
    }
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
        let mut data = Aligned::zeros(blocks * k * BLOCK);
        for (b, block) in data.as_mut_slice().chunks_exact_mut(k * BLOCK).enumerate() {
            let c0 = b * BLOCK;
            let cols = BLOCK.min(n - c0);
            for (i, dst) in block.chunks_exact_mut(BLOCK).enumerate() {
                dst[..cols].copy_from_slice(&row_major[i * n + c0..][..cols]);
            }
        }
        Packed { data, k, n }
    }
}

/// Whether this CPU runs AVX2 and FMA (the kernels' and the elementwise passes' fast code).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn has_avx2_fma() -> bool {
    false
}

/// Rows of one panel of packed activations (the kernel's six rows).
const PANEL: usize = 6;

/// Depth of one pass of [`panel_product`]: a weight panel of `DEPTH_MANY × BLOCK` floats (24 KiB)
/// stays in the first-level cache while every row panel passes over it (the packed activations,
/// `rows × DEPTH_MANY`, 282 KiB at 188 rows, in the second-level cache); a 384-deep product
/// then reads and writes its destination once. 128, 192 and 256 measured 2-5 % slower.
const DEPTH_MANY: usize = 384;

/// Buffer for [`panel_product`]'s packed activations, sized once for `rows` rows.
pub(crate) struct Panels(Aligned);

impl Panels {
    pub(crate) fn new(rows: usize) -> Panels {
        Panels(Aligned::zeros(rows.div_ceil(PANEL) * PANEL * DEPTH_MANY))
    }
}

/// `dst += lhs × rhs` for many rows (a document's): `lhs` is `m × k` row-major (rows `k`
/// apart), `dst` is `m × n` with rows `dst_rs` apart. For each depth run of [`DEPTH_MANY`], the
/// rows are packed into panels of [`PANEL`] rows (`panels` holds them), then each weight block's
/// run is read once and every panel passes over it. One thread. With `gelu`, GELU is applied to
/// each finished tile of `dst` (so `dst` ends as `GELU(dst + lhs × rhs)`).
///
/// # Panics
///
/// When a matrix does not fit its slice or `panels` was sized for fewer rows (a bug in the
/// caller, as for [`matmul`]).
#[allow(clippy::too_many_arguments)]
pub(crate) fn panel_product(
    m: usize,
    dst: &mut [f32],
    dst_rs: usize,
    lhs: &[f32],
    rhs: &Packed,
    panels: &mut Panels,
    split: bool,
    gelu: bool,
) {
    let (n, k) = (rhs.n, rhs.k);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(lhs.len() >= m * k, "panel_product: lhs does not hold {m}×{k}");
    assert!(dst_rs >= n && dst.len() >= (m - 1) * dst_rs + n, "panel_product: dst too small");
    let buf = panels.0.as_mut_slice();
    if split && m > 2 * PANEL {
        // Two halves of the rows, each packed into its own part of the buffer.
        let half = (m / 2).div_ceil(PANEL) * PANEL;
        let (buf0, buf1) = buf.split_at_mut(half * DEPTH_MANY);
        let (dst0, dst1) = dst.split_at_mut(half * dst_rs);
        let (lhs0, lhs1) = lhs.split_at(half * k);
        rayon::join(
            || panel_rows(half, dst0, dst_rs, lhs0, rhs, buf0, gelu),
            || panel_rows(m - half, dst1, dst_rs, lhs1, rhs, buf1, gelu),
        );
    } else {
        panel_rows(m, dst, dst_rs, lhs, rhs, buf, gelu);
    }
}

/// [`panel_product`] on one thread, `buf` holding the packed panels.
fn panel_rows(
    m: usize,
    dst: &mut [f32],
    dst_rs: usize,
    lhs: &[f32],
    rhs: &Packed,
    buf: &mut [f32],
    gelu: bool,
) {
    let (n, k) = (rhs.n, rhs.k);
    let count = m.div_ceil(PANEL);
    assert!(buf.len() >= count * PANEL * DEPTH_MANY, "panel_product: panels sized for fewer rows");
    let weights = rhs.data.as_slice();
    let fast = has_avx2_fma();
    for i0 in (0..k).step_by(DEPTH_MANY) {
        let depth = DEPTH_MANY.min(k - i0);
        // GELU goes onto each tile as the last depth pass finishes it, while it is in cache.
        let gelu = gelu && i0 + depth == k;
        // Panel p holds rows 6p..6p+6, element (r, i) at i·6 + r; rows past m are zeros.
        for (p, panel) in buf.chunks_exact_mut(PANEL * depth).take(count).enumerate() {
            let rows: [&[f32]; PANEL] = std::array::from_fn(|r| {
                let row = p * PANEL + r;
                if row < m {
                    &lhs[row * k + i0..][..depth]
                } else {
                    &ZEROS[..depth]
                }
            });
            for (i, d) in panel.as_chunks_mut::<PANEL>().0.iter_mut().enumerate() {
                for (d, row) in d.iter_mut().zip(&rows) {
                    *d = row[i];
                }
            }
        }
        for c0 in (0..n).step_by(BLOCK) {
            let cols = BLOCK.min(n - c0);
            let from = (c0 / BLOCK * k + i0) * BLOCK;
            let run = &weights[from..][..depth * BLOCK];
            // The next block's run (same depth), prefetched to the second-level cache a share
            // per panel, so that its first panel does not wait on memory.
            let next_run = weights.get(from + k * BLOCK..).unwrap_or(&[]);
            let ahead = &next_run[..next_run.len().min(depth * BLOCK)];
            for (p, panel) in buf.chunks_exact(PANEL * depth).take(count).enumerate() {
                let r0 = p * PANEL;
                let tile = Tile { r0, rows: PANEL.min(m - r0), c0, rs: dst_rs };
                #[cfg(target_arch = "x86_64")]
                if fast && cols == BLOCK {
                    // The tile after this one: the next panel's, or the next block's first.
                    let next = if r0 + PANEL < m { (r0 + PANEL, c0) } else { (0, c0 + BLOCK) };
                    // SAFETY: `fast` is true only when `has_avx2_fma` found AVX2 and FMA on
                    // this CPU at run time, which is all `panel_kernel_avx2` requires.
                    unsafe {
                        panel_kernel_avx2(panel, run, dst, tile, next, ahead, (p, count), gelu)
                    };
                    continue;
                }
                let mut acc = [[0.0f32; BLOCK]; PANEL];
                for (x, w) in panel.chunks_exact(PANEL).zip(run.chunks_exact(BLOCK)) {
                    for (a, x) in acc.iter_mut().zip(x) {
                        for (a, w) in a.iter_mut().zip(w) {
                            *a += x * w;
                        }
                    }
                }
                for (r, a) in acc.iter().enumerate().take(tile.rows) {
                    let row = &mut dst[(r0 + r) * dst_rs + c0..][..cols];
                    for (d, a) in row.iter_mut().zip(a) {
                        *d += a;
                    }
                    if gelu {
                        gelu_slice(row);
                    }
                }
            }
        }
    }
}

/// Where a kernel's `rows × 16` result goes: rows `r0..r0 + rows`, columns `c0..c0 + 16` of a
/// destination with rows `rs` apart.
#[derive(Clone, Copy)]
struct Tile {
    r0: usize,
    rows: usize,
    c0: usize,
    rs: usize,
}

/// Zeros standing for the rows past the end of the last panel.
static ZEROS: [f32; DEPTH_MANY] = [0.0; DEPTH_MANY];

/// `dst[tile] += Σ_i panel[i·6 + r] · run[i·16 + c]`: twelve AVX accumulators (six rows by two
/// halves of the block), two weight loads and six broadcasts per step of the depth; the
/// destination is read and written once, at the end, and the `next` tile's lines (row, column)
/// are prefetched at the start so that they arrive while this one computes, as are (to the
/// second-level cache) the lines of `ahead` numbered `≡ share.0 (mod share.1)`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn panel_kernel_avx2(
    panel: &[f32],
    run: &[f32],
    dst: &mut [f32],
    tile: Tile,
    next: (usize, usize),
    ahead: &[f32],
    share: (usize, usize),
    gelu: bool,
) {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps,
        _mm256_setzero_ps, _mm256_storeu_ps, _mm_prefetch, _MM_HINT_T0, _MM_HINT_T1,
    };
    for line in ahead.chunks(BLOCK).skip(share.0).step_by(share.1.max(1)) {
        // A hint only: the address is inside `ahead`, and a prefetch never faults.
        _mm_prefetch::<_MM_HINT_T1>(line.as_ptr().cast());
    }
    for r in 0..PANEL {
        let at = (next.0 + r) * tile.rs + next.1;
        if let Some(line) = dst.get(at..at + BLOCK) {
            // A hint only: both ends of the next tile's row, inside `dst`; never faults.
            _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast());
            _mm_prefetch::<_MM_HINT_T0>(line[BLOCK - 1..].as_ptr().cast());
        }
    }
    let (xs, _) = panel.as_chunks::<PANEL>();
    let (ws, _) = run.as_chunks::<BLOCK>();
    let mut a: [[__m256; 2]; PANEL] = [[_mm256_setzero_ps(); 2]; PANEL];
    for (x, w) in xs.iter().zip(ws) {
        // SAFETY: `w` is 16 floats: two unaligned loads of 8 read inside it.
        let (w0, w1) = unsafe { (_mm256_loadu_ps(w.as_ptr()), _mm256_loadu_ps(w[8..].as_ptr())) };
        for (a, x) in a.iter_mut().zip(x) {
            let b = _mm256_broadcast_ss(x);
            a[0] = _mm256_fmadd_ps(b, w0, a[0]);
            a[1] = _mm256_fmadd_ps(b, w1, a[1]);
        }
    }
    for (r, a) in a.iter().enumerate().take(tile.rows) {
        let row = &mut dst[(tile.r0 + r) * tile.rs + tile.c0..][..BLOCK];
        // SAFETY: `row` holds 16 floats: two unaligned loads and stores of 8 stay inside it.
        unsafe {
            let p = row.as_mut_ptr();
            _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), a[0]));
            _mm256_storeu_ps(p.add(8), _mm256_add_ps(_mm256_loadu_ps(p.add(8)), a[1]));
        }
        if gelu {
            // Inlined here, so compiled for AVX2 + FMA: eight lanes (the same IEEE operations
            // as the separate pass, which ran four lanes of SSE over the whole matrix again).
            gelu_slice(row);
        }
    }
}

/// `dst += lhs × rhs` for at most [`GROUP`] rows (a query's): `lhs` is `m × k` row-major (rows
/// `k` apart), `dst` is `m × n` with rows `dst_rs` apart. The rows are packed first in panels of
/// six over the whole depth (`panels` holds them), so that the kernel reads one stream of
/// broadcasts. With `split`, the column blocks are cut in two halves run by `rayon::join` (in
/// the current pool: the caller's thread and one waiting worker, nothing spawned and nothing
/// allocated per product), each core streaming its half of the weights.
///
/// # Panics
///
/// When a matrix does not fit its slice, `m` exceeds [`GROUP`] or `panels` is too small (a bug
/// in the caller, as for [`matmul`]).
pub(crate) fn few_product(
    m: usize,
    dst: &mut [f32],
    dst_rs: usize,
    lhs: &[f32],
    rhs: &Packed,
    panels: &mut Panels,
    split: bool,
) {
    let (n, k) = (rhs.n, rhs.k);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(m <= GROUP, "few_product: {m} rows, at most {GROUP}");
    assert!(lhs.len() >= m * k, "few_product: lhs does not hold {m}×{k}");
    assert!(dst_rs >= n && dst.len() >= (m - 1) * dst_rs + n, "few_product: dst too small");
    let count = m.div_ceil(PANEL);
    let buf = &mut panels.0.as_mut_slice()[..count * PANEL * k];
    // Panel p holds the rows `share(m, count, p)` over the whole depth, element (r, i) at
    // i·6 + r; the slots past its rows are zeros.
    for (p, panel) in buf.chunks_exact_mut(PANEL * k).enumerate() {
        let (first, size) = share(m, count, p);
        for r in 0..PANEL {
            let dst = panel.iter_mut().skip(r).step_by(PANEL);
            if r < size {
                dst.zip(&lhs[(first + r) * k..][..k]).for_each(|(d, &v)| *d = v);
            } else {
                dst.for_each(|d| *d = 0.0);
            }
        }
    }
    let buf = &*buf;
    let blocks = n.div_ceil(BLOCK);
    let cut = if split && blocks > 1 { blocks.div_ceil(2) * BLOCK } else { n };
    let fast = has_avx2_fma();
    let mut left: [&mut [f32]; GROUP] = std::array::from_fn(|_| Default::default());
    let mut right: [&mut [f32]; GROUP] = std::array::from_fn(|_| Default::default());
    for ((l, r), row) in left.iter_mut().zip(right.iter_mut()).zip(dst.chunks_mut(dst_rs)).take(m) {
        (*l, *r) = row[..n].split_at_mut(cut);
    }
    if cut < n {
        rayon::join(
            || few_columns(&mut left[..m], buf, rhs, 0, fast),
            || few_columns(&mut right[..m], buf, rhs, cut / BLOCK, fast),
        );
    } else {
        few_columns(&mut left[..m], buf, rhs, 0, fast);
    }
}

/// The rows of panel `p` when `m` rows are dealt to `count` panels as evenly as possible:
/// `(first row, rows)`. Even panels cost less than full ones and a remainder: a panel of `r`
/// rows takes `max(r, 4)` cycles a step on two FMA units of latency 4, so 20 rows as 5 + 5 + 5
/// + 5 take 20 cycles a step where 6 + 6 + 6 + 2 took 24 (the 6-row kernel ran the zeros).
fn share(m: usize, count: usize, p: usize) -> (usize, usize) {
    let (base, extra) = (m / count, m % count);
    (p * base + p.min(extra), base + usize::from(p < extra))
}

/// `rows[r][c] += Σ_i x(r, i) · rhs(i, first_block·BLOCK + c)`, `x` packed in panels of six
/// over the whole depth; weight runs of [`DEPTH`] rows, each read once from memory and passed
/// over by every panel while it sits in the first-level cache, each panel's pass prefetching
/// its share of the next run.
fn few_columns(rows: &mut [&mut [f32]], buf: &[f32], rhs: &Packed, first_block: usize, fast: bool) {
    let k = rhs.k;
    let weights = rhs.data.as_slice();
    let width = rows.first().map_or(0, |r| r.len());
    let passes = rows.len().div_ceil(PANEL);
    for (b, c0) in (0..width).step_by(BLOCK).enumerate() {
        let cols = BLOCK.min(width - c0);
        let start = (first_block + b) * k * BLOCK;
        for i0 in (0..k).step_by(DEPTH) {
            let depth = DEPTH.min(k - i0);
            let from = start + i0 * BLOCK;
            let run = &weights[from..][..depth * BLOCK];
            let after = &weights[from + depth * BLOCK..];
            let ahead = &after[..after.len().min(DEPTH * BLOCK)];
            for p in 0..passes {
                let (first, size) = share(rows.len(), passes, p);
                let out = &mut rows[first..first + size];
                let panel = &buf[p * PANEL * k + i0 * PANEL..][..depth * PANEL];
                #[cfg(target_arch = "x86_64")]
                if fast && cols == BLOCK {
                    let share = (p, passes);
                    // SAFETY: `fast` is true only when `has_avx2_fma` found AVX2 and FMA on
                    // this CPU at run time, which is all `few_kernel_avx2` requires.
                    unsafe {
                        match size {
                            1 => few_kernel_avx2::<1>(panel, run, out, c0, ahead, share),
                            2 => few_kernel_avx2::<2>(panel, run, out, c0, ahead, share),
                            3 => few_kernel_avx2::<3>(panel, run, out, c0, ahead, share),
                            4 => few_kernel_avx2::<4>(panel, run, out, c0, ahead, share),
                            5 => few_kernel_avx2::<5>(panel, run, out, c0, ahead, share),
                            _ => few_kernel_avx2::<6>(panel, run, out, c0, ahead, share),
                        }
                    }
                    continue;
                }
                let mut acc = [[0.0f32; BLOCK]; PANEL];
                for (x, w) in panel.chunks_exact(PANEL).zip(run.chunks_exact(BLOCK)) {
                    for (a, x) in acc.iter_mut().zip(x) {
                        for (a, w) in a.iter_mut().zip(w) {
                            *a += x * w;
                        }
                    }
                }
                for (row, a) in out.iter_mut().zip(&acc) {
                    for (d, a) in row[c0..c0 + cols].iter_mut().zip(a) {
                        *d += a;
                    }
                }
            }
        }
    }
}

/// `out[r][c0 + c] += Σ_i panel[i·6 + r] · run[i·16 + c]` for the panel's `R` rows (as
/// [`panel_kernel_avx2`] does for six); prefetches the lines of `ahead` numbered `≡ share.0 (mod
/// share.1)`, one every four steps.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn few_kernel_avx2<const R: usize>(
    panel: &[f32],
    run: &[f32],
    out: &mut [&mut [f32]],
    c0: usize,
    ahead: &[f32],
    share: (usize, usize),
) {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps,
        _mm256_setzero_ps, _mm256_storeu_ps, _mm_prefetch, _MM_HINT_T0,
    };
    let mut lines = ahead.chunks(BLOCK).skip(share.0).step_by(share.1.max(1));
    let (xs, _) = panel.as_chunks::<PANEL>();
    let (ws, _) = run.as_chunks::<BLOCK>();
    let depth = xs.len().min(ws.len());
    let (xs, ws) = (&xs[..depth], &ws[..depth]);
    let mut a: [[__m256; 2]; R] = [[_mm256_setzero_ps(); 2]; R];
    // One step of the depth: two weight loads, R broadcasts, 2R FMAs.
    macro_rules! step {
        ($x:expr, $w:expr) => {{
            let (x, w): (&[f32; PANEL], &[f32; BLOCK]) = ($x, $w);
            // SAFETY: `w` is 16 floats: an unaligned load of its first 8 reads inside it.
            let w0 = unsafe { _mm256_loadu_ps(w.as_ptr()) };
            // SAFETY: and one of its last 8.
            let w1 = unsafe { _mm256_loadu_ps(w[8..].as_ptr()) };
            for (a, x) in a.iter_mut().zip(x) {
                let b = _mm256_broadcast_ss(x);
                a[0] = _mm256_fmadd_ps(b, w0, a[0]);
                a[1] = _mm256_fmadd_ps(b, w1, a[1]);
            }
        }};
    }
    // Four steps, then one line of this pass's share of the next run: the prefetches spread
    // over the loop instead of a burst that stalls on the miss buffers before it.
    let (xs4, xs_tail) = xs.as_chunks::<4>();
    let (ws4, ws_tail) = ws.as_chunks::<4>();
    for (x4, w4) in xs4.iter().zip(ws4) {
        if let Some(line) = lines.next() {
            // A hint only: the address is inside `ahead`, and a prefetch never faults.
            _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast());
        }
        for (x, w) in x4.iter().zip(w4) {
            step!(x, w);
        }
    }
    for (x, w) in xs_tail.iter().zip(ws_tail) {
        step!(x, w);
    }
    for line in lines {
        // A hint only, as above.
        _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast());
    }
    for (row, a) in out.iter_mut().zip(&a) {
        let row = &mut row[c0..][..BLOCK];
        // SAFETY: `row` holds 16 floats: two unaligned loads and stores of 8 stay inside it.
        unsafe {
            let p = row.as_mut_ptr();
            _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), a[0]));
            _mm256_storeu_ps(p.add(8), _mm256_add_ps(_mm256_loadu_ps(p.add(8)), a[1]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MAX_TOKENS as MAX_ROWS;

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
    fn panel_products_match_the_naive_loop() {
        let shapes = [(188, 384, 1536), (188, 1536, 384), (7, 37, 45), (1, 5, 3), (256, 48, 193)];
        for &(m, n, k) in &shapes {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0).collect();
            let want = naive(m, n, k, View::rows(&a, k), View::rows(&b, n));
            let rs = n + 3;
            let mut panels = Panels::new(m);
            let packed = Packed::new(&b, k, n);
            for (split, gelu) in [(false, false), (true, false), (false, true), (true, true)] {
                let mut dst = vec![1.5f32; m * rs];
                panel_product(m, &mut dst, rs, &a, &packed, &mut panels, split, gelu);
                for r in 0..m {
                    for c in 0..rs {
                        let got = dst[r * rs + c];
                        let mut expect = if c < n { want[r * n + c] + 1.5 } else { 1.5 };
                        if gelu && c < n {
                            let mut v = [expect];
                            gelu_slice(&mut v);
                            expect = v[0];
                        }
                        assert!(
                            (got - expect).abs() <= 1e-3 * expect.abs().max(1.0),
                            "{m}x{n}x{k} split {split} gelu {gelu}: ({r}, {c}) = {got}, want {expect}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn few_row_products_match_the_naive_loop() {
        let shapes = [
            (20, 1536, 384, true),
            (7, 37, 45, true),
            (1, 5, 3, true),
            (36, 48, 16, false),
            (30, 40, 300, true),
            (9, 16, 1, true),
            (13, 33, 257, false),
        ];
        for &(m, n, k, split) in &shapes {
            let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 3.0).collect();
            let want = naive(m, n, k, View::rows(&a, k), View::rows(&b, n));
            // Rows 3 columns wider than the product, starting at 1.5: accumulated onto.
            let rs = n + 3;
            let mut dst = vec![1.5f32; m * rs];
            let packed = Packed::new(&b, k, n);
            few_product(m, &mut dst, rs, &a, &packed, &mut Panels::new(MAX_ROWS), split);
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
