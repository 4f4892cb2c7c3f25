//! `prefill/…` and `decode/…`: a prompt after `depth` cached tokens, then
//! greedy generation with the KV cache, at any batch size and weight format
//! (f32, f16, bf16, q8_0, q4_0). Verified before timing against the CPU f32
//! model on the same tokens: max logit difference, mean KL, top-1 agreement.
//! `decode/gguf/<format>` runs the same on a user's GGUF file (`--model`),
//! verified against that file's weights dequantized to f32 on the CPU.

#[cfg(feature = "llamacpp")]
pub mod llamacpp;
#[cfg(feature = "wgpu")]
pub mod wgpu;

use std::time::Instant;

use candle_core::{D, DType as CDType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::api::{IterReport, PrepareOptions, PreparedWorkload, WeightsRecord, WorkPerIter};
use crate::backend::{Backend, DeviceRecord, candle as cb};
use crate::data::MarkovCorpus;
use crate::error::{Result, WorkloadError, cerr};
use crate::models::cache::{self, CacheKey};
use crate::models::fused::FusedDecoder;
use crate::models::gguf::{GgufFile, weight_format};
use crate::models::{Cache, Model, ModelConfig};
use crate::spec::{DecodeParams, GGUF_MODEL, WeightFmt, WorkloadSpec};
use crate::verify::Verification;

pub struct Decode {
    backend: Backend,
    cfg: ModelConfig,
    seed: u64,
    format: WeightFmt,
    /// `decode/gguf/…`: the file the model and its reference come from.
    file: Option<GgufFile>,
    model: Model,
    /// The synthetic model's weights as the cache hashed them.
    weights: Option<WeightsRecord>,
    /// One sequence of a dense GQA model on the CPU runs the fused path
    /// (`models::fused`): its prompt as a fused prefill, then fused steps.
    fused: Option<FusedDecoder>,
    /// Cache after the `depth` context tokens (cloned per iteration).
    depth_cache: Cache,
    depth_tokens: Vec<u32>,  // (B·depth)
    prompt_tokens: Vec<u32>, // (B·P)
    prompt: Tensor,          // (B, P)
    batch: usize,
    gen_tokens: usize,
    work: WorkPerIter,
}

/// Prepares a decode or prefill workload; `opts.model_file` is `--model`,
/// needed by (and only by) `decode/gguf/…`; a synthetic model comes from
/// the model cache in `opts.model_cache` when one is given.
pub fn prepare(
    spec: &WorkloadSpec,
    p: &DecodeParams,
    backend: &Backend,
    opts: &PrepareOptions,
) -> Result<Box<dyn PreparedWorkload>> {
    let model_file = opts.model_file.as_deref();
    let (model, format) = (&p.model, &p.format);
    let (prompt, gen_tokens, batch, depth) = (&p.prompt, &p.gen_tokens, &p.batch, &p.depth);
    let device = cb::device(backend)?;
    let e = |op| cerr(backend, op);
    let mut weights = None;
    let (cfg, m, file, work) = if model == GGUF_MODEL {
        let path = model_file.ok_or_else(|| WorkloadError::Unsupported {
            workload: spec.name.clone(),
            backend: backend.to_string(),
            reason: "decode/gguf/… runs the file given by --model FILE.gguf, and none was given"
                .into(),
        })?;
        let f = GgufFile::open(path)?;
        if f.format != *format {
            return Err(WorkloadError::Unsupported {
                workload: spec.name.clone(),
                backend: backend.to_string(),
                reason: format!(
                    "{} is stored as {}; run decode/gguf/{}",
                    path.display(),
                    f.format.as_str(),
                    f.format.as_str()
                ),
            });
        }
        let m = f.load(&device, weight_format(*format))?;
        let work = crate::cost::work::decode_work(spec, &f.cfg, f.decode_weight_bytes);
        (f.cfg.clone(), m, Some(f), work)
    } else {
        let cfg = crate::models::shape(model).expect("validated model name");
        let key = cache_key(spec).expect("a synthetic decode model");
        let cached = opts
            .model_cache
            .as_deref()
            .map(|dir| cache::load_or_build(&key, dir, &device));
        let m = match cached {
            Some(Ok((m, w))) => {
                weights = Some(w);
                m
            }
            other => {
                if let Some(Err(why)) = other {
                    weights = Some(WeightsRecord::uncached(why));
                }
                // Tensor by tensor: a 7B model in q4_0 never exists in f32 at once.
                Model::generated(&cfg, spec.seed, &device, weight_format(*format))
                    .map_err(e("build model"))?
            }
        };
        (cfg, m, None, crate::cost::work::of(spec))
    };
    let (depth_tokens, prompt_tokens) = sample_tokens(&cfg, spec.seed, *batch, *depth, *prompt);
    let mut depth_cache = Cache::new(cfg.n_layers);
    if *depth > 0 {
        let d = Tensor::from_vec(depth_tokens.clone(), (*batch, *depth), &device)
            .map_err(e("upload context"))?;
        m.forward_last(&d, Some(&mut depth_cache))
            .map_err(e("prefill context"))?;
    }
    let prompt_t = Tensor::from_vec(prompt_tokens.clone(), (*batch, *prompt), &device)
        .map_err(e("upload prompt"))?;
    cb::synchronize(backend, &device)?;
    // CAPBENCH_FUSED_DECODE=0 keeps candle's step, to compare the two on
    // one machine (development only, as CAPBENCH_Q4_KERNEL).
    let fused = if *batch == 1 && std::env::var("CAPBENCH_FUSED_DECODE").as_deref() != Ok("0") {
        FusedDecoder::new(&m).map_err(e("prepare fused decode"))?
    } else {
        None
    };
    Ok(Box::new(Decode {
        weights,
        fused,
        backend: *backend,
        cfg,
        seed: spec.seed,
        format: *format,
        file,
        model: m,
        depth_cache,
        depth_tokens,
        prompt_tokens,
        prompt: prompt_t,
        batch: *batch,
        gen_tokens: *gen_tokens,
        work,
    }))
}

/// The model cache entry a decode or prefill case of a synthetic model
/// loads (`None` for other workloads and for `decode/gguf/…`).
pub fn cache_key(spec: &WorkloadSpec) -> Option<CacheKey> {
    let crate::spec::Typed::Decode(p) = spec.params.typed() else {
        return None;
    };
    Some(CacheKey {
        cfg: crate::models::shape(&p.model)?,
        seed: spec.seed,
        format: p.format,
        workload_version: spec.version,
    })
}

/// The context and prompt tokens of every sequence, (B·depth) and (B·P),
/// from the workload's seeded corpus: the same on every engine.
pub(crate) fn sample_tokens(
    cfg: &ModelConfig,
    seed: u64,
    batch: usize,
    depth: usize,
    prompt: usize,
) -> (Vec<u32>, Vec<u32>) {
    let corpus = MarkovCorpus::for_vocab(cfg.vocab, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xDEC0);
    let mut depth_tokens = Vec::new();
    let mut prompt_tokens = Vec::new();
    for _ in 0..batch {
        let s = corpus.sample(depth + prompt, &mut rng);
        depth_tokens.extend_from_slice(&s[..depth]);
        prompt_tokens.extend_from_slice(&s[depth..]);
    }
    (depth_tokens, prompt_tokens)
}

/// Greedy next tokens from the last position: logits (B, T, V) → (B, 1).
fn greedy(logits: &Tensor) -> candle_core::Result<Tensor> {
    let t = logits.dim(1)?;
    logits.narrow(1, t - 1, 1)?.argmax(D::Minus1)
}

impl Decode {
    /// Prefill then generate; `keep` collects the last-position logits of
    /// every step (host f32, (B, V) each) for verification.
    fn generate(
        &self,
        mut keep: Option<&mut Vec<Vec<Vec<f32>>>>,
    ) -> candle_core::Result<(f64, Vec<f64>, Vec<Vec<u32>>)> {
        if let Some(f) = &self.fused {
            return self.generate_fused(f, keep);
        }
        let mut cache = self.depth_cache.clone();
        let mut tokens: Vec<Vec<u32>> = vec![vec![]; self.batch];
        let t0 = Instant::now();
        let logits = self.model.forward_last(&self.prompt, Some(&mut cache))?;
        let mut next = greedy(&logits)?; // (B, 1)
        let host: Vec<Vec<u32>> = next.to_vec2()?; // also waits for the device
        let prefill_s = t0.elapsed().as_secs_f64();
        if let Some(k) = keep.as_mut() {
            k.push(last_rows(&logits)?);
        }
        for (b, row) in host.iter().enumerate() {
            tokens[b].push(row[0]);
        }
        let mut itl = Vec::with_capacity(self.gen_tokens);
        for _ in 0..self.gen_tokens {
            let ts = Instant::now();
            let logits = self.model.forward_last(&next, Some(&mut cache))?;
            next = greedy(&logits)?;
            let host: Vec<Vec<u32>> = next.to_vec2()?;
            itl.push(ts.elapsed().as_secs_f64());
            if let Some(k) = keep.as_mut() {
                k.push(last_rows(&logits)?);
            }
            for (b, row) in host.iter().enumerate() {
                tokens[b].push(row[0]);
            }
        }
        Ok((prefill_s, itl, tokens))
    }
}

impl Decode {
    /// `generate` for one sequence on the fused path: the context's cache
    /// handed over from candle's, the prompt as one fused prefill (its
    /// time includes the handover), then the fused steps.
    fn generate_fused(
        &self,
        f: &FusedDecoder,
        mut keep: Option<&mut Vec<Vec<Vec<f32>>>>,
    ) -> candle_core::Result<(f64, Vec<f64>, Vec<Vec<u32>>)> {
        let t0 = Instant::now();
        let cap = self.depth_cache.len + self.prompt_tokens.len() + self.gen_tokens;
        let mut st = f.start(&self.depth_cache, cap)?;
        f.prefill(&mut st, &self.prompt_tokens)?;
        let mut tok = argmax(&st.logits) as u32;
        let prefill_s = t0.elapsed().as_secs_f64();
        if let Some(k) = keep.as_mut() {
            k.push(vec![st.logits.clone()]);
        }
        let mut tokens = vec![tok];
        let mut itl = Vec::with_capacity(self.gen_tokens);
        for _ in 0..self.gen_tokens {
            let ts = Instant::now();
            f.step(&mut st, tok)?;
            tok = argmax(&st.logits) as u32;
            itl.push(ts.elapsed().as_secs_f64());
            if let Some(k) = keep.as_mut() {
                k.push(vec![st.logits.clone()]);
            }
            tokens.push(tok);
        }
        Ok((prefill_s, itl, vec![tokens]))
    }
}

fn last_rows(logits: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
    let t = logits.dim(1)?;
    logits
        .narrow(1, t - 1, 1)?
        .squeeze(1)?
        .to_dtype(CDType::F32)?
        .to_vec2()
}

fn softmax_host(x: &[f32]) -> Vec<f64> {
    let m = x.iter().fold(f32::MIN, |a, b| a.max(*b)) as f64;
    let e: Vec<f64> = x.iter().map(|v| (*v as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

fn argmax(x: &[f32]) -> usize {
    x.iter()
        .enumerate()
        .fold(0, |best, (i, v)| if *v > x[best] { i } else { best })
}

/// Quality of `out` logits against `reference` rows: (max abs diff, max |ref|,
/// mean KL(ref ‖ out) in nats, top-1 agreement).
pub fn logit_quality(out: &[Vec<f32>], reference: &[Vec<f32>]) -> (f64, f64, f64, f64) {
    let (mut max_abs, mut max_ref, mut kl, mut agree) = (0.0f64, 0.0f64, 0.0f64, 0usize);
    for (o, r) in out.iter().zip(reference) {
        for (a, b) in o.iter().zip(r) {
            max_abs = max_abs.max((a - b).abs() as f64);
            max_ref = max_ref.max(b.abs() as f64);
        }
        let (po, pr) = (softmax_host(o), softmax_host(r));
        kl += pr
            .iter()
            .zip(&po)
            .map(|(p, q)| {
                if *p > 0.0 {
                    p * (p / q.max(1e-300)).ln()
                } else {
                    0.0
                }
            })
            .sum::<f64>();
        agree += (argmax(o) == argmax(r)) as usize;
    }
    let n = out.len().max(1) as f64;
    (max_abs, max_ref, kl / n, agree as f64 / n)
}

/// Pass criterion per format, as a bound on the mean KL divergence of the
/// next-token distributions (nats). f32 must also match the f32 reference's
/// logits to rounding. Top-1 agreement is recorded but not judged: the
/// synthetic models' distributions have near-ties that flip under any
/// rounding, so it measures the weights more than the backend.
fn kl_bound(f: WeightFmt) -> f64 {
    match f {
        WeightFmt::F32 => 1e-6,
        WeightFmt::F16 | WeightFmt::Bf16 | WeightFmt::Q8_0 => 0.01,
        WeightFmt::Q4_0 => 0.1,
    }
}

/// What a decode case's logits are checked against, whatever engine ran
/// them: the CPU f32 model (or the GGUF file's weights dequantized to f32),
/// teacher-forced on the same tokens.
pub(crate) struct Reference<'a> {
    pub backend: &'a Backend,
    pub cfg: &'a ModelConfig,
    pub seed: u64,
    pub format: WeightFmt,
    pub file: Option<&'a GgufFile>,
    pub depth_tokens: &'a [u32],
    pub prompt_tokens: &'a [u32],
    pub batch: usize,
    pub gen_tokens: usize,
}

impl Reference<'_> {
    /// Judges `rows` (per step, per sequence: the last-position logits of
    /// the prompt, then of each generated step) given the generated
    /// `tokens`, with the per-format tolerances.
    pub(crate) fn check(
        &self,
        rows: &[Vec<Vec<f32>>],
        tokens: &[Vec<u32>],
    ) -> Result<Verification> {
        let e = |op| cerr(self.backend, op);
        // Reference: the CPU f32 model, teacher-forced on the same tokens,
        // one layer in memory at a time (so it works for any shape).
        let (p_len, d_len) = (
            self.prompt_tokens.len() / self.batch,
            self.depth_tokens.len() / self.batch,
        );
        let mut out_rows = Vec::new();
        let mut ref_rows = Vec::new();
        for b in 0..self.batch {
            let mut seq: Vec<u32> = self.depth_tokens[b * d_len..(b + 1) * d_len].to_vec();
            seq.extend_from_slice(&self.prompt_tokens[b * p_len..(b + 1) * p_len]);
            seq.extend_from_slice(&tokens[b][..self.gen_tokens]); // the inputs of the G steps
            let from = d_len + p_len - 1;
            let logits = match &self.file {
                Some(f) => Model::streamed_reference_logits_from(
                    &f.cfg,
                    &f.source(&Device::Cpu)?,
                    &seq,
                    from,
                ),
                None => Model::streamed_reference_logits(self.cfg, self.seed, &seq, from),
            }
            .map_err(e("reference forward"))?;
            for (step, r) in rows.iter().enumerate() {
                out_rows.push(r[b].clone());
                ref_rows.push(logits[step].clone());
            }
        }
        let (max_abs, max_ref, kl, top1) = logit_quality(&out_rows, &ref_rows);
        let kl_tol = kl_bound(self.format);
        let scaled = max_abs / max_ref.max(1e-30);
        let finite = out_rows.iter().flatten().filter(|v| !v.is_finite()).count() as u64;
        let scaled_tol = if self.format == WeightFmt::F32 {
            1e-4
        } else {
            f64::INFINITY
        };
        Ok(Verification {
            passed: finite == 0 && kl <= kl_tol && scaled <= scaled_tol,
            reference: match &self.file {
                Some(f) => format!(
                    "{}: its weights dequantized to f32, run on the CPU, teacher-forced on the same tokens",
                    f.path.display()
                ),
                None => "CPU f32 model, teacher-forced on the same tokens".into(),
            },
            elements_checked: out_rows.iter().map(|r| r.len() as u64).sum(),
            max_abs_diff: max_abs,
            max_rel_diff: scaled,
            scaled_max_diff: scaled,
            tolerance: if self.format == WeightFmt::F32 {
                scaled_tol
            } else {
                kl_tol
            },
            nan_or_inf: finite,
            mean_kl: Some(kl),
            top1_agreement: Some(top1),
            note: format!(
                "{} positions; pass: mean KL ≤ {kl_tol:.0e} nats{}",
                out_rows.len(),
                if self.format == WeightFmt::F32 {
                    " and scaled max logit diff ≤ 1e-4"
                } else {
                    ""
                }
            ),
        })
    }
}

impl PreparedWorkload for Decode {
    fn verify(&mut self) -> Result<Verification> {
        let mut rows = Vec::new();
        let (_, _, tokens) = self
            .generate(Some(&mut rows))
            .map_err(cerr(&self.backend, "generate"))?;
        Reference {
            backend: &self.backend,
            cfg: &self.cfg,
            seed: self.seed,
            format: self.format,
            file: self.file.as_ref(),
            depth_tokens: &self.depth_tokens,
            prompt_tokens: &self.prompt_tokens,
            batch: self.batch,
            gen_tokens: self.gen_tokens,
        }
        .check(&rows, &tokens)
    }

    fn run_iter(&mut self) -> Result<IterReport> {
        let (prefill_s, itl, _) = self
            .generate(None)
            .map_err(cerr(&self.backend, "generate"))?;
        Ok(iter_report(
            self.prompt_tokens.len(),
            self.gen_tokens,
            prefill_s,
            &itl,
        ))
    }

    fn work(&self) -> WorkPerIter {
        self.work
    }

    fn device(&self) -> DeviceRecord {
        cb::record(&self.backend)
    }

    fn timer(&self) -> &'static str {
        "wall_clock_after_host_readback"
    }

    fn weights(&self) -> Option<WeightsRecord> {
        self.weights.clone()
    }
}

/// One decode iteration's report: time to first token and prefill rate from
/// the prompt, one `itl_s` per generated token; the timed figure is the
/// decode time (the prefill alone when nothing is generated). Shared by the
/// candle and wgpu decode workloads so both record the same metrics.
pub(crate) fn iter_report(
    prompt_tokens: usize,
    gen_tokens: usize,
    prefill_s: f64,
    itl_s: &[f64],
) -> IterReport {
    let mut extras = vec![
        ("ttft_s", prefill_s),
        ("prefill_s", prefill_s),
        ("prefill_tokens_per_s", prompt_tokens as f64 / prefill_s),
    ];
    extras.extend(itl_s.iter().map(|t| ("itl_s", *t)));
    let timed = if gen_tokens == 0 {
        prefill_s
    } else {
        itl_s.iter().sum()
    };
    IterReport {
        timed_s: Some(timed),
        extras,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn prepare_on_cpu(
        spec: &WorkloadSpec,
        model_file: Option<&Path>,
    ) -> Result<Box<dyn PreparedWorkload>> {
        let opts = crate::PrepareOptions {
            model_file: model_file.map(Path::to_path_buf),
            ..Default::default()
        };
        crate::registry::prepare_with(spec, &Backend::Cpu, &opts)
    }

    #[test]
    fn quality_is_perfect_for_the_reference_itself() {
        let r = vec![vec![1.0f32, 2.0, 0.5], vec![0.0, -1.0, 3.0]];
        let (max_abs, _, kl, top1) = logit_quality(&r, &r);
        assert_eq!((max_abs, kl, top1), (0.0, 0.0, 1.0));
        let flipped = vec![vec![2.0f32, 1.0, 0.5], vec![0.0, -1.0, 3.0]];
        let (_, _, kl, top1) = logit_quality(&flipped, &r);
        assert!(kl > 0.0 && top1 == 0.5);
    }

    /// Every family and format verifies against the f32 reference, with
    /// batch > 1 and a cached context depth.
    #[test]
    fn every_family_and_format_decodes_and_verifies() {
        for fam in ["dense", "moe-mla", "openelm"] {
            for fmt in ["f32", "bf16", "q8_0", "q4_0"] {
                let spec =
                    WorkloadSpec::parse(&format!("decode/{fam}-tiny/{fmt}/p8g4b2d4")).unwrap();
                let mut w = prepare_on_cpu(&spec, None).unwrap();
                let v = w.verify().unwrap();
                assert!(v.passed, "{fam} {fmt}: {v:?}");
                let r = w.run_iter().unwrap();
                assert_eq!(r.extras.iter().filter(|(k, _)| *k == "itl_s").count(), 4);
            }
        }
    }

    /// One sequence of a dense GQA model decodes through the fused step:
    /// every format still verifies against the f32 reference.
    #[test]
    fn single_sequences_verify_in_every_format() {
        for fam in ["dense", "openelm"] {
            for fmt in ["f32", "f16", "bf16", "q8_0", "q4_0"] {
                let spec = WorkloadSpec::parse(&format!("decode/{fam}-tiny/{fmt}/p8g4d4")).unwrap();
                let mut w = prepare_on_cpu(&spec, None).unwrap();
                let v = w.verify().unwrap();
                assert!(v.passed, "{fam} {fmt}: {v:?}");
                let r = w.run_iter().unwrap();
                assert_eq!(r.extras.iter().filter(|(k, _)| *k == "itl_s").count(), 4);
            }
        }
    }

    /// Through the model cache: the first prepare builds the entry, the
    /// next loads it; both verify, with the same weights hash.
    #[test]
    fn cached_models_verify_and_hash_alike() {
        let dir = tempfile::tempdir().unwrap();
        let spec = WorkloadSpec::parse("decode/dense-tiny/q4_0/p8g4").unwrap();
        let opts = crate::PrepareOptions {
            model_cache: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let mut hashes = vec![];
        for want in ["built", "hit"] {
            let mut w = crate::registry::prepare_with(&spec, &Backend::Cpu, &opts).unwrap();
            let rec = w.weights().unwrap();
            assert_eq!(rec.cache, want, "{rec:?}");
            hashes.push(rec.sha256.unwrap());
            assert!(w.verify().unwrap().passed);
        }
        assert_eq!(hashes[0], hashes[1]);
        // Without a cache the model is built in memory and not hashed.
        let w = prepare_on_cpu(&spec, None).unwrap();
        assert!(w.weights().is_none());
    }

    /// A cache entry that holds other weights than its key's (its hashes
    /// consistent, so it loads) fails verification: the reference is drawn
    /// from the seed and never reads the cache.
    #[test]
    fn verification_fails_a_cached_model_of_other_weights() {
        let dir = tempfile::tempdir().unwrap();
        let spec = WorkloadSpec::parse("decode/dense-tiny/q8_0/p8g4").unwrap();
        let key = cache_key(&spec).unwrap();
        cache::write_entry(&key, spec.seed + 1, dir.path()).unwrap();
        let opts = crate::PrepareOptions {
            model_cache: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let mut w = crate::registry::prepare_with(&spec, &Backend::Cpu, &opts).unwrap();
        assert_eq!(w.weights().unwrap().cache, "hit");
        let v = w.verify().unwrap();
        assert!(!v.passed, "{v:?}");
    }

    /// `decode/gguf/…` on an exported file: verifies against the file's f32
    /// weights, reports the file's own weight bytes, refuses a name whose
    /// format is not the file's.
    #[test]
    fn decodes_a_gguf_file() {
        // A scratch folder removed on drop, so no run of this test leaves one behind.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny-q4_0.gguf");
        let cfg = crate::models::shape("dense-tiny").unwrap();
        crate::models::gguf::export(&cfg, 5, WeightFmt::Q4_0, &path).unwrap();
        let spec = WorkloadSpec::parse("decode/gguf/q4_0/p8g4b2d4").unwrap();
        let mut w = prepare_on_cpu(&spec, Some(&path)).unwrap();
        let v = w.verify().unwrap();
        assert!(v.passed, "{v:?}");
        assert!(v.reference.contains("tiny-q4_0.gguf"), "{}", v.reference);
        assert!(
            v.mean_kl.unwrap() > 0.0,
            "q4_0 vs its f32 dequantization: {v:?}"
        );
        let r = w.run_iter().unwrap();
        assert_eq!(r.extras.iter().filter(|(k, _)| *k == "itl_s").count(), 4);
        let work = w.work();
        assert!(
            work.bytes > 4.0 * crate::cost::work::decode_weight_bytes(&cfg, WeightFmt::Q4_0) * 0.99
        );
        let wrong = WorkloadSpec::parse("decode/gguf/q8_0/p8g4").unwrap();
        let e = prepare_on_cpu(&wrong, Some(&path)).err().unwrap();
        assert!(e.to_string().contains("stored as q4_0"), "{e}");
        let e = prepare_on_cpu(&spec, None).err().unwrap();
        assert!(e.to_string().contains("--model"), "{e}");
    }
}
