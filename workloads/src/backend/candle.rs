//! candle devices (cpu always; cuda and metal behind features, see `cuda`
//! and `metal` beside this file) and their descriptions for the result file.

use candle_core::Device;

use super::{Backend, BackendStatus, DeviceRecord};
use crate::error::{Result, WorkloadError};

/// Opens the candle device for a candle backend.
pub fn device(backend: &Backend) -> Result<Device> {
    backend.ensure_compiled()?;
    let name = backend.to_string();
    match backend {
        Backend::Cpu => Ok(Device::Cpu),
        Backend::Cuda { ordinal } => super::cuda::open(*ordinal),
        Backend::Metal { ordinal } => super::metal::open(*ordinal),
        Backend::Wgpu(_) => Err(WorkloadError::Unsupported {
            workload: "candle device".into(),
            backend: name,
            reason: "wgpu runs on capbench's WGSL engine, not candle".into(),
        }),
        Backend::LlamaCpp(_) => Err(WorkloadError::Unsupported {
            workload: "candle device".into(),
            backend: name,
            reason: "llamacpp runs on llama.cpp, not candle".into(),
        }),
    }
}

/// Waits for queued device work, so a clock read after it sees finished work.
pub fn synchronize(backend: &Backend, dev: &Device) -> Result<()> {
    dev.synchronize()
        .map_err(WorkloadError::candle(&backend.to_string(), "synchronize"))?;
    // Metal keeps no peak of its own: sample it where the device is idle.
    if let Backend::Metal { ordinal } = backend {
        super::metal::sample_memory(*ordinal);
    }
    Ok(())
}

pub fn record(backend: &Backend) -> DeviceRecord {
    match backend {
        Backend::Cpu => DeviceRecord {
            backend: "cpu".into(),
            name: "host CPU (candle)".into(),
            api: "host".into(),
            device_type: "cpu".into(),
            driver: "candle-core".into(),
            driver_info: String::new(),
            index: None,
            details: vec![
                format!("threads={}", candle_core::utils::get_num_threads()),
                format!("avx={}", candle_core::utils::with_avx()),
                format!("f16c={}", candle_core::utils::with_f16c()),
                format!("neon={}", candle_core::utils::with_neon()),
            ],
        },
        Backend::Cuda { ordinal } => super::cuda::record(*ordinal),
        Backend::Metal { ordinal } => super::metal::record(*ordinal),
        other => DeviceRecord {
            backend: other.to_string(),
            name: other.to_string(),
            api: other.family().into(),
            ..Default::default()
        },
    }
}

/// Compiled in? Usable (a device opens)?
pub fn probe(backend: Backend) -> BackendStatus {
    let family = backend.family().to_string();
    if let Err(e) = backend.ensure_compiled() {
        return BackendStatus {
            backend: family,
            compiled_in: false,
            usable: false,
            note: e.to_string(),
            devices: vec![],
        };
    }
    match device(&backend) {
        Ok(_) => BackendStatus {
            backend: family,
            compiled_in: true,
            usable: true,
            note: String::new(),
            devices: vec![record(&backend)],
        },
        Err(e) => BackendStatus {
            backend: family,
            compiled_in: true,
            usable: false,
            note: e.to_string(),
            devices: vec![],
        },
    }
}

/// Threads candle's CPU kernels use (RAYON_NUM_THREADS, else physical cores).
pub fn default_threads() -> usize {
    candle_core::utils::get_num_threads()
}

/// The `work`, `device` and `timer` of a `PreparedWorkload` on candle that
/// keeps its `work` and `backend` and returns from `run_iter` after a device
/// sync: the same three methods in every such kind, written once.
macro_rules! candle_workload_tail {
    () => {
        fn work(&self) -> $crate::api::WorkPerIter {
            self.work
        }

        fn device(&self) -> $crate::device::DeviceRecord {
            $crate::backend::candle::record(&self.backend)
        }

        fn timer(&self) -> &'static str {
            "wall_clock_after_device_sync"
        }
    };
}
pub(crate) use candle_workload_tail;
