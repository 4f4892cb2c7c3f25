//! The machine's last-level cache and the array size a bandwidth ceiling
//! needs to measure memory rather than that cache: STREAM's rule is that
//! each array is at least 4 × the LLC (McCalpin, "STREAM: Sustainable Memory
//! Bandwidth", run rules). Sizes come from sysfs, as gemm-common reads its
//! block sizes (so `scripts/emulate-caches.sh` fakes both at once).

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Where Linux lists the caches CPU 0 sees.
pub const SYSFS_CPU0_CACHE: &str = "/sys/devices/system/cpu/cpu0/cache";
/// STREAM's rule: each array ≥ this many times the last-level cache.
pub const LLC_MULTIPLE: u64 = 4;
/// Per-array size when sysfs gives no cache sizes: 4 × a 64 MiB LLC, more
/// than most client and small-server CPUs have.
pub const UNKNOWN_LLC_ARRAY_BYTES: u64 = 256 << 20;
/// The arrays may take at most this fraction of the memory available when
/// the run is planned: the rest is the machine's (and other processes').
pub const AVAILABLE_FRACTION: f64 = 0.5;
const MIB: u64 = 1 << 20;

/// The size of a cache `level` (`None`: the highest data or unified level
/// listed, the LLC) under a sysfs `cache` folder: `(level, bytes)`.
pub fn cache_bytes_in(base: &Path, level: Option<u32>) -> Option<(u32, u64)> {
    let mut best: Option<(u32, u64)> = None;
    for i in 0..16 {
        let dir = base.join(format!("index{i}"));
        let Ok(l) = std::fs::read_to_string(dir.join("level")) else {
            continue;
        };
        let kind = std::fs::read_to_string(dir.join("type")).unwrap_or_default();
        let Ok(l) = l.trim().parse::<u32>() else {
            continue;
        };
        if kind.trim() == "Instruction" || level.is_some_and(|want| want != l) {
            continue;
        }
        let size = std::fs::read_to_string(dir.join("size")).ok();
        let Some(bytes) = size.and_then(|s| parse_cache_size(s.trim())) else {
            continue;
        };
        if best.is_none_or(|(bl, _)| l > bl) {
            best = Some((l, bytes));
        }
    }
    best
}

/// This machine's last-level cache in bytes (CPU 0's view), if sysfs lists it.
pub fn llc_bytes() -> Option<u64> {
    cache_bytes_in(Path::new(SYSFS_CPU0_CACHE), None).map(|(_, b)| b)
}

/// sysfs cache sizes: "512K", "1024K", "2M" (binary multiples).
pub fn parse_cache_size(s: &str) -> Option<u64> {
    let (num, mul) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1u64 << 10),
        b'M' => (&s[..s.len() - 1], 1 << 20),
        b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mul)
}

/// `MemAvailable` of /proc/meminfo, bytes.
pub fn mem_available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// How a bandwidth kernel's arrays were sized, as the ceiling records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArraySizing {
    /// The LLC read from sysfs (`None`: not listed).
    pub llc_bytes: Option<u64>,
    /// Bytes of each array, and how many arrays the kernel streams.
    pub array_bytes: u64,
    pub arrays: u32,
    /// Whether each array is ≥ 4 × the LLC.
    pub rule_met: bool,
    /// The rule and how this size follows from it, in words.
    pub rule: String,
}

fn mib(b: u64) -> String {
    if b.is_multiple_of(MIB) {
        format!("{} MiB", b / MIB)
    } else {
        format!("{:.1} MiB", b as f64 / MIB as f64)
    }
}

/// Describes a size that was given (a suite naming `kernel/stream-16M`)
/// against the rule.
pub fn judge(array_bytes: u64, arrays: u32, llc: Option<u64>) -> ArraySizing {
    let (rule_met, rule) = match llc {
        Some(l) if array_bytes >= LLC_MULTIPLE * l => (
            true,
            format!(
                "each array ≥ {LLC_MULTIPLE} × LLC (STREAM's rule): {} ≥ {LLC_MULTIPLE} × {}",
                mib(array_bytes),
                mib(l)
            ),
        ),
        Some(l) => (
            false,
            format!(
                "rule not met: each array {} < {LLC_MULTIPLE} × LLC {} — part of it is served from cache, so the ceiling overstates memory bandwidth (size it with kernel/<stream|read>-llc)",
                mib(array_bytes),
                mib(l)
            ),
        ),
        None => (
            false,
            format!(
                "LLC unknown (sysfs lists no cache sizes): arrays of {} each, not checked against STREAM's {LLC_MULTIPLE} × LLC rule",
                mib(array_bytes)
            ),
        ),
    };
    ArraySizing {
        llc_bytes: llc,
        array_bytes,
        arrays,
        rule_met,
        rule,
    }
}

/// Chooses each array's bytes: 4 × the LLC, rounded up to a whole MiB;
/// capped so all `arrays` fit in half the `available` memory, which the
/// record then says.
pub fn size_arrays(llc: Option<u64>, available: Option<u64>, arrays: u32) -> ArraySizing {
    let want = match llc {
        Some(l) => (LLC_MULTIPLE * l).div_ceil(MIB).max(1) * MIB,
        None => UNKNOWN_LLC_ARRAY_BYTES,
    };
    let cap = available.map(|a| {
        let per_array = (a as f64 * AVAILABLE_FRACTION) as u64 / arrays.max(1) as u64;
        (per_array / MIB).max(1) * MIB
    });
    match cap {
        Some(cap) if cap < want => {
            let mut s = judge(cap, arrays, llc);
            s.rule = format!(
                "{}; capped by available memory: {} arrays of {} would need more than half of the {} available when planned",
                s.rule,
                arrays,
                mib(want),
                mib(available.unwrap_or(0))
            );
            s
        }
        _ => judge(want, arrays, llc),
    }
}

/// `kernel/stream-llc` and `kernel/read-llc`: the name with this machine's
/// size (whole MiB, as the workload names count them) and how it was sized;
/// `None` for any other name.
pub fn resolve(
    name: &str,
    llc: Option<u64>,
    available: Option<u64>,
) -> Option<(String, ArraySizing)> {
    match name {
        "kernel/stream-llc" => {
            let s = size_arrays(llc, available, 3);
            // Elements per array, in the largest unit that counts them whole.
            let elems = s.array_bytes / 4;
            let name = if elems.is_multiple_of(MIB) {
                format!("kernel/stream-{}M", elems / MIB)
            } else {
                format!("kernel/stream-{}K", elems / 1024)
            };
            Some((name, s))
        }
        "kernel/read-llc" => {
            let s = size_arrays(llc, available, 1);
            Some((format!("kernel/read-{}M", s.array_bytes / MIB), s))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sysfs(caches: &[(u32, &str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (i, (level, kind, size)) in caches.iter().enumerate() {
            let idx = d.path().join(format!("index{i}"));
            std::fs::create_dir_all(&idx).unwrap();
            std::fs::write(idx.join("level"), format!("{level}\n")).unwrap();
            std::fs::write(idx.join("type"), format!("{kind}\n")).unwrap();
            std::fs::write(idx.join("size"), format!("{size}\n")).unwrap();
        }
        d
    }

    #[test]
    fn the_llc_is_the_highest_data_or_unified_level() {
        let d = fake_sysfs(&[
            (1, "Data", "48K"),
            (1, "Instruction", "32K"),
            (2, "Unified", "2048K"),
            (3, "Unified", "266240K"),
        ]);
        assert_eq!(cache_bytes_in(d.path(), None), Some((3, 266240 << 10)));
        assert_eq!(cache_bytes_in(d.path(), Some(2)), Some((2, 2 << 20)));
        let none = tempfile::tempdir().unwrap();
        assert_eq!(cache_bytes_in(none.path(), None), None);
    }

    #[test]
    fn arrays_are_four_times_a_fake_llc() {
        // The Xeon VM of issue 21: a 260 MiB L3 → 1040 MiB per array.
        let d = fake_sysfs(&[(3, "Unified", "266240K")]);
        let llc = cache_bytes_in(d.path(), None).map(|(_, b)| b);
        let (name, s) = resolve("kernel/read-llc", llc, Some(64 << 30)).unwrap();
        assert_eq!(name, "kernel/read-1040M");
        assert!(s.rule_met && s.array_bytes >= 4 * (266240 << 10), "{s:?}");
        let (name, s) = resolve("kernel/stream-llc", llc, Some(64 << 30)).unwrap();
        assert_eq!(name, "kernel/stream-260M");
        assert_eq!(s.arrays, 3);
        assert!(s.rule.contains("1040 MiB ≥ 4 × 260 MiB"), "{}", s.rule);
        // This VM's 32 MiB L3 → 128 MiB per array.
        let (name, _) = resolve("kernel/read-llc", Some(32 << 20), None).unwrap();
        assert_eq!(name, "kernel/read-128M");
        assert!(resolve("kernel/read-16M", Some(1), None).is_none());
    }

    #[test]
    fn too_little_memory_caps_the_arrays_and_says_so() {
        // 2 GiB available: three arrays get at most 1 GiB / 3 each.
        let s = size_arrays(Some(266240 << 10), Some(2 << 30), 3);
        assert!(!s.rule_met);
        assert_eq!(s.array_bytes, 341 << 20);
        assert!(s.rule.contains("capped by available memory"), "{}", s.rule);
        assert!(s.rule.contains("rule not met"), "{}", s.rule);
    }

    #[test]
    fn a_given_size_is_judged_against_the_rule() {
        // kernel/stream-16M on a 260 MiB LLC: 64 MiB arrays sit in cache.
        let s = judge(64 << 20, 3, Some(266240 << 10));
        assert!(
            !s.rule_met && s.rule.contains("64 MiB < 4 × LLC 260 MiB"),
            "{}",
            s.rule
        );
        assert!(judge(256 << 20, 1, Some(32 << 20)).rule_met);
        let s = judge(64 << 20, 1, None);
        assert!(!s.rule_met && s.rule.contains("LLC unknown"));
        assert_eq!(
            size_arrays(None, None, 1).array_bytes,
            UNKNOWN_LLC_ARRAY_BYTES
        );
    }

    #[test]
    fn cache_sizes_parse_as_sysfs_writes_them() {
        assert_eq!(parse_cache_size("512K"), Some(524288));
        assert_eq!(parse_cache_size("2M"), Some(2097152));
        assert_eq!(parse_cache_size("x"), None);
    }
}
