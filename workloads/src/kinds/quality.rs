//! `train-quality/<model>/<dtype>`: trains a fresh model for S steps on fresh
//! batches, then measures held-out loss. On the synthetic Markov corpus the
//! entropy rate is known exactly, so quality is an absolute number:
//! `excess_loss_nats = eval_loss − entropy_floor`. With a user corpus
//! (byte-level UTF-8 text) there is no floor and only the eval loss is given.

use candle_core::{DType as CDType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::api::{IterReport, PreparedWorkload, WorkPerIter};
use crate::backend::{Backend, candle as cb};
use crate::data::MarkovCorpus;
use crate::error::{Result, WorkloadError, cerr};
use crate::kinds::train::{TrainStep, adamw, loss_and_grads, prepare_step, zero_moments};
use crate::models::ops::cross_entropy;
use crate::models::{Model, ModelConfig, WeightFormat, init};
use crate::spec::{DType, EVAL_SEQUENCES, Params, QualityParams, TrainParams, WorkloadSpec};
use crate::verify::Verification;

/// Learning rate of the quality runs: short runs on small models need a
/// larger step than the benchmark step's GPT-style 1e-3.
const QUALITY_LR: f64 = 1e-2;

/// Where training text comes from.
#[derive(Debug)]
pub enum Source {
    Markov(MarkovCorpus),
    /// Byte-level tokens of a user's UTF-8 text: train and held-out parts.
    Bytes {
        train: Vec<u32>,
        eval: Vec<u32>,
    },
}

impl Source {
    /// Reads a user's corpus: UTF-8 text, the last 10% held out.
    pub fn from_text(text: &str, seq: usize) -> std::result::Result<Source, String> {
        let bytes: Vec<u32> = text.bytes().map(u32::from).collect();
        let eval_len = (bytes.len() / 10).max(EVAL_SEQUENCES * (seq + 1));
        if bytes.len() < eval_len + 4 * (seq + 1) {
            return Err(format!(
                "corpus has {} bytes; at least {} are needed for sequences of {seq}",
                bytes.len(),
                eval_len + 4 * (seq + 1)
            ));
        }
        let split = bytes.len() - eval_len;
        Ok(Source::Bytes {
            train: bytes[..split].to_vec(),
            eval: bytes[split..].to_vec(),
        })
    }

    fn batch(&self, b: usize, t: usize, rng: &mut ChaCha8Rng, eval: bool) -> (Vec<u32>, Vec<u32>) {
        match self {
            Source::Markov(c) => c.batch(b, t, rng),
            Source::Bytes { train, eval: held } => {
                let data = if eval { held } else { train };
                let (mut i, mut o) = (Vec::with_capacity(b * t), Vec::with_capacity(b * t));
                for _ in 0..b {
                    let start = rng.random_range(0..data.len() - t - 1);
                    i.extend_from_slice(&data[start..start + t]);
                    o.extend_from_slice(&data[start + 1..start + t + 1]);
                }
                (i, o)
            }
        }
    }

    fn floor(&self) -> Option<f64> {
        match self {
            Source::Markov(c) => Some(c.entropy_rate_nats()),
            Source::Bytes { .. } => None,
        }
    }
}

pub struct TrainQuality {
    backend: Backend,
    device: Device,
    cfg: ModelConfig,
    dtype: CDType,
    seed: u64,
    steps: usize,
    batch: usize,
    seq: usize,
    source: Source,
    eval_inputs: Tensor,  // (E, T)
    eval_targets: Tensor, // (E·T)
    /// A train step on the same model, batch shape and dtype, for verification.
    check: TrainStep,
    curve_emitted: bool,
    work: WorkPerIter,
}

pub fn prepare(
    spec: &WorkloadSpec,
    p: &QualityParams,
    backend: &Backend,
    corpus: Option<&str>,
) -> Result<Box<dyn PreparedWorkload>> {
    let (model, dtype, steps) = (&p.model, &p.dtype, &p.steps);
    let (batch, seq) = (&p.batch, &p.seq);
    let cfg = crate::models::shape(model).expect("validated model name");
    let device = cb::device(backend)?;
    let e = |op| cerr(backend, op);
    let source = match corpus {
        None => Source::Markov(MarkovCorpus::for_vocab(cfg.vocab, spec.seed)),
        Some(text) => {
            Source::from_text(text, *seq).map_err(|reason| WorkloadError::Unsupported {
                workload: spec.name.clone(),
                backend: backend.to_string(),
                reason,
            })?
        }
    };
    let mut eval_rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0xE7A1);
    let (ei, et) = source.batch(EVAL_SEQUENCES, *seq, &mut eval_rng, true);
    let eval_inputs =
        Tensor::from_vec(ei, (EVAL_SEQUENCES, *seq), &device).map_err(e("upload eval"))?;
    let eval_targets =
        Tensor::from_vec(et, EVAL_SEQUENCES * *seq, &device).map_err(e("upload eval"))?;
    let step = TrainParams {
        model: model.clone(),
        dtype: *dtype,
        batch: *batch,
        seq: *seq,
    };
    let step_spec = WorkloadSpec {
        name: format!("train-step/{model}/{}", dtype.as_str()),
        kind: "train".into(),
        version: crate::spec::TRAIN_VERSION,
        seed: spec.seed,
        params: Params::Train {
            model: step.model.clone(),
            dtype: step.dtype,
            batch: step.batch,
            seq: step.seq,
        },
    };
    Ok(Box::new(TrainQuality {
        backend: *backend,
        device,
        dtype: if *dtype == DType::Bf16 {
            CDType::BF16
        } else {
            CDType::F32
        },
        seed: spec.seed,
        steps: *steps,
        batch: *batch,
        seq: *seq,
        source,
        eval_inputs,
        eval_targets,
        check: prepare_step(&step_spec, &step, backend)?,
        curve_emitted: false,
        work: crate::cost::work::of(spec),
        cfg,
    }))
}

impl TrainQuality {
    /// Fresh weights, `steps` AdamW steps on fresh batches; returns the
    /// per-step training losses and the final held-out loss.
    fn train(&self) -> candle_core::Result<(Vec<f64>, f64)> {
        let params = init(&self.cfg, self.seed, &self.device, CDType::F32)?;
        let mut moments = zero_moments(&params)?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ 0x7A41);
        let mut curve = Vec::with_capacity(self.steps);
        for step in 1..=self.steps {
            let (i, t) = self.source.batch(self.batch, self.seq, &mut rng, false);
            let inputs = Tensor::from_vec(i, (self.batch, self.seq), &self.device)?;
            let targets = Tensor::from_vec(t, self.batch * self.seq, &self.device)?;
            let (loss, grads) = loss_and_grads(&self.cfg, &params, self.dtype, &inputs, &targets)?;
            adamw(&params, &mut moments, step, QUALITY_LR, &grads)?;
            curve.push(loss);
        }
        let model = Model::from_params(&self.cfg, &params, WeightFormat::Float(self.dtype))?;
        let logits = model.forward(&self.eval_inputs, None)?.detach();
        let (b, t, v) = logits.dims3()?;
        let eval = cross_entropy(&logits.reshape((b * t, v))?, &self.eval_targets)?
            .to_dtype(CDType::F64)?
            .to_scalar::<f64>()?;
        Ok((curve, eval))
    }
}

impl PreparedWorkload for TrainQuality {
    fn verify(&mut self) -> Result<Verification> {
        let mut v = self.check.verify()?;
        v.note = format!("first training step: {}", v.note);
        Ok(v)
    }

    fn run_iter(&mut self) -> Result<IterReport> {
        let (curve, eval) = self.train().map_err(cerr(&self.backend, "train"))?;
        cb::synchronize(&self.backend, &self.device)?;
        let mut extras = vec![("eval_loss_nats", eval)];
        if let Some(floor) = self.source.floor() {
            extras.push(("entropy_floor_nats", floor));
            extras.push(("excess_loss_nats", eval - floor));
        }
        extras.push(("final_train_loss_nats", *curve.last().unwrap_or(&f64::NAN)));
        // Training is deterministic, so the curve is the same every
        // iteration: record it once, in step order.
        if !self.curve_emitted {
            extras.extend(curve.iter().map(|l| ("loss_curve", *l)));
            self.curve_emitted = true;
        }
        Ok(IterReport {
            timed_s: None,
            extras,
        })
    }

    cb::candle_workload_tail!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_approaches_the_entropy_floor_deterministically() {
        let spec = WorkloadSpec::parse("train-quality/dense-tiny/f32/s150").unwrap();
        let mut w = crate::registry::prepare(&spec, &Backend::Cpu).unwrap();
        assert!(w.verify().unwrap().passed);
        let a = w.run_iter().unwrap();
        let get = |r: &IterReport, k: &str| r.extras.iter().find(|(n, _)| *n == k).unwrap().1;
        let curve: Vec<f64> = a
            .extras
            .iter()
            .filter(|(k, _)| *k == "loss_curve")
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(curve.len(), 150);
        assert!(
            curve[149] < curve[0] - 2.0,
            "loss must fall: {} → {}",
            curve[0],
            curve[149]
        );
        let excess = get(&a, "excess_loss_nats");
        assert!(excess > -0.05 && excess < 2.0, "excess {excess}");
        // Same seed, same result; the curve is recorded once.
        let b = w.run_iter().unwrap();
        assert_eq!(get(&a, "eval_loss_nats"), get(&b, "eval_loss_nats"));
        assert!(b.extras.iter().all(|(k, _)| *k != "loss_curve"));
    }

    #[test]
    fn a_user_corpus_is_byte_level_and_too_short_is_refused() {
        let text = "the quick brown fox jumps over the lazy dog. ".repeat(200);
        let s = Source::from_text(&text, 32).unwrap();
        assert!(s.floor().is_none());
        assert!(
            Source::from_text("short", 32)
                .unwrap_err()
                .contains("at least")
        );
        let spec = WorkloadSpec::parse("train-quality/dense-tiny/f32/s5").unwrap();
        let opts = crate::PrepareOptions {
            corpus_text: Some(text.clone()),
            ..Default::default()
        };
        let mut w = crate::registry::prepare_with(&spec, &Backend::Cpu, &opts).unwrap();
        let r = w.run_iter().unwrap();
        assert!(r.extras.iter().any(|(k, _)| *k == "eval_loss_nats"));
        assert!(r.extras.iter().all(|(k, _)| *k != "excess_loss_nats"));
    }
}
