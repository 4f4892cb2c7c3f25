//! The environment fingerprint: what machine, OS, toolchain and build
//! produced a run, so results can be compared only when comparable.

use capbench_workloads::backend::BackendStatus;

use crate::gpu::probe_all;
use serde::{Deserialize, Serialize};
use sysinfo::System;

use crate::meter::energy::{Probe, SourceAttempt};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Env {
    /// FNV-1a of CPU model, logical cores, memory (GiB) and OS: two runs with
    /// the same id ran on the same kind of machine.
    pub machine_id: String,
    pub hostname: String,
    pub cpu_model: String,
    pub cpu_vendor: String,
    pub physical_cores: Option<usize>,
    pub logical_cores: usize,
    pub cpu_frequency_mhz: u64,
    pub memory_total_bytes: u64,
    pub os_name: String,
    pub os_version: String,
    pub kernel_version: String,
    pub arch: String,
    pub rustc_version: String,
    pub capbench_version: String,
    pub git_commit: String,
    /// `clean`, `dirty` or `unknown`: whether the build had uncommitted changes.
    pub git_state: String,
    pub build_profile: String,
    pub target_features: Vec<String>,
    /// SIMD features the CPU offers at run time (what candle's kernels may use).
    pub cpu_features_runtime: Vec<String>,
    /// Cargo features of capbench this binary was built with.
    pub capbench_features: Vec<String>,
    /// `--threads` if given, else what candle/rayon would use.
    pub threads_used: usize,
    /// 1, 5, 15-minute load averages.
    pub load_avg_before: [f64; 3],
    pub load_avg_after: Option<[f64; 3]>,
    /// Per-backend availability and devices (wgpu: every adapter).
    pub backends: Vec<BackendStatus>,
    /// Every energy source and whether it can be read here, with why not.
    #[serde(default)]
    pub energy_sources: Vec<SourceAttempt>,
}

/// FNV-1a 64, fed in pieces (files are hashed as they are read).
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    pub fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// The hash as 16 hex digits, as result files record it.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

fn fnv1a(s: &str) -> u64 {
    let mut h = Fnv1a::default();
    h.update(s.as_bytes());
    h.0
}

/// FNV-1a of CPU model, logical cores, memory (GiB), OS and architecture.
fn machine_id(cpu_model: &str, logical: usize, memory_bytes: u64, os_name: &str) -> String {
    let key = format!(
        "{cpu_model}|{logical}|{}|{os_name}|{}",
        memory_bytes.div_ceil(1 << 30),
        std::env::consts::ARCH
    );
    format!("{:016x}", fnv1a(&key))
}

pub fn load_avg() -> [f64; 3] {
    match System::load_average() {
        Ok(l) => [l.one, l.five, l.fifteen],
        Err(_) => [f64::NAN; 3],
    }
}

fn compiled_features() -> Vec<String> {
    let mut v = vec![];
    if cfg!(feature = "cuda") {
        v.push("cuda".to_string());
    }
    if cfg!(feature = "metal") {
        v.push("metal".to_string());
    }
    if cfg!(feature = "wgpu") {
        v.push("wgpu".to_string());
    }
    if cfg!(feature = "nvml") {
        v.push("nvml".to_string());
    }
    // CUDA cases run in a separate CUDA worker (see `gpu`): say so.
    if let Some(crate::gpu::CudaWorker::Separate(p)) = crate::gpu::cuda_worker() {
        v.push(format!("cuda (worker {})", p.display()));
    }
    v
}

impl Env {
    /// This machine's `machine_id`, without probing backends.
    pub fn machine_id_now() -> String {
        let (cpu_model, logical, memory) = match System::new() {
            Ok(mut s) => {
                s.refresh_memory();
                s.refresh_cpu_all();
                let model = s
                    .cpus()
                    .first()
                    .map(|c| c.brand().trim().to_string())
                    .unwrap_or_default();
                (model, s.cpus().len().max(1), s.total_memory())
            }
            Err(_) => (String::new(), 1, 0),
        };
        machine_id(
            &cpu_model,
            logical,
            memory,
            &System::name().unwrap_or_default(),
        )
    }

    /// Reads the fingerprint. `threads` is the `--threads` cap, if any.
    pub fn capture(threads: Option<usize>) -> Env {
        let sys = System::new().ok().map(|mut s| {
            s.refresh_memory();
            s.refresh_cpu_all();
            s
        });
        let cpus = sys.as_ref().map(|s| s.cpus()).unwrap_or_default();
        let cpu_model = cpus
            .first()
            .map(|c| c.brand().trim().to_string())
            .unwrap_or_default();
        let logical = cpus.len().max(1);
        let memory = sys.as_ref().map(|s| s.total_memory()).unwrap_or(0);
        let os_name = System::name().unwrap_or_default();
        let os_version = System::os_version().unwrap_or_default();
        Env {
            machine_id: machine_id(&cpu_model, logical, memory, &os_name),
            hostname: System::host_name().unwrap_or_default(),
            cpu_vendor: cpus
                .first()
                .map(|c| c.vendor_id().to_string())
                .unwrap_or_default(),
            cpu_frequency_mhz: cpus.first().map(|c| c.frequency()).unwrap_or(0),
            cpu_model,
            physical_cores: System::physical_core_count().ok(),
            logical_cores: logical,
            memory_total_bytes: memory,
            os_name,
            os_version,
            kernel_version: System::kernel_version().unwrap_or_default(),
            arch: std::env::consts::ARCH.to_string(),
            rustc_version: env!("CAPBENCH_RUSTC_VERSION").to_string(),
            capbench_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit: env!("CAPBENCH_GIT_COMMIT").to_string(),
            git_state: env!("CAPBENCH_GIT_STATE").to_string(),
            build_profile: env!("CAPBENCH_BUILD_PROFILE").to_string(),
            target_features: env!("CAPBENCH_TARGET_FEATURES")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            cpu_features_runtime: runtime_cpu_features(),
            capbench_features: compiled_features(),
            threads_used: threads.unwrap_or_else(candle_core_threads),
            load_avg_before: load_avg(),
            load_avg_after: None,
            backends: probe_all(),
            energy_sources: Probe::system(threads.unwrap_or_else(candle_core_threads)).survey(),
        }
    }
}

fn runtime_cpu_features() -> Vec<String> {
    #[allow(unused_mut)]
    let mut v: Vec<&str> = vec![];
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$(if std::arch::is_x86_feature_detected!($f) { v.push($f); })*};
        }
        probe!(
            "sse4.2",
            "avx",
            "avx2",
            "fma",
            "f16c",
            "avx512f",
            "avx512bf16"
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$(if std::arch::is_aarch64_feature_detected!($f) { v.push($f); })*};
        }
        probe!("neon", "fp16", "bf16", "i8mm", "sve");
    }
    v.into_iter().map(str::to_string).collect()
}

/// Threads candle would use in a worker without `--threads`.
fn candle_core_threads() -> usize {
    capbench_workloads::backend::candle::default_threads()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        // Test vectors from the FNV reference (draft-eastlake-fnv).
        assert_eq!(fnv1a(""), 0xcbf29ce484222325);
        assert_eq!(fnv1a("a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a("foobar"), 0x85944171f73967e8);
    }
}
