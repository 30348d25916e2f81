//! Allocator settings for training and long runs (benches/SPEED.md, "glibc's mmap threshold").

/// Keeps freed memory inside the process instead of handing it back to the kernel after every
/// tensor. glibc's malloc serves each allocation above its mmap threshold (at most 32 MiB) with a
/// fresh `mmap` and unmaps it on free, so a training step, whose im2col columns and batch
/// activations are tens of MiB each, faults in and zeroes gigabytes of new pages every step:
/// a quarter of the medium tokenizer's step went to the kernel's page-fault path. This turns
/// `mmap` for allocations off (big blocks come from the heap and are reused) and raises the
/// trim threshold to 2 GiB. The process keeps its peak memory until it exits, which is what a
/// training run or a notebook kernel does anyway.
///
/// Called by the command line, the notebook prelude and the benches; idempotent. Returns whether
/// the settings were applied (only with glibc on Linux; elsewhere the system allocator is kept).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        let mut ok = true;
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes malloc's parameters, under malloc's own lock; blocks
            // allocated before keep their kind and are freed correctly.
            ok = unsafe { libc::mallopt(libc::M_MMAP_MAX, 0) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1 };
        });
        ok
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
