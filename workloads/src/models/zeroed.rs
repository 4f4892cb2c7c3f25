//! Large zeroed buffers backed by transparent huge pages where the kernel
//! offers them: drawing a 7B model touches 27 GB of fresh f32 memory for
//! its reference alone, and faulting it in 4 KiB pages cost more system
//! time than the drawing itself (9.7 M minor faults, 39 s of system time
//! on the 2-vCPU VM in one build and reference of `llama-2-7b`).

/// `n` zeros of f32 whose pages are faulted in as 2 MiB pages where the
/// kernel allows it (`MADV_HUGEPAGE`; Linux with THP in `madvise` or
/// `always` mode); elsewhere, or if the advice is refused, an ordinary
/// zeroed `Vec`: the advice changes no value, only the faults. (`vec!` of
/// a zero f32 is `calloc`, which leaves a large buffer's fresh pages
/// untouched, so the advice comes before the first fault.)
pub fn zeroed_f32(n: usize) -> Vec<f32> {
    let v = vec![0f32; n];
    advise_huge(v.as_ptr().cast(), n * 4);
    v
}

/// `n` copies of `value`, advised as `zeroed_f32` before they are written.
pub fn filled<T: Clone>(n: usize, value: T) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    advise_huge(v.as_ptr().cast(), n * std::mem::size_of::<T>());
    v.resize(n, value);
    v
}

#[cfg(target_os = "linux")]
fn advise_huge(ptr: *const u8, len: usize) {
    const HUGE: usize = 2 << 20;
    let start = ptr as usize;
    // Only the 2 MiB-aligned interior can be a huge page; small buffers
    // have none and stay as they are.
    let first = start.div_ceil(HUGE) * HUGE;
    let end = (start + len) / HUGE * HUGE;
    if end > first {
        // SAFETY: the range lies inside the allocation at `ptr`; the advice
        // changes how its pages are backed, never their contents.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_: *const u8, _: usize) {}
