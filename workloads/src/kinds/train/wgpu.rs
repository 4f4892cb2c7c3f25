//! `train-step/<model>/f32` on wgpu: forward, cross-entropy, backward and
//! AdamW as two recorded plans over the engine. Verified before timing
//! against the CPU f64 forward + backward (candle autograd) of the same
//! weights and batch: loss, every gradient, and every parameter must get a
//! finite, non-zero gradient.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::api::{IterReport, PreparedWorkload, WorkPerIter};
use crate::backend::wgpu::WgpuContext;
use crate::backend::wgpu::engine::{Builder, DispatchId, Engine, F, PlanId};
use crate::backend::wgpu::model::{Net, Pass, Weights};
use crate::backend::wgpu::ops::{AdamW, adamw_params};
use crate::backend::{Backend, DeviceRecord, WgpuSelector};
use crate::data::MarkovCorpus;
use crate::error::{Result, WorkloadError, cerr};
use crate::kinds::train::grad_check::{GradientCheck, f64_reference};
use crate::spec::{DType, TrainParams, WorkloadSpec};
use crate::verify::Verification;

struct WgpuTrain {
    engine: Engine,
    net: Net,
    grads: Weights,
    moments: (F, F),
    loss: F,
    step_plan: PlanId,
    update_plan: PlanId,
    adamw: DispatchId,
    step: usize,
    seed: u64,
    batch: (Vec<u32>, Vec<u32>),
    dims: (usize, usize),
    work: WorkPerIter,
}

pub fn prepare(
    spec: &WorkloadSpec,
    p: &TrainParams,
    selector: WgpuSelector,
    opts: &crate::PrepareOptions,
) -> Result<Box<dyn PreparedWorkload>> {
    let backend = Backend::Wgpu(selector);
    let TrainParams {
        model,
        dtype,
        batch,
        seq,
    } = p;
    if *dtype != DType::F32 {
        return Err(WorkloadError::Unsupported {
            workload: spec.name.clone(),
            backend: backend.to_string(),
            reason: format!(
                "{} training on wgpu is not implemented (f32 only)",
                dtype.as_str()
            ),
        });
    }
    let cfg = crate::models::shape(model).expect("validated model name");
    let ctx = WgpuContext::open_with(selector, opts)?;
    let (b, t) = (*batch, *seq);
    let n = b * t;
    let mut bld = Builder::new();
    let net = Net::new(&mut bld, &cfg, t);
    let grads = net.w.like(&mut bld);
    let m = bld.f(net.w.all.len as usize);
    let v = bld.f(net.w.all.len as usize);
    let tok = bld.u(n);
    let tgt = bld.u(n);
    let acts = net.alloc_acts(&mut bld, n, n);
    let logits = bld.f(n * cfg.vocab);
    let dlogits = bld.f(n * cfg.vocab);
    let loss = bld.f(n);
    let pass = Pass { b, t, pos0: 0 };

    let step_plan = bld.begin();
    bld.zero(grads.all);
    net.forward(&mut bld, &acts, tok, pass, None);
    net.logits_all(&mut bld, &acts, n, logits);
    bld.xent(logits, tgt, loss, Some(dlogits), n, cfg.vocab);
    net.backward(&mut bld, &acts, tok, pass, dlogits, &grads);
    let update_plan = bld.begin();
    let adamw = bld.adamw(net.w.all, grads.all, m, v);

    let engine = Engine::build(ctx, bld, opts.device_mem_cap_bytes)?;
    net.upload(&engine, spec.seed)?;
    // The CPU train step's batch: same corpus, same seed.
    let corpus = MarkovCorpus::for_vocab(cfg.vocab, spec.seed);
    let host = corpus.batch(b, t, &mut ChaCha8Rng::seed_from_u64(spec.seed ^ 0xBA7C));
    engine.write_u(tok, &host.0);
    engine.write_u(tgt, &host.1);
    Ok(Box::new(WgpuTrain {
        engine,
        net,
        grads,
        moments: (m, v),
        loss,
        step_plan,
        update_plan,
        adamw,
        step: 0,
        seed: spec.seed,
        batch: host,
        dims: (b, t),
        work: crate::cost::work::of(spec),
    }))
}

impl WgpuTrain {
    fn mean_loss(&mut self) -> Result<f64> {
        let l = self.engine.read_f(self.loss)?;
        Ok(l.iter().map(|x| *x as f64).sum::<f64>() / l.len() as f64)
    }
}

impl PreparedWorkload for WgpuTrain {
    fn verify(&mut self) -> Result<Verification> {
        self.engine.run(&[self.step_plan])?;
        let loss = self.mean_loss()?;
        let (ref_loss, ref_grads) = f64_reference(&self.net.cfg, self.seed, &self.batch, self.dims)
            .map_err(cerr(&Backend::Cpu, "reference train step"))?;
        let all = self.engine.read_f(self.grads.all)?;
        let base = self.grads.all.off;
        let mut check = GradientCheck::default();
        for ((spec, view), (name, rg)) in self.grads.specs.iter().zip(&ref_grads) {
            debug_assert_eq!(&spec.name, name);
            let lo = (view.off - base) as usize;
            let g: Vec<f64> = all[lo..lo + view.len as usize]
                .iter()
                .map(|x| *x as f64)
                .collect();
            check.add(name, Some(&g), rg.as_deref());
        }
        // The CPU f32 step's tolerances (train.rs).
        Ok(check.verification(
            loss,
            ref_loss,
            (1e-3, 1e-5),
            "CPU f64 forward + backward (candle autograd) of the same weights and batch",
        ))
    }

    fn run_iter(&mut self) -> Result<IterReport> {
        self.step += 1;
        let p = adamw_params(
            self.net.w.all.len as usize,
            (
                self.net.w.all,
                self.grads.all,
                self.moments.0,
                self.moments.1,
            ),
            &AdamW::default(),
            self.step,
        );
        self.engine.set_params(self.adamw, &p);
        let gpu_s = self.engine.run(&[self.step_plan, self.update_plan])?;
        let loss = self.mean_loss()?;
        Ok(IterReport {
            timed_s: gpu_s,
            extras: vec![("loss", loss)],
        })
    }

    fn work(&self) -> WorkPerIter {
        self.work
    }

    fn device(&self) -> DeviceRecord {
        self.engine.device_record()
    }

    fn timer(&self) -> &'static str {
        self.engine.timer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::wgpu::test_backend;

    /// One body, every family: the wgpu step matches the CPU f64 step (loss,
    /// every gradient, none missing) and training lowers the loss.
    #[test]
    fn wgpu_train_step_verifies_for_every_family() {
        let Some(backend) = test_backend() else {
            return;
        };
        for fam in ["dense", "moe-mla", "openelm"] {
            let spec = WorkloadSpec::parse(&format!("train-step/{fam}-tiny/f32/b2t16")).unwrap();
            let mut w =
                crate::registry::prepare_with(&spec, &backend, &Default::default()).unwrap();
            let v = w.verify().unwrap();
            assert!(v.passed, "{fam}: {v:?}");
            let losses: Vec<f64> = (0..6).map(|_| w.run_iter().unwrap().extras[0].1).collect();
            assert!(losses[5] < losses[0], "{fam}: {losses:?}");
        }
    }

    #[test]
    fn a_device_memory_cap_refuses_the_step_as_oom() {
        let Some(backend) = test_backend() else {
            return;
        };
        let spec = WorkloadSpec::parse("train-step/dense-tiny/f32/b2t16").unwrap();
        let capped = crate::PrepareOptions {
            device_mem_cap_bytes: Some(1 << 20),
            ..Default::default()
        };
        let e = crate::registry::prepare_with(&spec, &backend, &capped)
            .err()
            .unwrap();
        assert!(matches!(e, WorkloadError::DeviceOutOfMemory { .. }), "{e}");
    }
}
