//! The host memory cap: a counting global allocator with a hard limit. Every
//! heap byte of the process is counted; an allocation past the cap is
//! refused (with one stderr line giving requested bytes, bytes in use, cap
//! and peak) and Rust's allocation-failure path ends the worker, which the
//! parent records as status `oom`. Installed by the binary (`main.rs`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Bytes in use, the high-water mark since the last `reset_peak`, the
/// process-wide high-water mark, and the cap (0 = none).
static IN_USE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);
static PEAK_TOTAL: AtomicU64 = AtomicU64::new(0);
static CAP: AtomicU64 = AtomicU64::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Prefix of the line written when the cap refuses an allocation; the runner
/// parses it (`parse_refusal`).
pub const REFUSAL_PREFIX: &str = "capbench memory cap: refused";

/// The counting allocator over the system allocator.
pub struct CappedAlloc;

/// Sets (or clears, with `None`) the cap on bytes in use.
pub fn set_cap(cap_bytes: Option<u64>) {
    CAP.store(cap_bytes.unwrap_or(0), Ordering::SeqCst);
}

pub fn cap_bytes() -> Option<u64> {
    match CAP.load(Ordering::SeqCst) {
        0 => None,
        c => Some(c),
    }
}

/// Whether this process counts its allocations (false in test binaries and
/// library users that did not install `CappedAlloc`).
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Relaxed)
}

pub fn in_use_bytes() -> u64 {
    IN_USE.load(Ordering::Relaxed)
}

/// High-water mark since the last `reset_peak` (or process start).
pub fn peak_bytes() -> u64 {
    PEAK.load(Ordering::Relaxed)
}

/// High-water mark over the whole process.
pub fn peak_total_bytes() -> u64 {
    PEAK_TOTAL.load(Ordering::Relaxed)
}

/// Starts a new phase: its peak begins at what is in use now.
pub fn reset_peak() {
    PEAK.store(IN_USE.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Counts `bytes` in, or refuses them when the cap would be passed.
fn reserve(bytes: u64) -> bool {
    let cap = CAP.load(Ordering::Relaxed);
    let mut cur = IN_USE.load(Ordering::Relaxed);
    loop {
        let next = cur.saturating_add(bytes);
        if cap != 0 && next > cap {
            report_refusal(bytes, cur, cap);
            return false;
        }
        match IN_USE.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => {
                PEAK.fetch_max(next, Ordering::Relaxed);
                PEAK_TOTAL.fetch_max(next, Ordering::Relaxed);
                return true;
            }
            Err(now) => cur = now,
        }
    }
}

fn mark_installed() {
    if !INSTALLED.load(Ordering::Relaxed) {
        INSTALLED.store(true, Ordering::Relaxed);
    }
}

fn release(bytes: u64) {
    IN_USE.fetch_sub(bytes, Ordering::Relaxed);
}

/// A fixed buffer `fmt::Write` fills without allocating (we are inside the
/// allocator: allocating here would recurse).
struct StackLine {
    buf: [u8; 256],
    len: usize,
}

impl std::fmt::Write for StackLine {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn report_refusal(requested: u64, in_use: u64, cap: u64) {
    use std::fmt::Write;
    let mut line = StackLine {
        buf: [0; 256],
        len: 0,
    };
    let _ = writeln!(
        line,
        "{REFUSAL_PREFIX} {requested} bytes with {in_use} bytes in use; cap {cap} bytes; peak {} bytes",
        PEAK_TOTAL.load(Ordering::Relaxed)
    );
    write_stderr(&line.buf[..line.len]);
}

#[cfg(unix)]
fn write_stderr(bytes: &[u8]) {
    // SAFETY: writes a buffer we own to fd 2; no allocation, no locks.
    unsafe {
        libc::write(2, bytes.as_ptr().cast(), bytes.len());
    }
}

#[cfg(not(unix))]
fn write_stderr(_bytes: &[u8]) {}

/// The numbers of a refusal line: (requested, in use, cap, peak).
pub fn parse_refusal(lines: &[String]) -> Option<(u64, u64, u64, u64)> {
    let l = lines.iter().rev().find(|l| l.starts_with(REFUSAL_PREFIX))?;
    let nums: Vec<u64> = l
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(';').parse().ok())
        .collect();
    match nums[..] {
        [r, i, c, p] => Some((r, i, c, p)),
        _ => None,
    }
}

// SAFETY: every method forwards to `System` with the caller's layout and
// only adds bookkeeping; a refused request returns null, as the GlobalAlloc
// contract allows for allocation failure.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        mark_installed();
        if !reserve(layout.size() as u64) {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            release(layout.size() as u64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        mark_installed();
        if !reserve(layout.size() as u64) {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            release(layout.size() as u64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        release(layout.size() as u64);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (old, new) = (layout.size() as u64, new_size as u64);
        if new > old && !reserve(new - old) {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        match (p.is_null(), new > old) {
            // Failed growth: the block is unchanged, undo the reservation.
            (true, true) => release(new - old),
            (true, false) => {}
            (false, true) => {}
            (false, false) => release(old - new),
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The statics are process-wide; one test drives them so parallel tests
    // cannot interleave. The test binary does not install the allocator, so
    // only our explicit calls move the counters.
    #[test]
    fn cap_refuses_at_the_right_size_and_counts_exactly() {
        let a = CappedAlloc;
        let base = in_use_bytes();
        set_cap(Some(base + 1000));
        let l600 = Layout::from_size_align(600, 8).unwrap();
        let l400 = Layout::from_size_align(400, 8).unwrap();
        let l401 = Layout::from_size_align(401, 8).unwrap();
        unsafe {
            let p = a.alloc(l600);
            assert!(!p.is_null());
            assert!(a.alloc(l401).is_null(), "601 + 400 > 1000 must be refused");
            let q = a.alloc(l400);
            assert!(!q.is_null(), "exactly at the cap is allowed");
            assert_eq!(in_use_bytes(), base + 1000);
            a.dealloc(q, l400);
            // Growing past the cap is refused and leaves the block intact.
            assert!(a.realloc(p, l600, 1001).is_null());
            assert_eq!(in_use_bytes(), base + 600);
            let p = a.realloc(p, l600, 900);
            assert!(!p.is_null());
            assert_eq!(in_use_bytes(), base + 900);
            let p = a.realloc(p, Layout::from_size_align(900, 8).unwrap(), 100);
            assert_eq!(in_use_bytes(), base + 100);
            assert!(peak_total_bytes() >= base + 1000);
            reset_peak();
            assert_eq!(peak_bytes(), base + 100);
            a.dealloc(p, Layout::from_size_align(100, 8).unwrap());
        }
        set_cap(None);
        assert_eq!(in_use_bytes(), base);
    }

    #[test]
    fn refusal_line_round_trips() {
        let lines = vec![
            "noise".to_string(),
            format!(
                "{REFUSAL_PREFIX} 4096 bytes with 8000 bytes in use; cap 10000 bytes; peak 9000 bytes"
            ),
            "memory allocation of 4096 bytes failed".to_string(),
        ];
        assert_eq!(parse_refusal(&lines), Some((4096, 8000, 10000, 9000)));
        assert_eq!(parse_refusal(&lines[..1]), None);
    }
}
