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
