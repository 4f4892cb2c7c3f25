//! Device memory accounting: every buffer the wgpu engine creates goes
//! through `DeviceMemory::alloc`, which counts it and refuses it beyond a cap
//! (standing in for a device with less memory) with an out-of-memory error.

use crate::error::{Result, WorkloadError};

#[derive(Debug, Clone)]
pub struct DeviceMemory {
    backend: String,
    cap_bytes: Option<u64>,
    in_use_bytes: u64,
    peak_bytes: u64,
}

impl DeviceMemory {
    pub fn new(backend: &str, cap_bytes: Option<u64>) -> DeviceMemory {
        DeviceMemory {
            backend: backend.to_string(),
            cap_bytes,
            in_use_bytes: 0,
            peak_bytes: 0,
        }
    }

    /// Counts `bytes` against the cap; `Err(DeviceOutOfMemory)` leaves the
    /// count unchanged.
    pub fn reserve(&mut self, what: &str, bytes: u64) -> Result<()> {
        if let Some(cap) = self.cap_bytes
            && self.in_use_bytes + bytes > cap
        {
            return Err(WorkloadError::DeviceOutOfMemory {
                what: format!("{} {what}", self.backend),
                requested_bytes: bytes,
                in_use_bytes: self.in_use_bytes,
                cap_bytes: cap,
            });
        }
        self.in_use_bytes += bytes;
        self.peak_bytes = self.peak_bytes.max(self.in_use_bytes);
        Ok(())
    }

    /// The one way the engine creates a buffer.
    pub fn alloc(
        &mut self,
        device: &wgpu::Device,
        label: &str,
        bytes: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer> {
        // wgpu rounds sizes up to COPY_BUFFER_ALIGNMENT; count what it holds.
        let bytes =
            bytes.max(4).div_ceil(wgpu::COPY_BUFFER_ALIGNMENT) * wgpu::COPY_BUFFER_ALIGNMENT;
        self.reserve(label, bytes)?;
        Ok(device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage,
            mapped_at_creation: false,
        }))
    }

    /// A buffer counted by `alloc` was dropped.
    pub fn release(&mut self, bytes: u64) {
        let bytes =
            bytes.max(4).div_ceil(wgpu::COPY_BUFFER_ALIGNMENT) * wgpu::COPY_BUFFER_ALIGNMENT;
        self.in_use_bytes = self.in_use_bytes.saturating_sub(bytes);
    }

    pub fn in_use_bytes(&self) -> u64 {
        self.in_use_bytes
    }

    pub fn peak_bytes(&self) -> u64 {
        self.peak_bytes
    }

    /// `name=value` lines for the device record.
    pub fn details(&self) -> Vec<String> {
        let mut v = vec![format!("device_peak_bytes={}", self.peak_bytes)];
        if let Some(c) = self.cap_bytes {
            v.push(format!("device_mem_cap_bytes={c}"));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_refuses_what_exceeds_it_and_keeps_the_count() {
        let mut m = DeviceMemory::new("wgpu", Some(1000));
        m.reserve("a", 600).unwrap();
        let e = m.reserve("b", 500).unwrap_err();
        assert!(matches!(
            e,
            WorkloadError::DeviceOutOfMemory {
                requested_bytes: 500,
                in_use_bytes: 600,
                cap_bytes: 1000,
                ..
            }
        ));
        assert!(e.to_string().contains("b"), "{e}");
        assert_eq!(m.in_use_bytes(), 600);
        m.release(600);
        m.reserve("b", 500).unwrap();
        assert_eq!(m.peak_bytes(), 600);
        let mut free = DeviceMemory::new("wgpu", None);
        free.reserve("x", u64::MAX / 2).unwrap();
    }
}
