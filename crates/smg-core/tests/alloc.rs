//! glibc keeps freed blocks in the heap once `keep_freed_memory` ran. A test binary of its own:
//! malloc's counters are process-wide, and other tests allocating beside it would move them.
#![cfg(all(target_os = "linux", target_env = "gnu"))]

/// Bytes glibc currently holds in mmapped blocks.
fn mmapped() -> usize {
    // SAFETY: mallinfo2 only reads malloc's counters.
    unsafe { libc::mallinfo2() }.hblkhd
}

#[test]
fn large_blocks_come_from_the_heap_once_set() {
    assert!(smg_core::alloc::keep_freed_memory());
    let before = mmapped();
    // 48 MiB: above glibc's largest mmap threshold, and small enough for the heap of the
    // test thread's arena (a thread's arena cannot hold blocks above 64 MiB and mmaps them
    // whatever the settings; the trainers allocate on the main thread's heap).
    let block = vec![1u8; 48 << 20];
    assert_eq!(mmapped(), before, "a 48 MiB block was mmapped");
    let first = block.as_ptr() as usize;
    drop(block);
    // Freed memory stays in the process and serves the next block of the same size.
    let again = vec![2u8; 48 << 20];
    assert_eq!(again.as_ptr() as usize, first);
    assert_eq!(mmapped(), before);
}
