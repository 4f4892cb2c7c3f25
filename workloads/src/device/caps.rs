//! Device-side caps a case runs under: the wgpu limit tier the device is
//! requested with, and a device-memory cap that every buffer our wgpu engine
//! creates is counted against (`DeviceMemoryCounter`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Result, WorkloadError};

/// Limits the wgpu device is requested with, standing in for an older GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WgpuLimitsTier {
    /// `wgpu::Limits::downlevel_defaults()`: GPUs with Vulkan 1.0/GL ES 3.1-class
    /// limits (128 MiB storage bindings, 16 KiB workgroup storage).
    Downlevel,
    /// `wgpu::Limits::downlevel_webgl2_defaults()`: WebGL2-class, no compute
    /// storage buffers at all.
    Webgl2,
    /// `wgpu::Limits::default()`: what every WebGPU implementation offers.
    Default,
    /// The `default` tier with the named limits replaced (a `--wgpu-limits FILE`).
    Custom { overrides: BTreeMap<String, u64> },
}

/// Limits a `--wgpu-limits FILE` may set (names as in `wgpu::Limits`).
pub const WGPU_LIMIT_NAMES: &[&str] = &[
    "max_buffer_size",
    "max_storage_buffer_binding_size",
    "max_uniform_buffer_binding_size",
    "max_storage_buffers_per_shader_stage",
    "max_compute_workgroup_storage_size",
    "max_compute_invocations_per_workgroup",
    "max_compute_workgroup_size_x",
    "max_compute_workgroup_size_y",
    "max_compute_workgroup_size_z",
    "max_compute_workgroups_per_dimension",
];

impl WgpuLimitsTier {
    /// `downlevel`, `webgl2` or `default`.
    pub fn parse_name(s: &str) -> Option<WgpuLimitsTier> {
        match s.trim() {
            "downlevel" => Some(WgpuLimitsTier::Downlevel),
            "webgl2" => Some(WgpuLimitsTier::Webgl2),
            "default" => Some(WgpuLimitsTier::Default),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            WgpuLimitsTier::Downlevel => "downlevel",
            WgpuLimitsTier::Webgl2 => "webgl2",
            WgpuLimitsTier::Default => "default",
            WgpuLimitsTier::Custom { .. } => "custom",
        }
    }
}

/// Counts device bytes our engine holds and refuses those past the cap.
/// Shared (cloned) by every buffer-creating part of one case.
#[derive(Debug, Clone, Default)]
pub struct DeviceMemoryCounter {
    cap_bytes: Option<u64>,
    in_use: Arc<AtomicU64>,
    peak: Arc<AtomicU64>,
}

impl DeviceMemoryCounter {
    pub fn new(cap_bytes: Option<u64>) -> Self {
        DeviceMemoryCounter {
            cap_bytes,
            ..Default::default()
        }
    }

    /// Reserves `bytes` for a buffer named `what`, or says it does not fit.
    pub fn reserve(&self, what: &str, bytes: u64) -> Result<()> {
        let mut cur = self.in_use.load(Ordering::Relaxed);
        loop {
            let next = cur.saturating_add(bytes);
            if let Some(cap) = self.cap_bytes
                && next > cap
            {
                return Err(WorkloadError::DeviceOutOfMemory {
                    what: what.to_string(),
                    requested_bytes: bytes,
                    in_use_bytes: cur,
                    cap_bytes: cap,
                });
            }
            match self
                .in_use
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.peak.fetch_max(next, Ordering::Relaxed);
                    return Ok(());
                }
                Err(now) => cur = now,
            }
        }
    }

    /// Returns bytes of a dropped buffer.
    pub fn release(&self, bytes: u64) {
        self.in_use.fetch_sub(bytes, Ordering::Relaxed);
    }

    pub fn in_use_bytes(&self) -> u64 {
        self.in_use.load(Ordering::Relaxed)
    }

    pub fn peak_bytes(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    pub fn cap_bytes(&self) -> Option<u64> {
        self.cap_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_refuses_past_the_cap_and_keeps_the_peak() {
        let c = DeviceMemoryCounter::new(Some(1000));
        c.reserve("a", 600).unwrap();
        let e = c.reserve("b", 500).unwrap_err();
        match e {
            WorkloadError::DeviceOutOfMemory {
                requested_bytes,
                in_use_bytes,
                cap_bytes,
                ..
            } => assert_eq!((requested_bytes, in_use_bytes, cap_bytes), (500, 600, 1000)),
            other => panic!("{other}"),
        }
        c.release(600);
        c.reserve("b", 500).unwrap();
        assert_eq!((c.in_use_bytes(), c.peak_bytes()), (500, 600));
        let uncapped = DeviceMemoryCounter::new(None);
        uncapped.reserve("x", u64::MAX / 2).unwrap();
    }

    #[test]
    fn tier_names() {
        for t in ["downlevel", "webgl2", "default"] {
            assert_eq!(WgpuLimitsTier::parse_name(t).unwrap().as_str(), t);
        }
        assert!(WgpuLimitsTier::parse_name("ultra").is_none());
    }
}
