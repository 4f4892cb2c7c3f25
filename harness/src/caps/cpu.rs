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

/// CPU time of each thread of the process, in clock ticks (Linux:
/// utime + stime of /proc/self/task/<tid>/stat).
pub fn thread_cpu_ticks() -> Option<std::collections::BTreeMap<u64, u64>> {
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Ok(tid) = e.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        // Fields after the command name (which may hold spaces) in parens.
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
        let (u, s) = (
            f.get(11)?.parse::<u64>().ok()?,
            f.get(12)?.parse::<u64>().ok()?,
        );
        out.insert(tid, u + s);
    }
    Some(out)
}

/// Threads that did a real share of the work between two snapshots: those
/// with at least a tenth of the busiest thread's CPU time (so a watcher
/// thread's occasional tick does not count). Independent of how much CPU
/// other processes leave us, unlike CPU time ÷ wall time.
/// `None` when no thread gained a tick: the timed loop was shorter than
/// the kernel's accounting granularity (10 ms), so nothing was observed —
/// not "no thread was busy".
pub fn busy_threads(
    before: &std::collections::BTreeMap<u64, u64>,
    after: &std::collections::BTreeMap<u64, u64>,
) -> Option<usize> {
    let used: Vec<u64> = after
        .iter()
        .map(|(tid, t)| t.saturating_sub(*before.get(tid).unwrap_or(&0)))
        .collect();
    let max = used.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return None;
    }
    Some(used.iter().filter(|u| **u * 10 >= max).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_threads_ignore_occasional_ticks() {
        let before = [(1, 100), (2, 50), (3, 7)].into_iter().collect();
        let after = [(1, 200), (2, 140), (3, 8), (4, 30)].into_iter().collect();
        // Used: 100, 90, 1, 30 → 1 is below a tenth of 100.
        assert_eq!(busy_threads(&before, &after), Some(3));
        assert_eq!(busy_threads(&before, &before), None);
        if cfg!(target_os = "linux") {
            assert!(!thread_cpu_ticks().unwrap().is_empty());
        }
    }

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
