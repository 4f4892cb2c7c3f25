//! `decode/…` and `prefill/…` on llama.cpp (`--backend llamacpp`): the same
//! prompt after the same `depth` cached tokens, the same greedy steps and
//! metrics as capbench's own decode, run by llama.cpp on a GGUF file — the
//! user's (`decode/gguf/…`) or the synthetic model written by capbench's
//! exporter. Verified before timing against the same CPU f32 reference as
//! every other backend, which also checks capbench's GGUF reader against
//! llama.cpp's.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::{Reference, argmax, iter_report, sample_tokens};
use crate::api::{IterReport, PreparedWorkload, WeightsRecord, WorkPerIter};
use crate::backend::{Backend, DeviceRecord, llamacpp};
use crate::device::LlamaOffload;
use crate::error::{Result, WorkloadError};
use crate::models::gguf::GgufFile;
use crate::models::{Family, ModelConfig};
use crate::spec::{DecodeParams, GGUF_MODEL, WeightFmt, WorkloadSpec};
use crate::verify::Verification;

/// A synthetic model's GGUF, written for this process and removed with it.
struct ScratchFile(PathBuf);

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

pub struct LlamaDecode {
    offload: LlamaOffload,
    // Declared before the model: fields drop in order, and the context
    // must go before the model it borrows.
    ctx: LlamaContext<'static>,
    batch_buf: LlamaBatch<'static>,
    cfg: ModelConfig,
    seed: u64,
    format: WeightFmt,
    file: Option<GgufFile>,
    _scratch: Option<ScratchFile>,
    /// The exported file's hash and cache record (synthetic models).
    weights: Option<WeightsRecord>,
    depth_tokens: Vec<u32>,
    prompt_tokens: Vec<u32>,
    batch: usize,
    depth: usize,
    gen_tokens: usize,
    threads: usize,
    /// llama.cpp settings that differ by case, for the device record.
    settings: Vec<String>,
    work: WorkPerIter,
}

fn failed(op: &'static str, e: impl std::fmt::Display) -> WorkloadError {
    WorkloadError::LlamaCpp {
        op,
        message: e.to_string(),
    }
}

/// Writes the synthetic model as the GGUF llama.cpp reads (the exporter of
/// `capbench export-gguf`), in a folder of its own under the system's
/// temporary directory; removed when the case ends. Only where the model
/// cache cannot be used: a run's workers share the cache's one export.
fn export_scratch(cfg: &ModelConfig, seed: u64, format: WeightFmt) -> Result<ScratchFile> {
    let dir = std::env::temp_dir().join(format!(
        "capbench-llamacpp-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| {
        failed(
            "writing the model's GGUF",
            format!("{}: {e}", dir.display()),
        )
    })?;
    let path = dir.join(format!("{}-{}.gguf", cfg.name, format.as_str()));
    let scratch = ScratchFile(path.clone());
    crate::models::gguf::export(cfg, seed, format, &path)?;
    Ok(scratch)
}

/// Prepares the case: the model file opened by llama.cpp, a context sized
/// for the whole sequence, the `depth` context decoded once (kept in the KV
/// cache; every iteration drops what came after it).
pub fn prepare(
    spec: &WorkloadSpec,
    p: &DecodeParams,
    offload: LlamaOffload,
    model_file: Option<&Path>,
    model_cache: Option<&Path>,
) -> Result<Box<dyn PreparedWorkload>> {
    let backend = Backend::LlamaCpp(offload);
    let mut weights = None;
    let (file, scratch, cfg, path, work) = if p.model == GGUF_MODEL {
        let path = model_file.ok_or_else(|| WorkloadError::Unsupported {
            workload: spec.name.clone(),
            backend: backend.to_string(),
            reason: "decode/gguf/… runs the file given by --model FILE.gguf, and none was given"
                .into(),
        })?;
        let f = GgufFile::open(path)?;
        if f.format != p.format {
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
        let work = crate::cost::work::decode_work(spec, &f.cfg, f.decode_weight_bytes);
        let cfg = f.cfg.clone();
        (Some(f), None, cfg, path.to_path_buf(), work)
    } else {
        let cfg = crate::models::shape(&p.model).expect("validated model name");
        let key = super::cache_key(spec).expect("a synthetic decode model");
        let cached = model_cache.map(|dir| crate::models::cache::export::exported(&key, dir));
        let (path, scratch) = match cached {
            Some(Ok((path, w))) => {
                weights = Some(w);
                (path, None)
            }
            other => {
                if let Some(Err(why)) = other {
                    weights = Some(WeightsRecord::uncached(why));
                }
                let s = export_scratch(&cfg, spec.seed, p.format)?;
                (s.0.clone(), Some(s))
            }
        };
        (None, scratch, cfg, path, crate::cost::work::of(spec))
    };
    // One case per worker process: the model lives as long as the process,
    // so the context can borrow it for 'static.
    let model: &'static LlamaModel = Box::leak(Box::new(llamacpp::open_model(offload, &path)?));
    let (depth_tokens, prompt_tokens) = sample_tokens(&cfg, spec.seed, p.batch, p.depth, p.prompt);
    let per_seq = p.depth + p.prompt + p.gen_tokens;
    let threads = crate::backend::candle::default_threads();
    let n_batch = (p.batch * p.depth.max(p.prompt)).max(p.batch).max(32) as u32;
    let mut cp = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new((p.batch * per_seq + 16) as u32))
        .with_n_batch(n_batch)
        .with_n_ubatch(n_batch)
        .with_n_seq_max(p.batch as u32)
        .with_kv_unified(true)
        .with_n_threads(threads as i32)
        .with_n_threads_batch(threads as i32);
    let mut settings = vec![
        format!("n_batch={n_batch}"),
        "kv_cache=f16, flash_attn=auto (llama.cpp's defaults)".to_string(),
    ];
    if p.format == WeightFmt::F32 {
        settings[1] = "kv_cache=f32, flash_attn=disabled (f32 is checked to rounding)".into();
        // f32 weights are checked to rounding against the f32 reference:
        // keep llama.cpp's KV cache in f32 too (its default is f16), and
        // its attention unfused (the CPU flash-attention kernel rounds
        // through f16).
        cp = cp
            .with_type_k(KvCacheType::F32)
            .with_type_v(KvCacheType::F32)
            .with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED);
    }
    let ctx = model
        .new_context(llamacpp::backend(offload)?, cp)
        .map_err(|e| failed("context", e))?;
    let mut w = LlamaDecode {
        offload,
        ctx,
        batch_buf: LlamaBatch::new(n_batch as usize, p.batch as i32),
        cfg,
        seed: spec.seed,
        format: p.format,
        file,
        _scratch: scratch,
        weights,
        depth_tokens,
        prompt_tokens,
        batch: p.batch,
        depth: p.depth,
        gen_tokens: p.gen_tokens,
        threads,
        settings,
        work,
    };
    if p.depth > 0 {
        let depth = w.depth_tokens.clone();
        w.feed(&depth, 0, false)?;
    }
    Ok(Box::new(w))
}

/// Whether llama.cpp runs this workload: dense models (the exporter writes
/// those) and GGUF files.
pub fn supports(p: &DecodeParams) -> std::result::Result<(), String> {
    if p.model == GGUF_MODEL {
        return Ok(());
    }
    match crate::models::shape(&p.model) {
        Some(c) if c.family == Family::Dense => Ok(()),
        _ => Err(
            "llama.cpp runs the dense (llama) shapes and GGUF files; capbench's exporter writes no GGUF for this family"
                .into(),
        ),
    }
}

impl LlamaDecode {
    /// Decodes `tokens` ((B·n), n per sequence) starting at position `pos`
    /// of every sequence; with `logits` the last position of each sequence
    /// returns its logits, else none do.
    fn feed(&mut self, tokens: &[u32], pos: usize, logits: bool) -> Result<()> {
        let n = tokens.len() / self.batch;
        self.batch_buf.clear();
        for b in 0..self.batch {
            for (i, t) in tokens[b * n..(b + 1) * n].iter().enumerate() {
                self.batch_buf
                    .add(
                        LlamaToken(*t as i32),
                        (pos + i) as i32,
                        &[b as i32],
                        logits && i + 1 == n,
                    )
                    .map_err(|e| failed("batch", e))?;
            }
        }
        self.ctx
            .decode(&mut self.batch_buf)
            .map_err(|e| failed("decode", e))
    }

    /// The logits of sequence `b` from the last `feed` (one row per sequence
    /// was asked for, in sequence order).
    fn logits(&self, b: usize, n: usize) -> Vec<f32> {
        self.ctx.get_logits_ith((b * n + n - 1) as i32).to_vec()
    }

    /// Prefill then generate, as capbench's own decode: `keep` collects
    /// the last-position logits of every step, (B, V) each.
    fn generate(
        &mut self,
        mut keep: Option<&mut Vec<Vec<Vec<f32>>>>,
    ) -> Result<(f64, Vec<f64>, Vec<Vec<u32>>)> {
        // Back to the state after the context: drop every later position.
        self.ctx
            .clear_kv_cache_seq(None, Some(self.depth as u32), None)
            .map_err(|e| failed("KV cache", e))?;
        let p_len = self.prompt_tokens.len() / self.batch;
        let prompt = self.prompt_tokens.clone();
        let t0 = Instant::now();
        self.feed(&prompt, self.depth, true)?;
        let mut rows: Vec<Vec<f32>> = (0..self.batch).map(|b| self.logits(b, p_len)).collect();
        let mut next: Vec<u32> = rows.iter().map(|r| argmax(r) as u32).collect();
        let prefill_s = t0.elapsed().as_secs_f64();
        let mut tokens: Vec<Vec<u32>> = next.iter().map(|t| vec![*t]).collect();
        let mut itl = Vec::with_capacity(self.gen_tokens);
        for step in 0..self.gen_tokens {
            if let Some(k) = keep.as_mut() {
                k.push(std::mem::take(&mut rows));
            }
            let ts = Instant::now();
            self.feed(&next, self.depth + p_len + step, true)?;
            rows = (0..self.batch).map(|b| self.logits(b, 1)).collect();
            next = rows.iter().map(|r| argmax(r) as u32).collect();
            itl.push(ts.elapsed().as_secs_f64());
            for (b, t) in next.iter().enumerate() {
                tokens[b].push(*t);
            }
        }
        if let Some(k) = keep.as_mut() {
            k.push(rows);
        }
        Ok((prefill_s, itl, tokens))
    }
}

impl PreparedWorkload for LlamaDecode {
    fn verify(&mut self) -> Result<Verification> {
        let mut rows = Vec::new();
        let (_, _, tokens) = self.generate(Some(&mut rows))?;
        let backend = Backend::LlamaCpp(self.offload);
        let mut v = Reference {
            backend: &backend,
            cfg: &self.cfg,
            seed: self.seed,
            format: self.format,
            file: self.file.as_ref(),
            depth_tokens: &self.depth_tokens,
            prompt_tokens: &self.prompt_tokens,
            batch: self.batch,
            gen_tokens: self.gen_tokens,
        }
        .check(&rows, &tokens)?;
        v.note = format!(
            "llama.cpp's logits from {}; {}",
            if self.file.is_some() {
                "the same file"
            } else {
                "the synthetic model exported as GGUF by capbench"
            },
            v.note
        );
        Ok(v)
    }

    fn run_iter(&mut self) -> Result<IterReport> {
        let (prefill_s, itl, _) = self.generate(None)?;
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

    fn weights(&self) -> Option<WeightsRecord> {
        self.weights.clone()
    }

    fn device(&self) -> DeviceRecord {
        let mut r = llamacpp::record(self.offload, self.threads);
        r.details.extend(self.settings.iter().cloned());
        r
    }

    fn timer(&self) -> &'static str {
        // llama_decode returns when the graph ran (GPU offload included:
        // the logits are copied to the host before it returns).
        "wall_clock_after_llama_decode"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepare_spec(name: &str, model: Option<&Path>) -> Result<Box<dyn PreparedWorkload>> {
        let spec = WorkloadSpec::parse(name).unwrap();
        let opts = crate::PrepareOptions {
            model_file: model.map(Path::to_path_buf),
            ..Default::default()
        };
        crate::registry::prepare_with(&spec, &Backend::LlamaCpp(LlamaOffload::Cpu), &opts)
    }

    /// llama.cpp's logits on capbench's exported synthetic model agree with
    /// capbench's CPU f32 reference in every format, one sequence and a
    /// batch after a cached context; the iteration reports every step.
    #[test]
    fn every_format_verifies_against_the_reference() {
        for fmt in ["f32", "f16", "bf16", "q8_0", "q4_0"] {
            for shape in ["p8g4", "p8g4b2d4"] {
                let name = format!("decode/dense-tiny/{fmt}/{shape}");
                let mut w = prepare_spec(&name, None).unwrap();
                let v = w.verify().unwrap();
                assert!(v.passed, "{name}: {v:?}");
                assert!(v.note.contains("llama.cpp"), "{}", v.note);
                let r = w.run_iter().unwrap();
                assert_eq!(r.extras.iter().filter(|(k, _)| *k == "itl_s").count(), 4);
                // A second iteration starts again from the cached context.
                let v2 = w.verify().unwrap();
                assert_eq!(v.mean_kl, v2.mean_kl, "{name}: runs must repeat");
            }
        }
    }

    /// `decode/gguf/…` runs the user's file; its reference is that file's
    /// weights; a wrong format or a missing file is refused with the fix.
    #[test]
    fn runs_a_gguf_file_and_refuses_what_it_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny-q8_0.gguf");
        let cfg = crate::models::shape("dense-tiny").unwrap();
        crate::models::gguf::export(&cfg, 9, WeightFmt::Q8_0, &path).unwrap();
        let mut w = prepare_spec("prefill/gguf/q8_0/p16", Some(&path)).unwrap();
        let v = w.verify().unwrap();
        assert!(v.passed, "{v:?}");
        assert!(v.reference.contains("tiny-q8_0.gguf"), "{}", v.reference);
        let r = w.run_iter().unwrap();
        assert!(r.timed_s.unwrap() > 0.0);
        let e = prepare_spec("decode/gguf/q4_0/p8g4", Some(&path))
            .err()
            .unwrap();
        assert!(e.to_string().contains("stored as q8_0"), "{e}");
        let e = prepare_spec("decode/gguf/q8_0/p8g4", None).err().unwrap();
        assert!(e.to_string().contains("--model"), "{e}");
        let e = prepare_spec("decode/moe-mla-tiny/q4_0/p8g4", None)
            .err()
            .unwrap();
        assert!(e.to_string().contains("dense"), "{e}");
        let e = prepare_spec("train-step/dense-tiny/f32", None)
            .err()
            .unwrap();
        assert!(e.to_string().contains("decode"), "{e}");
    }

    /// A corrupt file is an error naming it, never a crash of the worker.
    #[test]
    fn a_corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.gguf");
        std::fs::write(&path, b"GGUF not really").unwrap();
        let e = prepare_spec("decode/gguf/q4_0/p8g4", Some(&path))
            .err()
            .unwrap();
        assert!(e.to_string().contains("bad.gguf"), "{e}");
    }

    #[test]
    fn the_record_names_llama_cpp_and_its_simd() {
        let rec = crate::backend::llamacpp::record(LlamaOffload::Cpu, 2);
        assert_eq!(rec.backend, "llamacpp");
        assert!(rec.driver_info.contains("CPU"), "{rec:?}");
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            assert!(
                rec.driver_info.contains("AVX2 = 1"),
                "llama.cpp built without AVX2 on an AVX2 host: {rec:?}"
            );
        }
    }
}
