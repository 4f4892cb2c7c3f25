//! Hardware profiles: a machine's spec sheet (memory, bandwidth, peak FLOP/s
//! per dtype, TDP — each number with its source) and the caps that stand in
//! for it here. Built-in TOML files are embedded; a user folder overrides them.

mod file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use capbench_workloads::Backend;
use serde::{Deserialize, Serialize};

use crate::error::{HarnessError, Result};

pub use file::parse;

/// A figure and where it comes from (a document, or "derived: …" arithmetic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sourced<T> {
    pub value: T,
    pub source: String,
}

/// What kind of machine a profile describes: it decides which memory the
/// workload lives in and so which cap stands in for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileKind {
    /// A discrete GPU: the workload lives in device memory.
    Gpu,
    /// CPU and GPU share one memory (Apple silicon): the OS keeps part of it.
    Unified,
    /// A CPU-only machine: the workload lives in host memory.
    Cpu,
}

impl ProfileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileKind::Gpu => "gpu",
            ProfileKind::Unified => "unified",
            ProfileKind::Cpu => "cpu",
        }
    }
}

/// The profile's memory: device memory (gpu), the shared pool (unified) or
/// host RAM (cpu), and for unified memory the part the OS keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileMemory {
    pub total_bytes: Sourced<u64>,
    /// Unified memory only: bytes the workload cannot have.
    pub os_reserved_bytes: Option<Sourced<u64>>,
}

/// Caps `run --profile` applies here beyond the memory budget.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileCaps {
    /// CPU threads (the target's cores).
    pub threads: Option<usize>,
    /// wgpu limit tier of the target's GPU (`downlevel`, `webgl2`, `default`).
    pub wgpu_limits: Option<String>,
}

/// One hardware profile. Spec-sheet figures are in base units (bytes,
/// bytes/s, FLOP/s, W); the TOML writes GiB, GB/s and TFLOP/s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub kind: ProfileKind,
    pub year: Option<Sourced<u32>>,
    pub memory: ProfileMemory,
    pub bandwidth_bytes_per_s: Option<Sourced<f64>>,
    /// Peak dense FLOP/s by dtype: `f32`, `f16`, `bf16`, `fp8`, `int8`
    /// (int8 in OP/s). The best unit for the dtype (tensor cores where the
    /// source says so). Dtypes without a sourced figure are absent.
    pub peak_flops_per_s: BTreeMap<String, Sourced<f64>>,
    pub tdp_w: Option<Sourced<f64>>,
    pub caps: ProfileCaps,
    /// Free-text remarks from the file (e.g. what the figures leave out).
    pub notes: Vec<String>,
    /// `built-in` or the file it was read from.
    pub origin: String,
}

/// Dtypes a profile may give a peak for.
pub const PEAK_DTYPES: &[&str] = &["f32", "f16", "bf16", "fp8", "int8"];

impl Profile {
    /// Bytes a workload may use on the target: device memory, host RAM, or
    /// unified memory less what the OS keeps. This is the memory cap.
    pub fn memory_budget_bytes(&self) -> u64 {
        let reserved = self
            .memory
            .os_reserved_bytes
            .as_ref()
            .map(|r| r.value)
            .unwrap_or(0);
        self.memory.total_bytes.value.saturating_sub(reserved)
    }

    /// Peak FLOP/s for a dtype name (`f32`, `f16`, `bf16`, `q8_0`, `q4_0`, …):
    /// quantized weights compute in the activation dtype here (f32).
    pub fn peak_flops_for(&self, dtype: &str) -> Option<f64> {
        let key = match dtype {
            "q8_0" | "q4_0" => "f32",
            d => d,
        };
        self.peak_flops_per_s.get(key).map(|s| s.value)
    }

    /// (host, device) memory caps that stand in for this profile on
    /// `backend`: the budget caps the memory the workload lives in here —
    /// host memory on the cpu backend, device memory on a GPU backend; a
    /// unified-memory or CPU-only target's one pool caps both.
    pub fn caps_on(&self, backend: &Backend) -> (Option<u64>, Option<u64>) {
        let budget = Some(self.memory_budget_bytes());
        match (self.kind, backend) {
            (_, Backend::Cpu) => (budget, None),
            (ProfileKind::Gpu, _) => (None, budget),
            (ProfileKind::Unified | ProfileKind::Cpu, _) => (budget, budget),
        }
    }

    pub fn bandwidth(&self) -> Option<f64> {
        self.bandwidth_bytes_per_s.as_ref().map(|s| s.value)
    }

    pub fn tdp(&self) -> Option<f64> {
        self.tdp_w.as_ref().map(|s| s.value)
    }

    /// What caps here cannot make this machine into the target — stated in
    /// every case run under the profile, left to projections (never faked).
    pub fn not_emulated(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(b) = self.bandwidth() {
            v.push(format!(
                "memory bandwidth ({:.0} GB/s on the target): this machine's is measured",
                b / 1e9
            ));
        }
        if !self.peak_flops_per_s.is_empty() {
            let peaks: Vec<String> = self
                .peak_flops_per_s
                .iter()
                .map(|(d, s)| format!("{d} {:.3} TFLOP/s", s.value / 1e12))
                .collect();
            v.push(format!(
                "compute speed ({}): this machine's is measured",
                peaks.join(", ")
            ));
        }
        if self.tdp().is_some() {
            v.push("power and energy: this machine's are measured or modelled".into());
        }
        if self.kind == ProfileKind::Gpu {
            v.push(
                "the GPU itself: on a backend without it, device memory is capped as host memory"
                    .into(),
            );
        }
        v
    }
}

/// Built-in profile files, embedded at build time.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "gtx-1080-ti",
        include_str!("../../profiles/gtx-1080-ti.toml"),
    ),
    ("p100-16gb", include_str!("../../profiles/p100-16gb.toml")),
    ("v100-32gb", include_str!("../../profiles/v100-32gb.toml")),
    ("t4-16gb", include_str!("../../profiles/t4-16gb.toml")),
    (
        "rtx-3060-12gb",
        include_str!("../../profiles/rtx-3060-12gb.toml"),
    ),
    ("rtx-3090", include_str!("../../profiles/rtx-3090.toml")),
    ("a100-40gb", include_str!("../../profiles/a100-40gb.toml")),
    ("a100-80gb", include_str!("../../profiles/a100-80gb.toml")),
    ("h100-sxm", include_str!("../../profiles/h100-sxm.toml")),
    ("h800-sxm", include_str!("../../profiles/h800-sxm.toml")),
    ("h20", include_str!("../../profiles/h20.toml")),
    ("h200-sxm", include_str!("../../profiles/h200-sxm.toml")),
    ("m1-8gb", include_str!("../../profiles/m1-8gb.toml")),
    ("m2-air-8gb", include_str!("../../profiles/m2-air-8gb.toml")),
    (
        "m2-air-16gb",
        include_str!("../../profiles/m2-air-16gb.toml"),
    ),
    (
        "m2-air-24gb",
        include_str!("../../profiles/m2-air-24gb.toml"),
    ),
    (
        "m2-max-96gb",
        include_str!("../../profiles/m2-max-96gb.toml"),
    ),
    (
        "raspberry-pi-5-8gb",
        include_str!("../../profiles/raspberry-pi-5-8gb.toml"),
    ),
    (
        "laptop-7840u-16gb",
        include_str!("../../profiles/laptop-7840u-16gb.toml"),
    ),
];

/// Environment variable naming the user profile folder.
pub const DIR_ENV: &str = "CAPBENCH_PROFILE_DIR";

/// The user profile folder: `$CAPBENCH_PROFILE_DIR`, else
/// `$XDG_CONFIG_HOME/capbench/profiles`, else `~/.config/capbench/profiles`.
pub fn user_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os(DIR_ENV) {
        return Some(PathBuf::from(d));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("capbench").join("profiles"))
}

/// The built-in profiles, in catalogue order.
pub fn built_in() -> Vec<Profile> {
    BUILT_IN
        .iter()
        .map(|(n, text)| {
            parse(text, Path::new(&format!("{n}.toml")), "built-in")
                .unwrap_or_else(|e| panic!("built-in profile {n} is malformed: {e}"))
        })
        .collect()
}

/// Every `*.toml` in a folder, by file name. A missing folder has none; a
/// malformed file is an error naming it (exit 2).
pub fn load_dir(dir: &Path) -> Result<Vec<Profile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(HarnessError::io("read profile folder", dir)(e)),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    paths.iter().map(|p| load_file(p)).collect()
}

/// Reads one profile file.
pub fn load_file(path: &Path) -> Result<Profile> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        HarnessError::bad_input(
            path,
            "whole file",
            format!("cannot read profile file: {e}"),
            "check the path",
        )
    })?;
    parse(&text, path, &path.display().to_string())
}

/// Built-in profiles with the user folder's on top: a user file with a
/// built-in's name replaces it; others are added.
pub fn load_all() -> Result<Vec<Profile>> {
    let mut all = built_in();
    if let Some(dir) = user_dir() {
        for p in load_dir(&dir)? {
            match all.iter_mut().find(|b| b.name == p.name) {
                Some(slot) => *slot = p,
                None => all.push(p),
            }
        }
    }
    Ok(all)
}

/// A profile by name (built-in or user folder), or a path to a `.toml` file.
pub fn find(name_or_path: &str) -> Result<Profile> {
    let path = Path::new(name_or_path);
    if path.extension().is_some_and(|e| e == "toml") {
        return load_file(path);
    }
    let all = load_all()?;
    all.iter()
        .find(|p| p.name == name_or_path)
        .cloned()
        .ok_or_else(|| {
            HarnessError::usage(format!(
                "unknown profile '{name_or_path}': see `capbench list profiles` ({}), or pass a profile .toml file",
                all.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_profiles_parse_and_cite_every_number() {
        let all = built_in();
        assert!(all.len() >= 19);
        for (p, (n, _)) in all.iter().zip(BUILT_IN) {
            assert_eq!(&p.name, n, "file name and profile name agree");
            assert!(!p.memory.total_bytes.source.trim().is_empty());
            for s in p.peak_flops_per_s.values() {
                assert!(s.value > 0.0 && !s.source.trim().is_empty(), "{}", p.name);
            }
            assert!(p.memory_budget_bytes() > 0, "{}", p.name);
            if p.kind == ProfileKind::Unified {
                let r = p
                    .memory
                    .os_reserved_bytes
                    .as_ref()
                    .expect("unified reserves");
                assert!(r.value > 0 && r.value < p.memory.total_bytes.value);
            }
        }
    }

    #[test]
    fn unified_memory_keeps_the_os_share() {
        let air = find("m2-air-8gb").unwrap();
        assert_eq!(air.kind, ProfileKind::Unified);
        assert_eq!(air.memory.total_bytes.value, 8 << 30);
        assert!(air.memory_budget_bytes() < 6 << 30);
        let t4 = find("t4-16gb").unwrap();
        assert_eq!(t4.memory_budget_bytes(), 16 << 30);
        assert_eq!(t4.peak_flops_for("f16"), Some(65e12));
        assert_eq!(t4.bandwidth(), Some(320e9));
    }

    #[test]
    fn user_folder_overrides_and_adds() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("mine.toml"),
            "name = \"t4-16gb\"\ndescription = \"my T4\"\nkind = \"gpu\"\n[memory]\ntotal = { value = \"15GiB\", source = \"nvidia-smi here\" }\n",
        )
        .unwrap();
        let got = load_dir(tmp.path()).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].memory_budget_bytes(), 15 << 30);
        assert!(got[0].origin.ends_with("mine.toml"));
        assert!(load_dir(&tmp.path().join("absent")).unwrap().is_empty());
    }

    #[test]
    fn unknown_profile_is_a_usage_error() {
        let e = find("cray-1").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("m2-air-8gb"), "{e}");
    }
}
