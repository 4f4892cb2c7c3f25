//! f32 GEMM on wgpu: buffers, pipeline and bind group built once in prepare;
//! a timed iteration only encodes, submits and waits. The register-blocked
//! kernel is the default rung of the GEMM ladder (naive → tiled →
//! register-blocked, `CAPBENCH_WGPU_GEMM`); the other two run on the engine.

use super::WgpuContext;
use super::engine::upload;
use super::memory::DeviceMemory;
use super::ops::GemmKernel;
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
    mem: DeviceMemory,
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
    prepare_gemm_capped(backend, spec, None)
}

/// Which rung of the GEMM ladder `CAPBENCH_WGPU_GEMM` asks for.
fn ladder_rung(spec: &WorkloadSpec, backend: &Backend) -> Result<Option<GemmKernel>> {
    match std::env::var("CAPBENCH_WGPU_GEMM").as_deref() {
        Err(_) | Ok("") | Ok("blocked") => Ok(None),
        Ok("naive") => Ok(Some(GemmKernel::Naive)),
        Ok("tiled") => Ok(Some(GemmKernel::Tiled)),
        Ok(other) => Err(WorkloadError::Unsupported {
            workload: spec.name.clone(),
            backend: backend.to_string(),
            reason: format!(
                "CAPBENCH_WGPU_GEMM={other} is not a GEMM kernel; use naive, tiled or blocked"
            ),
        }),
    }
}

pub(crate) fn prepare_gemm_capped(
    backend: &Backend,
    spec: &WorkloadSpec,
    cap_bytes: Option<u64>,
) -> Result<Box<dyn PreparedWorkload>> {
    let Backend::Wgpu(selector) = *backend else {
        unreachable!("prepare_gemm called for {backend}")
    };
    if let Some(kind) = ladder_rung(spec, backend)? {
        return super::kernels::prepare_gemm_engine(spec, backend, cap_bytes, kind);
    }
    let ctx = WgpuContext::open(selector)?;
    let mut mem = DeviceMemory::new(&backend.to_string(), cap_bytes);
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
    let storage = wgpu::BufferUsages::STORAGE;
    let a = upload(
        &mut mem,
        &ctx,
        "gemm.a",
        bytemuck::cast_slice(&inputs.a),
        storage,
    )?;
    let b = upload(
        &mut mem,
        &ctx,
        "gemm.b",
        bytemuck::cast_slice(&inputs.b),
        storage,
    )?;
    let c = mem.alloc(
        dev,
        "gemm.c",
        c_bytes,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    )?;
    let readback = mem.alloc(
        dev,
        "gemm.readback",
        c_bytes,
        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
    )?;
    let dims_data = [m, n, k, 0u32];
    let dims = upload(
        &mut mem,
        &ctx,
        "gemm.dims",
        bytemuck::cast_slice(&dims_data),
        wgpu::BufferUsages::UNIFORM,
    )?;
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
        mem,
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
        let mut r = self.ctx.record.clone();
        r.details.push("gemm_kernel=blocked".into());
        r.details.extend(self.mem.details());
        r
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
