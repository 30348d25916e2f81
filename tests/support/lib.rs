//! Helpers shared by the workspace-level integration tests in `tests/`: where the fixtures live
//! and how to read them.

use ndarray::Array2;
use std::path::PathBuf;

/// `tests/fixtures` of this checkout.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

/// A fixture file by its path relative to `tests/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    fixtures_dir().join(rel)
}

/// Largest absolute difference between two equally shaped arrays, over the entries where
/// `mask(reference)` holds; also returns how many entries were compared.
pub fn max_abs_diff_where(a: &Array2<f32>, reference: &Array2<f32>, mask: impl Fn(f32) -> bool) -> (f32, usize) {
    assert_eq!(a.dim(), reference.dim(), "shape mismatch");
    let mut m = 0f32;
    let mut n = 0;
    for (x, r) in a.iter().zip(reference.iter()) {
        if mask(*r) {
            m = m.max((x - r).abs());
            n += 1;
        }
    }
    (m, n)
}

/// Mean absolute difference of two equally shaped arrays.
pub fn mean_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim(), "shape mismatch");
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
}

/// The data folder the project's scripts fill (`SMG_DATA_DIR`, else `data/` of this checkout).
pub fn data_dir() -> PathBuf {
    std::env::var_os("SMG_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data"))
}

/// A fetched asset (e.g. `weights/minilm`); panics with the set-up command when it is missing,
/// since the tests are meant to run after `scripts/setup.sh`.
pub fn asset(rel: &str) -> PathBuf {
    let p = data_dir().join(rel);
    assert!(p.exists(), "{} is missing: run `bash scripts/setup.sh` (it fetches the pinned assets)", p.display());
    p
}

/// The CPU's model name from `/proc/cpuinfo`, for bench tables.
pub fn cpu_name() -> String {
    let s = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map_or("unknown CPU".into(), |v| v.trim().to_string())
}

/// The CPU's vector features that the kernels use, and the level they run at
/// (`smg_kernels::isa`, capped by `SMG_ISA`), for the header of every bench table.
pub fn cpu_features() -> String {
    let mut f: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        for (name, on) in [
            ("AVX2", is_x86_feature_detected!("avx2")),
            ("FMA", is_x86_feature_detected!("fma")),
            ("AVX-512F", is_x86_feature_detected!("avx512f")),
            ("AVX-512-BF16", is_x86_feature_detected!("avx512bf16")),
        ] {
            if on {
                f.push(name);
            }
        }
    }
    if smg_kernels::amx::available() {
        f.push("AMX");
    }
    let has = if f.is_empty() { "none of AVX2, AVX-512, AMX".to_string() } else { f.join(", ") };
    format!("{has}; kernels at {}", smg_kernels::isa().name())
}

/// `n` values uniform in [−1, 1) from a seeded LCG: the same on every machine and device.
pub fn seeded_uniform(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// One HTTP/1.1 request to a local server (the studio's tests and bench); returns the status
/// and the body (chunked bodies decoded).
pub fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_fmt(
        &mut c,
        format_args!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", body.len()),
    )
    .unwrap();
    std::io::Write::write_all(&mut c, body).unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut c, &mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete response");
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = out[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
}
