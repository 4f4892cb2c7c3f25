//! Inputs for an external engine (docs/worker-protocol.md): the same seeded
//! weights, batch or tokens, and capbench's reference answer, written as
//! safetensors with a JSON description, so another engine computes the same
//! math and its answer is checked against capbench's before timing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType as CDType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::data::MarkovCorpus;
use crate::error::{Result, WorkloadError};
use crate::models::{Family, Model, ModelConfig, init};
use crate::spec::Typed;
use crate::spec::WorkloadSpec;

/// The model as an engine needs it: the dense family's Llama-style block
/// (RMSNorm, GQA with RoPE, SwiGLU), per-layer widths.
#[derive(Debug, Serialize)]
struct ModelJson {
    name: String,
    vocab: usize,
    d_model: usize,
    n_layers: usize,
    head_dim: usize,
    /// (n_heads, n_kv_heads, ffn) per layer.
    layers: Vec<(usize, usize, usize)>,
    tied_embeddings: bool,
    rope_theta: f64,
    /// Pairs (2i, 2i+1) rotate (GGUF layout) rather than halves.
    rope_interleaved: bool,
    norm_eps: f64,
}

#[derive(Debug, Serialize)]
struct InputsJson {
    workload: String,
    model: ModelJson,
    /// train-step: batch, seq, dtype, AdamW settings; decode: P/G/B/D.
    params: BTreeMap<&'static str, serde_json::Value>,
}

fn unsupported(spec: &WorkloadSpec, reason: &str) -> WorkloadError {
    WorkloadError::Unsupported {
        workload: spec.name.clone(),
        backend: "external".into(),
        reason: reason.into(),
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> candle_core::Error + '_ {
    move |e| candle_core::Error::Msg(format!("{}: {e}", path.display()))
}

/// Writes `inputs.json`, `weights.safetensors` and `reference.safetensors`
/// for `spec` into `dir`; returns them by role. Train steps and decode of
/// the dense family only.
pub fn write(spec: &WorkloadSpec, dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    write_files(spec, dir)?.map_err(WorkloadError::candle("cpu", "write engine inputs"))
}

/// `Err` outside: not for external engines; inside: writing failed.
fn write_files(
    spec: &WorkloadSpec,
    dir: &Path,
) -> Result<candle_core::Result<BTreeMap<String, PathBuf>>> {
    let (model, params) = match spec.params.typed() {
        Typed::Train(p) => (p.model.clone(), {
            let mut m = BTreeMap::new();
            m.insert("batch", p.batch.into());
            m.insert("seq", p.seq.into());
            m.insert("dtype", p.dtype.as_str().into());
            // kinds::train's loss bound (relative), beside the job's
            // gradient tolerance.
            let loss_tol = match p.dtype {
                crate::spec::DType::Bf16 => 0.02,
                _ => 1e-5,
            };
            m.insert("loss_tolerance", loss_tol.into());
            m
        }),
        Typed::Decode(p) => (p.model.clone(), {
            let mut m = BTreeMap::new();
            m.insert("prompt", p.prompt.into());
            m.insert("gen_tokens", p.gen_tokens.into());
            m.insert("batch", p.batch.into());
            m.insert("depth", p.depth.into());
            m.insert("format", p.format.as_str().into());
            m
        }),
        _ => {
            return Err(unsupported(
                spec,
                "external engines run train-step and decode",
            ));
        }
    };
    let cfg = crate::models::shape(&model).ok_or_else(|| {
        unsupported(
            spec,
            "external engines run the synthetic shapes, not a GGUF file",
        )
    })?;
    if cfg.family != Family::Dense || cfg.mla.is_some() || cfg.moe.is_some() {
        return Err(unsupported(
            spec,
            "external engines run the dense family's shapes",
        ));
    }
    Ok(write_checked(spec, &cfg, params, dir))
}

fn write_checked(
    spec: &WorkloadSpec,
    cfg: &ModelConfig,
    mut params: BTreeMap<&'static str, serde_json::Value>,
    dir: &Path,
) -> candle_core::Result<BTreeMap<String, PathBuf>> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let cpu = Device::Cpu;
    let weights_path = dir.join("weights.safetensors");
    let weights = init(cfg, spec.seed, &cpu, CDType::F32)?;
    let named: Vec<(String, Tensor)> = weights
        .vars
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    candle_core::safetensors::save(&named.into_iter().collect(), &weights_path)?;
    let ref_path = dir.join("reference.safetensors");
    let reference = match spec.params.typed() {
        Typed::Train(p) => train_reference(cfg, spec.seed, (p.batch, p.seq), &mut params)?,
        Typed::Decode(p) => {
            decode_reference(cfg, spec.seed, (p.batch, p.depth, p.prompt, p.gen_tokens))?
        }
        _ => unreachable!("checked above"),
    };
    candle_core::safetensors::save(&reference.into_iter().collect(), &ref_path)?;
    let json_path = dir.join("inputs.json");
    let json = InputsJson {
        workload: spec.name.clone(),
        model: ModelJson {
            name: cfg.name.clone(),
            vocab: cfg.vocab,
            d_model: cfg.d_model,
            n_layers: cfg.n_layers,
            head_dim: cfg.head_dim,
            layers: (0..cfg.n_layers)
                .map(|l| {
                    let d = cfg.layer(l);
                    (d.n_heads, d.n_kv_heads, d.ffn)
                })
                .collect(),
            tied_embeddings: cfg.tied_embeddings,
            rope_theta: cfg.rope_theta,
            rope_interleaved: cfg.rope_interleaved,
            norm_eps: cfg.norm_eps,
        },
        params,
    };
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&json).expect("plain data serialises"),
    )
    .map_err(io(&json_path))?;
    Ok([
        ("inputs".to_string(), json_path),
        ("weights".to_string(), weights_path),
        ("reference".to_string(), ref_path),
    ]
    .into_iter()
    .collect())
}

fn tokens(v: &[u32], shape: (usize, usize)) -> candle_core::Result<Tensor> {
    Tensor::from_vec(
        v.iter().map(|t| *t as i64).collect::<Vec<_>>(),
        shape,
        &Device::Cpu,
    )
}

/// The train step's batch (as `kinds::train` draws it) and its f64
/// reference: loss and every parameter's gradient.
fn train_reference(
    cfg: &ModelConfig,
    seed: u64,
    (b, t): (usize, usize),
    params: &mut BTreeMap<&'static str, serde_json::Value>,
) -> candle_core::Result<Vec<(String, Tensor)>> {
    use super::train as tr;
    let corpus = MarkovCorpus::for_vocab(cfg.vocab, seed);
    // The same stream as `train::prepare_step` (its seed ^ 0xBA7C): a drift
    // shows as a loss mismatch in the external worker's verification.
    let batch = corpus.batch(b, t, &mut ChaCha8Rng::seed_from_u64(seed ^ 0xBA7C));
    let (loss, grads) = tr::grad_check::f64_reference(cfg, seed, &batch, (b, t))?;
    params.insert("lr", tr::LR.into());
    params.insert("betas", serde_json::json!([0.9, 0.95]));
    params.insert("adam_eps", 1e-8.into());
    params.insert("weight_decay", 0.1.into());
    let mut out = vec![
        ("inputs".to_string(), tokens(&batch.0, (b, t))?),
        ("targets".to_string(), tokens(&batch.1, (b, t))?),
        ("loss".to_string(), Tensor::new(&[loss], &Device::Cpu)?),
    ];
    for (name, g) in grads {
        if let Some(g) = g {
            let shape = init_shape(cfg, &name);
            out.push((
                format!("grad.{name}"),
                Tensor::from_vec(g, shape, &Device::Cpu)?.to_dtype(CDType::F32)?,
            ));
        }
    }
    Ok(out)
}

fn init_shape(cfg: &ModelConfig, name: &str) -> Vec<usize> {
    crate::models::params::param_specs(cfg)
        .into_iter()
        .find(|s| s.name == name)
        .map(|s| s.shape)
        .expect("gradients are named after parameters")
}

/// Decode's depth and prompt tokens (as `kinds::decode` draws them), a
/// continuation for teacher-forced checking, and the reference logits of
/// the first sequence from its last prompt position on.
fn decode_reference(
    cfg: &ModelConfig,
    seed: u64,
    (b, depth, prompt, gen_tokens): (usize, usize, usize, usize),
) -> candle_core::Result<Vec<(String, Tensor)>> {
    let corpus = MarkovCorpus::for_vocab(cfg.vocab, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xDEC0);
    let mut all = Vec::new();
    for _ in 0..b {
        all.extend(corpus.sample(depth + prompt, &mut rng));
    }
    let (mut d, mut p) = (Vec::new(), Vec::new());
    for row in all.chunks(depth + prompt) {
        d.extend_from_slice(&row[..depth]);
        p.extend_from_slice(&row[depth..]);
    }
    // Checked on a fixed continuation (not the engine's own greedy choice),
    // so every engine is compared on the same tokens through its KV cache.
    let checked_gen = gen_tokens.clamp(1, 16);
    let mut seq: Vec<u32> = all[..depth + prompt].to_vec();
    seq.extend(corpus.sample(checked_gen, &mut ChaCha8Rng::seed_from_u64(seed ^ 0xC0DE)));
    let from = depth + prompt - 1;
    let logits = Model::streamed_reference_logits(cfg, seed, &seq, from)?;
    let rows = logits.len();
    let flat: Vec<f32> = logits.into_iter().flatten().collect();
    Ok(vec![
        ("depth".to_string(), tokens(&d, (b, depth))?),
        ("prompt".to_string(), tokens(&p, (b, prompt))?),
        ("check_tokens".to_string(), tokens(&seq, (1, seq.len()))?),
        (
            "check_logits".to_string(),
            Tensor::from_vec(flat, (rows, cfg.vocab), &Device::Cpu)?,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(p: &Path) -> std::collections::HashMap<String, Tensor> {
        candle_core::safetensors::load(p, &Device::Cpu).unwrap()
    }

    #[test]
    fn a_train_step_gets_weights_batch_and_every_gradient() {
        let dir = tempfile::tempdir().unwrap();
        let spec = WorkloadSpec::parse("train-step/dense-tiny/f32").unwrap();
        let files = write(&spec, dir.path()).unwrap();
        let w = load(&files["weights"]);
        let r = load(&files["reference"]);
        let cfg = crate::models::shape("dense-tiny").unwrap();
        for s in crate::models::params::param_specs(&cfg) {
            assert_eq!(w[&s.name].dims(), s.shape.as_slice(), "{}", s.name);
            assert_eq!(r[&format!("grad.{}", s.name)].dims(), s.shape.as_slice());
        }
        assert_eq!(r["inputs"].dtype(), CDType::I64);
        let loss: Vec<f64> = r["loss"].to_vec1().unwrap();
        assert!(loss[0].is_finite() && loss[0] > 0.0);
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&files["inputs"]).unwrap()).unwrap();
        assert_eq!(j["model"]["layers"].as_array().unwrap().len(), cfg.n_layers);
        assert_eq!(j["params"]["loss_tolerance"], 1e-5);
    }

    #[test]
    fn decode_gets_its_tokens_and_reference_logits() {
        let dir = tempfile::tempdir().unwrap();
        let spec = WorkloadSpec::parse("decode/dense-tiny/f16").unwrap();
        let files = write(&spec, dir.path()).unwrap();
        let r = load(&files["reference"]);
        let (rows, vocab) = r["check_logits"].dims2().unwrap();
        let (_, len) = r["check_tokens"].dims2().unwrap();
        let (_, prompt) = r["prompt"].dims2().unwrap();
        let (_, depth) = r["depth"].dims2().unwrap();
        assert_eq!(vocab, crate::models::shape("dense-tiny").unwrap().vocab);
        assert_eq!(rows, len - (depth + prompt - 1));
    }

    #[test]
    fn other_families_and_kinds_are_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["train-step/moe-mla-tiny/f32", "kernel/gemm-f32-8"] {
            let spec = WorkloadSpec::parse(name).unwrap();
            assert!(
                matches!(
                    write(&spec, dir.path()),
                    Err(WorkloadError::Unsupported { .. })
                ),
                "{name}"
            );
        }
    }
}
