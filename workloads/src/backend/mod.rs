//! The devices and their ops: candle's CPU/CUDA/Metal devices, and our wgpu
//! engine with its WGSL ops. The identity types live in `crate::device`.

pub mod candle;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
#[cfg(not(feature = "cuda"))]
#[path = "cuda_stub.rs"]
pub mod cuda;
#[cfg(feature = "llamacpp")]
pub mod llamacpp;
#[cfg(not(feature = "llamacpp"))]
#[path = "llamacpp_stub.rs"]
pub mod llamacpp;
#[cfg(all(feature = "metal", target_os = "macos"))]
pub mod metal;
#[cfg(not(all(feature = "metal", target_os = "macos")))]
#[path = "metal_stub.rs"]
pub mod metal;
#[cfg(feature = "wgpu")]
pub mod wgpu;
#[cfg(not(feature = "wgpu"))]
#[path = "wgpu_stub.rs"]
pub mod wgpu;

pub use crate::device::caps as device_caps;
pub use crate::device::{
    Backend, BackendStatus, DeviceMemoryRecord, DeviceRecord, LlamaOffload, WgpuApi, WgpuSelector,
};
use crate::error::{Result, WorkloadError};

/// The backends one test body runs on here (candle's `test_device!` idea),
/// so a kind is tested on every backend by the same assertions: cpu always,
/// wgpu when an adapter opens (with CAPBENCH_REQUIRE_WGPU=1 a missing one
/// fails the test rather than shrinking the list).
#[cfg(test)]
pub(crate) fn test_backends() -> Vec<Backend> {
    #[allow(unused_mut)] // without the wgpu feature the list stays [cpu]
    let mut all = vec![Backend::Cpu];
    #[cfg(feature = "wgpu")]
    all.extend(wgpu::test_backend());
    all
}

/// Applies a device memory cap for this process before a workload
/// allocates (cuda: a ballast; metal: checked against the peak afterwards).
pub fn apply_device_mem_cap(backend: &Backend, cap_bytes: u64) -> Result<()> {
    backend.ensure_compiled()?;
    match backend {
        Backend::Cuda { ordinal } => cuda::apply_mem_cap(*ordinal, cap_bytes),
        Backend::Metal { ordinal } => metal::apply_mem_cap(*ordinal, cap_bytes),
        other => Err(WorkloadError::Unsupported {
            workload: "device memory cap".into(),
            backend: other.to_string(),
            reason: "--device-mem-cap applies to the candle GPU backends (cuda, metal)".into(),
        }),
    }
}

/// Device memory of the case this process ran, for GPU backends of candle.
pub fn device_memory(backend: &Backend) -> Option<DeviceMemoryRecord> {
    match backend {
        Backend::Cuda { ordinal } => cuda::memory(*ordinal),
        Backend::Metal { ordinal } => metal::memory(*ordinal),
        _ => None,
    }
}

/// Probes every backend family on this machine. Opens no model; for wgpu it
/// only enumerates adapters.
pub fn probe_all() -> Vec<BackendStatus> {
    let mut out = vec![candle::probe(Backend::Cpu)];
    out.push(candle::probe(Backend::Cuda { ordinal: 0 }));
    out.push(candle::probe(Backend::Metal { ordinal: 0 }));
    out.push(wgpu::probe());
    out.push(llamacpp::probe());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_mem_cap_is_refused_off_the_gpu_backends() {
        let e = apply_device_mem_cap(&Backend::Cpu, 1 << 30).unwrap_err();
        assert!(e.to_string().contains("cuda, metal"), "{e}");
    }
}
