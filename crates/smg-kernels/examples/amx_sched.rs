//! Tile schedules of one AMX k-step, from L1 (8 tiles: C, A, B), ns per tdpbf16ps on one core.
use std::time::Instant;
#[repr(C, align(64))]
struct Cfg {
    p: u8,
    s: u8,
    r: [u8; 14],
    c: [u16; 16],
    rows: [u8; 16],
}
macro_rules! bench {
    ($name:expr, $tdp:expr, $buf:expr, $($asm:tt)*) => {{
        let n = 500_000usize;
        let t = Instant::now();
        std::arch::asm!("2:", $($asm)*, "dec {n}", "jnz 2b", n = inout(reg) n => _, a = in(reg) $buf.as_ptr(), b = in(reg) $buf.as_ptr().add(4096), s = in(reg) 64usize);
        let s = t.elapsed().as_secs_f64();
        println!("{:<40} {:.2} ns per tdp, {:.0} GFLOP/s", $name, s / (n as f64 * $tdp as f64) * 1e9, n as f64 * $tdp as f64 * 16384.0 / s / 1e9);
    }};
}
fn main() {
    assert!(smg_kernels::amx::available());
    let mut cfg = Cfg { p: 1, s: 0, r: [0; 14], c: [0; 16], rows: [0; 16] };
    for i in 0..8 {
        cfg.c[i] = 64;
        cfg.rows[i] = 16;
    }
    #[repr(C, align(64))]
    #[derive(Clone, Copy)]
    struct Line([u16; 32]);
    let lines = vec![Line([0x3f00; 32]); 16 * 16 + 1];
    let off: usize = std::env::args().nth(1).map(|a| a.parse().unwrap()).unwrap_or(0);
    let buf: &[u16] = unsafe { std::slice::from_raw_parts((lines.as_ptr() as *const u16).add(off), 16 * 512) };
    println!("buffer address mod 64: {}", buf.as_ptr() as usize % 64);
    unsafe {
        std::arch::asm!("ldtilecfg [{0}]", in(reg) &cfg as *const Cfg);
        for _ in 0..2 {
            bench!(
                "2x2 current (L A0 B0 T L B1 T L A1 T T)",
                4,
                buf,
                "tileloadd tmm4, [{a} + {s}*1]",
                "tileloadd tmm6, [{b} + {s}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tileloadd tmm7, [{b} + {s}*1 + 1024]",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tileloadd tmm5, [{a} + {s}*1 + 1024]",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7"
            );
            bench!(
                "2x2 pipelined (T T L T L T L L)",
                4,
                buf,
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tileloadd tmm4, [{a} + {s}*1]",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tileloadd tmm6, [{b} + {s}*1]",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "tileloadd tmm5, [{a} + {s}*1 + 1024]",
                "tileloadd tmm7, [{b} + {s}*1 + 1024]"
            );
            bench!(
                "2x2 order T00 T01 T11 T10",
                4,
                buf,
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tileloadd tmm4, [{a} + {s}*1]",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "tileloadd tmm7, [{b} + {s}*1 + 1024]",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tileloadd tmm5, [{a} + {s}*1 + 1024]",
                "tileloadd tmm6, [{b} + {s}*1]"
            );
            bench!(
                "1x3, A double-buffered",
                6,
                buf,
                "tileloadd tmm5, [{b} + {s}*1]",
                "tdpbf16ps tmm0, tmm3, tmm5",
                "tileloadd tmm6, [{b} + {s}*1 + 1024]",
                "tdpbf16ps tmm1, tmm3, tmm6",
                "tileloadd tmm7, [{b} + {s}*1 + 2048]",
                "tdpbf16ps tmm2, tmm3, tmm7",
                "tileloadd tmm3, [{a} + {s}*1]",
                "tileloadd tmm5, [{b} + {s}*1 + 3072]",
                "tdpbf16ps tmm0, tmm4, tmm5",
                "tileloadd tmm6, [{b} + {s}*1 + 4096]",
                "tdpbf16ps tmm1, tmm4, tmm6",
                "tileloadd tmm7, [{b} + {s}*1 + 5120]",
                "tdpbf16ps tmm2, tmm4, tmm7",
                "tileloadd tmm4, [{a} + {s}*1 + 1024]"
            );
            bench!(
                "3x1, B double-buffered",
                6,
                buf,
                "tileloadd tmm5, [{a} + {s}*1]",
                "tdpbf16ps tmm0, tmm5, tmm3",
                "tileloadd tmm6, [{a} + {s}*1 + 1024]",
                "tdpbf16ps tmm1, tmm6, tmm3",
                "tileloadd tmm7, [{a} + {s}*1 + 2048]",
                "tdpbf16ps tmm2, tmm7, tmm3",
                "tileloadd tmm3, [{b} + {s}*1]",
                "tileloadd tmm5, [{a} + {s}*1 + 3072]",
                "tdpbf16ps tmm0, tmm5, tmm4",
                "tileloadd tmm6, [{a} + {s}*1 + 4096]",
                "tdpbf16ps tmm1, tmm6, tmm4",
                "tileloadd tmm7, [{a} + {s}*1 + 5120]",
                "tdpbf16ps tmm2, tmm7, tmm4",
                "tileloadd tmm4, [{b} + {s}*1 + 1024]"
            );
            bench!(
                "compute only 2x2",
                4,
                buf,
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                "/* {a} {b} {s} */"
            );
            bench!(
                "loads only (4)",
                4,
                buf,
                "tileloadd tmm4, [{a} + {s}*1]",
                "tileloadd tmm6, [{b} + {s}*1]",
                "tileloadd tmm5, [{a} + {s}*1 + 1024]",
                "tileloadd tmm7, [{b} + {s}*1 + 1024]"
            );
        }
        std::arch::asm!("tilerelease");
    }
}
