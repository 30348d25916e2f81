//! The thread count candle's CPU matmul asks for, settled once per process.

/// Sets `RAYON_NUM_THREADS` (when unset) to the number of threads rayon's pool uses by default,
/// so that candle's CPU matmul reads that number from the environment. Without it candle works
/// the count out again on every product (`candle_core::utils::get_num_threads`: CPU masks and
/// `/proc/cpuinfo` through `num_cpus::get_physical`), which was 5 % of a small tokenizer
/// training step in the kernel's text formatting alone (benches/SPEED.md). A value already in
/// the environment is kept. Call it at start-up, before other threads run (the command line, the
/// notebook prelude and the benches do); idempotent.
pub fn settle_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

/// Runs `f` on a thread of rayon's pool (at once where the caller is one already) and returns
/// its result. A training step is thousands of short parallel sections (every convolution,
/// normalisation and product splits its work): called from a thread outside the pool, each one
/// hands its work to the pool's threads, wakes them and puts the caller to sleep until they are
/// done, two context switches per section with one more thread than cores. From inside the
/// pool the caller takes its share itself and the other threads steal the rest, which made a
/// small tokenizer step 1.4 × faster on 2 cores (benches/SPEED.md).
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        f()
    } else {
        rayon::scope(|_| f())
    }
}
