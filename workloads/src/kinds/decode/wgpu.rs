//! `prefill/<model>/<format>` and `decode/…` on wgpu: the prompt after
//! `depth` cached tokens, then greedy generation, each step one recorded
//! plan (forward against the KV cache, last-row logits, argmax on the
//! device into the next step's input). Verified against the CPU f32 model
//! teacher-forced on the same tokens, as the candle decode is. In q8_0,
//! q4_0, f16 and bf16 the linear weights are stored in that format and
//! computed in f32 (embedding and norms stay f32); the reference model's
//! linear weights are then the same stored values converted back (by
//! candle), so the comparison is the same math and keeps the f32 bounds.

use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::api::{IterReport, PreparedWorkload, WorkPerIter};
use crate::backend::wgpu::WgpuContext;
use crate::backend::wgpu::engine::{Builder, Engine, F, Ix, PlanId};
use crate::backend::wgpu::model::is_quantized;
use crate::backend::wgpu::model::{Net, Pass};
use crate::backend::wgpu::quant::{QFmt, dequantized};
use crate::backend::{Backend, DeviceRecord, WgpuSelector};
use crate::data::MarkovCorpus;
use crate::error::{Result, WorkloadError, cerr};
use crate::kinds::decode::logit_quality;
use crate::models::Model;
use crate::models::model::{Generated, TensorSource};
use crate::spec::{DecodeParams, GGUF_MODEL, WorkloadSpec};
use crate::verify::Verification;

struct WgpuDecode {
    engine: Engine,
    net: Net,
    seed: u64,
    quant: Option<QFmt>,
    prompt_plan: PlanId,
    step_plans: Vec<PlanId>,
    logits: F,
    generated: Ix,
    depth_tokens: Vec<u32>,
    prompt_tokens: Vec<u32>,
    batch: usize,
    gen_tokens: usize,
    work: WorkPerIter,
}

pub fn prepare(
    spec: &WorkloadSpec,
    p: &DecodeParams,
    selector: WgpuSelector,
    opts: &crate::PrepareOptions,
) -> Result<Box<dyn PreparedWorkload>> {
    let backend = Backend::Wgpu(selector);
    let (model, format) = (&p.model, &p.format);
    let (prompt, gen_tokens, batch, depth) = (&p.prompt, &p.gen_tokens, &p.batch, &p.depth);
    let unsupported = |reason: String| WorkloadError::Unsupported {
        workload: spec.name.clone(),
        backend: backend.to_string(),
        reason,
    };
    if model == GGUF_MODEL {
        return Err(unsupported(
            "GGUF files run on the candle backends (cpu, cuda, metal)".into(),
        ));
    }
    // None: f32.
    let quant = QFmt::of(*format);
    let cfg = crate::models::shape(model).expect("validated model name");
    if let Some(q) = quant {
        let specs = crate::models::params::param_specs(&cfg);
        if let Some(s) = specs.iter().find(|s| {
            is_quantized(s) && !s.shape[1].is_multiple_of(crate::backend::wgpu::quant::BLOCK)
        }) {
            return Err(unsupported(format!(
                "{} weights are stored in rows of 32 and {} has {} columns",
                q.as_str(),
                s.name,
                s.shape[1]
            )));
        }
    }
    let (b, p, g, d) = (*batch, *prompt, *gen_tokens, *depth);
    let ctx_len = d + p + g;
    if ctx_len > cfg.max_context {
        return Err(unsupported(format!(
            "{ctx_len} positions exceed the model's context of {}",
            cfg.max_context
        )));
    }
    let ctx = WgpuContext::open_with(selector, opts)?;
    let mut bld = Builder::new();
    let net = Net::with_format(&mut bld, &cfg, ctx_len, quant);
    let cache = net.alloc_cache(&mut bld, b, ctx_len);
    let rows = b * p.max(d).max(1);
    let acts = net.alloc_acts(&mut bld, rows, b * ctx_len);
    let tok_depth = bld.u(b * d);
    let tok_prompt = bld.u(b * p);
    let generated = bld.u(b * (g + 1));
    let logits = bld.f(b * cfg.vocab);
    let v = cfg.vocab;
    let depth_plan = (d > 0).then(|| {
        let plan = bld.begin();
        net.forward(
            &mut bld,
            &acts,
            tok_depth,
            Pass { b, t: d, pos0: 0 },
            Some((&cache, ctx_len)),
        );
        plan
    });
    let step = |bld: &mut Builder, tok: Ix, pass: Pass, out: Ix| {
        let plan = bld.begin();
        net.forward(bld, &acts, tok, pass, Some((&cache, ctx_len)));
        net.logits_last(bld, &acts, pass, logits);
        bld.argmax(logits, b, v, v, out);
        plan
    };
    let prompt_plan = step(
        &mut bld,
        tok_prompt,
        Pass { b, t: p, pos0: d },
        generated.at(0, b),
    );
    let step_plans = (0..g)
        .map(|i| {
            step(
                &mut bld,
                generated.at(i * b, b),
                Pass {
                    b,
                    t: 1,
                    pos0: d + p + i,
                },
                generated.at((i + 1) * b, b),
            )
        })
        .collect();
    let engine = Engine::build(ctx, bld, opts.device_mem_cap_bytes)?;
    net.upload(&engine, spec.seed)?;
    // The candle decode's tokens: same corpus, same seed.
    let corpus = MarkovCorpus::for_vocab(cfg.vocab, spec.seed);
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0xDEC0);
    let (mut depth_tokens, mut prompt_tokens) = (vec![], vec![]);
    for _ in 0..b {
        let s = corpus.sample(d + p, &mut rng);
        depth_tokens.extend_from_slice(&s[..d]);
        prompt_tokens.extend_from_slice(&s[d..]);
    }
    engine.write_u(tok_depth, &depth_tokens);
    engine.write_u(tok_prompt, &prompt_tokens);
    // The context is cached once; every iteration rewrites only the
    // positions after it.
    if let Some(plan) = depth_plan {
        engine.run(&[plan])?;
    }
    Ok(Box::new(WgpuDecode {
        engine,
        net,
        seed: spec.seed,
        quant,
        prompt_plan,
        step_plans,
        logits,
        generated,
        depth_tokens,
        prompt_tokens,
        batch: b,
        gen_tokens: g,
        work: crate::cost::work::of(spec),
    }))
}

/// The seeded model's tensors, with the linear weights a quantized run
/// stores quantized replaced by their dequantized blocks.
struct Dequantized {
    inner: Generated,
    quant: Option<QFmt>,
}

impl TensorSource for Dequantized {
    fn get(&self, name: &str) -> candle_core::Result<candle_core::Tensor> {
        let t = self.inner.get(name)?;
        match self.quant {
            Some(q) if t.rank() == 2 && name != "embed" => dequantized(&t, q),
            _ => Ok(t),
        }
    }
    fn device(&self) -> &Device {
        self.inner.device()
    }
}

impl WgpuDecode {
    /// Runs one plan; GPU seconds when timestamps are offered, else wall.
    fn timed(&self, plan: PlanId) -> Result<f64> {
        let t0 = std::time::Instant::now();
        let gpu = self.engine.run(&[plan])?;
        Ok(gpu.unwrap_or_else(|| t0.elapsed().as_secs_f64()))
    }
}

impl PreparedWorkload for WgpuDecode {
    fn verify(&mut self) -> Result<Verification> {
        let (b, v) = (self.batch, self.net.cfg.vocab);
        let mut rows: Vec<Vec<f32>> = vec![]; // (step, b) flattened, V each
        for plan in std::iter::once(self.prompt_plan).chain(self.step_plans.clone()) {
            self.engine.run(&[plan])?;
            let l = self.engine.read_f(self.logits)?;
            rows.extend(l.chunks(v).map(|r| r.to_vec()));
        }
        let tokens = self.engine.read_u(self.generated)?;
        let (p_len, d_len) = (self.prompt_tokens.len() / b, self.depth_tokens.len() / b);
        let (mut out_rows, mut ref_rows) = (vec![], vec![]);
        for bi in 0..b {
            let mut seq: Vec<u32> = self.depth_tokens[bi * d_len..(bi + 1) * d_len].to_vec();
            seq.extend_from_slice(&self.prompt_tokens[bi * p_len..(bi + 1) * p_len]);
            seq.extend((0..self.gen_tokens).map(|s| tokens[s * b + bi]));
            let from = d_len + p_len - 1;
            let src = Dequantized {
                inner: Generated::new(&self.net.cfg, self.seed, &Device::Cpu),
                quant: self.quant,
            };
            let reference = Model::streamed_reference_logits_from(&self.net.cfg, &src, &seq, from)
                .map_err(cerr(&Backend::Cpu, "reference forward"))?;
            for (step, r) in reference.into_iter().enumerate() {
                out_rows.push(rows[step * b + bi].clone());
                ref_rows.push(r);
            }
        }
        let (max_abs, max_ref, kl, top1) = logit_quality(&out_rows, &ref_rows);
        let scaled = max_abs / max_ref.max(1e-30);
        let finite = out_rows.iter().flatten().filter(|x| !x.is_finite()).count() as u64;
        // The candle decode's f32 bounds.
        let (kl_tol, scaled_tol) = (1e-6, 1e-4);
        Ok(Verification {
            passed: finite == 0 && kl <= kl_tol && scaled <= scaled_tol,
            reference: match self.quant {
                None => "CPU f32 model, teacher-forced on the same tokens".into(),
                Some(q) => format!(
                    "CPU f32 model with the same {} linear weights converted back to f32, teacher-forced on the same tokens",
                    q.as_str()
                ),
            },
            elements_checked: out_rows.iter().map(|r| r.len() as u64).sum(),
            max_abs_diff: max_abs,
            max_rel_diff: scaled,
            scaled_max_diff: scaled,
            tolerance: scaled_tol,
            nan_or_inf: finite,
            mean_kl: Some(kl),
            top1_agreement: Some(top1),
            note: format!(
                "{} positions; pass: mean KL ≤ {kl_tol:.0e} nats and scaled max logit diff ≤ {scaled_tol:.0e}",
                out_rows.len()
            ),
        })
    }

    fn run_iter(&mut self) -> Result<IterReport> {
        let prefill_s = self.timed(self.prompt_plan)?;
        let mut itl = Vec::with_capacity(self.gen_tokens);
        for plan in self.step_plans.clone() {
            itl.push(self.timed(plan)?);
        }
        Ok(crate::kinds::decode::iter_report(
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
        let mut r = self.engine.device_record();
        r.details.push(match self.quant {
            None => "weights=f32".into(),
            Some(q) => format!(
                "weights={} (linear layers; embedding and norms f32), compute f32",
                q.as_str()
            ),
        });
        r
    }

    fn timer(&self) -> &'static str {
        self.engine.timer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::wgpu::test_backend;

    /// Every family decodes on wgpu with batch > 1 and a cached context, and
    /// matches the CPU f32 model.
    #[test]
    fn wgpu_decode_verifies_for_every_family() {
        let Some(backend) = test_backend() else {
            return;
        };
        for fam in ["dense", "moe-mla", "openelm"] {
            let spec = WorkloadSpec::parse(&format!("decode/{fam}-tiny/f32/p6g3b2d3")).unwrap();
            let mut w =
                crate::registry::prepare_with(&spec, &backend, &Default::default()).unwrap();
            let v = w.verify().unwrap();
            assert!(v.passed, "{fam}: {v:?}");
            let r = w.run_iter().unwrap();
            assert_eq!(r.extras.iter().filter(|(k, _)| *k == "itl_s").count(), 3);
        }
        let spec = WorkloadSpec::parse("prefill/dense-tiny/f32/p8").unwrap();
        let mut w = crate::registry::prepare_with(&spec, &backend, &Default::default()).unwrap();
        assert!(w.verify().unwrap().passed);
        let spec = WorkloadSpec::parse("decode/gguf/q4_0").unwrap();
        let e = crate::registry::prepare_with(&spec, &backend, &Default::default())
            .err()
            .unwrap();
        assert!(matches!(e, WorkloadError::Unsupported { .. }), "{e}");
    }

    /// q8_0, q4_0, f16 and bf16 decode on wgpu for every family (dense
    /// weights, MLA's up-projections over the cache, batched routed
    /// experts), matching the CPU model run on the same stored weights
    /// converted back to f32.
    #[test]
    fn wgpu_quantized_decode_verifies_for_every_family() {
        let Some(backend) = test_backend() else {
            return;
        };
        for fmt in ["q8_0", "q4_0", "f16", "bf16"] {
            for fam in ["dense", "moe-mla", "openelm"] {
                let name = format!("decode/{fam}-tiny/{fmt}/p5g3b2d2");
                let spec = WorkloadSpec::parse(&name).unwrap();
                let mut w =
                    crate::registry::prepare_with(&spec, &backend, &Default::default()).unwrap();
                let v = w.verify().unwrap();
                assert!(v.passed, "{name}: {v:?}");
                assert!(v.reference.contains(fmt), "{}", v.reference);
                assert!(v.elements_checked > 0);
                let details = w.device().details.join(" ");
                assert!(details.contains(&format!("weights={fmt}")), "{details}");
                w.run_iter().unwrap();
            }
        }
    }

    /// Engine workloads open the device with the `--wgpu-limits` tier: one
    /// that binds less than the engine's arena refuses the case with a
    /// status naming the limit (never a panic), and a tier that fits is in
    /// the record.
    #[test]
    fn engine_workloads_honour_the_wgpu_limits_tier() {
        use crate::device::caps::WgpuLimitsTier;
        let Some(backend) = test_backend() else {
            return;
        };
        let tight = crate::PrepareOptions {
            wgpu_limits: Some(WgpuLimitsTier::Custom {
                overrides: [("max_storage_buffer_binding_size".to_string(), 8192)].into(),
            }),
            ..Default::default()
        };
        for name in [
            "decode/dense-tiny/f32/p4g2",
            "decode/dense-tiny/q4_0/p4g2",
            "train-step/dense-tiny/f32",
            "kernel/stream-100K",
            "kernel/attention-64",
            "kernel/gemm-f32-64-tiled",
        ] {
            let spec = WorkloadSpec::parse(name).unwrap();
            match crate::registry::prepare_with(&spec, &backend, &tight) {
                Err(WorkloadError::Unsupported { reason, .. }) => assert!(
                    reason.contains("max_storage_buffer_binding_size")
                        && reason.contains("8192")
                        && reason.contains("wgpu limits: tier custom"),
                    "{name}: {reason}"
                ),
                Err(e) => panic!("{name}: expected unsupported, got {e}"),
                Ok(_) => panic!("{name} ran with an 8 KiB binding limit"),
            }
        }
        let down = crate::PrepareOptions {
            wgpu_limits: Some(WgpuLimitsTier::Downlevel),
            ..Default::default()
        };
        let spec = WorkloadSpec::parse("decode/dense-tiny/f32/p4g2").unwrap();
        let w = crate::registry::prepare_with(&spec, &backend, &down).unwrap();
        let details = w.device().details.join(" ");
        assert!(details.contains("wgpu_limits=downlevel"), "{details}");
    }

    /// A quantized model's weights are not also held in f32: the arenas
    /// are smaller than the f32 model's by most of the linear weights.
    #[test]
    fn quantized_weights_take_their_quantized_size() {
        use crate::backend::wgpu::quant::QFmt;
        let cfg = crate::models::shape("dense-tiny").unwrap();
        let bytes = |q: Option<QFmt>| {
            let mut b = Builder::new();
            Net::with_format(&mut b, &cfg, 8, q);
            b.arena_bytes() as f64
        };
        let (f32b, h, q8, q4) = (
            bytes(None),
            bytes(Some(QFmt::F16)),
            bytes(Some(QFmt::Q8_0)),
            bytes(Some(QFmt::Q4_0)),
        );
        assert!(h < f32b && q8 < h && q4 < q8, "{f32b} {h} {q8} {q4}");
    }
}
