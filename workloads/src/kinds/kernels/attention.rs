//! `kernel/attention-<T>`: causal scaled-dot-product attention, one batch of
//! 8 heads × 64 dims over T positions, with the same ops the models use —
//! the building block whose cost grows with context.

use candle_core::{DType as CDType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::api::{IterReport, PreparedWorkload, WorkPerIter};
use crate::backend::{Backend, candle as cb};
use crate::cost::{ATTENTION_HEAD_DIM as HEAD_DIM, ATTENTION_HEADS as HEADS};
use crate::error::{Result, WorkloadError};
use crate::models::ops::{causal_mask, softmax};
use crate::spec::WorkloadSpec;
use crate::verify::{Verification, compare};

struct Attention {
    backend: Backend,
    device: Device,
    t: usize,
    host: [Vec<f32>; 3], // q, k, v (H, T, hd) row-major
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor,
    work: WorkPerIter,
}

/// Seeded q, k, v, each (H, T, hd) row-major.
pub fn host_inputs(seed: u64, t: usize) -> [Vec<f32>; 3] {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = HEADS * t * HEAD_DIM;
    let mut draw = || -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    [draw(), draw(), draw()]
}

/// Naive causal attention on the host in f64, (H, T, hd).
pub fn reference(host: &[Vec<f32>; 3], t: usize) -> Vec<f64> {
    let d = HEAD_DIM;
    let [q, k, v] = host;
    let mut out = vec![0.0f64; HEADS * t * d];
    let scale = 1.0 / (d as f64).sqrt();
    for h in 0..HEADS {
        let base = h * t * d;
        for i in 0..t {
            let s: Vec<f64> = (0..=i)
                .map(|j| {
                    (0..d)
                        .map(|x| q[base + i * d + x] as f64 * k[base + j * d + x] as f64)
                        .sum::<f64>()
                        * scale
                })
                .collect();
            let m = s.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for (j, w) in e.iter().enumerate() {
                for x in 0..d {
                    out[base + i * d + x] += w / z * v[base + j * d + x] as f64;
                }
            }
        }
    }
    out
}

/// Causal attention over `seq` positions on a candle device.
pub fn prepare(
    spec: &WorkloadSpec,
    seq: usize,
    backend: &Backend,
) -> Result<Box<dyn PreparedWorkload>> {
    let device = cb::device(backend)?;
    let e = |op| WorkloadError::candle(&backend.to_string(), op);
    let host = host_inputs(spec.seed, seq);
    let up = |v: &Vec<f32>| Tensor::from_slice(v, (1, HEADS, seq, HEAD_DIM), &device);
    let (q, k, v) = (
        up(&host[0]).map_err(e("upload"))?,
        up(&host[1]).map_err(e("upload"))?,
        up(&host[2]).map_err(e("upload"))?,
    );
    let mask = causal_mask(seq, seq, CDType::F32, &device).map_err(e("mask"))?;
    Ok(Box::new(Attention {
        backend: *backend,
        device,
        t: seq,
        host,
        q,
        k,
        v,
        mask,
        work: WorkPerIter::gflops(spec.flops_per_iter(), spec.bytes_per_iter()),
    }))
}

impl Attention {
    fn forward(&self) -> candle_core::Result<Tensor> {
        let scale = 1.0 / (HEAD_DIM as f64).sqrt();
        let scores = (self.q.matmul(&self.k.t()?)? * scale)?.broadcast_add(&self.mask)?;
        softmax(&scores)?.matmul(&self.v) // (1, H, T, hd)
    }
}

impl PreparedWorkload for Attention {
    fn verify(&mut self) -> Result<Verification> {
        let e = |op| WorkloadError::candle(&self.backend.to_string(), op);
        let out: Vec<f32> = self
            .forward()
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .map_err(e("attention"))?;
        Ok(compare(
            &out,
            &reference(&self.host, self.t),
            1e-4,
            "host f64 causal attention",
        ))
    }

    fn run_iter(&mut self) -> Result<IterReport> {
        let o = self.forward().map_err(WorkloadError::candle(
            &self.backend.to_string(),
            "attention",
        ))?;
        cb::synchronize(&self.backend, &self.device)?;
        drop(o);
        Ok(IterReport::default())
    }

    cb::candle_workload_tail!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One body, every backend here: verified against host f64, it runs, and
    /// the record names the backend it ran on.
    #[test]
    fn attention_verifies_on_every_backend() {
        let spec = WorkloadSpec::parse("kernel/attention-33").unwrap();
        for backend in crate::backend::test_backends() {
            let mut w = crate::registry::prepare(&spec, &backend).unwrap();
            let v = w.verify().unwrap();
            assert!(v.passed, "{backend}: {v:?}");
            w.run_iter().unwrap();
            assert_eq!(w.device().backend, backend.family());
            assert!(!w.timer().is_empty(), "{backend}");
        }
    }

    #[test]
    fn attention_counts_causal_flops() {
        assert_eq!(crate::cost::attention_flops(2), 4.0 * 512.0 * 3.0);
    }
}
