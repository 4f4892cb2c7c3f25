//! Compute caps on the host: the CPU set a worker may run on (`--cpus`,
//! sched_setaffinity) and what the worker observed about its threads.

/// Parses a CPU list as Linux writes them: `0-3,6,8-9`.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim) {
        let bad = || format!("'{part}' in --cpus '{s}' is not a CPU number or range (e.g. 0-3,6)");
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<usize>().map_err(|_| bad())?,
                b.trim().parse::<usize>().map_err(|_| bad())?,
            ),
            None => {
                let n = part.parse::<usize>().map_err(|_| bad())?;
                (n, n)
            }
        };
        if lo > hi || hi >= 1024 {
            return Err(bad());
        }
        cpus.extend(lo..=hi);
    }
    cpus.sort_unstable();
    cpus.dedup();
    if cpus.is_empty() {
        return Err("--cpus names no CPU".into());
    }
    Ok(cpus)
}

/// Writes a CPU list back in its short form.
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        while i + 1 < cpus.len() && cpus[i + 1] == cpus[i] + 1 {
            i += 1;
        }
        parts.push(if cpus[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", cpus[i])
        });
        i += 1;
    }
    parts.join(",")
}

/// Restricts this process (its calling thread and every thread it starts
/// later) to `cpus`. Call before any thread pool exists.
#[cfg(target_os = "linux")]
pub fn set_affinity(cpus: &[usize]) -> Result<(), String> {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it for
    // cpu < CPU_SETSIZE (checked by parse_cpu_list's bound of 1024).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(format!(
                "sched_setaffinity({}) failed: {}",
                format_cpu_list(cpus),
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
pub fn set_affinity(_cpus: &[usize]) -> Result<(), String> {
    Err("CPU affinity is only applied on Linux (sched_setaffinity)".into())
}

/// The CPUs this thread may run on, as the kernel reports them.
#[cfg(target_os = "linux")]
pub fn affinity() -> Option<Vec<usize>> {
    // SAFETY: sched_getaffinity fills the zeroed set we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        Some(
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect(),
        )
    }
}

#[cfg(not(target_os = "linux"))]
pub fn affinity() -> Option<Vec<usize>> {
    None
}

/// Threads the process has now (Linux: entries of /proc/self/task).
pub fn os_threads() -> Option<usize> {
    std::fs::read_dir("/proc/self/task")
        .ok()
        .map(|d| d.filter(|e| e.is_ok()).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_and_print() {
        assert_eq!(parse_cpu_list("0-3,6").unwrap(), vec![0, 1, 2, 3, 6]);
        assert_eq!(parse_cpu_list(" 1 , 0 ").unwrap(), vec![0, 1]);
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9");
        for bad in ["", "a", "3-1", "0-", "5000"] {
            assert!(parse_cpu_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn affinity_is_applied_to_a_thread() {
        // In a fresh thread, so the test harness's other threads keep theirs.
        let first = affinity().unwrap()[0];
        let got = std::thread::spawn(move || {
            set_affinity(&[first]).unwrap();
            affinity().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(got, vec![first]);
        assert!(set_affinity(&[1023]).is_err(), "a CPU that does not exist");
        assert!(os_threads().unwrap() >= 1);
    }
}
