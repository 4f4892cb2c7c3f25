//! Stand-in for `cuda.rs` in builds without the `cuda` feature: every entry
//! answers "not compiled in" (callers check `ensure_compiled` first).

use candle_core::Device;

use super::{Backend, DeviceMemoryRecord, DeviceRecord};
use crate::error::{Result, WorkloadError};

pub fn open(_ordinal: usize) -> Result<Device> {
    Err(WorkloadError::NotCompiled {
        backend: "cuda".into(),
        feature: "cuda".into(),
    })
}

pub fn apply_mem_cap(ordinal: usize, _cap_bytes: u64) -> Result<()> {
    open(ordinal).map(|_| ())
}

pub fn memory(_ordinal: usize) -> Option<DeviceMemoryRecord> {
    None
}

pub fn record(ordinal: usize) -> DeviceRecord {
    let name = Backend::Cuda { ordinal }.to_string();
    DeviceRecord {
        backend: name.clone(),
        name,
        api: "cuda".into(),
        ..Default::default()
    }
}
