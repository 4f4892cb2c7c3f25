//! `fault/*`: deliberate failures (panic, abort, hang, allocation failure,
//! wrong answer) so the harness's isolation is tested on the real binary.

use std::time::Duration;

use crate::api::{IterReport, PreparedWorkload, WorkPerIter};
use crate::backend::{Backend, DeviceRecord, candle as cb};
use crate::error::Result;
use crate::kinds::kernels::gemm::GemmInputs;
use crate::spec::{DEFAULT_SEED, DType, FaultMode, GemmParams, WorkloadSpec};
use crate::verify::Verification;

/// Bytes `fault/oom` asks for: 4 EiB, beyond any address space, so the
/// allocator refuses it even where the kernel overcommits memory — the way a
/// real oversized model is refused.
pub const OOM_REQUEST_BYTES: usize = 1 << 62;

struct Fault {
    /// Reproduces an off-by-one (the last k term dropped) when set.
    off_by_one: bool,
    inputs: GemmInputs,
    out: Vec<f32>,
}

impl Fault {
    /// A plain f32 GEMM loop; with `off_by_one` it stops one term early.
    fn compute(&mut self) {
        let GemmInputs { m, n, k, .. } = self.inputs;
        let k_used = if self.off_by_one { k - 1 } else { k };
        self.out.iter_mut().for_each(|c| *c = 0.0);
        for i in 0..m {
            for p in 0..k_used {
                let a = self.inputs.a[i * k + p];
                for j in 0..n {
                    self.out[i * n + j] += a * self.inputs.b[p * n + j];
                }
            }
        }
    }
}

pub fn prepare(_spec: &WorkloadSpec, fault: FaultMode) -> Result<Box<dyn PreparedWorkload>> {
    match fault {
        FaultMode::Panic => panic!("fault/panic: deliberate panic in prepare"),
        FaultMode::Abort => {
            eprintln!("fault/abort: aborting deliberately");
            std::process::abort()
        }
        FaultMode::Hang => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        FaultMode::Oom => {
            let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(OOM_REQUEST_BYTES));
            std::hint::black_box(&v);
            unreachable!("an allocation of {OOM_REQUEST_BYTES} bytes succeeded");
        }
        FaultMode::Slow { ms } => std::thread::sleep(Duration::from_millis(ms)),
        FaultMode::Wrong => {}
    }
    // Both remaining modes run a real small GEMM, so their verification is real.
    let inputs = GemmInputs::generate(DEFAULT_SEED, &GemmParams::new(16, 16, 16, DType::F32));
    Ok(Box::new(Fault {
        off_by_one: fault == FaultMode::Wrong,
        out: vec![0.0; inputs.m * inputs.n],
        inputs,
    }))
}

impl PreparedWorkload for Fault {
    fn verify(&mut self) -> Result<Verification> {
        self.compute();
        Ok(self.inputs.check(&self.out, &self.inputs.reference()))
    }
    fn run_iter(&mut self) -> Result<IterReport> {
        self.compute();
        std::hint::black_box(&self.out);
        Ok(IterReport::default())
    }
    fn work(&self) -> WorkPerIter {
        let s = WorkloadSpec::gemm(16, 16, 16, DType::F32);
        WorkPerIter::gflops(s.flops_per_iter(), s.bytes_per_iter())
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
    fn wrong_fails_verification_and_slow_passes() {
        let mut w = prepare(
            &WorkloadSpec::parse("fault/wrong").unwrap(),
            FaultMode::Wrong,
        )
        .unwrap();
        assert!(!w.verify().unwrap().passed);
        let spec = WorkloadSpec::parse("fault/slow-1ms").unwrap();
        let mut ok = prepare(&spec, FaultMode::Slow { ms: 1 }).unwrap();
        assert!(ok.verify().unwrap().passed);
    }
}
