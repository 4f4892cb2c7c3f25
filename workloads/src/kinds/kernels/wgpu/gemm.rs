//! f32 GEMM on wgpu: buffers, pipeline and bind group built once in prepare;
//! a timed iteration only encodes, submits and waits. The register-blocked
//! kernel is the top rung of the GEMM ladder (naive → tiled → blocked, named
//! `kernel/gemm-f32-N-<rung>`; no suffix is the top rung); the other two run
//! on the engine.

use crate::api::{IterReport, PreparedWorkload, WorkPerIter};
use crate::backend::wgpu::WgpuContext;
use crate::backend::wgpu::engine::{TIMESTAMP_BYTES, Timestamps};
use crate::backend::wgpu::ops::GemmKernel;
use crate::backend::{Backend, DeviceRecord, WgpuSelector};
use crate::error::{Result, WorkloadError};
use crate::kinds::kernels::gemm::GemmInputs;
use crate::spec::{GemmParams, GemmVariant, WorkloadSpec};
use crate::verify::Verification;

const TILE: u32 = 64;

struct WgpuGemm {
    ctx: WgpuContext,
    inputs: GemmInputs,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    c: crate::backend::wgpu::CountedBuffer,
    readback: crate::backend::wgpu::CountedBuffer,
    // Held for the bind group's lifetime and the device-memory count.
    _inputs_on_device: [crate::backend::wgpu::CountedBuffer; 3],
    /// GPU timestamps when the adapter offers TIMESTAMP_QUERY, with the
    /// counted buffers they resolve into.
    timestamps: Option<(Timestamps, [crate::backend::wgpu::CountedBuffer; 2])>,
    groups: (u32, u32),
    work: WorkPerIter,
}

fn wgpu_err(op: &'static str) -> impl FnOnce(String) -> WorkloadError {
    move |message| WorkloadError::Wgpu { op, message }
}

pub(crate) fn prepare_gemm(
    spec: &WorkloadSpec,
    p: &GemmParams,
    selector: WgpuSelector,
    opts: &crate::PrepareOptions,
) -> Result<Box<dyn PreparedWorkload>> {
    let backend = Backend::Wgpu(selector);
    let GemmParams {
        m, n, k, variant, ..
    } = *p;
    let lower = match variant {
        Some(GemmVariant::Naive) => Some(GemmKernel::Naive),
        Some(GemmVariant::Tiled) => Some(GemmKernel::Tiled),
        None | Some(GemmVariant::Blocked) => None,
    };
    if let Some(kind) = lower {
        return super::prepare_gemm_engine(spec, p, selector, opts, kind);
    }
    let ctx = WgpuContext::open_with(selector, opts)?;
    // Checked before the inputs are generated: a tier or adapter that cannot
    // bind an operand fails at once, as it would on that GPU.
    let c_bytes = (m * n * 4) as u64;
    let limit = ctx.device.limits().max_storage_buffer_binding_size;
    let largest = ((m * k).max(k * n) * 4) as u64;
    if largest.max(c_bytes) > limit {
        return Err(WorkloadError::Unsupported {
            workload: spec.name.clone(),
            backend: backend.to_string(),
            reason: format!(
                "an operand needs {} bytes; the device binds at most {limit} (wgpu limits: {})",
                largest.max(c_bytes),
                opts.wgpu_limits
                    .as_ref()
                    .map_or("the adapter's", |t| t.as_str())
            ),
        });
    }
    let inputs = GemmInputs::generate(spec.seed, p);
    let dev = &ctx.device;
    let (m, n, k) = (m as u32, n as u32, k as u32);

    let scope = dev.push_error_scope(wgpu::ErrorFilter::Validation);
    let storage = |label, data: &[f32]| {
        ctx.buffer_init(
            label,
            bytemuck::cast_slice(data),
            wgpu::BufferUsages::STORAGE,
        )
    };
    let a = storage("gemm.a", &inputs.a)?;
    let b = storage("gemm.b", &inputs.b)?;
    let c = ctx.buffer(&wgpu::BufferDescriptor {
        label: Some("gemm.c"),
        size: c_bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })?;
    let readback = ctx.buffer(&wgpu::BufferDescriptor {
        label: Some("gemm.readback"),
        size: c_bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })?;
    let dims = ctx.buffer_init(
        "gemm.dims",
        bytemuck::cast_slice(&[m, n, k, 0u32]),
        wgpu::BufferUsages::UNIFORM,
    )?;
    let module = dev.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("gemm_f32.wgsl"),
        source: wgpu::ShaderSource::Wgsl(
            include_str!("../../../backend/wgpu/gemm_f32.wgsl").into(),
        ),
    });
    let pipeline = dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("gemm_f32"),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let bind_group = dev.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("gemm.bind"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: a.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: b.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: c.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: dims.as_entire_binding(),
            },
        ],
    });
    let timestamps = if Timestamps::offered(&ctx) {
        let buf = |label, usage| {
            ctx.buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: TIMESTAMP_BYTES,
                usage,
                mapped_at_creation: false,
            })
        };
        let resolve = buf(
            "gemm.timestamps.resolve",
            wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        )?;
        let readback = buf(
            "gemm.timestamps.readback",
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        Timestamps::new(&ctx, (*resolve).clone(), (*readback).clone())
            .map(|t| (t, [resolve, readback]))
    } else {
        None
    };
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(wgpu_err("create gemm pipeline")(e.to_string()));
    }
    let groups = (n.div_ceil(TILE), m.div_ceil(TILE));
    Ok(Box::new(WgpuGemm {
        ctx,
        inputs,
        pipeline,
        bind_group,
        c,
        readback,
        _inputs_on_device: [a, b, dims],
        timestamps,
        groups,
        work: WorkPerIter::gflops(spec.flops_per_iter(), spec.bytes_per_iter()),
    }))
}

impl WgpuGemm {
    /// The GEMM pass; `timed` brackets it with GPU timestamps (when offered),
    /// `with_readback` copies C out for verification.
    fn encode(&self, with_readback: bool, timed: bool) -> wgpu::CommandBuffer {
        let ts = self.timestamps.as_ref().filter(|_| timed).map(|(t, _)| t);
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("gemm"),
            });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("gemm"),
                timestamp_writes: ts.map(|t| t.writes(true, true)),
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &self.bind_group, &[]);
            pass.dispatch_workgroups(self.groups.0, self.groups.1, 1);
        }
        if let Some(t) = ts {
            t.resolve(&mut enc);
        }
        if with_readback {
            enc.copy_buffer_to_buffer(&self.c, 0, &self.readback, 0, self.c.size());
        }
        enc.finish()
    }
}

impl PreparedWorkload for WgpuGemm {
    fn verify(&mut self) -> Result<Verification> {
        self.ctx.queue.submit([self.encode(true, false)]);
        let out: Vec<f32> = self.ctx.map_read(&self.readback, self.c.size())?;
        Ok(self.inputs.check(&out, &self.inputs.reference()))
    }

    fn run_iter(&mut self) -> Result<IterReport> {
        self.ctx.queue.submit([self.encode(false, true)]);
        let timed_s = match &self.timestamps {
            Some((t, _)) => Some(t.seconds(&self.ctx)?),
            None => {
                self.ctx.wait()?;
                None
            }
        };
        Ok(IterReport {
            timed_s,
            extras: vec![],
        })
    }

    fn work(&self) -> WorkPerIter {
        self.work
    }

    fn device(&self) -> DeviceRecord {
        let mut r = self.ctx.record.clone();
        r.details.push("gemm_kernel=blocked".into());
        r
    }

    fn timer(&self) -> &'static str {
        if self.timestamps.is_some() {
            "gpu_timestamp_query"
        } else {
            "wall_clock_after_poll_wait"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::wgpu::test_backend;

    #[test]
    fn device_cap_counts_every_buffer_and_tiers_refuse_large_bindings() {
        use crate::PrepareOptions;
        use crate::device::caps::{DeviceMemoryCounter, WgpuLimitsTier};
        let Some(backend) = test_backend() else {
            return;
        };
        let spec = WorkloadSpec::parse("kernel/gemm-f32-64").unwrap();
        // a, b, c and the readback are 16 KiB each, dims 16 bytes.
        let counter = DeviceMemoryCounter::new(None);
        let opts = PrepareOptions {
            device_memory: Some(counter.clone()),
            ..Default::default()
        };
        let w = crate::registry::prepare_with(&spec, &backend, &opts).unwrap();
        // Plus the two timestamp buffers where the GEMM is timed on the GPU.
        let ts = if w.timer() == "gpu_timestamp_query" {
            2 * TIMESTAMP_BYTES
        } else {
            0
        };
        assert_eq!(counter.in_use_bytes(), 4 * 64 * 64 * 4 + 16 + ts);
        drop(w);
        assert_eq!(counter.in_use_bytes(), 0);
        assert_eq!(counter.peak_bytes(), 4 * 64 * 64 * 4 + 16 + ts);

        let capped = PrepareOptions {
            device_mem_cap_bytes: Some(40_000),
            ..Default::default()
        };
        match crate::registry::prepare_with(&spec, &backend, &capped) {
            Err(WorkloadError::DeviceOutOfMemory {
                requested_bytes,
                in_use_bytes,
                cap_bytes,
                ..
            }) => {
                assert_eq!(
                    (requested_bytes, in_use_bytes, cap_bytes),
                    (16384, 32768, 40_000)
                );
            }
            Err(e) => panic!("expected a device OOM, got {e}"),
            Ok(_) => panic!("a 64 KiB GEMM ran under a 40 kB device cap"),
        }

        let tier = PrepareOptions {
            wgpu_limits: Some(WgpuLimitsTier::Custom {
                overrides: [("max_storage_buffer_binding_size".to_string(), 8192)].into(),
            }),
            ..Default::default()
        };
        match crate::registry::prepare_with(&spec, &backend, &tier) {
            Err(WorkloadError::Unsupported { reason, .. }) => {
                assert!(reason.contains("binds at most 8192"), "{reason}");
            }
            Err(e) => panic!("expected unsupported, got {e}"),
            Ok(_) => panic!("a 16 KiB binding passed an 8 KiB limit"),
        }
        let down = PrepareOptions {
            wgpu_limits: Some(WgpuLimitsTier::Downlevel),
            ..Default::default()
        };
        let w = crate::registry::prepare_with(&spec, &backend, &down).unwrap();
        let details = w.device().details.join(" ");
        assert!(details.contains("wgpu_limits=downlevel"), "{details}");
        assert!(
            details.contains(&format!(
                "max_storage_buffer_binding_size={}",
                wgpu::Limits::downlevel_defaults().max_storage_buffer_binding_size
            )),
            "{details}"
        );
    }

    #[test]
    fn pinned_api_never_falls_back() {
        if test_backend().is_none() {
            return;
        }
        // Asking for an API this machine lacks must fail, naming it.
        for api in [crate::WgpuApi::Dx12, crate::WgpuApi::Metal] {
            if let Err(e) = crate::backend::wgpu::check_usable(WgpuSelector::Api(api)) {
                assert!(e.to_string().contains(api.as_str()), "{e}");
            } else {
                let r = crate::backend::wgpu::check_usable(WgpuSelector::Api(api)).unwrap();
                assert_eq!(r.api, api.as_str());
            }
        }
    }
}
