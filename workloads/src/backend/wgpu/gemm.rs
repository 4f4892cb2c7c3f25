//! f32 GEMM on wgpu: buffers, pipeline and bind group built once in prepare;
//! a timed iteration only encodes, submits and waits.

use wgpu::util::DeviceExt;

use super::WgpuContext;
#[cfg(test)]
use crate::backend::WgpuSelector;
use crate::backend::{Backend, DeviceRecord};
use crate::error::{Result, WorkloadError};
use crate::kernels::gemm::GemmInputs;
use crate::spec::WorkloadSpec;
use crate::verify::Verification;
use crate::workload::{IterReport, PreparedWorkload, WorkPerIter};

const TILE: u32 = 64;

struct WgpuGemm {
    ctx: WgpuContext,
    inputs: GemmInputs,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    c: wgpu::Buffer,
    readback: wgpu::Buffer,
    groups: (u32, u32),
    work: WorkPerIter,
}

fn wgpu_err(op: &'static str) -> impl FnOnce(String) -> WorkloadError {
    move |message| WorkloadError::Wgpu { op, message }
}

pub(crate) fn prepare_gemm(
    backend: &Backend,
    spec: &WorkloadSpec,
) -> Result<Box<dyn PreparedWorkload>> {
    let Backend::Wgpu(selector) = *backend else {
        unreachable!("prepare_gemm called for {backend}")
    };
    let ctx = WgpuContext::open(selector)?;
    let inputs = GemmInputs::generate(spec);
    let dev = &ctx.device;
    let (m, n, k) = (inputs.m as u32, inputs.n as u32, inputs.k as u32);
    let c_bytes = (inputs.m * inputs.n * 4) as u64;
    let limit = dev.limits().max_storage_buffer_binding_size;
    let largest = (inputs.a.len().max(inputs.b.len()) * 4) as u64;
    if largest.max(c_bytes) > limit {
        return Err(WorkloadError::Unsupported {
            workload: spec.name.clone(),
            backend: backend.to_string(),
            reason: format!(
                "an operand needs {} bytes; the adapter binds at most {limit}",
                largest.max(c_bytes)
            ),
        });
    }

    let scope = dev.push_error_scope(wgpu::ErrorFilter::Validation);
    let storage = |label, data: &[f32]| {
        dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::cast_slice(data),
            usage: wgpu::BufferUsages::STORAGE,
        })
    };
    let a = storage("gemm.a", &inputs.a);
    let b = storage("gemm.b", &inputs.b);
    let c = dev.create_buffer(&wgpu::BufferDescriptor {
        label: Some("gemm.c"),
        size: c_bytes,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let readback = dev.create_buffer(&wgpu::BufferDescriptor {
        label: Some("gemm.readback"),
        size: c_bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let dims = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("gemm.dims"),
        contents: bytemuck::cast_slice(&[m, n, k, 0u32]),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let module = dev.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("gemm_f32.wgsl"),
        source: wgpu::ShaderSource::Wgsl(include_str!("gemm_f32.wgsl").into()),
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
        groups,
        work: WorkPerIter::gflops(spec.flops_per_iter(), spec.bytes_per_iter()),
    }))
}

impl WgpuGemm {
    fn encode(&self, with_readback: bool) -> wgpu::CommandBuffer {
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("gemm"),
            });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("gemm"),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &self.bind_group, &[]);
            pass.dispatch_workgroups(self.groups.0, self.groups.1, 1);
        }
        if with_readback {
            enc.copy_buffer_to_buffer(&self.c, 0, &self.readback, 0, self.c.size());
        }
        enc.finish()
    }
}

impl PreparedWorkload for WgpuGemm {
    fn verify(&mut self) -> Result<Verification> {
        self.ctx.queue.submit([self.encode(true)]);
        let slice = self.readback.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.ctx.wait()?;
        rx.recv()
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(wgpu_err("map readback"))?;
        let out: Vec<f32> = {
            let view = slice
                .get_mapped_range()
                .map_err(|e| wgpu_err("read mapped range")(e.to_string()))?;
            bytemuck::cast_slice(&view).to_vec()
        };
        self.readback.unmap();
        Ok(self.inputs.check(&out, &self.inputs.reference()))
    }

    fn run_iter(&mut self) -> Result<IterReport> {
        self.ctx.queue.submit([self.encode(false)]);
        self.ctx.wait()?;
        Ok(IterReport::default())
    }

    fn work(&self) -> WorkPerIter {
        self.work
    }

    fn device(&self) -> DeviceRecord {
        self.ctx.record.clone()
    }

    fn timer(&self) -> &'static str {
        "wall_clock_after_poll_wait"
    }
}

/// Opens the best adapter for the wgpu tests, or explains why there is none.
/// With CAPBENCH_REQUIRE_WGPU=1 (CI) a missing adapter is a failure.
#[cfg(test)]
pub(crate) fn test_backend() -> Option<Backend> {
    match super::check_usable(WgpuSelector::Best) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wgpu_gemm_matches_reference_on_ragged_shapes() {
        let Some(backend) = test_backend() else {
            return;
        };
        for name in [
            "kernel/gemm-f32-70x33x19",
            "kernel/gemm-f32-64",
            "kernel/gemm-f32-1x130x5",
        ] {
            let spec = WorkloadSpec::parse(name).unwrap();
            let mut w = prepare_gemm(&backend, &spec).unwrap();
            let v = w.verify().unwrap();
            assert!(v.passed, "{name}: {v:?}");
            w.run_iter().unwrap();
            assert_eq!(w.device().backend, "wgpu");
        }
    }

    #[test]
    fn pinned_api_never_falls_back() {
        if test_backend().is_none() {
            return;
        }
        // Asking for an API this machine lacks must fail, naming it.
        for api in [crate::WgpuApi::Dx12, crate::WgpuApi::Metal] {
            if let Err(e) = super::super::check_usable(WgpuSelector::Api(api)) {
                assert!(e.to_string().contains(api.as_str()), "{e}");
            } else {
                let r = super::super::check_usable(WgpuSelector::Api(api)).unwrap();
                assert_eq!(r.api, api.as_str());
            }
        }
    }
}
