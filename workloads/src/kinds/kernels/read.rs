//! `kernel/read-<N>`: a read-only bandwidth kernel — the sum of N bytes of
//! f32, split over the worker's threads. Decode streams its weights and
//! writes next to nothing, so this (not the triad, which also writes) is the
//! roof its MBU is measured against.

use crate::api::{IterReport, PreparedWorkload, WorkPerIter};
use crate::backend::{Backend, DeviceRecord, candle as cb};
use crate::error::Result;
use crate::spec::WorkloadSpec;
use crate::verify::Verification;

/// f32 lanes summed side by side: 64 bytes, one cache line, two AVX2 or
/// one AVX-512 register; independent accumulators let the adds overlap.
const LANES: usize = 16;
/// Elements per block before the lanes are folded into an f64 total: with
/// values below 8, a lane holds at most 7 · BLOCK / LANES = 1792, exact in
/// f32, so the vectorised sum equals the scalar one bit for bit.
const BLOCK: usize = 4096;

struct Read {
    data: Vec<f32>,
    threads: usize,
    sum: f64,
    work: WorkPerIter,
}

/// A sum over `bytes` of f32 in host memory (`bytes` is a multiple of 64,
/// checked when the name was parsed).
pub fn prepare(spec: &WorkloadSpec, bytes: usize) -> Result<Box<dyn PreparedWorkload>> {
    let elems = bytes / 4;
    // Small integers: every partial sum is exact, so the check is exact.
    let data: Vec<f32> = (0..elems).map(|i| (i % 8) as f32).collect();
    Ok(Box::new(Read {
        data,
        threads: cb::default_threads().max(1),
        sum: 0.0,
        work: WorkPerIter::gbytes(spec.flops_per_iter(), spec.bytes_per_iter()),
    }))
}

/// One thread's part: whole blocks of LANES-wide adds, each block folded
/// into an f64 so no lane outgrows f32's exact integers.
fn sum_part(part: &[f32]) -> f64 {
    let mut total = 0.0f64;
    for block in part.chunks(BLOCK) {
        let mut acc = [0.0f32; LANES];
        let lanes = block.chunks_exact(LANES);
        let tail = lanes.remainder();
        for v in lanes {
            for (a, x) in acc.iter_mut().zip(v) {
                *a += x;
            }
        }
        total += acc.iter().map(|a| *a as f64).sum::<f64>();
        total += tail.iter().map(|x| *x as f64).sum::<f64>();
    }
    total
}

impl Read {
    fn sum(&mut self) -> f64 {
        // Chunks of whole blocks, so every thread's lanes stay aligned to
        // the same 64-byte boundaries.
        let chunk = self.data.len().div_ceil(self.threads).div_ceil(LANES) * LANES;
        let chunk = chunk.max(LANES);
        let data = &self.data;
        std::thread::scope(|s| {
            let parts: Vec<_> = data
                .chunks(chunk)
                .map(|p| s.spawn(move || sum_part(p)))
                .collect();
            parts
                .into_iter()
                .map(|h| h.join().expect("a sum thread does not panic"))
                .sum()
        })
    }
}

impl PreparedWorkload for Read {
    fn verify(&mut self) -> Result<Verification> {
        self.sum = self.sum();
        let scalar: f64 = self.data.iter().map(|x| *x as f64).sum();
        // Every partial sum is an exact integer: the two must be equal.
        let diff = (self.sum - scalar).abs();
        Ok(Verification {
            passed: self.sum.is_finite() && diff == 0.0,
            reference: "host scalar f64 sum".into(),
            elements_checked: self.data.len() as u64,
            max_abs_diff: diff,
            max_rel_diff: diff / scalar.abs().max(1e-6),
            scaled_max_diff: diff / scalar.abs().max(1e-6),
            tolerance: 0.0,
            nan_or_inf: u64::from(!self.sum.is_finite()),
            mean_kl: None,
            top1_agreement: None,
            note: format!("vectorised sum {} vs scalar sum {scalar}", self.sum),
        })
    }

    fn run_iter(&mut self) -> Result<IterReport> {
        self.sum = std::hint::black_box(self.sum());
        Ok(IterReport::default())
    }

    fn work(&self) -> WorkPerIter {
        self.work
    }

    fn device(&self) -> DeviceRecord {
        cb::record(&Backend::Cpu)
    }

    fn timer(&self) -> &'static str {
        "wall_clock"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vectorised_sum_equals_the_scalar_sum() {
        // A size with a partial block and a tail shorter than the lanes is
        // refused by the name; the sum itself must still handle one.
        let part: Vec<f32> = (0..BLOCK * 3 + 40).map(|i| (i % 8) as f32).collect();
        let scalar: f64 = part.iter().map(|x| *x as f64).sum();
        assert_eq!(sum_part(&part), scalar);
        let spec = WorkloadSpec::parse("kernel/read-1M").unwrap();
        crate::registry::supports(&spec, &Backend::Cpu).unwrap();
        let mut w = crate::registry::prepare(&spec, &Backend::Cpu).unwrap();
        let v = w.verify().unwrap();
        assert!(v.passed, "{v:?}");
        w.run_iter().unwrap();
        assert_eq!(w.work().headline_metric, "gbytes_per_s");
        assert_eq!(w.work().bytes, (1u64 << 20) as f64);
    }

    #[test]
    fn read_runs_on_the_cpu_only() {
        let spec = WorkloadSpec::parse("kernel/read-1M").unwrap();
        let e = crate::registry::supports(&spec, &Backend::Cuda { ordinal: 0 }).unwrap_err();
        assert!(e.contains("cpu"), "{e}");
    }
}
