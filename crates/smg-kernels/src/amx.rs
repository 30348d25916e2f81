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

use crate::{bf16, SendPtr};
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
    tiles: Vec<u16>,
}

const TILE: usize = 512; // u16 per 1 KiB tile

impl PackedB {
    /// Packs the row-major `n × k` weight `w` (PyTorch's `Linear.weight`).
    pub fn new(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight is not {n} × {k}");
        let kb = k.div_ceil(32);
        let nb = n.div_ceil(32) * 2;
        let mut tiles = vec![0u16; nb * kb * TILE];
        tiles.par_chunks_mut(kb * TILE).enumerate().for_each(|(b, panel)| {
            for c in 0..16 {
                let col = b * 16 + c;
                if col >= n {
                    break;
                }
                let row = &w[col * k..(col + 1) * k];
                for (kk, &v) in row.iter().enumerate() {
                    let (t, r, e) = (kk / 32, (kk % 32) / 2, kk % 2);
                    panel[t * TILE + r * 32 + 2 * c + e] = bf16::from_f32(v);
                }
            }
        });
        Self { n, k, kb, nb, tiles }
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

/// `c[32][32] (+)= A(two row panels) · B(two column panels)` over `kb` K-tiles: `a0`, `a1` point
/// at the first tile of the two 16-row panels of A, `b0`, `b1` at the first tile of two
/// 16-column panels of B (each panel's tiles 1 KiB apart); `c` is row-major with stride 32 and
/// is read first when `accumulate`. Loads are interleaved with the products so that a tile is
/// reloaded as soon as the products reading it have issued (tiles are not renamed).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn block_2x2(a0: *const u16, a1: *const u16, b0: *const u16, b1: *const u16, kb: usize, c: *mut f32, accumulate: bool) {
    if accumulate {
        std::arch::asm!(
            "tileloadd tmm0, [{c} + {sc}*1]",
            "tileloadd tmm1, [{c} + {sc}*1 + 64]",
            "tileloadd tmm2, [{c} + {sc}*1 + 2048]",
            "tileloadd tmm3, [{c} + {sc}*1 + 2112]",
            c = in(reg) c, sc = in(reg) 128usize, options(nostack, readonly)
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
        "tilestored [{c} + {sc}*1 + 2048], tmm2",
        "tilestored [{c} + {sc}*1 + 2112], tmm3",
        a0 = inout(reg) a0 => _,
        a1 = inout(reg) a1 => _,
        b0 = inout(reg) b0 => _,
        b1 = inout(reg) b1 => _,
        n = inout(reg) kb => _,
        c = in(reg) c,
        sb = in(reg) 64usize,
        sc = in(reg) 128usize,
        options(nostack)
    );
}

/// K-tiles per pass: a pass's B panels (2 × 8 KiB) stay in L1 while A streams from L2.
const KC: usize = 8;
/// Column pairs per task.
const GROUP: usize = 4;

/// `out[m][n] = epilogue(row m, columns n0.., the 32 × 32 block)` for `x (m × k)` times the
/// packed weight; `epilogue(block, m0, n0)` receives each finished block of 32 × 32 f32
/// (row stride 32) and writes it where it belongs. Panics if AMX is not [`available`].
pub fn matmul_blocks(x: &[f32], m: usize, w: &PackedB, epilogue: impl Fn(&[f32; 1024], usize, usize) + Sync) {
    assert!(available(), "AMX is not available on this machine");
    let k = w.k;
    assert_eq!(x.len(), m * k, "input is not {m} × {k}");
    let kb = w.kb;
    let mp = m.div_ceil(32) * 32;
    // A in tiles too: for each block of 16 rows, its kb tiles of 16 × 32 bf16 back to back, so
    // every tile load reads 1 KiB of contiguous memory.
    let mut a = vec![0u16; mp * kb * 32];
    a.par_chunks_mut(16 * kb * 32).enumerate().for_each(|(mb, panel)| {
        for r in 0..16 {
            let row = mb * 16 + r;
            if row >= m {
                break;
            }
            let src = &x[row * k..(row + 1) * k];
            for (kt, piece) in src.chunks(32).enumerate() {
                bf16::convert(piece, &mut panel[kt * TILE + r * 32..kt * TILE + r * 32 + piece.len()]);
            }
        }
    });
    let a = &a;
    let pairs = w.nb / 2;
    (0..pairs.div_ceil(GROUP)).into_par_iter().for_each(|g| {
        let group = g * GROUP..((g + 1) * GROUP).min(pairs);
        let blocks = mp / 32;
        // One task: GROUP column pairs; per K pass, each A panel is read once and used against
        // every pair of the group (from L1), the group's B panels stay in L2.
        let mut c = vec![[0f32; 1024]; blocks * group.len()];
        #[cfg(target_arch = "x86_64")]
        unsafe {
            std::arch::asm!("ldtilecfg [{0}]", in(reg) &CONFIG as *const TileConfig, options(nostack, readonly));
            for k0 in (0..kb).step_by(KC) {
                let nk = KC.min(kb - k0);
                for mb in 0..blocks {
                    let a0 = a.as_ptr().add((2 * mb * kb + k0) * TILE);
                    for (gi, pair) in group.clone().enumerate() {
                        let b0 = w.tiles.as_ptr().add((2 * pair * kb + k0) * TILE);
                        block_2x2(a0, a0.add(kb * TILE), b0, b0.add(kb * TILE), nk, c[gi * blocks + mb].as_mut_ptr(), k0 > 0);
                    }
                }
            }
            std::arch::asm!("tilerelease", options(nostack, nomem));
        }
        for (gi, pair) in group.enumerate() {
            for mb in 0..blocks {
                epilogue(&c[gi * blocks + mb], mb * 32, pair * 32);
            }
        }
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
                    let r: f64 = (0..k).map(|t| bf16::round(x[i * k + t]) as f64 * bf16::round(w[j * k + t]) as f64).sum::<f64>() + b[j] as f64;
                    assert!((y[i * n + j] as f64 - r).abs() < 1e-5 * (k as f64).sqrt() + 1e-6, "({m},{n},{k}) at {i},{j}: {} vs {r}", y[i * n + j]);
                }
            }
        }
    }
}
