//! Stand-in for `metal.rs` where Metal is not built (the `metal` feature is
//! off, or the target is not macOS): every entry answers "not compiled in".

use candle_core::Device;

use super::{Backend, DeviceMemoryRecord, DeviceRecord};
use crate::error::{Result, WorkloadError};

pub fn open(_ordinal: usize) -> Result<Device> {
    Err(WorkloadError::NotCompiled {
        backend: "metal".into(),
        feature: "metal".into(),
    })
}

pub fn apply_mem_cap(ordinal: usize, _cap_bytes: u64) -> Result<()> {
    open(ordinal).map(|_| ())
}

pub fn memory(_ordinal: usize) -> Option<DeviceMemoryRecord> {
    None
}

/// Nothing to sample without Metal.
pub fn sample_memory(_ordinal: usize) {}

pub fn record(ordinal: usize) -> DeviceRecord {
    let name = Backend::Metal { ordinal }.to_string();
    DeviceRecord {
        backend: name.clone(),
        name,
        api: "metal".into(),
        ..Default::default()
    }
}
