//! Metal through candle, macOS only: device selection (an ordinal past the
//! last GPU is an error, not candle's panic), memory queries, and a device
//! memory cap. UNVERIFIED: written against candle 0.11's Metal API and
//! compiled only on macOS; no run on a Mac has checked it yet
//! (docs/gpu-backends.md, "Metal").
//!
//! Metal has no allocation limit to set, so the cap is checked against the
//! peak after the run, and the peak is sampled: the highest
//! `MTLDevice.currentAllocatedSize` seen whenever the device was
//! synchronised and at the end. candle keeps freed buffers in its pool for
//! reuse, so the allocated size rarely falls between samples.

use std::sync::Mutex;

use candle_core::Device;

use super::{Backend, DeviceMemoryRecord, DeviceRecord};
use crate::error::{Result, WorkloadError};

const PEAK_METHOD: &str = "highest MTLDevice.currentAllocatedSize seen at each device synchronisation and at the end (sampled; candle's buffer pool keeps freed buffers)";
const CAP_MECHANISM: &str = "checked after the run: the sampled peak must not exceed the cap (Metal has no allocation limit to set)";

struct Opened {
    ordinal: usize,
    device: candle_core::MetalDevice,
    at_open_bytes: u64,
    peak_bytes: u64,
    cap_bytes: Option<u64>,
}

static OPENED: Mutex<Option<Opened>> = Mutex::new(None);

fn allocated(d: &candle_core::MetalDevice) -> u64 {
    d.metal_device().current_allocated_size() as u64
}

/// Opens `metal:ordinal`; the first open in this process is the one the
/// memory figures are about.
pub fn open(ordinal: usize) -> Result<Device> {
    let name = Backend::Metal { ordinal }.to_string();
    let count = candle_metal_kernels::metal::Device::all().len();
    if ordinal >= count {
        return Err(WorkloadError::Unavailable {
            backend: name,
            reason: format!("this Mac has {count} Metal device(s); metal:{ordinal} does not exist"),
        });
    }
    let dev = Device::new_metal(ordinal).map_err(|e| WorkloadError::Unavailable {
        backend: name,
        reason: e.to_string(),
    })?;
    if let Device::Metal(m) = &dev {
        let mut g = OPENED.lock().expect("metal state lock");
        if g.is_none() {
            let now = allocated(m);
            *g = Some(Opened {
                ordinal,
                device: m.clone(),
                at_open_bytes: now,
                peak_bytes: now,
                cap_bytes: None,
            });
        }
    }
    Ok(dev)
}

pub fn apply_mem_cap(ordinal: usize, cap_bytes: u64) -> Result<()> {
    open(ordinal)?;
    if let Some(o) = OPENED.lock().expect("metal state lock").as_mut() {
        o.cap_bytes = Some(cap_bytes);
    }
    Ok(())
}

/// Takes one sample of the allocated size into the peak.
pub fn sample_memory(ordinal: usize) {
    if let Ok(mut g) = OPENED.lock()
        && let Some(o) = g.as_mut().filter(|o| o.ordinal == ordinal)
    {
        o.peak_bytes = o.peak_bytes.max(allocated(&o.device));
    }
}

pub fn memory(ordinal: usize) -> Option<DeviceMemoryRecord> {
    sample_memory(ordinal);
    let g = OPENED.lock().ok()?;
    let o = g.as_ref().filter(|o| o.ordinal == ordinal)?;
    let now = allocated(&o.device);
    Some(DeviceMemoryRecord {
        total_bytes: Some(o.device.metal_device().recommended_max_working_set_size() as u64),
        free_at_open_bytes: None,
        cap_bytes: o.cap_bytes,
        cap_mechanism: o.cap_bytes.map(|_| CAP_MECHANISM.to_string()),
        cap_checked_after_run: o.cap_bytes.is_some(),
        // The case's own allocations: what the device held beyond the open.
        peak_bytes: Some(o.peak_bytes.saturating_sub(o.at_open_bytes)),
        peak_method: PEAK_METHOD.to_string(),
        in_use_at_end_bytes: Some(now.saturating_sub(o.at_open_bytes)),
    })
}

pub fn record(ordinal: usize) -> DeviceRecord {
    let backend = Backend::Metal { ordinal }.to_string();
    let g = OPENED.lock().ok();
    let Some(o) = g
        .as_ref()
        .and_then(|g| g.as_ref())
        .filter(|o| o.ordinal == ordinal)
    else {
        return DeviceRecord {
            backend: backend.clone(),
            name: backend,
            api: "metal".into(),
            ..Default::default()
        };
    };
    let md = o.device.metal_device();
    DeviceRecord {
        backend,
        name: format!("Apple GPU {}", md.architecture_name()),
        api: "metal".into(),
        // Apple Silicon GPUs share memory with the CPU.
        device_type: "integrated_gpu".into(),
        driver: "Metal (candle-core 0.11)".into(),
        driver_info: String::new(),
        index: Some(ordinal),
        details: vec![
            format!("registry_id={:#x}", md.registry_id()),
            format!(
                "recommended_max_working_set_bytes={}",
                md.recommended_max_working_set_size()
            ),
            format!("allocated_at_open_bytes={}", o.at_open_bytes),
        ],
    }
}
