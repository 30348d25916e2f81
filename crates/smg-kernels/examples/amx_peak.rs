use std::time::Instant;
#[repr(C, align(64))]
struct Cfg {
    p: u8,
    s: u8,
    r: [u8; 14],
    c: [u16; 16],
    rows: [u8; 16],
}
fn main() {
    assert!(smg_kernels::amx::available());
    let mut cfg = Cfg { p: 1, s: 0, r: [0; 14], c: [0; 16], rows: [0; 16] };
    for i in 0..8 {
        cfg.c[i] = 64;
        cfg.rows[i] = 16;
    }
    let buf = vec![0u16; 8 * 512];
    unsafe {
        std::arch::asm!("ldtilecfg [{0}]", in(reg) &cfg as *const Cfg);
        std::arch::asm!("tileloadd tmm4, [{a} + {s}*1]", "tileloadd tmm5, [{a} + {s}*1]", "tileloadd tmm6, [{a} + {s}*1]", "tileloadd tmm7, [{a} + {s}*1]", a = in(reg) buf.as_ptr(), s = in(reg) 64usize);
        let n = 1_000_000usize;
        let t = Instant::now();
        std::arch::asm!(
            "2:",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "dec {n}", "jnz 2b", n = inout(reg) n => _);
        let s = t.elapsed().as_secs_f64();
        println!("compute only: {:.1} ns per tdpbf16ps, {:.0} GFLOP/s one core", s / 4e6 * 1e9, 4e6 * 16384.0 / s / 1e9);
        // loads from L1: same 4 tiles each iteration
        let n = 1_000_000usize;
        let t = Instant::now();
        std::arch::asm!(
            "2:",
            "tileloadd tmm4, [{a} + {s}*1]",
            "tileloadd tmm6, [{b} + {s}*1]",
            "tileloadd tmm5, [{a} + {s}*1]",
            "tileloadd tmm7, [{b} + {s}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "dec {n}", "jnz 2b", n = inout(reg) n => _, a = in(reg) buf.as_ptr(), b = in(reg) buf.as_ptr().add(2048), s = in(reg) 64usize);
        let s = t.elapsed().as_secs_f64();
        println!("with L1 loads: {:.1} ns per tdpbf16ps, {:.0} GFLOP/s one core", s / 4e6 * 1e9, 4e6 * 16384.0 / s / 1e9);
        let n = 1_000_000usize;
        let t = Instant::now();
        std::arch::asm!(
            "2:",
            "tileloadd tmm4, [{a} + {s}*1]",
            "tileloadd tmm6, [{b} + {s}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tileloadd tmm7, [{b} + {s}*1]",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tileloadd tmm5, [{a} + {s}*1]",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "dec {n}", "jnz 2b", n = inout(reg) n => _, a = in(reg) buf.as_ptr(), b = in(reg) buf.as_ptr().add(2048), s = in(reg) 64usize);
        let s = t.elapsed().as_secs_f64();
        println!("interleaved L1 loads: {:.1} ns per tdpbf16ps, {:.0} GFLOP/s one core", s / 4e6 * 1e9, 4e6 * 16384.0 / s / 1e9);
        std::arch::asm!("tilerelease");
    }
}
