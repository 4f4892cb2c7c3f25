//! `train-step/<model>/<dtype>`: forward, cross-entropy, backward and an
//! AdamW update on a fixed batch of the synthetic corpus. Verified before
//! timing against a CPU f64 run of the same weights and batch, and every
//! parameter must receive a finite, non-zero gradient.

use candle_core::backprop::GradStore;
use candle_core::{DType as CDType, Device, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::backend::{Backend, DeviceRecord, candle as cb};
use crate::data::MarkovCorpus;
use crate::error::{Result, cerr};
use crate::models::ops::cross_entropy;
use crate::models::{Model, ModelConfig, Params, WeightFormat, init};
use crate::spec::{DType, Params as SpecParams, WorkloadSpec};
use crate::verify::Verification;
use crate::workload::{IterReport, PreparedWorkload, WorkPerIter};

/// AdamW hyper-parameters (Loshchilov & Hutter 2019), GPT-style values.
pub const LR: f64 = 1e-3;
const BETA1: f64 = 0.9;
const BETA2: f64 = 0.95;
const EPS: f64 = 1e-8;
const WEIGHT_DECAY: f64 = 0.1;

pub struct TrainStep {
    backend: Backend,
    device: Device,
    cfg: ModelConfig,
    /// Compute dtype; master weights and optimizer state stay f32.
    dtype: CDType,
    seed: u64,
    params: Params,
    moments: Vec<(Tensor, Tensor)>,
    step: usize,
    inputs: Tensor,  // (B, T) u32
    targets: Tensor, // (B·T) u32
    host_batch: (Vec<u32>, Vec<u32>),
    batch: usize,
    seq: usize,
    work: WorkPerIter,
}

pub fn prepare(spec: &WorkloadSpec, backend: &Backend) -> Result<Box<dyn PreparedWorkload>> {
    Ok(Box::new(prepare_step(spec, backend)?))
}

/// The train step as a concrete type (the quality workload verifies with it).
pub fn prepare_step(spec: &WorkloadSpec, backend: &Backend) -> Result<TrainStep> {
    let SpecParams::Train {
        model,
        dtype,
        batch,
        seq,
    } = &spec.params
    else {
        unreachable!("train::prepare called for {}", spec.name)
    };
    let cfg = crate::models::shape(model).expect("validated model name");
    let device = cb::device(backend)?;
    let e = |op| cerr(backend, op);
    let params = init(&cfg, spec.seed, &device, CDType::F32).map_err(e("init weights"))?;
    let moments = zero_moments(&params).map_err(e("optimizer state"))?;
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
        dtype: match dtype {
            DType::Bf16 => CDType::BF16,
            _ => CDType::F32,
        },
        seed: spec.seed,
        cfg,
        params,
        moments,
        step: 0,
        inputs,
        targets,
        host_batch,
        batch: *batch,
        seq: *seq,
        work: crate::models::work::of(spec),
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

/// Gradient completeness: names of parameters whose gradient is missing
/// (candle's fused ops silently give none), non-finite, or all zero.
pub fn incomplete_gradients(
    vars: &[(String, Var)],
    grads: &GradStore,
) -> candle_core::Result<Vec<String>> {
    let mut bad = vec![];
    for (name, var) in vars {
        match grads.get(var.as_tensor()) {
            None => bad.push(format!("{name} (no gradient)")),
            Some(g) => {
                let g = g.to_dtype(CDType::F64)?.flatten_all()?;
                let finite = g.to_vec1::<f64>()?.iter().all(|x| x.is_finite());
                let max = g.abs()?.max(0)?.to_scalar::<f64>()?;
                if !finite {
                    bad.push(format!("{name} (non-finite gradient)"));
                } else if max == 0.0 {
                    bad.push(format!("{name} (zero gradient)"));
                }
            }
        }
    }
    Ok(bad)
}

/// Splits `incomplete_gradients`' list into (failures, unrouted experts).
/// A routed MoE expert that no token of the batch was routed to has no
/// gradient by the math, not by a missing backward: it is excused when the
/// reference (`ref_zero(i)`: parameter i's reference gradient is absent or
/// zero) agrees and another expert of its layer did get a gradient — a
/// broken backward would leave every expert without one.
pub fn split_unrouted(
    missing: Vec<String>,
    vars: &[(String, Var)],
    ref_zero: impl Fn(usize) -> candle_core::Result<bool>,
) -> candle_core::Result<(Vec<String>, Vec<String>)> {
    let name_of = |m: &str| m.split(" (").next().unwrap_or(m).to_string();
    let missing_names: Vec<String> = missing.iter().map(|m| name_of(m)).collect();
    let mut bad = vec![];
    let mut unrouted = vec![];
    for (m, name) in missing.into_iter().zip(&missing_names) {
        let layer = name
            .split_once(".routed.")
            .map(|(l, _)| format!("{l}.routed."));
        let excused = match (&layer, vars.iter().position(|(n, _)| n == name)) {
            (Some(layer), Some(i)) if !m.ends_with("(non-finite gradient)") => {
                let another_has_one = vars
                    .iter()
                    .any(|(n, _)| n.starts_with(layer.as_str()) && !missing_names.contains(n));
                another_has_one && ref_zero(i)?
            }
            _ => false,
        };
        if excused {
            unrouted.push(name.clone());
        } else {
            bad.push(m);
        }
    }
    Ok((bad, unrouted))
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

impl PreparedWorkload for TrainStep {
    fn verify(&mut self) -> Result<Verification> {
        let e = |op| cerr(&self.backend, op);
        let (loss, grads) = loss_and_grads(
            &self.cfg,
            &self.params,
            self.dtype,
            &self.inputs,
            &self.targets,
        )
        .map_err(e("train step"))?;
        // The reference: the same weights, batch and math in f64 on the CPU.
        let cpu = Device::Cpu;
        let ref_params =
            init(&self.cfg, self.seed, &cpu, CDType::F64).map_err(e("reference weights"))?;
        let (b, t) = (self.batch, self.seq);
        let ri = Tensor::from_vec(self.host_batch.0.clone(), (b, t), &cpu)
            .map_err(e("reference batch"))?;
        let rt = Tensor::from_vec(self.host_batch.1.clone(), b * t, &cpu)
            .map_err(e("reference batch"))?;
        let (ref_loss, ref_grads) = loss_and_grads(&self.cfg, &ref_params, CDType::F64, &ri, &rt)
            .map_err(e("reference step"))?;
        let missing =
            incomplete_gradients(&self.params.vars, &grads).map_err(e("gradient check"))?;
        let (missing, unrouted) = split_unrouted(missing, &self.params.vars, |i| {
            ref_grads
                .get(ref_params.vars[i].1.as_tensor())
                .map(|g| {
                    g.abs()
                        .and_then(|a| a.max_all())
                        .and_then(|m| m.to_scalar::<f64>())
                })
                .transpose()
                .map(|m| m.is_none_or(|m| m == 0.0))
        })
        .map_err(e("gradient check"))?;
        let mut worst = (0.0f64, String::new());
        let (mut max_abs, mut elems, mut non_finite) = (0.0f64, 0u64, 0u64);
        for ((name, var), (_, rvar)) in self.params.vars.iter().zip(&ref_params.vars) {
            let (Some(g), Some(rg)) = (grads.get(var.as_tensor()), ref_grads.get(rvar.as_tensor()))
            else {
                continue;
            };
            let g: Vec<f64> = g
                .to_dtype(CDType::F64)
                .and_then(|x| x.flatten_all())
                .and_then(|x| x.to_vec1())
                .map_err(e("download gradient"))?;
            let rg: Vec<f64> = rg
                .flatten_all()
                .and_then(|x| x.to_vec1())
                .map_err(e("download gradient"))?;
            let scale = rg.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-30);
            let diff = g
                .iter()
                .zip(&rg)
                .fold(0.0f64, |m, (a, r)| m.max((a - r).abs()));
            non_finite += g.iter().filter(|x| !x.is_finite()).count() as u64;
            elems += g.len() as u64;
            max_abs = max_abs.max(diff);
            if diff / scale > worst.0 {
                worst = (diff / scale, name.clone());
            }
        }
        let loss_rel = (loss - ref_loss).abs() / ref_loss.abs().max(1e-30);
        let (tol, loss_tol) = if self.dtype == CDType::BF16 {
            (0.15, 0.02)
        } else {
            (1e-3, 1e-5)
        };
        let n = self.params.vars.len();
        Ok(Verification {
            passed: missing.is_empty() && non_finite == 0 && worst.0 <= tol && loss_rel <= loss_tol,
            reference: "CPU f64 forward + backward of the same weights and batch".into(),
            elements_checked: elems,
            max_abs_diff: max_abs,
            max_rel_diff: loss_rel,
            scaled_max_diff: worst.0,
            tolerance: tol,
            nan_or_inf: non_finite,
            mean_kl: None,
            top1_agreement: None,
            note: format!(
                "loss {loss:.6} vs reference {ref_loss:.6} (rel {loss_rel:.1e}, tolerance {loss_tol:.0e}); worst gradient {} (scaled diff {:.1e}); {} of {n} parameters have finite non-zero gradients{}{}",
                worst.1,
                worst.0,
                n - missing.len() - unrouted.len(),
                if missing.is_empty() {
                    String::new()
                } else {
                    format!(": missing {}", missing.join(", "))
                },
                if unrouted.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; no token was routed to {} in this batch (none in the reference either): no gradient expected",
                        unrouted.join(", ")
                    )
                }
            ),
        })
    }

    fn run_iter(&mut self) -> Result<IterReport> {
        let backend = self.backend;
        let e = |op| cerr(&backend, op);
        let (loss, grads) = loss_and_grads(
            &self.cfg,
            &self.params,
            self.dtype,
            &self.inputs,
            &self.targets,
        )
        .map_err(e("train step"))?;
        self.step += 1;
        adamw(&self.params, &mut self.moments, self.step, LR, &grads).map_err(e("AdamW update"))?;
        cb::synchronize(&self.backend, &self.device)?;
        Ok(IterReport {
            timed_s: None,
            extras: vec![("loss", loss)],
        })
    }

    fn work(&self) -> WorkPerIter {
        self.work
    }

    fn device(&self) -> DeviceRecord {
        cb::record(&self.backend)
    }

    fn timer(&self) -> &'static str {
        "wall_clock_after_device_sync"
    }
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
            let mut w = prepare(&spec, &Backend::Cpu).unwrap();
            let v = w.verify().unwrap();
            assert!(v.passed, "{fam}: {v:?}");
            let losses: Vec<f64> = (0..8).map(|_| w.run_iter().unwrap().extras[0].1).collect();
            assert!(losses[7] < losses[0], "{fam}: {losses:?}");
        }
    }

    #[test]
    fn an_unrouted_expert_is_excused_only_beside_a_routed_one() {
        let dev = Device::Cpu;
        let var = || Var::zeros(2, CDType::F32, &dev).unwrap();
        let vars: Vec<(String, Var)> = [
            "layers.1.routed.0.up",
            "layers.1.routed.1.up",
            "layers.2.routed.0.up",
            "layers.2.routed.1.up",
            "layers.1.attn.q",
        ]
        .iter()
        .map(|n| (n.to_string(), var()))
        .collect();
        let missing = vec![
            "layers.1.routed.0.up (no gradient)".to_string(),
            "layers.2.routed.0.up (no gradient)".to_string(),
            "layers.2.routed.1.up (zero gradient)".to_string(),
            "layers.1.attn.q (no gradient)".to_string(),
        ];
        let (bad, unrouted) = split_unrouted(missing.clone(), &vars, |_| Ok(true)).unwrap();
        // Layer 1: expert 1 got a gradient, so expert 0 was just unrouted.
        // Layer 2: no expert got one — a broken backward, not routing.
        assert_eq!(unrouted, vec!["layers.1.routed.0.up"]);
        assert_eq!(bad, missing[1..].to_vec());
        // The reference disagrees (it has a gradient): a failure.
        let (bad, unrouted) = split_unrouted(missing.clone(), &vars, |_| Ok(false)).unwrap();
        assert!(unrouted.is_empty());
        assert_eq!(bad, missing);
    }

    #[test]
    fn an_unused_parameter_is_reported_missing() {
        let dev = Device::Cpu;
        let used = Var::new(&[1.0f32, 2.0], &dev).unwrap();
        let unused = Var::new(&[3.0f32], &dev).unwrap();
        let zero = Var::new(&[-1.0f32], &dev).unwrap();
        // loss = Σ used² + relu(zero): relu is flat at −1, so `zero`'s
        // gradient exists but is 0.
        let loss = used
            .as_tensor()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .add(&zero.as_tensor().relu().unwrap().sum_all().unwrap())
            .unwrap();
        let grads = loss.backward().unwrap();
        let vars = vec![
            ("used".to_string(), used),
            ("unused".to_string(), unused),
            ("zero".to_string(), zero),
        ];
        let bad = incomplete_gradients(&vars, &grads).unwrap();
        assert_eq!(bad, vec!["unused (no gradient)", "zero (zero gradient)"]);
    }

    #[test]
    fn same_seed_same_losses() {
        let spec = WorkloadSpec::parse("train-step/dense-tiny/f32").unwrap();
        let run = || {
            let mut w = prepare(&spec, &Backend::Cpu).unwrap();
            (0..3)
                .map(|_| w.run_iter().unwrap().extras[0].1)
                .collect::<Vec<f64>>()
        };
        assert_eq!(run(), run());
    }
}
