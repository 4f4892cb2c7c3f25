//! Memory the counting allocator does not see (mapped model files, thread
//! stacks, driver allocations): a watcher thread checks the resident set
//! against the cap and ends the worker with an `oom` line when it is passed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Prefix of the line written when the resident set passes the cap.
pub const RSS_PREFIX: &str = "capbench memory cap: resident set";

/// Resident bytes of this process now (Linux: /proc/self/statm).
pub fn resident_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page > 0).then(|| pages * page as u64)
}

static PAUSED: AtomicBool = AtomicBool::new(false);

/// Suspends the watch (while the uncapped verification runs).
pub fn pause(paused: bool) {
    PAUSED.store(paused, Ordering::SeqCst);
}

/// Hands memory the process freed back to the OS, so the resident set
/// after an uncapped phase reflects what is still in use (glibc keeps freed
/// heap pages otherwise).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_freed_memory() {
    // SAFETY: malloc_trim only returns free pages of the C heap to the OS.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_freed_memory() {}

/// Starts the watcher: every `period`, if the resident set exceeds
/// `cap_bytes`, print the numbers and abort (the runner records `oom`).
pub fn watch(cap_bytes: u64, period: Duration) {
    if resident_bytes().is_none() {
        return; // not Linux: only the allocator cap applies
    }
    let spawned = std::thread::Builder::new()
        .name("capbench-rss-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            loop {
                if !PAUSED.load(Ordering::SeqCst)
                    && let Some(rss) = resident_bytes()
                    && rss > cap_bytes
                {
                    eprintln!(
                        "{RSS_PREFIX} {rss} bytes passed the cap {cap_bytes} bytes (allocator in use {} bytes)",
                        super::alloc::in_use_bytes()
                    );
                    std::process::abort();
                }
                std::thread::sleep(period);
            }
        });
    if let Err(e) = spawned {
        eprintln!("capbench: could not start the resident-set watch: {e}");
    }
}

/// (resident bytes, cap) from a watcher line.
pub fn parse_rss_line(lines: &[String]) -> Option<(u64, u64)> {
    let l = lines.iter().rev().find(|l| l.starts_with(RSS_PREFIX))?;
    let nums: Vec<u64> = l
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match nums[..] {
        [rss, cap, ..] => Some((rss, cap)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_set_is_read_and_lines_parse() {
        if cfg!(target_os = "linux") {
            assert!(resident_bytes().unwrap() > 1 << 20);
        }
        let l = vec![format!(
            "{RSS_PREFIX} 3000 bytes passed the cap 2000 bytes (allocator in use 10 bytes)"
        )];
        assert_eq!(parse_rss_line(&l), Some((3000, 2000)));
    }
}
