//! `kernel/stream-<N>`: the STREAM triad a = b + s·c (McCalpin 1995) over N
//! f32 per array, split over the worker's threads — the sustainable memory
//! bandwidth that decode's MBU is measured against.

use crate::api::{IterReport, PreparedWorkload, WorkPerIter};
use crate::backend::{Backend, DeviceRecord, candle as cb};
use crate::error::Result;
use crate::spec::WorkloadSpec;
use crate::verify::{Verification, compare};

const SCALAR: f32 = 3.0;

struct Stream {
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    threads: usize,
    work: WorkPerIter,
}

/// The triad over `elems` f32 per array in host memory.
pub fn prepare(spec: &WorkloadSpec, elems: usize) -> Result<Box<dyn PreparedWorkload>> {
    // Distinct, exactly representable values so the check is exact.
    let b: Vec<f32> = (0..elems).map(|i| (i % 1024) as f32).collect();
    let c: Vec<f32> = (0..elems).map(|i| (i % 7) as f32).collect();
    Ok(Box::new(Stream {
        a: vec![0.0; elems],
        b,
        c,
        threads: cb::default_threads().max(1),
        work: WorkPerIter::gbytes(spec.flops_per_iter(), spec.bytes_per_iter()),
    }))
}

impl Stream {
    fn triad(&mut self) {
        let chunk = self.a.len().div_ceil(self.threads);
        std::thread::scope(|s| {
            for ((a, b), c) in self
                .a
                .chunks_mut(chunk)
                .zip(self.b.chunks(chunk))
                .zip(self.c.chunks(chunk))
            {
                s.spawn(move || {
                    for ((a, b), c) in a.iter_mut().zip(b).zip(c) {
                        *a = b + SCALAR * c;
                    }
                });
            }
        });
    }
}

impl PreparedWorkload for Stream {
    fn verify(&mut self) -> Result<Verification> {
        self.triad();
        let reference: Vec<f64> = self
            .b
            .iter()
            .zip(&self.c)
            .map(|(b, c)| *b as f64 + SCALAR as f64 * *c as f64)
            .collect();
        Ok(compare(&self.a, &reference, 0.0, "host f64 triad"))
    }

    fn run_iter(&mut self) -> Result<IterReport> {
        self.triad();
        std::hint::black_box(&self.a);
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

    /// One body, every backend here: host memory on the cpu, device memory
    /// on wgpu; the triad's check is exact on both.
    #[test]
    fn stream_verifies_on_every_backend() {
        let spec = WorkloadSpec::parse("kernel/stream-100K").unwrap();
        for backend in crate::backend::test_backends() {
            crate::registry::supports(&spec, &backend).unwrap();
            let mut w = crate::registry::prepare(&spec, &backend).unwrap();
            let v = w.verify().unwrap();
            assert!(v.passed, "{backend}: {v:?}");
            w.run_iter().unwrap();
            assert_eq!(w.device().backend, backend.family());
            assert!(!w.timer().is_empty(), "{backend}");
        }
    }
}
