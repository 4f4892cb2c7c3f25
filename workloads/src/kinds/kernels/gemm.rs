//! `kernel/gemm`: seeded inputs, the host f64 reference, and the candle
//! runner (cpu, cuda, metal). The wgpu runner lives with the WGSL kernels.

use candle_core::{DType as CDType, Device, Tensor};
use half::{bf16, f16};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::api::{IterReport, PreparedWorkload, WorkPerIter};
use crate::backend::{Backend, candle as cb};
use crate::error::{Result, WorkloadError};
use crate::spec::{DType, GemmParams, WorkloadSpec};
use crate::verify::{Verification, compare};

/// Host-side operands, already rounded to the workload's dtype so the
/// reference sees exactly the values the device multiplies.
pub struct GemmInputs {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub dtype: DType,
    /// (m, k) row-major
    pub a: Vec<f32>,
    /// (k, n) row-major
    pub b: Vec<f32>,
}

fn round_to(dtype: DType, x: f32) -> f32 {
    match dtype {
        DType::F32 => x,
        DType::F16 => f16::from_f32(x).to_f32(),
        DType::Bf16 => bf16::from_f32(x).to_f32(),
    }
}

impl GemmInputs {
    pub fn generate(seed: u64, p: &GemmParams) -> GemmInputs {
        let GemmParams { m, n, k, dtype, .. } = *p;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut draw = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|_| round_to(dtype, rng.random_range(-1.0f32..1.0)))
                .collect()
        };
        let a = draw(m * k);
        let b = draw(k * n);
        GemmInputs {
            m,
            n,
            k,
            dtype,
            a,
            b,
        }
    }

    /// C = A·B in f64 with an i-k-j loop: exact enough to judge any dtype.
    pub fn reference(&self) -> Vec<f64> {
        let (m, n, k) = (self.m, self.n, self.k);
        let mut c = vec![0.0f64; m * n];
        for i in 0..m {
            let row = &mut c[i * n..(i + 1) * n];
            for p in 0..k {
                let a = self.a[i * k + p] as f64;
                let brow = &self.b[p * n..(p + 1) * n];
                for (cj, bj) in row.iter_mut().zip(brow) {
                    *cj += a * *bj as f64;
                }
            }
        }
        c
    }

    pub fn check(&self, out: &[f32], reference: &[f64]) -> Verification {
        compare(
            out,
            reference,
            self.dtype.gemm_tolerance(),
            "host f64 GEMM on the same dtype-rounded inputs",
        )
    }
}

fn candle_dtype(d: DType) -> CDType {
    match d {
        DType::F32 => CDType::F32,
        DType::F16 => CDType::F16,
        DType::Bf16 => CDType::BF16,
    }
}

struct CandleGemm {
    backend: Backend,
    device: Device,
    inputs: GemmInputs,
    a: Tensor, // (m, k)
    b: Tensor, // (k, n)
    /// Gate trials only: spin for this fraction of each iteration's time
    /// after it, so the iteration is exactly that much slower.
    extra_work: Option<f64>,
    work: WorkPerIter,
}

impl CandleGemm {
    fn err(&self, op: &'static str) -> impl FnOnce(candle_core::Error) -> WorkloadError + use<> {
        WorkloadError::candle(&self.backend.to_string(), op)
    }
}

pub fn prepare(
    spec: &WorkloadSpec,
    p: &GemmParams,
    backend: &Backend,
) -> Result<Box<dyn PreparedWorkload>> {
    let device = cb::device(backend)?;
    let inputs = GemmInputs::generate(spec.seed, p);
    let e = |op| WorkloadError::candle(&backend.to_string(), op);
    let dt = candle_dtype(inputs.dtype);
    let a = Tensor::from_slice(&inputs.a, (inputs.m, inputs.k), &device)
        .and_then(|t| t.to_dtype(dt))
        .map_err(e("upload A"))?;
    let b = Tensor::from_slice(&inputs.b, (inputs.k, inputs.n), &device)
        .and_then(|t| t.to_dtype(dt))
        .map_err(e("upload B"))?;
    cb::synchronize(backend, &device)?;
    Ok(Box::new(CandleGemm {
        backend: *backend,
        device,
        inputs,
        a,
        b,
        extra_work: None,
        work: WorkPerIter::gflops(spec.flops_per_iter(), spec.bytes_per_iter()),
    }))
}

impl PreparedWorkload for CandleGemm {
    fn verify(&mut self) -> Result<Verification> {
        let c = self.a.matmul(&self.b).map_err(self.err("matmul"))?; // (m, n)
        let out: Vec<f32> = c
            .to_dtype(CDType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .map_err(self.err("download C"))?;
        Ok(self.inputs.check(&out, &self.inputs.reference()))
    }

    fn run_iter(&mut self) -> Result<IterReport> {
        let t = std::time::Instant::now();
        let c = self.a.matmul(&self.b).map_err(self.err("matmul"))?;
        cb::synchronize(&self.backend, &self.device)?;
        drop(c);
        if let Some(f) = self.extra_work {
            // Busy work, not sleep: a slower kernel keeps the core busy too.
            let extra = t.elapsed().mul_f64(f);
            let until = std::time::Instant::now() + extra;
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        Ok(IterReport::default())
    }

    fn inject_extra_work(&mut self, fraction: f64) -> Result<()> {
        self.extra_work = Some(fraction);
        Ok(())
    }

    cb::candle_workload_tail!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::DEFAULT_SEED;

    #[test]
    fn reference_matches_a_hand_computed_product() {
        let g = GemmInputs {
            m: 2,
            n: 2,
            k: 3,
            dtype: DType::F32,
            a: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            b: vec![7.0, 8.0, 9.0, 10.0, 11.0, 12.0],
        };
        assert_eq!(g.reference(), vec![58.0, 64.0, 139.0, 154.0]);
    }

    #[test]
    fn inputs_are_seeded_and_rounded() {
        let p = GemmParams::new(8, 8, 8, DType::Bf16);
        let x = GemmInputs::generate(DEFAULT_SEED, &p);
        let y = GemmInputs::generate(DEFAULT_SEED, &p);
        assert_eq!(x.a, y.a);
        assert!(x.a.iter().all(|v| bf16::from_f32(*v).to_f32() == *v));
        assert!(x.a.iter().any(|v| *v != x.a[0]));
    }

    /// One body on every backend here and every dtype it runs (wgpu: f32
    /// only, which `supports` must say), on ragged shapes: the answer passes
    /// the reference check over every element, and a corrupted answer fails
    /// it.
    #[test]
    fn gemm_verifies_on_every_backend_and_dtype() {
        for backend in crate::backend::test_backends() {
            for dims in ["33x17x65", "70x33x19", "64", "1x130x5"] {
                for dt in ["f32", "f16", "bf16"] {
                    let name = format!("kernel/gemm-{dt}-{dims}");
                    let spec = WorkloadSpec::parse(&name).unwrap();
                    if let Err(why) = crate::registry::supports(&spec, &backend) {
                        assert!(backend.family() == "wgpu" && dt != "f32", "{name}: {why}");
                        continue;
                    }
                    let mut w = crate::registry::prepare(&spec, &backend).unwrap();
                    let v = w.verify().unwrap();
                    assert!(v.passed, "{backend} {name}: {v:?}");
                    let (m, n) = match spec.params {
                        crate::spec::Params::Gemm { m, n, .. } => (m, n),
                        _ => panic!("{name} parsed as {:?}", spec.params),
                    };
                    assert_eq!(v.elements_checked, (m * n) as u64, "{backend} {name}");
                    w.run_iter().unwrap();
                    assert_eq!(w.device().backend, backend.family());
                }
            }
        }
        let g = GemmInputs::generate(DEFAULT_SEED, &GemmParams::new(16, 16, 16, DType::F32));
        let r = g.reference();
        let mut bad: Vec<f32> = r.iter().map(|v| *v as f32).collect();
        bad[5] += 0.5;
        assert!(!g.check(&bad, &r).passed);
    }
}
