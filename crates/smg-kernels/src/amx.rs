//! bf16 matrix products on Intel AMX (Sapphire Rapids and later): `C (f32) += A (bf16) · B (bf16)`
//! in 16 × 16 f32 tiles, each `tdpbf16ps` doing 16 · 16 · 32 multiply-adds.
//!
//! The weight (`B = Wᵀ`) is packed once ([`PackedB`]) into 1 KiB tiles in the VNNI layout the
//! instruction reads: tile row `r` holds, for 16 output columns `n`, the pair
//! `(W[n][2r], W[n][2r+1])` of one 32-wide slice of `K`. Activations are rounded to bf16 into
//! a zero-padded copy. The kernel keeps a 2 × 2 block of C tiles (32 × 32 outputs) in tile
//! registers over the whole `K` loop, written in inline assembly because Rust's AMX intrinsics
//! are not stable. Availability is detected at run time (CPUID, then Linux's `arch_prctl`
//! permission for the tile data state); `SMG_AMX=0` switches it off.

use crate::{bf16, Aligned, SendPtr};
use rayon::prelude::*;
use std::sync::OnceLock;

/// Whether this CPU and OS run AMX bf16 tiles (and `SMG_AMX` is not `0`). Asks the kernel for
/// the tile-data permission on first call.
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if matches!(std::env::var("SMG_AMX").as_deref(), Ok("0") | Ok("off") | Ok("false")) {
            return false;
        }
        detect()
    })
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    // CPUID.(EAX=7, ECX=0):EDX bit 22 AMX-BF16, bit 24 AMX-TILE.
    #[allow(unused_unsafe)]
    let leaf7 = unsafe { std::arch::x86_64::__cpuid_count(7, 0) };
    if leaf7.edx & (1 << 22) == 0 || leaf7.edx & (1 << 24) == 0 {
        return false;
    }
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// `B` (`K × N`, given as the row-major `N × K` weight `W`) in bf16 VNNI tiles: tile `(nb, kb)`
/// covers columns `16·nb ..` and rows `32·kb ..`, zero-padded to `N` a multiple of 32 and `K`
/// a multiple of 32.
#[derive(Debug, Clone)]
pub struct PackedB {
    pub n: usize,
    pub k: usize,
    kb: usize,
    nb: usize,
    tiles: Aligned<u16>,
}

pub(crate) const TILE: usize = 512; // u16 per 1 KiB tile

impl PackedB {
    /// Packs the row-major `n × k` weight `w` (PyTorch's `Linear.weight`).
    pub fn new(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight is not {n} × {k}");
        Self::from_rows(n, k, |col| &w[col * k..(col + 1) * k])
    }

    /// Packs `B` whose column `col` (a row of `W`, `k` values) is `row(col)`.
    pub fn from_rows<'a>(n: usize, k: usize, row: impl Fn(usize) -> &'a [f32] + Sync) -> Self {
        let kb = k.div_ceil(32);
        let nb = n.div_ceil(32) * 2;
        let mut tiles = Aligned::<u16>::zeroed(nb * kb * TILE);
        let fill = |(b, panel): (usize, &mut [u16])| {
            let mut h = vec![0u16; kb * 32];
            for c in 0..16 {
                let col = b * 16 + c;
                if col >= n {
                    break;
                }
                bf16::convert(&row(col)[..k], &mut h[..k]);
                // Pairs (2r, 2r+1) of K are adjacent in a tile row: move them as one u32.
                for (p, pair) in h.chunks_exact(2).enumerate() {
                    let (t, r) = (p / 16, p % 16);
                    panel[t * TILE + r * 32 + 2 * c] = pair[0];
                    panel[t * TILE + r * 32 + 2 * c + 1] = pair[1];
                }
            }
        };
        if n * k >= 1 << 16 {
            tiles.par_chunks_mut(kb * TILE).enumerate().for_each(fill);
        } else {
            tiles.chunks_mut(kb * TILE).enumerate().for_each(fill);
        }
        Self { n, k, kb, nb, tiles }
    }

    /// Packs `B` given by its rows: `row(kk)` is `B[kk][..n]` (single-threaded; for operands
    /// built per task: the per-head values of attention, the im2col columns of a convolution).
    pub fn from_k_rows<'a>(n: usize, k: usize, row: impl Fn(usize) -> &'a [f32]) -> Self {
        let mut b = Self::uninit(n, k);
        let ptr = SendPtr(b.tiles.as_mut_ptr());
        for t in 0..b.kb {
            // Safety: `ptr` addresses the whole zeroed tile buffer of `b`.
            unsafe { k_band(ptr, n, k, b.kb, t, &row) };
        }
        b
    }

    /// [`PackedB::from_k_rows`] with the 32-row bands of `K` packed in parallel (large operands:
    /// a batch's activations as the `B` of a weight gradient).
    pub fn from_k_rows_par<'a>(n: usize, k: usize, row: impl Fn(usize) -> &'a [f32] + Sync) -> Self {
        let mut b = Self::uninit(n, k);
        let (ptr, kb) = (SendPtr(b.tiles.as_mut_ptr()), b.kb);
        (0..kb).into_par_iter().for_each(|t| {
            let ptr = ptr;
            // Safety: band `t` writes only tile column `t` of every panel, disjoint across tasks.
            unsafe { k_band(ptr, n, k, kb, t, &row) };
        });
        b
    }
}

/// Packs rows `32·t .. 32·t + 32` of `B` (`row(kk)` = `B[kk][..n]`) into tile column `t` of
/// every panel of the tiles at `tiles` (`kb` tiles per panel), padding included: where the
/// band is short of 32 rows or the panels run past `n` columns, its tiles are zeroed first.
///
/// Safety: `tiles` must address `n.div_ceil(32) * 2 * kb` tiles, and no other thread may
/// write tile column `t` meanwhile.
unsafe fn k_band<'a>(tiles: SendPtr<u16>, n: usize, k: usize, kb: usize, t: usize, row: &impl Fn(usize) -> &'a [f32]) {
    let panels = n.div_ceil(32) * 2;
    if 32 * t + 32 > k || n < panels * 16 {
        for p in 0..panels {
            unsafe { std::slice::from_raw_parts_mut(tiles.0.add((p * kb + t) * TILE), TILE) }.fill(0);
        }
    }
    #[cfg(target_arch = "x86_64")]
    let fast = std::arch::is_x86_feature_detected!("avx512bf16") && std::arch::is_x86_feature_detected!("avx512bw");
    #[cfg(not(target_arch = "x86_64"))]
    let fast = false;
    // Scratch only where it is used: the row past an odd `k`, the columns the vector path leaves.
    let zero = vec![0f32; if k % 2 == 1 { n } else { 0 }];
    let tail = if fast { n % 16 } else { n };
    let (mut h0, mut h1) = (vec![0u16; if tail > 0 { n } else { 0 }], vec![0u16; if tail > 0 { n } else { 0 }]);
    for kk in (32 * t..(32 * t + 32).min(k)).step_by(2) {
        let (r0, r1) = (&row(kk)[..n], if kk + 1 < k { &row(kk + 1)[..n] } else { &zero[..] });
        let r = (kk % 32) / 2;
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if fast {
            // Whole panels of 16 columns: one 64-byte tile row each.
            done = n / 16 * 16;
            for p in 0..n / 16 {
                unsafe { interleave16(&r0[p * 16..], &r1[p * 16..], tiles.0.add((p * kb + t) * TILE + r * 32)) };
            }
        }
        if done < n {
            bf16::convert(&r0[done..], &mut h0[done..n]);
            bf16::convert(&r1[done..], &mut h1[done..n]);
            for col in done..n {
                let at = ((col / 16) * kb + t) * TILE + r * 32 + 2 * (col % 16);
                unsafe {
                    *tiles.0.add(at) = h0[col];
                    *tiles.0.add(at + 1) = h1[col];
                }
            }
        }
    }
}

/// One VNNI tile row: the bf16 pairs `(a[i], b[i])` for 16 columns, stored at `dst` (64 bytes).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(crate) unsafe fn interleave16(a: &[f32], b: &[f32], dst: *mut u16) {
    use std::arch::x86_64::*;
    const IDX: [u16; 32] =
        [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31];
    let v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(b.as_ptr()), _mm512_loadu_ps(a.as_ptr()));
    let idx = _mm512_loadu_si512(IDX.as_ptr() as *const _);
    let out = _mm512_permutexvar_epi16(idx, std::mem::transmute::<__m512bh, __m512i>(v));
    _mm512_storeu_si512(dst as *mut _, out);
}

impl PackedB {
    /// An all-zero `B` of `k` rows and `n` columns.
    pub fn zeros(n: usize, k: usize) -> Self {
        let (kb, nb) = (k.div_ceil(32), n.div_ceil(32) * 2);
        Self { n, k, kb, nb, tiles: Aligned::zeroed(nb * kb * TILE) }
    }

    /// A `B` whose tiles [`k_band`] writes in full, padding included.
    fn uninit(n: usize, k: usize) -> Self {
        let (kb, nb) = (k.div_ceil(32), n.div_ceil(32) * 2);
        Self { n, k, kb, nb, tiles: Aligned::uninit(nb * kb * TILE) }
    }

    /// Position of `B[kk][col]` in the tiles.
    #[inline(always)]
    fn at(kb: usize, kk: usize, col: usize) -> usize {
        ((col / 16) * kb + kk / 32) * TILE + ((kk % 32) / 2) * 32 + 2 * (col % 16) + kk % 2
    }

    /// A writer for products that store their output into this operand from several tasks.
    pub fn writer(&mut self) -> BWriter<'_> {
        BWriter { ptr: SendPtr(self.tiles.as_mut_ptr()), n: self.n, k: self.k, kb: self.kb, _life: std::marker::PhantomData }
    }
}

/// Stores f32 values into a [`PackedB`] from several tasks at once.
#[derive(Clone, Copy)]
pub struct BWriter<'a> {
    ptr: SendPtr<u16>,
    n: usize,
    k: usize,
    kb: usize,
    _life: std::marker::PhantomData<&'a mut [u16]>,
}

impl BWriter<'_> {
    /// `B[kk0 + i][col] = vals[i]` (a run down one column, e.g. one token's key).
    ///
    /// # Safety
    /// No two tasks may store to the same element concurrently.
    #[inline]
    pub unsafe fn put_column(&self, col: usize, kk0: usize, vals: &[f32]) {
        if col >= self.n {
            return;
        }
        let mut h = [0u16; 32];
        let len = vals.len().min(self.k.saturating_sub(kk0));
        if kk0.is_multiple_of(2) && len <= 32 {
            // Pairs (kk, kk + 1) are adjacent: one 4-byte store each.
            bf16::convert(&vals[..len], &mut h[..len]);
            for p in 0..len / 2 {
                let at = PackedB::at(self.kb, kk0 + 2 * p, col);
                (self.ptr.0.add(at) as *mut u32).write(h[2 * p] as u32 | (h[2 * p + 1] as u32) << 16);
            }
            if len % 2 == 1 {
                *self.ptr.0.add(PackedB::at(self.kb, kk0 + len - 1, col)) = h[len - 1];
            }
            return;
        }
        for (ci, chunk) in vals[..vals.len().min(self.k.saturating_sub(kk0))].chunks(32).enumerate() {
            bf16::convert(chunk, &mut h[..chunk.len()]);
            for (i, &v) in h[..chunk.len()].iter().enumerate() {
                *self.ptr.0.add(PackedB::at(self.kb, kk0 + ci * 32 + i, col)) = v;
            }
        }
    }

    /// `B[kk][col0 + i] = vals[i]` (a run along one row, e.g. one token's value).
    ///
    /// # Safety
    /// No two tasks may store to the same element concurrently.
    #[inline]
    pub unsafe fn put_row(&self, kk: usize, col0: usize, vals: &[f32]) {
        if kk >= self.k {
            return;
        }
        let mut h = [0u16; 32];
        for (ci, chunk) in vals[..vals.len().min(self.n.saturating_sub(col0))].chunks(32).enumerate() {
            bf16::convert(chunk, &mut h[..chunk.len()]);
            for (i, &v) in h[..chunk.len()].iter().enumerate() {
                *self.ptr.0.add(PackedB::at(self.kb, kk, col0 + ci * 32 + i)) = v;
            }
        }
    }
}

/// `A` (`M × K`, row-major in meaning) rounded to bf16 in tiles: for each block of 16 rows, its
/// `kb` tiles of 16 × 32 back to back, so every tile load reads 1 KiB of contiguous memory;
/// zero-padded to `M` a multiple of 32 and `K` a multiple of 32. Products can write their
/// output straight into one ([`BlockWriter`]), so that a layer's output is the next layer's
/// input without an f32 round trip.
#[derive(Debug, Clone)]
pub struct PackedA {
    pub m: usize,
    pub k: usize,
    mp: usize,
    kb: usize,
    tiles: Aligned<u16>,
}

impl PackedA {
    /// An all-zero `m × k` operand.
    pub fn zeros(m: usize, k: usize) -> Self {
        let (mp, kb) = (m.div_ceil(32) * 32, k.div_ceil(32));
        Self { m, k, mp, kb, tiles: Aligned::zeroed(mp * kb * 32) }
    }

    /// Rounds the row-major `m × k` matrix `x`.
    pub fn from_f32(x: &[f32], m: usize, k: usize) -> Self {
        assert_eq!(x.len(), m * k, "input is not {m} × {k}");
        let mut a = Self::uninit(m, k);
        a.tiles.par_chunks_mut(16 * a.kb * 32).enumerate().for_each(|(mb, panel)| {
            let mut h = [0u16; 32];
            for r in 0..16 {
                let rr = mb * 16 + r;
                pack_row(panel, r, if rr < m { Some(&x[rr * k..(rr + 1) * k]) } else { None }, &mut h);
            }
        });
        a
    }

    /// Rounds `xᵀ` for the row-major `k × m` matrix `x` (a transposed operand, e.g. the output
    /// gradient of a weight gradient `dYᵀ · X`) straight into the tiles: each 16 × 32 tile is
    /// gathered from 32 rows of 16 contiguous values, with no transposed f32 copy.
    pub fn from_f32_t(x: &[f32], m: usize, k: usize) -> Self {
        assert_eq!(x.len(), m * k, "input is not {k} × {m}");
        let mut a = Self::uninit(m, k);
        let kb = a.kb;
        a.tiles.par_chunks_mut(16 * kb * 32).enumerate().for_each(|(mb, panel)| {
            let (c0, rows) = (mb * 16, m.saturating_sub(mb * 16).min(16));
            if rows == 0 {
                panel.fill(0);
                return;
            }
            let mut buf = [[0f32; 32]; 16];
            #[cfg(target_arch = "x86_64")]
            let avx2 = rows == 16 && std::arch::is_x86_feature_detected!("avx2");
            for (kt, tile) in panel.chunks_exact_mut(TILE).enumerate() {
                let depth = (k - kt * 32).min(32);
                #[cfg(target_arch = "x86_64")]
                if avx2 && depth == 32 {
                    // Eight 8 × 8 blocks: source rows kt·32 + 8·jb.., columns c0 + 8·rb...
                    for jb in 0..4 {
                        for rb in 0..2 {
                            let src = x[(kt * 32 + jb * 8) * m + c0 + rb * 8..].as_ptr();
                            // Safety: AVX2 is present; the 8 source rows of 8 values lie inside
                            // `x` (rows < k, columns < c0 + 16 ≤ m) and the block of `buf` too.
                            unsafe { crate::matmul::transpose8_avx2(src, m, (buf.as_mut_ptr() as *mut f32).add(rb * 8 * 32 + jb * 8), 32) };
                        }
                    }
                    for (r, out) in tile.chunks_exact_mut(32).enumerate() {
                        bf16::convert(&buf[r], out);
                    }
                    continue;
                }
                for (j, kk) in (kt * 32..kt * 32 + depth).enumerate() {
                    let src = &x[kk * m + c0..kk * m + c0 + rows];
                    for (r, &v) in src.iter().enumerate() {
                        buf[r][j] = v;
                    }
                }
                for (r, out) in tile.chunks_exact_mut(32).enumerate() {
                    if r < rows {
                        buf[r][depth..].fill(0.0);
                        bf16::convert(&buf[r], out);
                    } else {
                        out.fill(0);
                    }
                }
            }
        });
        a
    }

    /// A `m × k` operand whose tiles the caller writes in full, padding included.
    fn uninit(m: usize, k: usize) -> Self {
        let (mp, kb) = (m.div_ceil(32) * 32, k.div_ceil(32));
        Self { m, k, mp, kb, tiles: Aligned::uninit(mp * kb * 32) }
    }

    /// Overwrites every row `r < m` with the `k` values `row(r, out)` writes into `out`
    /// (computed in f32, e.g. a LayerNorm, then rounded), and the padding (rows past `m`,
    /// columns past `k`) with zeros, in parallel over blocks of 16 rows.
    pub fn fill_rows(&mut self, row: impl Fn(usize, &mut [f32]) + Sync) {
        let (m, k, kb) = (self.m, self.k, self.kb);
        self.tiles
            .par_chunks_mut(16 * kb * 32)
            .enumerate()
            .for_each_init(|| vec![0f32; k], |buf, (mb, panel)| fill_panel(panel, mb, m, buf, &row));
    }

    /// [`PackedA::fill_rows`] on the calling thread only.
    pub fn fill_rows_serial(&mut self, mut row: impl FnMut(usize, &mut [f32])) {
        let (m, k, kb) = (self.m, self.k, self.kb);
        let mut buf = vec![0f32; k];
        for (mb, panel) in self.tiles.chunks_mut(16 * kb * 32).enumerate() {
            fill_panel(panel, mb, m, &mut buf, &mut row);
        }
    }

    /// A writer for products that store their output into this operand block by block.
    pub fn writer(&mut self) -> BlockWriter<'_> {
        BlockWriter { ptr: SendPtr(self.tiles.as_mut_ptr()), m: self.m, k: self.k, kb: self.kb, _life: std::marker::PhantomData }
    }
}

fn fill_panel(panel: &mut [u16], mb: usize, m: usize, buf: &mut [f32], mut row: impl FnMut(usize, &mut [f32])) {
    let mut h = [0u16; 32];
    for r in 0..16 {
        let rr = mb * 16 + r;
        let src = if rr < m {
            row(rr, buf);
            Some(&*buf)
        } else {
            None
        };
        pack_row(panel, r, src, &mut h);
    }
}

/// Rounds `src` into row `r` of every tile of a 16-row panel, zeros past its end; `None`
/// (a row past `M`) zeros the row.
fn pack_row(panel: &mut [u16], r: usize, src: Option<&[f32]>, h: &mut [u16; 32]) {
    let kb = panel.len() / TILE;
    let Some(src) = src else {
        for kt in 0..kb {
            panel[kt * TILE + r * 32..kt * TILE + r * 32 + 32].fill(0);
        }
        return;
    };
    // Whole tiles' rows converted straight into place, the last (partial) one via `h`.
    let full = src.len() / 32;
    for kt in 0..full {
        bf16::convert(&src[kt * 32..kt * 32 + 32], &mut panel[kt * TILE + r * 32..kt * TILE + r * 32 + 32]);
    }
    let rest = &src[full * 32..];
    if !rest.is_empty() {
        bf16::convert(rest, &mut h[..rest.len()]);
        let row = &mut panel[full * TILE + r * 32..full * TILE + r * 32 + 32];
        row[..rest.len()].copy_from_slice(&h[..rest.len()]);
        row[rest.len()..].fill(0);
    }
}

/// Stores f32 values into a [`PackedA`] from several tasks at once.
#[derive(Clone, Copy)]
pub struct BlockWriter<'a> {
    ptr: SendPtr<u16>,
    m: usize,
    k: usize,
    kb: usize,
    _life: std::marker::PhantomData<&'a mut [u16]>,
}

impl BlockWriter<'_> {
    /// Stores `vals` (rounded to bf16) at row `r`, columns `c0 .. c0 + vals.len()`; values past
    /// the matrix are dropped.
    ///
    /// # Safety
    /// No two tasks may store to the same element concurrently.
    #[inline]
    pub unsafe fn put_row(&self, r: usize, c0: usize, vals: &[f32]) {
        if r >= self.m {
            return;
        }
        let (panel, rr) = (r / 16, r % 16);
        let end = (c0 + vals.len()).min(self.k);
        let mut c = c0;
        while c < end {
            // One run inside one tile row, converted at once.
            let run = (32 - c % 32).min(end - c);
            let dst = std::slice::from_raw_parts_mut(self.ptr.0.add((panel * self.kb + c / 32) * TILE + rr * 32 + c % 32), run);
            bf16::convert(&vals[c - c0..c - c0 + run], dst);
            c += run;
        }
    }
}

#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

/// Eight tiles of 16 rows × 64 bytes: C in 0–3, A in 4–5, B in 6–7.
const CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    colsb: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// Configures this thread's tiles (call before [`block_2x2`], pair with [`release`]).
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn configure() {
    std::arch::asm!("ldtilecfg [{0}]", in(reg) &CONFIG as *const TileConfig, options(nostack, readonly));
}

/// Releases this thread's tile state.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn release() {
    std::arch::asm!("tilerelease", options(nostack, nomem));
}

/// `c[32][32] (+)= A(two row panels) · B(two column panels)` over `kb` K-tiles: `a0`, `a1` point
/// at the first tile of the two 16-row panels of A, `b0`, `b1` at the first tile of two
/// 16-column panels of B (each panel's tiles 1 KiB apart); `c` is row-major with a row stride
/// of `sc` bytes and is read first when `accumulate`. Loads are interleaved with the products
/// so that a tile is reloaded as soon as the products reading it have issued (tiles are not
/// renamed).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn block_2x2(
    a0: *const u16,
    a1: *const u16,
    b0: *const u16,
    b1: *const u16,
    kb: usize,
    c: *mut f32,
    sc: usize,
    accumulate: bool,
) {
    let c1 = (c as *mut u8).add(16 * sc) as *mut f32;
    if accumulate {
        std::arch::asm!(
            "tileloadd tmm0, [{c} + {sc}*1]",
            "tileloadd tmm1, [{c} + {sc}*1 + 64]",
            "tileloadd tmm2, [{c1} + {sc}*1]",
            "tileloadd tmm3, [{c1} + {sc}*1 + 64]",
            c = in(reg) c, c1 = in(reg) c1, sc = in(reg) sc, options(nostack, readonly)
        );
    } else {
        std::arch::asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
    }
    std::arch::asm!(
        "2:",
        "tileloadd tmm4, [{a0} + {sb}*1]",
        "tileloadd tmm6, [{b0} + {sb}*1]",
        "tdpbf16ps tmm0, tmm4, tmm6",
        "tileloadd tmm7, [{b1} + {sb}*1]",
        "tdpbf16ps tmm1, tmm4, tmm7",
        "tileloadd tmm5, [{a1} + {sb}*1]",
        "tdpbf16ps tmm2, tmm5, tmm6",
        "tdpbf16ps tmm3, tmm5, tmm7",
        "add {a0}, 1024",
        "add {a1}, 1024",
        "add {b0}, 1024",
        "add {b1}, 1024",
        "dec {n}",
        "jnz 2b",
        "tilestored [{c} + {sc}*1], tmm0",
        "tilestored [{c} + {sc}*1 + 64], tmm1",
        "tilestored [{c1} + {sc}*1], tmm2",
        "tilestored [{c1} + {sc}*1 + 64], tmm3",
        a0 = inout(reg) a0 => _,
        a1 = inout(reg) a1 => _,
        b0 = inout(reg) b0 => _,
        b1 = inout(reg) b1 => _,
        n = inout(reg) kb => _,
        c = in(reg) c,
        c1 = in(reg) c1,
        sb = in(reg) 64usize,
        sc = in(reg) sc,
        options(nostack)
    );
}

/// `C (mp × np, row stride ldc floats) = A · B` for operands whose `K` tiles match, one thread
/// (the caller has configured its tiles); for the small products inside attention.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn product_into(a: &PackedA, b: &PackedB, c: *mut f32, ldc: usize) {
    debug_assert_eq!(a.kb, b.kb);
    for mb in 0..a.mp / 32 {
        let a0 = a.tiles.as_ptr().add(2 * mb * a.kb * TILE);
        for pair in 0..b.nb / 2 {
            let b0 = b.tiles.as_ptr().add(2 * pair * b.kb * TILE);
            block_2x2(a0, a0.add(a.kb * TILE), b0, b0.add(b.kb * TILE), a.kb, c.add(mb * 32 * ldc + pair * 32), ldc * 4, false);
        }
    }
}

/// K-tiles per pass: a pass's B panels (2 × 8 KiB) stay in L1 while A streams from L2.
const KC: usize = 12;
/// Column pairs per task.
const GROUP: usize = 3;

/// `out[m][n] = epilogue(row m, columns n0.., the 32 × 32 block)` for `x (m × k)` times the
/// packed weight; `epilogue(block, m0, n0)` receives each finished block of 32 × 32 f32
/// (row stride 32) and writes it where it belongs. Panics if AMX is not [`available`].
pub fn matmul_blocks(x: &[f32], m: usize, w: &PackedB, epilogue: impl Fn(&[f32; 1024], usize, usize) + Sync) {
    matmul_packed(&PackedA::from_f32(x, m, w.k), w, epilogue)
}

/// [`matmul_blocks`] for an operand already in tiles.
pub fn matmul_packed(a: &PackedA, w: &PackedB, epilogue: impl Fn(&[f32; 1024], usize, usize) + Sync) {
    assert!(available(), "AMX is not available on this machine");
    assert_eq!(a.k, w.k, "A has {} columns, B {} rows", a.k, w.k);
    let (kb, mp) = (w.kb, a.mp);
    let pairs = w.nb / 2;
    (0..pairs.div_ceil(GROUP)).into_par_iter().for_each(|g| {
        let group = g * GROUP..((g + 1) * GROUP).min(pairs);
        let blocks = mp / 32;
        // One task: GROUP column pairs; per K pass, each A panel is read once and used against
        // every pair of the group (from L1), the group's B panels stay in L2.
        with_c_buf(1024 * blocks * group.len(), |c| {
            #[cfg(target_arch = "x86_64")]
            unsafe {
                configure();
                for k0 in (0..kb).step_by(KC) {
                    let nk = KC.min(kb - k0);
                    for mb in 0..blocks {
                        let a0 = a.tiles.as_ptr().add((2 * mb * kb + k0) * TILE);
                        for (gi, pair) in group.clone().enumerate() {
                            let b0 = w.tiles.as_ptr().add((2 * pair * kb + k0) * TILE);
                            block_2x2(
                                a0,
                                a0.add(kb * TILE),
                                b0,
                                b0.add(kb * TILE),
                                nk,
                                c.as_mut_ptr().add((gi * blocks + mb) * 1024),
                                128,
                                k0 > 0,
                            );
                        }
                    }
                }
                release();
            }
            for (gi, pair) in group.clone().enumerate() {
                for mb in 0..blocks {
                    let block: &[f32; 1024] = c[(gi * blocks + mb) * 1024..(gi * blocks + mb + 1) * 1024].try_into().expect("1024");
                    epilogue(block, mb * 32, pair * 32);
                }
            }
        });
    });
}

thread_local! {
    static C_BUF: std::cell::RefCell<Aligned<f32>> = std::cell::RefCell::new(Aligned::zeroed(0));
}

/// Runs `f` on this thread's buffer of at least `need` f32 for a task's C blocks, kept between
/// calls (no allocation or zeroing per product: the first K pass starts from zeroed tiles); a
/// fresh buffer where the thread's own is in use (a nested task).
fn with_c_buf<R>(need: usize, f: impl FnOnce(&mut Aligned<f32>) -> R) -> R {
    C_BUF.with(|cell| match cell.try_borrow_mut().as_deref_mut() {
        Ok(c) => {
            if c.len() < need {
                *c = Aligned::zeroed(need);
            }
            f(c)
        }
        Err(_) => f(&mut Aligned::zeroed(need)),
    })
}

/// `dst (m × n, row-major) = A · B` for two packed operands of the same `K` (training products,
/// where both sides change every step). The work is split into units of one column pair (32
/// columns) × a run of 32-row blocks, enough units for every thread even when `n` is small;
/// within a unit the pair's B panels stay in L1 over a pass of [`KC`] K-tiles while A streams.
/// Every output is summed by one task in a fixed order, so results do not depend on the thread
/// count. Panics if AMX is not [`available`] or the shapes disagree.
pub fn gemm_into(a: &PackedA, b: &PackedB, dst: &mut [f32]) {
    assert!(available(), "AMX is not available on this machine");
    assert_eq!(a.k, b.k, "A has {} columns, B {} rows", a.k, b.k);
    let (m, n, kb) = (a.m, b.n, b.kb);
    assert_eq!(dst.len(), m * n, "output is not {m} × {n}");
    let (blocks, pairs) = (a.mp / 32, b.nb / 2);
    if blocks == 0 || pairs == 0 {
        return;
    }
    let per = blocks.div_ceil((4 * crate::threads()).div_ceil(pairs).clamp(1, blocks));
    let chunks = blocks.div_ceil(per);
    let out = SendPtr(dst.as_mut_ptr());
    (0..pairs * chunks).into_par_iter().for_each(|u| {
        let out = out;
        let (pair, rows) = (u % pairs, (u / pairs) * per..((u / pairs + 1) * per).min(blocks));
        let (n0, cols) = (pair * 32, 32.min(n - pair * 32));
        // Blocks wholly inside dst are stored there straight from the tiles (row stride n);
        // the ragged edge goes through this thread's buffer and is copied.
        let inside = |mb: usize| cols == 32 && mb * 32 + 32 <= m;
        with_c_buf(1024 * rows.len(), |c| {
            #[cfg(target_arch = "x86_64")]
            // Safety: AMX is available (asserted); every tile pointer stays inside its operand's
            // `kb` tiles per panel; a block stored into dst lies inside it and belongs to this
            // unit only, the others land in `c`, which holds `rows.len()` blocks of 32 × 32.
            unsafe {
                configure();
                for k0 in (0..kb).step_by(KC) {
                    let b0 = b.tiles.as_ptr().add((2 * pair * kb + k0) * TILE);
                    for (i, mb) in rows.clone().enumerate() {
                        let a0 = a.tiles.as_ptr().add((2 * mb * kb + k0) * TILE);
                        let (ci, sc) = if inside(mb) { (out.0.add(mb * 32 * n + n0), 4 * n) } else { (c.as_mut_ptr().add(i * 1024), 128) };
                        block_2x2(a0, a0.add(kb * TILE), b0, b0.add(kb * TILE), KC.min(kb - k0), ci, sc, k0 > 0);
                    }
                }
                release();
            }
            for (i, mb) in rows.clone().enumerate().filter(|&(_, mb)| !inside(mb)) {
                for r in 0..32.min(m.saturating_sub(mb * 32)) {
                    // Safety: rows mb·32.. and columns n0.. of dst belong to this unit only.
                    let d = unsafe { std::slice::from_raw_parts_mut(out.0.add((mb * 32 + r) * n + n0), cols) };
                    d.copy_from_slice(&c[i * 1024 + r * 32..i * 1024 + r * 32 + cols]);
                }
            }
        });
    });
}

/// `y = x · Wᵀ` (+ `bias`), `x (m × k)` f32 rounded to bf16, f32 accumulation, `y (m × n)`.
pub fn matmul(x: &[f32], m: usize, w: &PackedB, bias: Option<&[f32]>, act: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let n = w.n;
    let mut y = vec![0f32; m * n];
    let out = SendPtr(y.as_mut_ptr());
    matmul_blocks(x, m, w, |block, m0, n0| {
        let out = out;
        for r in 0..32.min(m.saturating_sub(m0)) {
            let cols = 32.min(n.saturating_sub(n0));
            // Safety: each (m0, n0) block is written by exactly one task.
            let dst = unsafe { std::slice::from_raw_parts_mut(out.0.add((m0 + r) * n + n0), cols) };
            let src = &block[r * 32..r * 32 + cols];
            match bias {
                Some(b) => dst.iter_mut().zip(src).zip(&b[n0..n0 + cols]).for_each(|((d, &s), &b)| *d = act(s + b)),
                None => dst.iter_mut().zip(src).for_each(|(d, &s)| *d = act(s)),
            }
        }
    });
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s as f32 / u32::MAX as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// `from_k_rows` (vectorised pairs) and `from_rows` (the transposed view) pack the same tiles.
    #[test]
    fn packings_agree() {
        for &(n, k) in &[(40, 7), (16, 32), (33, 64), (5, 3)] {
            let b = data(n * k, 4); // B[kk][col] = b[kk * n + col]
            let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect(); // W = Bᵀ, n × k
            let p1 = PackedB::from_k_rows(n, k, |kk| &b[kk * n..(kk + 1) * n]);
            let p2 = PackedB::new(&bt, n, k);
            assert!(p1.tiles.iter().eq(p2.tiles.iter()), "{n} × {k}");
        }
    }

    /// Against an f64 product of the bf16-rounded inputs: only the f32 accumulation differs.
    #[test]
    fn matches_f64_reference_on_rounded_inputs() {
        if !available() {
            eprintln!("AMX not available here: skipped");
            return;
        }
        for &(m, n, k) in &[(1, 1, 1), (33, 40, 70), (64, 96, 768), (5, 17, 31)] {
            let x = data(m * k, 1);
            let w = data(n * k, 2);
            let b = data(n, 3);
            let y = matmul(&x, m, &PackedB::new(&w, n, k), Some(&b), |v| v);
            for i in 0..m {
                for j in 0..n {
                    let r: f64 =
                        (0..k).map(|t| bf16::round(x[i * k + t]) as f64 * bf16::round(w[j * k + t]) as f64).sum::<f64>() + b[j] as f64;
                    assert!(
                        (y[i * n + j] as f64 - r).abs() < 1e-5 * (k as f64).sqrt() + 1e-6,
                        "({m},{n},{k}) at {i},{j}: {} vs {r}",
                        y[i * n + j]
                    );
                }
            }
        }
    }
}
