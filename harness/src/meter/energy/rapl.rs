//! RAPL through Linux powercap sysfs: cumulative µJ counters per package and
//! DRAM domain (docs/reference/hardware.md §3 [E1]), wrapping at `max_energy_range_uj`.
//! Root-only since CVE-2020-8694 unless a udev rule relaxes it (docs/energy.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::{EnergyError, EnergyMeter, EnergySource, Interval};

pub const POWERCAP_ROOT: &str = "/sys/class/powercap";

/// File access behind a trait, so tests can simulate a permission error even
/// when they run as root (root reads a mode-0400 file anyway).
pub trait SysfsRead: Send + Sync {
    fn read_to_string(&self, path: &Path) -> std::io::Result<String>;
    /// Entry names (not paths) of a directory.
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>>;
}

/// The real file system.
pub struct RealFs;

impl SysfsRead for RealFs {
    fn read_to_string(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    }
}

/// One counter: a package (`intel-rapl:N`) or its DRAM subzone.
#[derive(Debug, Clone)]
struct Domain {
    /// `package-0`, `dram` (per package: `package-0/dram`).
    label: String,
    energy_path: PathBuf,
    max_range_uj: u64,
}

pub struct RaplMeter {
    fs: Arc<dyn SysfsRead>,
    domains: Vec<Domain>,
    start: Option<(Instant, Vec<u64>)>,
}

fn read_u64(fs: &dyn SysfsRead, path: &Path) -> Result<u64, EnergyError> {
    let text = fs
        .read_to_string(path)
        .map_err(|e| EnergyError::from_io(path, e))?;
    text.trim().parse().map_err(|_| EnergyError::Parse {
        path: path.display().to_string(),
        text: text.trim().to_string(),
    })
}

/// Energy between two counter reads; one wrap at `max_range_uj` at most (an
/// interval longer than a full wrap — minutes at full load — is not detectable).
pub fn delta_uj(start: u64, end: u64, max_range_uj: u64) -> u64 {
    if end >= start {
        end - start
    } else {
        max_range_uj.saturating_sub(start) + end
    }
}

impl RaplMeter {
    /// Finds package zones (`intel-rapl:N`, name `package-*`) and their DRAM
    /// subzones (`intel-rapl:N:M`, name `dram`). Core, uncore and psys are
    /// left out: core and uncore are inside the package figure, psys overlaps it.
    /// Reads each counter once, so an unreadable counter fails here.
    pub fn discover(root: &Path, fs: Arc<dyn SysfsRead>) -> Result<RaplMeter, EnergyError> {
        let fs_ref = fs.as_ref();
        let mut names = fs_ref.list_dir(root).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => EnergyError::absent(format!(
                "{} does not exist (no powercap driver: a VM, a non-Linux OS, or the intel_rapl modules are not loaded)",
                root.display()
            )),
            _ => EnergyError::from_io(root, e),
        })?;
        names.retain(|n| n.starts_with("intel-rapl:"));
        names.sort();
        let mut domains = vec![];
        for zone in &names {
            let dir = root.join(zone);
            let kind = fs_ref
                .read_to_string(&dir.join("name"))
                .map_err(|e| EnergyError::from_io(&dir.join("name"), e))?
                .trim()
                .to_string();
            let parts = zone.split(':').count();
            let label = match (parts, kind.as_str()) {
                (2, k) if k.starts_with("package") => k.to_string(),
                (3, "dram") => {
                    let parent = zone.rsplit_once(':').map(|p| p.0).unwrap_or(zone);
                    let pkg = fs_ref
                        .read_to_string(&root.join(parent).join("name"))
                        .map(|s| s.trim().to_string())
                        .unwrap_or_else(|_| parent.to_string());
                    format!("{pkg}/dram")
                }
                _ => continue,
            };
            domains.push(Domain {
                label,
                energy_path: dir.join("energy_uj"),
                max_range_uj: read_u64(fs_ref, &dir.join("max_energy_range_uj"))?,
            });
        }
        if domains.is_empty() {
            return Err(EnergyError::absent(format!(
                "{} has no intel-rapl package zone",
                root.display()
            )));
        }
        for d in &domains {
            read_u64(fs_ref, &d.energy_path)?;
        }
        Ok(RaplMeter {
            fs,
            domains,
            start: None,
        })
    }

    fn read_all(&self) -> Result<Vec<u64>, EnergyError> {
        self.domains
            .iter()
            .map(|d| read_u64(self.fs.as_ref(), &d.energy_path))
            .collect()
    }
}

impl EnergyMeter for RaplMeter {
    fn name(&self) -> &'static str {
        "rapl"
    }
    fn source(&self) -> EnergySource {
        EnergySource::Measured
    }
    fn domains(&self) -> Vec<String> {
        self.domains.iter().map(|d| d.label.clone()).collect()
    }
    /// The counter's unit; the hardware's own energy unit is coarser.
    fn resolution_j(&self) -> Option<f64> {
        Some(1e-6)
    }
    fn start(&mut self) -> Result<(), EnergyError> {
        let values = self.read_all()?;
        self.start = Some((Instant::now(), values));
        Ok(())
    }
    fn stop(&mut self) -> Result<Interval, EnergyError> {
        let end = self.read_all()?;
        let (t0, start) = self.start.take().ok_or(EnergyError::NotStarted)?;
        let mut per_domain_j = BTreeMap::new();
        for ((d, s), e) in self.domains.iter().zip(&start).zip(&end) {
            per_domain_j.insert(
                d.label.clone(),
                delta_uj(*s, *e, d.max_range_uj) as f64 * 1e-6,
            );
        }
        Ok(Interval {
            energy_j: per_domain_j.values().sum(),
            wall_s: t0.elapsed().as_secs_f64(),
            readings: 2 * self.domains.len() as u64,
            per_domain_j,
            model_inputs: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Writes a powercap tree: one package with core and DRAM subzones, and
    /// a psys zone that must be ignored.
    fn fake_tree(root: &Path, pkg_uj: u64, dram_uj: u64) {
        let zone = |name: &str, kind: &str, uj: u64, max: u64| {
            let d = root.join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("name"), format!("{kind}\n")).unwrap();
            std::fs::write(d.join("energy_uj"), format!("{uj}\n")).unwrap();
            std::fs::write(d.join("max_energy_range_uj"), format!("{max}\n")).unwrap();
        };
        zone("intel-rapl:0", "package-0", pkg_uj, 262_143_328_850);
        zone("intel-rapl:0:0", "core", 5, 262_143_328_850);
        zone("intel-rapl:0:1", "dram", dram_uj, 65_712_999_613);
        zone("intel-rapl:1", "psys", 7, 262_143_328_850);
    }

    fn set(root: &Path, zone: &str, uj: u64) {
        std::fs::write(root.join(zone).join("energy_uj"), format!("{uj}\n")).unwrap();
    }

    #[test]
    fn sums_package_and_dram_between_reads() {
        let tmp = tempfile::tempdir().unwrap();
        fake_tree(tmp.path(), 1_000_000, 500_000);
        let mut m = RaplMeter::discover(tmp.path(), Arc::new(RealFs)).unwrap();
        assert_eq!(m.domains(), ["package-0", "package-0/dram"]);
        m.start().unwrap();
        set(tmp.path(), "intel-rapl:0", 3_500_000);
        set(tmp.path(), "intel-rapl:0:1", 750_000);
        set(tmp.path(), "intel-rapl:1", 99_000_000);
        let i = m.stop().unwrap();
        assert!((i.per_domain_j["package-0"] - 2.5).abs() < 1e-12);
        assert!((i.per_domain_j["package-0/dram"] - 0.25).abs() < 1e-12);
        assert!((i.energy_j - 2.75).abs() < 1e-12, "psys and core left out");
        assert_eq!(i.readings, 4);
    }

    #[test]
    fn counter_wrap_around_is_unwrapped() {
        let tmp = tempfile::tempdir().unwrap();
        // 1 J before the wrap of the DRAM counter, 2 J after it.
        fake_tree(tmp.path(), 10, 65_712_999_613 - 1_000_000);
        let mut m = RaplMeter::discover(tmp.path(), Arc::new(RealFs)).unwrap();
        m.start().unwrap();
        set(tmp.path(), "intel-rapl:0:1", 2_000_000);
        let i = m.stop().unwrap();
        assert!(
            (i.per_domain_j["package-0/dram"] - 3.0).abs() < 1e-12,
            "{i:?}"
        );
        assert_eq!(delta_uj(5, 5, 10), 0);
        assert_eq!(delta_uj(9, 1, 10), 2);
    }

    /// Reads like `RealFs` but refuses the listed files with EACCES, as a
    /// non-root process sees `energy_uj` since CVE-2020-8694.
    struct Denying(HashSet<PathBuf>);
    impl SysfsRead for Denying {
        fn read_to_string(&self, path: &Path) -> std::io::Result<String> {
            if self.0.contains(path) {
                return Err(std::io::Error::from_raw_os_error(libc::EACCES));
            }
            RealFs.read_to_string(path)
        }
        fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
            RealFs.list_dir(path)
        }
    }

    #[test]
    fn unreadable_counter_is_permission_denied() {
        let tmp = tempfile::tempdir().unwrap();
        fake_tree(tmp.path(), 1, 1);
        let denied = tmp.path().join("intel-rapl:0").join("energy_uj");
        let fs = Arc::new(Denying([denied.clone()].into()));
        let err = RaplMeter::discover(tmp.path(), fs).err().unwrap();
        match &err {
            EnergyError::PermissionDenied { path } => {
                assert_eq!(path, &denied.display().to_string())
            }
            e => panic!("{e:?}"),
        }
        assert!(err.to_string().starts_with("permission denied"), "{err}");
    }

    #[test]
    fn missing_tree_and_garbage_are_typed_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let err = RaplMeter::discover(&tmp.path().join("none"), Arc::new(RealFs))
            .err()
            .unwrap();
        assert!(matches!(err, EnergyError::Absent { .. }), "{err:?}");
        fake_tree(tmp.path(), 1, 1);
        set(tmp.path(), "intel-rapl:0", 0);
        std::fs::write(tmp.path().join("intel-rapl:0/energy_uj"), "n/a\n").unwrap();
        let err = RaplMeter::discover(tmp.path(), Arc::new(RealFs))
            .err()
            .unwrap();
        assert!(matches!(err, EnergyError::Parse { .. }), "{err:?}");
    }
}
