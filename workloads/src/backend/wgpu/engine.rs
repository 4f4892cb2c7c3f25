//! The wgpu engine: every tensor lives in one f32 arena and one u32 arena,
//! every kernel is compiled once, and recorded plans (lists of dispatches)
//! get their bind groups in prepare — a timed run only writes inputs,
//! encodes and submits.

use super::WgpuContext;
use super::memory::DeviceMemory;
use crate::error::{Result, WorkloadError};

/// "No such offset" in a kernel's parameters (the WGSL `NONE`).
pub const NONE: u32 = u32::MAX;
/// Bytes of one dispatch's uniform parameter slot (the WebGPU minimum
/// uniform offset alignment).
const SLOT_BYTES: u64 = 256;
/// u32 parameters one slot holds.
pub const SLOT_WORDS: usize = 64;

/// A view of the f32 arena, in elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct F {
    pub off: u32,
    pub len: u32,
}

impl F {
    /// `len` elements from `off` within this view.
    pub fn at(self, off: usize, len: usize) -> F {
        assert!(off + len <= self.len as usize, "view out of range");
        F {
            off: self.off + off as u32,
            len: len as u32,
        }
    }
}

/// A view of the u32 arena (token ids, routing tables), in elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ix {
    pub off: u32,
    pub len: u32,
}

impl Ix {
    pub fn at(self, off: usize, len: usize) -> Ix {
        assert!(off + len <= self.len as usize, "view out of range");
        Ix {
            off: self.off + off as u32,
            len: len as u32,
        }
    }
}

/// The WGSL entry points of `ops.wgsl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    Matmul,
    MatmulNaive,
    Matvec,
    Qmatvec,
    Copy,
    EmbedFwd,
    EmbedBwd,
    RmsnormFwd,
    RmsnormBwdX,
    RmsnormBwdW,
    Rope,
    AttnFwd,
    AttnBwdDq,
    AttnBwdDkv,
    SwigluFwd,
    SwigluBwd,
    SoftmaxFwd,
    SoftmaxBwd,
    Xent,
    Argmax,
    MoeTopk,
    MoeCompact,
    MoeGather,
    MoeCombine,
    MoeDprob,
    Adamw,
    Triad,
}

impl Kernel {
    const ALL: [Kernel; 27] = [
        Kernel::Matmul,
        Kernel::MatmulNaive,
        Kernel::Matvec,
        Kernel::Qmatvec,
        Kernel::Copy,
        Kernel::EmbedFwd,
        Kernel::EmbedBwd,
        Kernel::RmsnormFwd,
        Kernel::RmsnormBwdX,
        Kernel::RmsnormBwdW,
        Kernel::Rope,
        Kernel::AttnFwd,
        Kernel::AttnBwdDq,
        Kernel::AttnBwdDkv,
        Kernel::SwigluFwd,
        Kernel::SwigluBwd,
        Kernel::SoftmaxFwd,
        Kernel::SoftmaxBwd,
        Kernel::Xent,
        Kernel::Argmax,
        Kernel::MoeTopk,
        Kernel::MoeCompact,
        Kernel::MoeGather,
        Kernel::MoeCombine,
        Kernel::MoeDprob,
        Kernel::Adamw,
        Kernel::Triad,
    ];

    fn entry(self) -> &'static str {
        match self {
            Kernel::Matmul => "matmul",
            Kernel::MatmulNaive => "matmul_naive",
            Kernel::Matvec => "matvec",
            Kernel::Qmatvec => "qmatvec",
            Kernel::Copy => "copy",
            Kernel::EmbedFwd => "embed_fwd",
            Kernel::EmbedBwd => "embed_bwd",
            Kernel::RmsnormFwd => "rmsnorm_fwd",
            Kernel::RmsnormBwdX => "rmsnorm_bwd_x",
            Kernel::RmsnormBwdW => "rmsnorm_bwd_w",
            Kernel::Rope => "rope",
            Kernel::AttnFwd => "attn_fwd",
            Kernel::AttnBwdDq => "attn_bwd_dq",
            Kernel::AttnBwdDkv => "attn_bwd_dkv",
            Kernel::SwigluFwd => "swiglu_fwd",
            Kernel::SwigluBwd => "swiglu_bwd",
            Kernel::SoftmaxFwd => "softmax_fwd",
            Kernel::SoftmaxBwd => "softmax_bwd",
            Kernel::Xent => "xent",
            Kernel::Argmax => "argmax",
            Kernel::MoeTopk => "moe_topk",
            Kernel::MoeCompact => "moe_compact",
            Kernel::MoeGather => "moe_gather",
            Kernel::MoeCombine => "moe_combine",
            Kernel::MoeDprob => "moe_dprob",
            Kernel::Adamw => "adamw",
            Kernel::Triad => "triad",
        }
    }

    fn index(self) -> usize {
        Kernel::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// One recorded dispatch.
#[derive(Debug, Clone)]
pub struct Dispatch {
    pub kernel: Kernel,
    pub params: Vec<u32>,
    pub groups: [u32; 3],
}

/// Which plan (a list of dispatches run as one compute pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanId(pub usize);

/// Where a recorded dispatch is, to rewrite its parameters later (AdamW's
/// bias corrections change every step).
#[derive(Debug, Clone, Copy)]
pub struct DispatchId {
    plan: usize,
    index: usize,
}

/// Records arena sizes and plans; `Engine::build` turns it into buffers,
/// pipelines and bind groups.
#[derive(Debug, Default)]
pub struct Builder {
    f_len: u64,
    u_len: u64,
    plans: Vec<Vec<Dispatch>>,
}

/// Views start on 64-element (256-byte) boundaries.
const ALIGN: u64 = 64;

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }

    pub fn f(&mut self, len: usize) -> F {
        let off = self.f_len;
        self.f_len += (len as u64).div_ceil(ALIGN).max(1) * ALIGN;
        F {
            off: off as u32,
            len: len as u32,
        }
    }

    pub fn u(&mut self, len: usize) -> Ix {
        let off = self.u_len;
        self.u_len += (len as u64).div_ceil(ALIGN).max(1) * ALIGN;
        Ix {
            off: off as u32,
            len: len as u32,
        }
    }

    /// Starts a new plan; later dispatches go into it.
    pub fn begin(&mut self) -> PlanId {
        self.plans.push(vec![]);
        PlanId(self.plans.len() - 1)
    }

    pub fn push(&mut self, kernel: Kernel, params: Vec<u32>, groups: [u32; 3]) -> DispatchId {
        debug_assert!(params.len() <= SLOT_WORDS);
        if self.plans.is_empty() {
            self.begin();
        }
        let plan = self.plans.len() - 1;
        self.plans[plan].push(Dispatch {
            kernel,
            params,
            groups,
        });
        DispatchId {
            plan,
            index: self.plans[plan].len() - 1,
        }
    }

    /// Bytes the arenas will take on the device.
    pub fn arena_bytes(&self) -> u64 {
        (self.f_len + self.u_len) * 4
    }
}

/// A dispatch ready to encode.
struct Compiled {
    kernel: usize,
    bind: wgpu::BindGroup,
    groups: [u32; 3],
}

/// GPU timestamps around a run (TIMESTAMP_QUERY): ticks × period. The
/// engine and the register-blocked GEMM both time with it.
pub struct Timestamps {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    period_ns: f32,
}

/// Bytes of the resolve and readback buffers `Timestamps` needs (two u64).
pub const TIMESTAMP_BYTES: u64 = 16;

impl Timestamps {
    /// `None` when the device was opened without TIMESTAMP_QUERY. The two
    /// buffers (`TIMESTAMP_BYTES` each, QUERY_RESOLVE | COPY_SRC and
    /// MAP_READ | COPY_DST) come from the caller's counted allocator.
    pub fn new(
        ctx: &WgpuContext,
        resolve: wgpu::Buffer,
        readback: wgpu::Buffer,
    ) -> Option<Timestamps> {
        if !ctx
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
            return None;
        }
        let set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: 2,
        });
        Some(Timestamps {
            set,
            resolve,
            readback,
            period_ns: ctx.queue.get_timestamp_period(),
        })
    }

    /// Whether `ctx`'s device can time with timestamps.
    pub fn offered(ctx: &WgpuContext) -> bool {
        ctx.device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// The writes of a pass: the start of the first, the end of the last.
    pub fn writes(&self, first: bool, last: bool) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.set,
            beginning_of_pass_write_index: first.then_some(0),
            end_of_pass_write_index: last.then_some(1),
        }
    }

    /// Resolves the two timestamps into the readback buffer.
    pub fn resolve(&self, enc: &mut wgpu::CommandEncoder) {
        enc.resolve_query_set(&self.set, 0..2, &self.resolve, 0);
        enc.copy_buffer_to_buffer(&self.resolve, 0, &self.readback, 0, TIMESTAMP_BYTES);
    }

    /// Waits for the submitted work and returns its GPU seconds.
    pub fn seconds(&self, ctx: &WgpuContext) -> Result<f64> {
        let ticks: Vec<u64> = ctx.map_read(&self.readback, TIMESTAMP_BYTES)?;
        let dt = ticks[1].wrapping_sub(ticks[0]);
        Ok(dt as f64 * self.period_ns as f64 * 1e-9)
    }
}

pub struct Engine {
    pub ctx: WgpuContext,
    data: wgpu::Buffer,
    idata: wgpu::Buffer,
    params: wgpu::Buffer,
    pipelines: Vec<wgpu::ComputePipeline>,
    plans: Vec<Vec<Compiled>>,
    /// First slot of each plan in `params`.
    plan_slot0: Vec<u64>,
    timestamps: Option<Timestamps>,
    pub mem: DeviceMemory,
}

fn wgpu_err(op: &'static str) -> impl FnOnce(String) -> WorkloadError {
    move |message| WorkloadError::Wgpu { op, message }
}

impl Engine {
    /// Allocates the arenas (through the counted allocator, so a cap
    /// refuses them), compiles the kernels and builds every bind group.
    pub fn build(ctx: WgpuContext, b: Builder, cap_bytes: Option<u64>) -> Result<Engine> {
        let dev = ctx.device.clone();
        let limits = dev.limits();
        let f_bytes = b.f_len.max(ALIGN) * 4;
        let u_bytes = b.u_len.max(ALIGN) * 4;
        let biggest = f_bytes.max(u_bytes);
        if biggest > limits.max_storage_buffer_binding_size || biggest > limits.max_buffer_size {
            return Err(WorkloadError::Unsupported {
                workload: "this workload".into(),
                backend: ctx.record.backend.clone(),
                reason: format!(
                    "the engine binds all tensors as one buffer of {biggest} bytes; the device binds at most {} (max_storage_buffer_binding_size) in a buffer of at most {} (wgpu limits: {})",
                    limits.max_storage_buffer_binding_size, limits.max_buffer_size, ctx.limits_from
                ),
            });
        }
        let mut mem = DeviceMemory::new(&ctx.record.backend, cap_bytes);
        let storage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC;
        let data = mem.alloc(&dev, "engine.f32_arena", f_bytes, storage)?;
        let idata = mem.alloc(&dev, "engine.u32_arena", u_bytes, storage)?;
        let n_slots: usize = b.plans.iter().map(|p| p.len()).sum::<usize>().max(1);
        let params = mem.alloc(
            &dev,
            "engine.params",
            n_slots as u64 * SLOT_BYTES,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        )?;
        let mut bytes = vec![0u32; n_slots * SLOT_WORDS];
        let mut slot = 0usize;
        let mut plan_slot0 = vec![];
        for plan in &b.plans {
            plan_slot0.push(slot as u64);
            for d in plan {
                bytes[slot * SLOT_WORDS..slot * SLOT_WORDS + d.params.len()]
                    .copy_from_slice(&d.params);
                slot += 1;
            }
        }
        ctx.queue
            .write_buffer(&params, 0, bytemuck::cast_slice(&bytes));

        let scope = dev.push_error_scope(wgpu::ErrorFilter::Validation);
        let layout = dev.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("engine.layout"),
            entries: &[
                storage_entry(0),
                storage_entry(1),
                wgpu::BindGroupLayoutEntry {
                    binding: 2,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: wgpu::BufferSize::new(SLOT_BYTES),
                    },
                    count: None,
                },
            ],
        });
        let pipeline_layout = dev.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("engine.pipeline_layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let module = dev.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("ops.wgsl"),
            source: wgpu::ShaderSource::Wgsl(include_str!("ops.wgsl").into()),
        });
        // Only the kernels the plans use are compiled (each is a pipeline).
        let used: Vec<bool> = Kernel::ALL
            .iter()
            .map(|k| b.plans.iter().flatten().any(|d| d.kernel == *k))
            .collect();
        let pipelines: Vec<wgpu::ComputePipeline> = Kernel::ALL
            .iter()
            .zip(&used)
            .map(|(k, used)| {
                // Unused kernels get the cheapest pipeline as a placeholder.
                let entry = if *used { k.entry() } else { "triad" };
                dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                })
            })
            .collect();
        let mut plans = vec![];
        let mut slot = 0u64;
        for plan in &b.plans {
            let mut compiled = vec![];
            for d in plan {
                let bind = dev.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &layout,
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: data.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: idata.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 2,
                            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &params,
                                offset: slot * SLOT_BYTES,
                                size: wgpu::BufferSize::new(SLOT_BYTES),
                            }),
                        },
                    ],
                });
                compiled.push(Compiled {
                    kernel: d.kernel.index(),
                    bind,
                    groups: d.groups,
                });
                slot += 1;
            }
            plans.push(compiled);
        }
        let timestamps = if Timestamps::offered(&ctx) {
            let resolve = mem.alloc(
                &dev,
                "engine.timestamps.resolve",
                TIMESTAMP_BYTES,
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            )?;
            let readback = mem.alloc(
                &dev,
                "engine.timestamps.readback",
                TIMESTAMP_BYTES,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            )?;
            Timestamps::new(&ctx, resolve, readback)
        } else {
            None
        };
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(wgpu_err("build engine pipelines")(e.to_string()));
        }
        Ok(Engine {
            ctx,
            data,
            idata,
            params,
            pipelines,
            plans,
            plan_slot0,
            timestamps,
            mem,
        })
    }

    /// The adapter's record plus this engine's device-memory figures: what
    /// every engine workload reports as its device.
    pub fn device_record(&self) -> crate::backend::DeviceRecord {
        let mut r = self.ctx.record.clone();
        r.details.extend(self.mem.details());
        r
    }

    /// How runs are timed: GPU timestamps when the adapter offers them.
    pub fn timer(&self) -> &'static str {
        if self.timestamps.is_some() {
            "gpu_timestamp_query"
        } else {
            "wall_clock_after_poll_wait"
        }
    }

    /// Rewrites a recorded dispatch's parameters (before the next submit).
    pub fn set_params(&self, d: DispatchId, params: &[u32]) {
        let slot = self.plan_slot0[d.plan] + d.index as u64;
        self.ctx.queue.write_buffer(
            &self.params,
            slot * SLOT_BYTES,
            bytemuck::cast_slice(params),
        );
    }

    pub fn write_f(&self, t: F, data: &[f32]) {
        assert_eq!(data.len(), t.len as usize, "write_f length");
        self.ctx
            .queue
            .write_buffer(&self.data, t.off as u64 * 4, bytemuck::cast_slice(data));
    }

    pub fn write_u(&self, t: Ix, data: &[u32]) {
        assert_eq!(data.len(), t.len as usize, "write_u length");
        self.ctx
            .queue
            .write_buffer(&self.idata, t.off as u64 * 4, bytemuck::cast_slice(data));
    }

    /// Runs the plans in order, one compute pass each, as one submission,
    /// and waits. Returns the GPU seconds between the first pass's start
    /// and the last one's end when timestamps are offered.
    pub fn run(&self, plans: &[PlanId]) -> Result<Option<f64>> {
        let dev = &self.ctx.device;
        let scope = dev.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("engine.run"),
        });
        let last = plans.len().saturating_sub(1);
        for (i, plan) in plans.iter().enumerate() {
            let timestamp_writes = self
                .timestamps
                .as_ref()
                .map(|t| t.writes(i == 0, i == last));
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes,
            });
            for c in &self.plans[plan.0] {
                pass.set_pipeline(&self.pipelines[c.kernel]);
                pass.set_bind_group(0, &c.bind, &[]);
                pass.dispatch_workgroups(c.groups[0], c.groups[1], c.groups[2]);
            }
        }
        if let Some(t) = &self.timestamps
            && !plans.is_empty()
        {
            t.resolve(&mut enc);
        }
        self.ctx.queue.submit([enc.finish()]);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(wgpu_err("encode engine run")(e.to_string()));
        }
        match &self.timestamps {
            Some(t) if !plans.is_empty() => t.seconds(&self.ctx).map(Some),
            _ => {
                self.ctx.wait()?;
                Ok(None)
            }
        }
    }

    fn read_bytes<T: bytemuck::Pod>(
        &mut self,
        src: &wgpu::Buffer,
        off: u64,
        n: u64,
    ) -> Result<Vec<T>> {
        let bytes = (n * 4).max(4);
        let dev = self.ctx.device.clone();
        // Counted like every buffer; released once read.
        let staging = self.mem.alloc(
            &dev,
            "engine.readback",
            bytes,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        )?;
        let mut enc = dev.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, off * 4, &staging, 0, n * 4);
        self.ctx.queue.submit([enc.finish()]);
        let out = self.ctx.map_read(&staging, bytes);
        self.mem.release(bytes);
        out.map(|mut v: Vec<T>| {
            v.truncate(n as usize);
            v
        })
    }

    /// Copies a view back to the host (verification, losses).
    pub fn read_f(&mut self, t: F) -> Result<Vec<f32>> {
        let data = self.data.clone();
        self.read_bytes(&data, t.off as u64, t.len as u64)
    }

    pub fn read_u(&mut self, t: Ix) -> Result<Vec<u32>> {
        let idata = self.idata.clone();
        self.read_bytes(&idata, t.off as u64, t.len as u64)
    }
}

fn storage_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only: false },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// Initialised buffers outside the engine (the GEMM ladder) go through the
/// same counted allocator.
pub fn upload(
    mem: &mut DeviceMemory,
    ctx: &WgpuContext,
    label: &'static str,
    data: &[u8],
    usage: wgpu::BufferUsages,
) -> Result<wgpu::Buffer> {
    let buf = mem.alloc(
        &ctx.device,
        label,
        data.len() as u64,
        usage | wgpu::BufferUsages::COPY_DST,
    )?;
    ctx.queue.write_buffer(&buf, 0, data);
    Ok(buf)
}
