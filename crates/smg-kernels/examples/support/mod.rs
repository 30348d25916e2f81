//! Shared by the kernel examples (included with `#[path]`; not an example of its own).
use std::time::Instant;

/// Best wall time in seconds of `reps` calls of `f`, after one untimed warm-up call.
pub fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}
