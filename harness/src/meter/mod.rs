//! What the worker reads off the OS about itself: peak resident memory and CPU
//! time (getrusage); energy sources live in `energy`, NVIDIA GPU facts for
//! the device record in `nvml_device`. Device memory comes from the backend.

pub mod energy;
pub mod nvml_device;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessUsage {
    /// Maximum resident set size of the worker process.
    pub peak_rss_bytes: Option<u64>,
    pub cpu_user_s: Option<f64>,
    pub cpu_sys_s: Option<f64>,
}

/// Reads getrusage(RUSAGE_SELF) for the calling process.
#[cfg(unix)]
pub fn process_usage() -> ProcessUsage {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return ProcessUsage::default();
    }
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 * 1e-6;
    // Linux reports ru_maxrss in KiB, macOS in bytes.
    let rss_unit = if cfg!(target_os = "macos") { 1 } else { 1024 };
    ProcessUsage {
        peak_rss_bytes: Some(ru.ru_maxrss as u64 * rss_unit),
        cpu_user_s: Some(secs(ru.ru_utime)),
        cpu_sys_s: Some(secs(ru.ru_stime)),
    }
}

#[cfg(not(unix))]
pub fn process_usage() -> ProcessUsage {
    ProcessUsage::default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn usage_sees_this_process() {
        let u = super::process_usage();
        if cfg!(unix) {
            assert!(u.peak_rss_bytes.unwrap() > 1 << 20);
            assert!(u.cpu_user_s.unwrap() >= 0.0);
        }
    }
}
