//! capbench's wgpu engine: adapter choice pinned to the requested API, device
//! setup, and the WGSL kernels (one file each). The workloads that run on it
//! live with their kind under `kinds/`.

pub mod engine;
pub mod memory;
pub mod model;
pub mod ops;
#[cfg(test)]
mod ops_tests;
pub mod quant;

use wgpu::{Adapter, Backends, DeviceType, Instance, InstanceDescriptor};

use super::{Backend, BackendStatus, DeviceRecord, WgpuApi, WgpuSelector};
use crate::device::caps::{DeviceMemoryCounter, WgpuLimitsTier};
use crate::error::{Result, WorkloadError};

/// A device and queue opened on the chosen adapter.
pub struct WgpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub record: DeviceRecord,
    /// Device bytes this case's buffers hold, against `--device-mem-cap`.
    pub memory: DeviceMemoryCounter,
    /// Whose limits the device was opened with: `the adapter's`, or the
    /// `--wgpu-limits` tier's name.
    pub limits_from: String,
}

/// A buffer counted against the case's device memory; its bytes are
/// returned to the counter when it is dropped.
pub struct CountedBuffer {
    buffer: wgpu::Buffer,
    bytes: u64,
    memory: DeviceMemoryCounter,
}

impl std::ops::Deref for CountedBuffer {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

impl Drop for CountedBuffer {
    fn drop(&mut self) {
        self.memory.release(self.bytes);
    }
}

/// The limits of a tier (`None`: the adapter's own).
fn tier_limits(tier: Option<&WgpuLimitsTier>, adapter: &Adapter) -> Result<wgpu::Limits> {
    let mut l = match tier {
        None => return Ok(adapter.limits()),
        Some(WgpuLimitsTier::Downlevel) => wgpu::Limits::downlevel_defaults(),
        Some(WgpuLimitsTier::Webgl2) => wgpu::Limits::downlevel_webgl2_defaults(),
        Some(WgpuLimitsTier::Default | WgpuLimitsTier::Custom { .. }) => wgpu::Limits::default(),
    };
    if let Some(WgpuLimitsTier::Custom { overrides }) = tier {
        for (name, v) in overrides {
            let small = |v: u64| {
                u32::try_from(v).map_err(|_| WorkloadError::Wgpu {
                    op: "wgpu limits",
                    message: format!("{name} = {v} does not fit in 32 bits"),
                })
            };
            match name.as_str() {
                "max_buffer_size" => l.max_buffer_size = *v,
                "max_storage_buffer_binding_size" => l.max_storage_buffer_binding_size = *v,
                "max_uniform_buffer_binding_size" => l.max_uniform_buffer_binding_size = *v,
                "max_storage_buffers_per_shader_stage" => {
                    l.max_storage_buffers_per_shader_stage = small(*v)?
                }
                "max_compute_workgroup_storage_size" => {
                    l.max_compute_workgroup_storage_size = small(*v)?
                }
                "max_compute_invocations_per_workgroup" => {
                    l.max_compute_invocations_per_workgroup = small(*v)?
                }
                "max_compute_workgroup_size_x" => l.max_compute_workgroup_size_x = small(*v)?,
                "max_compute_workgroup_size_y" => l.max_compute_workgroup_size_y = small(*v)?,
                "max_compute_workgroup_size_z" => l.max_compute_workgroup_size_z = small(*v)?,
                "max_compute_workgroups_per_dimension" => {
                    l.max_compute_workgroups_per_dimension = small(*v)?
                }
                other => {
                    return Err(WorkloadError::Wgpu {
                        op: "wgpu limits",
                        message: format!("unknown limit {other}"),
                    });
                }
            }
        }
    }
    Ok(l)
}

fn instance(backends: Backends) -> Instance {
    let mut desc = InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    Instance::new(desc)
}

fn api_of(b: wgpu::Backend) -> &'static str {
    match b {
        wgpu::Backend::Vulkan => "vulkan",
        wgpu::Backend::Metal => "metal",
        wgpu::Backend::Dx12 => "dx12",
        wgpu::Backend::Gl => "gl",
        wgpu::Backend::BrowserWebGpu => "webgpu",
        wgpu::Backend::Noop => "noop",
    }
}

fn type_name(t: DeviceType) -> &'static str {
    match t {
        DeviceType::DiscreteGpu => "discrete_gpu",
        DeviceType::IntegratedGpu => "integrated_gpu",
        DeviceType::VirtualGpu => "virtual_gpu",
        DeviceType::Cpu => "cpu",
        DeviceType::Other => "other",
    }
}

/// Lower is better: the order `wgpu` (no selector) prefers adapters in.
fn type_rank(t: DeviceType) -> u8 {
    match t {
        DeviceType::DiscreteGpu => 0,
        DeviceType::IntegratedGpu => 1,
        DeviceType::VirtualGpu => 2,
        DeviceType::Cpu => 3,
        DeviceType::Other => 4,
    }
}

fn backends_for(api: WgpuApi) -> Backends {
    match api {
        WgpuApi::Vulkan => Backends::VULKAN,
        WgpuApi::Metal => Backends::METAL,
        WgpuApi::Dx12 => Backends::DX12,
        WgpuApi::Gl => Backends::GL,
    }
}

/// The adapters of `backends`, in a stable order; with `Backends::all()` this
/// is the order of `wgpu:N` and of `capbench list backends`.
fn adapters(backends: Backends) -> Vec<Adapter> {
    let inst = instance(backends);
    let mut v = pollster::block_on(inst.enumerate_adapters(backends));
    v.sort_by_key(|a| {
        let i = a.get_info();
        // GL sorts last so the primary APIs keep their `wgpu:N` numbers
        // whether or not GL was enumerated.
        (
            i.backend == wgpu::Backend::Gl,
            api_of(i.backend),
            type_rank(i.device_type),
            i.name.clone(),
        )
    });
    v
}

fn record_of(adapter: &Adapter, index: Option<usize>) -> DeviceRecord {
    let i = adapter.get_info();
    DeviceRecord {
        backend: "wgpu".into(),
        name: i.name.clone(),
        api: api_of(i.backend).into(),
        device_type: type_name(i.device_type).into(),
        driver: i.driver.clone(),
        driver_info: i.driver_info.clone(),
        index,
        details: vec![
            format!("vendor_id=0x{:04x}", i.vendor),
            format!("device_id=0x{:04x}", i.device),
        ],
    }
}

/// Picks the adapter for `selector`, never crossing to another API.
fn choose(selector: WgpuSelector) -> Result<(usize, Adapter)> {
    // GL is only initialised when it may be chosen: its EGL probing is slow
    // and noisy on headless machines.
    let all = adapters(match selector {
        WgpuSelector::Best => Backends::PRIMARY,
        WgpuSelector::Api(api) => backends_for(api),
        WgpuSelector::Index(_) => Backends::all(),
    });
    let names: Vec<String> = all
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let info = a.get_info();
            format!("{i}: {} ({})", info.name, api_of(info.backend))
        })
        .collect();
    let listing = if names.is_empty() {
        "no adapters at all (on Debian: apt-get install mesa-vulkan-drivers)".to_string()
    } else {
        format!("adapters here: {}", names.join("; "))
    };
    let unavailable = |why: String| WorkloadError::Unavailable {
        backend: Backend::Wgpu(selector).to_string(),
        reason: format!("{why}; {listing}"),
    };
    let pick = |wanted: &dyn Fn(&Adapter) -> bool| {
        all.iter()
            .enumerate()
            .filter(|(_, a)| wanted(a))
            .min_by_key(|(i, a)| (type_rank(a.get_info().device_type), *i))
            .map(|(i, a)| (i, a.clone()))
    };
    match selector {
        WgpuSelector::Best => {
            pick(&|a| a.get_info().backend != wgpu::Backend::Gl).ok_or_else(|| {
                unavailable(
                    "no Vulkan, Metal or DX12 adapter (GL is only used when asked for: wgpu:gl)"
                        .into(),
                )
            })
        }
        WgpuSelector::Api(api) => {
            let wanted = backends_for(api);
            pick(&|a| wanted.contains(Backends::from(a.get_info().backend)))
                .ok_or_else(|| unavailable(format!("no {} adapter", api.as_str())))
        }
        WgpuSelector::Index(n) => all
            .get(n)
            .cloned()
            .map(|a| (n, a))
            .ok_or_else(|| unavailable(format!("no adapter number {n}"))),
    }
}

/// Describes the adapter `selector` would use, without opening a device.
pub fn check_usable(selector: WgpuSelector) -> Result<DeviceRecord> {
    choose(selector).map(|(i, a)| record_of(&a, list_index(selector, i)))
}

/// The adapter's number in the full listing; unknown for `wgpu:gl`, whose
/// enumeration leaves the primary APIs out.
fn list_index(selector: WgpuSelector, i: usize) -> Option<usize> {
    (selector != WgpuSelector::Api(WgpuApi::Gl)).then_some(i)
}

impl WgpuContext {
    /// Opens a device on the chosen adapter with the adapter's own limits.
    pub fn open(selector: WgpuSelector) -> Result<WgpuContext> {
        Self::open_with(selector, &crate::PrepareOptions::default())
    }

    /// Opens a device with the case's caps: the `--wgpu-limits` tier (else
    /// the adapter's own limits) and the `--device-mem-cap` counter.
    pub fn open_with(selector: WgpuSelector, opts: &crate::PrepareOptions) -> Result<WgpuContext> {
        let (index, adapter) = choose(selector)?;
        let limits = tier_limits(opts.wgpu_limits.as_ref(), &adapter)?;
        // Timestamps time runs on the GPU itself; without them, runs are
        // timed by the wall clock after a wait (the record says which).
        let wanted = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16;
        let features = adapter.features() & wanted;
        let desc = wgpu::DeviceDescriptor {
            label: Some("capbench"),
            required_limits: limits.clone(),
            required_features: features,
            ..Default::default()
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&desc)).map_err(|e| WorkloadError::Wgpu {
                op: "request_device",
                message: e.to_string(),
            })?;
        let mut record = record_of(&adapter, list_index(selector, index));
        record.details.extend([
            format!(
                "wgpu_limits={}",
                opts.wgpu_limits.as_ref().map_or("adapter", |t| t.as_str())
            ),
            format!("max_buffer_size={}", limits.max_buffer_size),
            format!(
                "max_storage_buffer_binding_size={}",
                limits.max_storage_buffer_binding_size
            ),
            format!(
                "max_compute_workgroup_storage_size={}",
                limits.max_compute_workgroup_storage_size
            ),
            format!(
                "max_compute_invocations_per_workgroup={}",
                limits.max_compute_invocations_per_workgroup
            ),
            format!("features={:?}", adapter.features()),
            format!("features_used={features:?}"),
        ]);
        Ok(WgpuContext {
            device,
            queue,
            record,
            memory: opts.device_counter(),
            limits_from: opts
                .wgpu_limits
                .as_ref()
                .map_or("the adapter's".into(), |t| format!("tier {}", t.as_str())),
        })
    }

    /// Creates a buffer after reserving its bytes against the device cap:
    /// every device buffer of the engine goes through here (or
    /// `buffer_init`), so the cap and the peak see all of them.
    pub fn buffer(&self, desc: &wgpu::BufferDescriptor<'_>) -> Result<CountedBuffer> {
        self.memory
            .reserve(desc.label.unwrap_or("buffer"), desc.size)?;
        Ok(CountedBuffer {
            buffer: self.device.create_buffer(desc),
            bytes: desc.size,
            memory: self.memory.clone(),
        })
    }

    /// `buffer` with initial contents.
    pub fn buffer_init(
        &self,
        label: &str,
        contents: &[u8],
        usage: wgpu::BufferUsages,
    ) -> Result<CountedBuffer> {
        use wgpu::util::DeviceExt;
        let bytes = contents.len() as u64;
        self.memory.reserve(label, bytes)?;
        Ok(CountedBuffer {
            buffer: self
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents,
                    usage,
                }),
            bytes,
            memory: self.memory.clone(),
        })
    }

    /// Submits, waits and maps `buf` (MAP_READ) for reading.
    pub fn map_read<T: bytemuck::Pod>(&self, buf: &wgpu::Buffer, bytes: u64) -> Result<Vec<T>> {
        let slice = buf.slice(0..bytes);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|message| WorkloadError::Wgpu {
                op: "map readback",
                message,
            })?;
        let out = {
            let view = slice.get_mapped_range().map_err(|e| WorkloadError::Wgpu {
                op: "read mapped range",
                message: e.to_string(),
            })?;
            bytemuck::cast_slice(&view).to_vec()
        };
        buf.unmap();
        Ok(out)
    }

    /// Blocks until all submitted work is done.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| WorkloadError::Wgpu {
                op: "poll(wait)",
                message: e.to_string(),
            })
    }
}

pub fn probe() -> BackendStatus {
    let all = adapters(Backends::all());
    let devices: Vec<DeviceRecord> = all
        .iter()
        .enumerate()
        .map(|(i, a)| record_of(a, Some(i)))
        .collect();
    let best = check_usable(WgpuSelector::Best);
    BackendStatus {
        backend: "wgpu".into(),
        compiled_in: true,
        usable: best.is_ok(),
        note: match best {
            Ok(r) => format!(
                "`wgpu` uses adapter {}: {} ({})",
                r.index.unwrap_or(0),
                r.name,
                r.api
            ),
            Err(e) => e.to_string(),
        },
        devices,
    }
}

/// Opens the best adapter for the wgpu tests, or explains why there is none.
/// With CAPBENCH_REQUIRE_WGPU=1 (CI) a missing adapter is a failure.
#[cfg(test)]
pub(crate) fn test_backend() -> Option<Backend> {
    match crate::backend::wgpu::check_usable(WgpuSelector::Best) {
        Ok(_) => Some(Backend::Wgpu(WgpuSelector::Best)),
        Err(e) if std::env::var("CAPBENCH_REQUIRE_WGPU").as_deref() == Ok("1") => {
            panic!("CAPBENCH_REQUIRE_WGPU=1 but wgpu is not usable: {e}")
        }
        Err(e) => {
            eprintln!("skipping wgpu test: {e}");
            None
        }
    }
}
