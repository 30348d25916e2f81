//! Which vector instructions the kernels use, chosen once at run time from the CPU's features:
//! AVX-512F, else AVX2 with FMA, else the portable code the compiler makes for the baseline
//! target (SSE2 on x86-64, NEON on aarch64). `SMG_ISA=avx2` or `SMG_ISA=portable` caps the
//! choice (never above what the CPU has), so an AVX-512 machine can time and test the AVX2 path.
//!
//! [`vectorised!`](crate::vectorised) compiles one function body for each of these and
//! dispatches on [`isa`]: loops written to vectorise (lanes of 16, no calls) then run at each
//! machine's vector width without hand-written intrinsics.

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set level the kernels are compiled for, widest first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Isa {
    /// Baseline target code (SSE2 on x86-64, NEON on aarch64).
    Portable,
    /// AVX2 + FMA: 8 f32 lanes, 16 vector registers.
    Avx2,
    /// AVX-512F: 16 f32 lanes, 32 vector registers.
    Avx512,
}

impl Isa {
    /// The widest level this CPU runs.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// The level's name as `SMG_ISA` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Portable => "portable",
        }
    }

    /// Parses `avx512`, `avx2` or `portable`.
    pub fn parse(s: &str) -> Option<Isa> {
        match s.trim().to_ascii_lowercase().as_str() {
            "avx512" | "avx-512" => Some(Isa::Avx512),
            "avx2" => Some(Isa::Avx2),
            "portable" | "scalar" | "none" => Some(Isa::Portable),
            _ => None,
        }
    }
}

static ISA: AtomicU8 = AtomicU8::new(u8::MAX);

fn from_code(c: u8) -> Isa {
    match c {
        2 => Isa::Avx512,
        1 => Isa::Avx2,
        _ => Isa::Portable,
    }
}

/// The level the kernels use: the CPU's widest ([`Isa::detect`]), capped by `SMG_ISA` (read on
/// first use; an unknown value is ignored) or by [`set_isa`].
pub fn isa() -> Isa {
    match ISA.load(Ordering::Relaxed) {
        u8::MAX => {
            let cap = std::env::var("SMG_ISA").ok().and_then(|s| Isa::parse(&s)).unwrap_or(Isa::Avx512);
            let i = Isa::detect().min(cap);
            ISA.store(i as u8, Ordering::Relaxed);
            i
        }
        c => from_code(c),
    }
}

/// Caps the level for the whole process (a level above the CPU's gives the CPU's); returns the
/// level now in use. Benchmarks and tests use it to run every path the machine can.
pub fn set_isa(cap: Isa) -> Isa {
    let i = Isa::detect().min(cap);
    ISA.store(i as u8, Ordering::Relaxed);
    i
}

/// Every level this CPU runs, narrowest first (tests run each kernel at each).
pub fn available() -> Vec<Isa> {
    [Isa::Portable, Isa::Avx2, Isa::Avx512].into_iter().filter(|&i| i <= Isa::detect()).collect()
}

/// Defines a function whose body is compiled for AVX-512F, for AVX2 + FMA and for the baseline
/// target, and picks one per call by [`isa`]. Arguments are plain `name: Type` pairs; the body
/// must be safe code (it runs inside `unsafe fn`s with `#[target_feature]`, which is sound because
/// each is called only where [`isa`] found the feature).
#[macro_export]
macro_rules! vectorised {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident: $t:ty),* $(,)?) $(-> $r:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($a: $t),*) $(-> $r)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn wide($($a: $t),*) $(-> $r)? $body
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2($($a: $t),*) $(-> $r)? $body
                match $crate::isa::isa() {
                    // Safety: `isa` reports only levels this CPU runs.
                    $crate::isa::Isa::Avx512 => return unsafe { wide($($a),*) },
                    $crate::isa::Isa::Avx2 => return unsafe { avx2($($a),*) },
                    $crate::isa::Isa::Portable => {}
                }
            }
            $body
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    vectorised! {
        fn scaled_sum(xs: &[f32], s: f32) -> f32 {
            xs.iter().map(|x| x * s).sum()
        }
    }

    // Switching the level is tested in tests/isa_levels.rs, a binary of its own: the level is
    // process-wide and the unit tests here run side by side.
    #[test]
    fn names_parse_and_the_level_is_one_the_cpu_runs() {
        let xs: Vec<f32> = (0..100).map(|i| i as f32).collect();
        assert_eq!(scaled_sum(&xs, 2.0), 9900.0);
        assert!(isa() <= Isa::detect());
        assert!(available().contains(&isa()));
        assert_eq!(Isa::parse("AVX2"), Some(Isa::Avx2));
        assert_eq!(Isa::parse("sse9"), None);
        for i in available() {
            assert_eq!(Isa::parse(i.name()), Some(i));
        }
    }
}
