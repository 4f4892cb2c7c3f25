//! `train-step/<model>/<dtype>`: forward, cross-entropy, backward and an
//! AdamW update on a fixed batch of the synthetic corpus. Verified before
//! timing against a CPU f64 run of the same weights and batch, and every
//! parameter must receive a finite, non-zero gradient.

pub mod grad_check;
#[cfg(feature = "wgpu")]
pub mod wgpu;

use candle_core::backprop::GradStore;
use candle_core::{DType as CDType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::api::{IterReport, PreparedWorkload, WorkPerIter};
use crate::backend::cpu::Compute;
use crate::backend::cpu::kernels::AdamW;
use crate::backend::cpu::train::Trainer;
use crate::backend::{Backend, candle as cb};
use crate::data::MarkovCorpus;
use crate::error::{Result, cerr};
use crate::models::ops::cross_entropy;
use crate::models::{Model, ModelConfig, Params, WeightFormat, init};
use crate::spec::{DType, TrainParams, WorkloadSpec};
use crate::verify::Verification;
use grad_check::{GradientCheck, NamedGrads, f64_reference};

/// AdamW hyper-parameters (Loshchilov & Hutter 2019), GPT-style values.
pub const LR: f64 = 1e-3;
const BETA1: f64 = 0.9;
const BETA2: f64 = 0.95;
const EPS: f64 = 1e-8;
const WEIGHT_DECAY: f64 = 0.1;

/// What runs the step. The CPU executor is ours (GQA families; f32, or
/// bf16 weight products with f32 sums and everything else in f32); candle's
/// autograd serves the rest (CUDA, Metal, MLA/MoE — bf16 there keeps its
/// activations in bf16 too) and is the f64 reference of verification on
/// every path.
enum Engine {
    Candle {
        params: Params,
        moments: Vec<(Tensor, Tensor)>,
    },
    Cpu(Box<Trainer>),
}

pub struct TrainStep {
    backend: Backend,
    device: Device,
    cfg: ModelConfig,
    /// Compute dtype; master weights and optimizer state stay f32.
    dtype: CDType,
    seed: u64,
    engine: Engine,
    step: usize,
    inputs: Tensor,  // (B, T) u32
    targets: Tensor, // (B·T) u32
    host_batch: (Vec<u32>, Vec<u32>),
    batch: usize,
    seq: usize,
    work: WorkPerIter,
}

pub fn prepare(
    spec: &WorkloadSpec,
    p: &TrainParams,
    backend: &Backend,
) -> Result<Box<dyn PreparedWorkload>> {
    Ok(Box::new(prepare_on(spec, p, backend, true)?))
}

/// The train step as a concrete type on candle (the quality workload
/// verifies with it; its memory model counts candle's step).
pub fn prepare_step(spec: &WorkloadSpec, p: &TrainParams, backend: &Backend) -> Result<TrainStep> {
    prepare_on(spec, p, backend, false)
}

/// `executor`: run on capbench's CPU executor where it applies (CPU, a GQA
/// family; `cost::work::memory_need_bytes` predicts the same choice).
fn prepare_on(
    spec: &WorkloadSpec,
    p: &TrainParams,
    backend: &Backend,
    executor: bool,
) -> Result<TrainStep> {
    let TrainParams {
        model,
        dtype,
        batch,
        seq,
    } = p;
    let cfg = crate::models::shape(model).expect("validated model name");
    let device = cb::device(backend)?;
    let e = |op| cerr(backend, op);
    let params = init(&cfg, spec.seed, &device, CDType::F32).map_err(e("init weights"))?;
    let dtype = match dtype {
        DType::Bf16 => CDType::BF16,
        _ => CDType::F32,
    };
    let engine = if executor && *backend == Backend::Cpu && Trainer::supports(&cfg) {
        let mut host = std::collections::HashMap::new();
        for (name, var) in &params.vars {
            let v: Vec<f32> = var
                .as_tensor()
                .flatten_all()
                .and_then(|t| t.to_vec1())
                .map_err(e("init weights"))?;
            host.insert(name.clone(), v);
        }
        let compute = if dtype == CDType::BF16 {
            Compute::Bf16
        } else {
            Compute::F32
        };
        Engine::Cpu(Box::new(Trainer::new(&cfg, *batch, *seq, host, compute)))
    } else {
        let moments = zero_moments(&params).map_err(e("optimizer state"))?;
        Engine::Candle { params, moments }
    };
    let corpus = MarkovCorpus::for_vocab(cfg.vocab, spec.seed);
    let host_batch = corpus.batch(
        *batch,
        *seq,
        &mut ChaCha8Rng::seed_from_u64(spec.seed ^ 0xBA7C),
    );
    let inputs = Tensor::from_vec(host_batch.0.clone(), (*batch, *seq), &device)
        .map_err(e("upload batch"))?;
    let targets = Tensor::from_vec(host_batch.1.clone(), *batch * *seq, &device)
        .map_err(e("upload batch"))?;
    Ok(TrainStep {
        backend: *backend,
        device,
        dtype,
        seed: spec.seed,
        cfg,
        engine,
        step: 0,
        inputs,
        targets,
        host_batch,
        batch: *batch,
        seq: *seq,
        work: crate::cost::work::of(spec),
    })
}

/// Loss and gradients of `params` on one batch.
pub fn loss_and_grads(
    cfg: &ModelConfig,
    params: &Params,
    dtype: CDType,
    inputs: &Tensor,
    targets: &Tensor,
) -> candle_core::Result<(f64, GradStore)> {
    // Built per step: for bf16 the compute copies of the f32 master weights
    // must follow each update.
    let model = Model::from_params(cfg, params, WeightFormat::Float(dtype))?;
    let logits = model.forward(inputs, None)?; // (B, T, V)
    let (b, t, v) = logits.dims3()?;
    let loss = cross_entropy(&logits.reshape((b * t, v))?, targets)?;
    let grads = loss.backward()?;
    Ok((loss.to_dtype(CDType::F64)?.to_scalar::<f64>()?, grads))
}

/// Zeroed AdamW moments (m, v) for every parameter.
pub fn zero_moments(params: &Params) -> candle_core::Result<Vec<(Tensor, Tensor)>> {
    params
        .vars
        .iter()
        .map(|(_, v)| Ok((v.zeros_like()?, v.zeros_like()?)))
        .collect()
}

/// One AdamW update (step `t`, 1-based, learning rate `lr`) of every
/// parameter with a gradient.
pub fn adamw(
    params: &Params,
    moments: &mut [(Tensor, Tensor)],
    t: usize,
    lr: f64,
    grads: &GradStore,
) -> candle_core::Result<()> {
    {
        let t = t as i32;
        let (c1, c2) = (1.0 - BETA1.powi(t), 1.0 - BETA2.powi(t));
        for ((_, var), (m, v)) in params.vars.iter().zip(moments.iter_mut()) {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let g = g.to_dtype(CDType::F32)?.detach();
            *m = m.affine(BETA1, 0.0)?.add(&g.affine(1.0 - BETA1, 0.0)?)?;
            *v = v
                .affine(BETA2, 0.0)?
                .add(&g.sqr()?.affine(1.0 - BETA2, 0.0)?)?;
            let denom = v.affine(1.0 / c2, 0.0)?.sqrt()?.affine(1.0, EPS)?;
            let update = m.affine(1.0 / c1, 0.0)?.div(&denom)?;
            let p = var.as_tensor().detach();
            // Decoupled weight decay: p ← p − lr·(update + wd·p).
            let new = p.sub(&update.add(&p.affine(WEIGHT_DECAY, 0.0)?)?.affine(lr, 0.0)?)?;
            var.set(&new)?;
        }
        Ok(())
    }
}

impl TrainStep {
    /// This step's loss and every parameter's gradient by name, in f64
    /// (`None`: none was produced) — what verification compares.
    fn named_grads(&mut self) -> candle_core::Result<(f64, NamedGrads)> {
        match &mut self.engine {
            Engine::Cpu(tr) => {
                let loss = tr.loss_and_grads(&self.host_batch.0, &self.host_batch.1);
                let grads = tr.names.iter().zip(&tr.grads);
                let named = grads
                    .map(|(n, g)| (n.clone(), Some(g.iter().map(|x| *x as f64).collect())))
                    .collect();
                Ok((loss, named))
            }
            Engine::Candle { params, .. } => {
                let (loss, grads) =
                    loss_and_grads(&self.cfg, params, self.dtype, &self.inputs, &self.targets)?;
                let mut named = vec![];
                for (name, var) in &params.vars {
                    let g = grads
                        .get(var.as_tensor())
                        .map(|g| g.to_dtype(CDType::F64)?.flatten_all()?.to_vec1())
                        .transpose()?;
                    named.push((name.clone(), g));
                }
                Ok((loss, named))
            }
        }
    }
}

impl PreparedWorkload for TrainStep {
    fn verify(&mut self) -> Result<Verification> {
        let backend = self.backend;
        let e = |op| cerr(&backend, op);
        let (loss, grads) = self.named_grads().map_err(e("train step"))?;
        // The reference: the same weights, batch and math in f64 on the CPU.
        let (ref_loss, ref_grads) = f64_reference(
            &self.cfg,
            self.seed,
            &self.host_batch,
            (self.batch, self.seq),
        )
        .map_err(e("reference step"))?;
        let mut check = GradientCheck::default();
        for (name, rg) in &ref_grads {
            let g = grads
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, g)| g.as_deref());
            check.add(name, g, rg.as_deref());
        }
        let tols = if self.dtype == CDType::BF16 {
            (0.15, 0.02)
        } else {
            (1e-3, 1e-5)
        };
        let mut v = check.verification(
            loss,
            ref_loss,
            tols,
            "CPU f64 forward + backward of the same weights and batch",
        );
        if matches!(self.engine, Engine::Cpu(_)) {
            v.note.push_str("; step by capbench's CPU executor");
            if self.dtype == CDType::BF16 {
                v.note.push_str(&format!(
                    " (bf16 weight products: {}; the rest in f32)",
                    crate::models::bgemm::path()
                ));
            }
        }
        Ok(v)
    }

    fn run_iter(&mut self) -> Result<IterReport> {
        let backend = self.backend;
        let e = |op| cerr(&backend, op);
        self.step += 1;
        let loss = match &mut self.engine {
            Engine::Cpu(tr) => {
                let loss = tr.loss_and_grads(&self.host_batch.0, &self.host_batch.1);
                tr.adamw(AdamW {
                    lr: LR as f32,
                    beta1: BETA1 as f32,
                    beta2: BETA2 as f32,
                    eps: EPS as f32,
                    weight_decay: WEIGHT_DECAY as f32,
                    t: self.step as i32,
                });
                loss
            }
            Engine::Candle { params, moments } => {
                let (loss, grads) =
                    loss_and_grads(&self.cfg, params, self.dtype, &self.inputs, &self.targets)
                        .map_err(e("train step"))?;
                adamw(params, moments, self.step, LR, &grads).map_err(e("AdamW update"))?;
                cb::synchronize(&self.backend, &self.device)?;
                loss
            }
        };
        Ok(IterReport {
            timed_s: None,
            extras: vec![("loss", loss)],
        })
    }

    cb::candle_workload_tail!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One body, every family: verification passes (loss and gradients match
    /// the f64 reference, every parameter has a gradient) and training lowers
    /// the loss.
    #[test]
    fn every_family_trains_with_complete_gradients() {
        for fam in ["dense", "moe-mla", "openelm"] {
            let spec = WorkloadSpec::parse(&format!("train-step/{fam}-tiny/f32")).unwrap();
            let mut w = crate::registry::prepare(&spec, &Backend::Cpu).unwrap();
            let v = w.verify().unwrap();
            assert!(v.passed, "{fam}: {v:?}");
            let losses: Vec<f64> = (0..8).map(|_| w.run_iter().unwrap().extras[0].1).collect();
            assert!(losses[7] < losses[0], "{fam}: {losses:?}");
        }
    }

    /// The GQA families train on capbench's CPU executor in f32 and bf16;
    /// MLA/MoE stay on candle. Either way verification is the same check,
    /// and a bf16 step on the executor still lowers the loss.
    #[test]
    fn the_cpu_executor_runs_the_gqa_families() {
        for (name, ours) in [
            ("train-step/dense-tiny/f32", true),
            ("train-step/openelm-tiny/f32", true),
            ("train-step/moe-mla-tiny/f32", false),
            ("train-step/dense-tiny/bf16", true),
            ("train-step/openelm-tiny/bf16", true),
            ("train-step/moe-mla-tiny/bf16", false),
        ] {
            let spec = WorkloadSpec::parse(name).unwrap();
            let mut w = crate::registry::prepare(&spec, &Backend::Cpu).unwrap();
            let v = w.verify().unwrap();
            assert!(v.passed, "{name}: {v:?}");
            assert_eq!(v.note.contains("capbench's CPU executor"), ours, "{name}");
            let bf16_products = v.note.contains("bf16 weight products");
            assert_eq!(
                bf16_products,
                ours && name.ends_with("bf16"),
                "{name}: {}",
                v.note
            );
            let losses: Vec<f64> = (0..6).map(|_| w.run_iter().unwrap().extras[0].1).collect();
            assert!(losses[5] < losses[0], "{name}: {losses:?}");
        }
    }

    #[test]
    fn same_seed_same_losses() {
        let spec = WorkloadSpec::parse("train-step/dense-tiny/f32").unwrap();
        let run = || {
            let mut w = crate::registry::prepare(&spec, &Backend::Cpu).unwrap();
            (0..3)
                .map(|_| w.run_iter().unwrap().extras[0].1)
                .collect::<Vec<f64>>()
        };
        assert_eq!(run(), run());
    }
}
