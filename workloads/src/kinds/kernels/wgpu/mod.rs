//! `kernel/stream` and `kernel/attention` on the wgpu engine: the device's
//! own memory bandwidth (STREAM triad) and the models' causal attention
//! kernel, each verified against the host f64 answer.

pub mod gemm;

use crate::api::{IterReport, PreparedWorkload, WorkPerIter};
use crate::backend::wgpu::WgpuContext;
use crate::backend::wgpu::engine::{Builder, Engine, F, PlanId};
use crate::backend::wgpu::ops::{Attn, Gemm, GemmKernel, Mat};
use crate::backend::{DeviceRecord, WgpuSelector};
use crate::cost::{ATTENTION_HEAD_DIM as HEAD_DIM, ATTENTION_HEADS as HEADS};
use crate::error::Result;
use crate::kinds::kernels::attention::{host_inputs, reference};
use crate::kinds::kernels::gemm::GemmInputs;
use crate::spec::{GemmParams, WorkloadSpec};
use crate::verify::{Verification, compare};

const SCALAR: f32 = 3.0;

/// One plan on the engine, an output view and its host f64 reference.
struct Single {
    engine: Engine,
    plan: PlanId,
    out: F,
    reference: Vec<f64>,
    tolerance: f64,
    what: &'static str,
    work: WorkPerIter,
    /// Extra `name=value` lines for the device record.
    details: Vec<String>,
}

impl PreparedWorkload for Single {
    fn verify(&mut self) -> Result<Verification> {
        self.engine.run(&[self.plan])?;
        let out = self.engine.read_f(self.out)?;
        Ok(compare(&out, &self.reference, self.tolerance, self.what))
    }

    fn run_iter(&mut self) -> Result<IterReport> {
        let gpu_s = self.engine.run(&[self.plan])?;
        Ok(IterReport {
            timed_s: gpu_s,
            extras: vec![],
        })
    }

    fn work(&self) -> WorkPerIter {
        self.work
    }

    fn device(&self) -> DeviceRecord {
        let mut r = self.engine.ctx.record.clone();
        r.details.extend(self.details.iter().cloned());
        r.details.extend(self.engine.mem.details());
        r
    }

    fn timer(&self) -> &'static str {
        self.engine.timer()
    }
}

/// STREAM triad a = b + s·c over the device's memory.
pub fn prepare_stream(
    spec: &WorkloadSpec,
    elems: usize,
    selector: WgpuSelector,
    opts: &crate::PrepareOptions,
) -> Result<Box<dyn PreparedWorkload>> {
    let ctx = WgpuContext::open_with(selector, opts)?;
    let mut bld = Builder::new();
    let (a, b, c) = (bld.f(elems), bld.f(elems), bld.f(elems));
    let plan = bld.begin();
    bld.triad(a, b, c, SCALAR);
    let engine = Engine::build(ctx, bld, opts.device_mem_cap_bytes)?;
    // Distinct, exactly representable values so the check is exact (as the
    // CPU triad's).
    let hb: Vec<f32> = (0..elems).map(|i| (i % 1024) as f32).collect();
    let hc: Vec<f32> = (0..elems).map(|i| (i % 7) as f32).collect();
    engine.write_f(b, &hb);
    engine.write_f(c, &hc);
    let reference = hb
        .iter()
        .zip(&hc)
        .map(|(b, c)| *b as f64 + SCALAR as f64 * *c as f64)
        .collect();
    Ok(Box::new(Single {
        engine,
        plan,
        out: a,
        reference,
        tolerance: 0.0,
        what: "host f64 triad",
        details: vec![],
        work: WorkPerIter::gbytes(spec.flops_per_iter(), spec.bytes_per_iter()),
    }))
}

/// Causal attention, 8 heads × 64 dims over T positions, with the engine's
/// attention kernel (the one the models use).
pub fn prepare_attention(
    spec: &WorkloadSpec,
    t: usize,
    selector: WgpuSelector,
    opts: &crate::PrepareOptions,
) -> Result<Box<dyn PreparedWorkload>> {
    let ctx = WgpuContext::open_with(selector, opts)?;
    let n = HEADS * t * HEAD_DIM;
    let mut bld = Builder::new();
    let (q, k, v, o) = (bld.f(n), bld.f(n), bld.f(n), bld.f(n));
    let plan = bld.begin();
    // (H, T, hd) layout: head stride T·hd, row stride hd.
    let view = |x: F| (x.off, 0, HEAD_DIM, t * HEAD_DIM);
    bld.attention(&Attn {
        b: 1,
        h: HEADS,
        t,
        hkv: HEADS,
        dk: HEAD_DIM,
        dv: HEAD_DIM,
        pos0: 0,
        scale: 1.0 / (HEAD_DIM as f32).sqrt(),
        q: view(q),
        k: view(k),
        v: view(v),
        o: view(o),
        lse: None,
        grads: None,
    });
    let engine = Engine::build(ctx, bld, opts.device_mem_cap_bytes)?;
    let host = host_inputs(spec.seed, t);
    for (view, data) in [q, k, v].into_iter().zip(&host) {
        engine.write_f(view, data);
    }
    Ok(Box::new(Single {
        engine,
        plan,
        out: o,
        reference: reference(&host, t),
        tolerance: 1e-4,
        what: "host f64 causal attention",
        details: vec![],
        work: WorkPerIter::gflops(spec.flops_per_iter(), spec.bytes_per_iter()),
    }))
}

/// `kernel/gemm` on the engine's naive or tiled kernel (the lower rungs
/// of the GEMM ladder).
pub fn prepare_gemm_engine(
    spec: &WorkloadSpec,
    p: &GemmParams,
    selector: WgpuSelector,
    opts: &crate::PrepareOptions,
    kind: GemmKernel,
) -> Result<Box<dyn PreparedWorkload>> {
    let inputs = GemmInputs::generate(spec.seed, p);
    let (m, n, k) = (inputs.m, inputs.n, inputs.k);
    let ctx = WgpuContext::open_with(selector, opts)?;
    let mut bld = Builder::new();
    let (a, b, c) = (bld.f(m * k), bld.f(k * n), bld.f(m * n));
    let plan = bld.begin();
    bld.gemm_with(
        kind,
        Mat::rows(a, k),
        Mat::rows(b, n),
        Mat::rows(c, n),
        Gemm::new(m, n, k),
    );
    let engine = Engine::build(ctx, bld, opts.device_mem_cap_bytes)?;
    engine.write_f(a, &inputs.a);
    engine.write_f(b, &inputs.b);
    Ok(Box::new(Single {
        engine,
        plan,
        out: c,
        reference: inputs.reference(),
        tolerance: inputs.dtype.gemm_tolerance(),
        what: "host f64 GEMM on the same dtype-rounded inputs",
        work: WorkPerIter::gflops(spec.flops_per_iter(), spec.bytes_per_iter()),
        details: vec![format!(
            "gemm_kernel={}",
            if kind == GemmKernel::Naive {
                "naive"
            } else {
                "tiled"
            }
        )],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::wgpu::test_backend;

    /// Each rung of the GEMM ladder is named by the workload, verifies,
    /// and says which kernel ran and how it was timed.
    #[test]
    fn every_gemm_rung_verifies() {
        let Some(backend) = test_backend() else {
            return;
        };
        for (suffix, kernel) in [
            ("-naive", "naive"),
            ("-tiled", "tiled"),
            ("-blocked", "blocked"),
            ("", "blocked"),
        ] {
            let name = format!("kernel/gemm-f32-70x33x19{suffix}");
            let spec = WorkloadSpec::parse(&name).unwrap();
            crate::registry::supports(&spec, &backend).unwrap();
            let mut w = crate::registry::prepare(&spec, &backend).unwrap();
            let v = w.verify().unwrap();
            assert!(v.passed, "{name}: {v:?}");
            let details = w.device().details.join(" ");
            assert!(
                details.contains(&format!("gemm_kernel={kernel}")),
                "{name}: {details}"
            );
            let r = w.run_iter().unwrap();
            // GPU-timed exactly when the record says so.
            assert_eq!(
                r.timed_s.is_some(),
                w.timer() == "gpu_timestamp_query",
                "{name}: {}",
                w.timer()
            );
        }
        // The rungs are wgpu kernels: on a candle backend the name is refused.
        let spec = WorkloadSpec::parse("kernel/gemm-f32-64-tiled").unwrap();
        let e = crate::registry::supports(&spec, &crate::Backend::Cpu).unwrap_err();
        assert!(e.contains("wgpu GEMM ladder"), "{e}");
    }
}
