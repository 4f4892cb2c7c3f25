//! The decode step of one sequence on the CPU, written out op by op over
//! preallocated f32 buffers: RMSNorm, the weight matrices through our own
//! matrix-vector kernels (`matvec`, `q4`), RoPE, attention over a KV cache
//! of fixed capacity, SwiGLU. candle's path spent ~37 of 84 ms of a q4_0
//! token on the 1.1B shape outside the weight matrices: dozens of small
//! tensor ops per layer, each allocating its output. The pool's threads
//! run a step together (`team`), meeting at barriers between its phases
//! rather than forking and joining per product.
//!
//! The math is the model's (`model.rs`), with activations held in f32 —
//! for f16/bf16 weights candle's path rounds every activation to the weight
//! type, so the numbers move toward the f32 reference. Only the dense GQA
//! families run here (dense, openelm); MLA and MoE keep candle's path.

use candle_core::{DType, Result, Tensor};

mod lin;
mod prefill;
mod team;
use lin::{Held, Mat, lin_matvec, with_weights};
pub use prefill::BLOCK_TOKENS;
use team::{Barrier, Claims, Shared};

use super::matvec::{Weights, dot, matvec};
use super::model::{Attn, Cache, Ffn, LayerCache, Model};
use super::ops::Lin;
use super::q4::ActRows;

/// One layer's dimensions and its norms widened to f32 once.
struct LayerPlan {
    n_heads: usize,
    n_kv: usize,
    attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
}

/// A model prepared for fused decoding (a cheap clone of its tensors).
pub struct FusedDecoder {
    model: Model,
    /// Prompt tokens per prefill block (`prefill::BLOCK_TOKENS`; tests
    /// shrink it to cross block boundaries).
    block_tokens: usize,
    layers: Vec<LayerPlan>,
    final_norm: Vec<f32>,
}

/// The sequence's KV cache (per layer (n_kv, cap, head_dim) keys and
/// values) and every scratch buffer one step needs.
pub struct FusedState {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    pub len: usize,
    cap: usize,
    x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    kn: Vec<f32>,
    vn: Vec<f32>,
    att: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    rope: Vec<(f32, f32)>,
    pub logits: Vec<f32>,
    /// The prompt's buffers (`prefill`), empty until it runs.
    block: prefill::BlockScratch,
}

fn host_f32(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

/// RMSNorm in f32: x / sqrt(mean(x²) + eps) · w.
fn rms_norm(x: &[f32], w: &[f32], eps: f64, out: &mut [f32]) {
    let ms = dot(x, x) / x.len() as f32;
    let inv = 1.0 / (ms + eps as f32).sqrt();
    for ((o, v), g) in out.iter_mut().zip(x).zip(w) {
        *o = v * inv * g;
    }
}

/// RoPE of one head vector in place, with (cos, sin) per frequency.
fn rope(x: &mut [f32], cs: &[(f32, f32)], interleaved: bool) {
    let half = x.len() / 2;
    for (i, (c, s)) in cs.iter().enumerate().take(half) {
        let (a, b) = if interleaved {
            (2 * i, 2 * i + 1)
        } else {
            (i, i + half)
        };
        let (x0, x1) = (x[a], x[b]);
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
    }
}

/// One query head over `len` cached positions of its KV head.
fn attend_head(q: &[f32], k: &[f32], v: &[f32], scale: f32, scores: &mut [f32], out: &mut [f32]) {
    let hd = q.len();
    let mut max = f32::NEG_INFINITY;
    for (s, kr) in scores.iter_mut().zip(k.chunks_exact(hd)) {
        *s = dot(q, kr) * scale;
        max = max.max(*s);
    }
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    out.fill(0.0);
    for (p, vr) in scores.iter().zip(v.chunks_exact(hd)) {
        let p = p / sum;
        for (o, x) in out.iter_mut().zip(vr) {
            *o += p * x;
        }
    }
}

fn silu_mul(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

impl FusedDecoder {
    /// `None` unless the model runs on the CPU in f32/f16/bf16 activations
    /// with GQA attention and dense FFNs in every layer.
    pub fn new(model: &Model) -> Result<Option<FusedDecoder>> {
        let ok_dtype = matches!(model.dtype, DType::F32 | DType::F16 | DType::BF16);
        let dense = model
            .layers
            .iter()
            .all(|l| matches!(l.attn, Attn::Gqa { .. }) && matches!(l.ffn, Ffn::Dense(_)));
        if !model.device.is_cpu() || !ok_dtype || !dense {
            return Ok(None);
        }
        let layers = model
            .layers
            .iter()
            .map(|l| {
                let (n_heads, n_kv) = match &l.attn {
                    Attn::Gqa { n_heads, n_kv, .. } => (*n_heads, *n_kv),
                    Attn::Mla { .. } => unreachable!("checked above"),
                };
                Ok(LayerPlan {
                    n_heads,
                    n_kv,
                    attn_norm: host_f32(&l.attn_norm)?,
                    ffn_norm: host_f32(&l.ffn_norm)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(FusedDecoder {
            model: model.clone(),
            block_tokens: prefill::BLOCK_TOKENS,
            layers,
            final_norm: host_f32(&model.final_norm)?,
        }))
    }

    /// A state holding `cache` (one sequence, from candle's path: the
    /// prompt) with room for `cap` positions in all.
    pub fn start(&self, cache: &Cache, cap: usize) -> Result<FusedState> {
        let cfg = &self.model.cfg;
        let hd = cfg.head_dim;
        let max_h = self.layers.iter().map(|l| l.n_heads).max().unwrap_or(0);
        let max_kv = self.layers.iter().map(|l| l.n_kv).max().unwrap_or(0);
        let max_ffn = (0..cfg.n_layers)
            .map(|l| cfg.layer(l).ffn)
            .max()
            .unwrap_or(0);
        let cap = cap.max(cache.len);
        let mut st = FusedState {
            k: Vec::with_capacity(self.layers.len()),
            v: Vec::with_capacity(self.layers.len()),
            len: cache.len,
            cap,
            x: vec![0.0; cfg.d_model],
            h: vec![0.0; cfg.d_model],
            q: vec![0.0; max_h * hd],
            kn: vec![0.0; max_kv * hd],
            vn: vec![0.0; max_kv * hd],
            att: vec![0.0; max_h * hd],
            gate: vec![0.0; max_ffn],
            up: vec![0.0; max_ffn],
            rope: vec![(1.0, 0.0); hd / 2],
            logits: vec![0.0; cfg.vocab],
            block: Default::default(),
        };
        for (plan, lc) in self.layers.iter().zip(&cache.layers) {
            let mut k = vec![0.0; plan.n_kv * cap * hd];
            let mut v = vec![0.0; plan.n_kv * cap * hd];
            match lc {
                LayerCache::Kv { k: ck, v: cv } => {
                    // (1, n_kv, S, hd) → head-major rows of `cap` positions.
                    let s = ck.dim(2)?;
                    let (hk, hv) = (host_f32(ck)?, host_f32(cv)?);
                    let n = s * hd;
                    for h in 0..plan.n_kv {
                        k[h * cap * hd..][..n].copy_from_slice(&hk[h * n..][..n]);
                        v[h * cap * hd..][..n].copy_from_slice(&hv[h * n..][..n]);
                    }
                }
                LayerCache::Empty => {}
                LayerCache::Latent { .. } => {
                    return Err(candle_core::Error::Msg(
                        "fused decode: a latent cache on a GQA model".into(),
                    ));
                }
            }
            st.k.push(k);
            st.v.push(v);
        }
        Ok(st)
    }

    /// Runs `token` at position `st.len` and leaves its logits in
    /// `st.logits`. The pool's threads run the whole step together
    /// (`team`): each keeps its own residual, norms and quantized
    /// activations (a few thousand values, computed alike by every thread),
    /// and they split each weight product's rows and the attention's heads
    /// between barriers. Every output row is computed as `lin_matvec`
    /// computes it, whoever takes its task: the logits do not depend on
    /// the thread count (a test holds 1, 2 and 3 threads to the same bits).
    pub fn step(&self, st: &mut FusedState, token: u32) -> Result<()> {
        let cfg = &self.model.cfg;
        if st.len >= st.cap {
            return Err(candle_core::Error::Msg(format!(
                "fused decode: cache of {} positions is full",
                st.cap
            )));
        }
        let (hd, pos) = (cfg.head_dim, st.len);
        // The tables of `rope_tables`: angles in f64, rounded to f32.
        for (i, cs) in st.rope.iter_mut().enumerate() {
            let a = pos as f64 / cfg.rope_theta.powf(2.0 * i as f64 / hd as f64);
            *cs = (a.cos() as f32, a.sin() as f32);
        }
        // Every weight in step order (7 per layer, then the head), with
        // the dense ones' storage read-locked for the step.
        let mut lins: Vec<&Lin> = Vec::with_capacity(7 * self.layers.len() + 1);
        for layer in &self.model.layers {
            let (Attn::Gqa { wq, wk, wv, wo, .. }, Ffn::Dense(e)) = (&layer.attn, &layer.ffn)
            else {
                unreachable!("checked in new")
            };
            lins.extend([wq, wk, wv, wo, &e.gate, &e.up, &e.down]);
        }
        lins.extend(&self.model.lm_head);
        let held = lins
            .iter()
            .filter_map(|l| match l {
                Lin::Dense(t) => Some(t),
                _ => None,
            })
            .chain([&self.model.embed])
            .map(Held::new)
            .collect::<Result<Vec<_>>>()?;
        let mut guards = held.iter();
        let mats = lins
            .iter()
            .map(|l| Mat::of(l, &mut guards))
            .collect::<Result<Vec<_>>>()?;
        let embed = guards.next().expect("the embedding's guard").weights()?;
        let head = match &self.model.lm_head {
            Some(_) => *mats.last().expect("the head"),
            None => Mat::Dense(embed),
        };
        let n = rayon::current_num_threads();
        let bufs = Bufs {
            q: Shared::new(&mut st.q),
            kn: Shared::new(&mut st.kn),
            vn: Shared::new(&mut st.vn),
            att: Shared::new(&mut st.att),
            out: Shared::new(&mut st.h),
            gate: Shared::new(&mut st.gate),
            up: Shared::new(&mut st.up),
            logits: Shared::new(&mut st.logits),
            k: st.k.iter_mut().map(|k| Shared::new(k)).collect(),
            v: st.v.iter_mut().map(|v| Shared::new(v)).collect(),
        };
        let team = Team {
            dec: self,
            mats: &mats,
            head,
            embed,
            rope: &st.rope,
            bufs,
            token: token as usize,
            pos,
            cap: st.cap,
            barrier: Barrier::new(n),
            claims: Claims::new(PHASES * self.layers.len() + 1, n),
            error: std::sync::Mutex::new(None),
        };
        rayon::broadcast(|ctx| team.run(ctx.index()));
        if let Some(e) = team.error.into_inner().expect("lock") {
            return Err(e);
        }
        st.len += 1;
        Ok(())
    }

    /// The final norm and the LM head of the residual `st.x` (the
    /// prefill's last position).
    fn logits(&self, st: &mut FusedState) -> Result<()> {
        let (cfg, c) = (&self.model.cfg, self.model.cfg.d_model);
        rms_norm(&st.x, &self.final_norm, cfg.norm_eps, &mut st.h);
        match &self.model.lm_head {
            Some(head) => lin_matvec(head, &st.h, &mut st.logits),
            None => with_weights(&self.model.embed, |w| matvec(w, c, &st.h, &mut st.logits)),
        }
    }
}

/// The step's shared buffers (`FusedState`'s), written in parts by the
/// team between barriers.
struct Bufs<'a> {
    q: Shared<'a>,
    kn: Shared<'a>,
    vn: Shared<'a>,
    att: Shared<'a>,
    /// The output projection's, then the down projection's, result.
    out: Shared<'a>,
    gate: Shared<'a>,
    up: Shared<'a>,
    logits: Shared<'a>,
    k: Vec<Shared<'a>>,
    v: Vec<Shared<'a>>,
}

/// Phases with tasks per layer: q·k·v rows, new keys and values, heads,
/// output rows, gate·up rows, down rows.
const PHASES: usize = 6;

/// One decode step as every thread of the pool runs it.
struct Team<'a> {
    dec: &'a FusedDecoder,
    mats: &'a [Mat<'a>],
    head: Mat<'a>,
    embed: Weights<'a>,
    rope: &'a [(f32, f32)],
    bufs: Bufs<'a>,
    token: usize,
    pos: usize,
    cap: usize,
    barrier: Barrier,
    claims: Claims,
    /// The first error of candle's product (`Mat::Candle`); the team runs
    /// on to the end, so no thread waits at a barrier alone.
    error: std::sync::Mutex<Option<candle_core::Error>>,
}

/// A thread's own copies: the residual, a normed or gathered input, that
/// input quantized, attention scores.
struct Own {
    x: Vec<f32>,
    h: Vec<f32>,
    acts: ActRows,
    scores: Vec<f32>,
    /// This thread's index in the team.
    me: usize,
}

impl Team<'_> {
    fn run(&self, me: usize) {
        let cfg = &self.dec.model.cfg;
        let c = cfg.d_model;
        let r = self.token * c;
        let mut own = Own {
            x: match self.embed {
                Weights::F16(e) => e[r..r + c].iter().map(|v| v.to_f32()).collect(),
                Weights::Bf16(e) => e[r..r + c].iter().map(|v| v.to_f32()).collect(),
                Weights::F32(e) => e[r..r + c].to_vec(),
            },
            h: vec![0.0; c],
            acts: ActRows::default(),
            scores: vec![0.0; self.cap],
            me,
        };
        for (l, plan) in self.dec.layers.iter().enumerate() {
            self.layer(l, plan, &mut own);
        }
        rms_norm(&own.x, &self.dec.final_norm, cfg.norm_eps, &mut own.h);
        let phase = PHASES * self.dec.layers.len();
        self.products(
            phase,
            &[self.head],
            &own.h,
            &mut own.acts,
            own.me,
            &[&self.bufs.logits],
        );
    }

    /// Quantizes `x` into `acts` when a matrix of `mats` reads it so.
    fn quantize(mats: &[Mat], x: &[f32], acts: &mut ActRows) {
        if mats.iter().any(Mat::quantized) {
            acts.quantize(x, x.len());
        }
    }

    /// outs[i] = mats[i]·x, the rows split into tasks across the team;
    /// then a barrier.
    fn products(
        &self,
        phase: usize,
        mats: &[Mat],
        x: &[f32],
        acts: &mut ActRows,
        me: usize,
        outs: &[&Shared],
    ) {
        Self::quantize(mats, x, acts);
        let jobs = || mats.iter().zip(outs);
        let total = jobs().map(|(m, o)| m.tasks(o.len())).sum();
        for task in self.claims.take(phase, total, me) {
            // Task numbers run through the matrices in order.
            let mut t = task;
            for (m, o) in jobs() {
                let k = m.tasks(o.len());
                if t < k {
                    let rs = m.task_rows(o.len(), t);
                    // SAFETY: task t's rows are this thread's alone in this phase.
                    let ys = unsafe { o.part(rs.clone()) };
                    self.keep(m.rows_into(x, Some(acts), rs, ys));
                    break;
                }
                t -= k;
            }
        }
        self.barrier.wait();
    }

    fn keep(&self, r: Result<()>) {
        if let Err(e) = r {
            self.error.lock().expect("lock").get_or_insert(e);
        }
    }

    fn layer(&self, l: usize, plan: &LayerPlan, own: &mut Own) {
        let cfg = &self.dec.model.cfg;
        let (hd, eps, b) = (cfg.head_dim, cfg.norm_eps, &self.bufs);
        let (nh, nkv) = (plan.n_heads, plan.n_kv);
        let m = &self.mats[7 * l..7 * l + 7];
        let phase = PHASES * l;
        let f = cfg.layer(l).ffn;
        rms_norm(&own.x, &plan.attn_norm, eps, &mut own.h);
        let (q, kn, vn) = (
            b.q.prefix(nh * hd),
            b.kn.prefix(nkv * hd),
            b.vn.prefix(nkv * hd),
        );
        self.products(
            phase,
            &m[..3],
            &own.h,
            &mut own.acts,
            own.me,
            &[&q, &kn, &vn],
        );
        // New keys (rotated) and values into the cache, by KV head.
        let at = |h: usize| (h * self.cap + self.pos) * hd;
        for h in self.claims.take(phase + 1, nkv, own.me) {
            // SAFETY: KV head h's rows here and in the caches are this
            // thread's alone in this phase.
            let (kh, vh) =
                unsafe { (kn.part(h * hd..(h + 1) * hd), vn.part(h * hd..(h + 1) * hd)) };
            rope(kh, self.rope, cfg.rope_interleaved);
            unsafe { b.k[l].part(at(h)..at(h) + hd) }.copy_from_slice(kh);
            unsafe { b.v[l].part(at(h)..at(h) + hd) }.copy_from_slice(vh);
        }
        self.barrier.wait();
        // Query heads; GQA: query head h reads KV head h / (nh / nkv).
        let (rep, s) = (nh / nkv, self.pos + 1);
        let scale = (1.0 / (hd as f64).sqrt()) as f32;
        for h in self.claims.take(phase + 2, nh, own.me) {
            let kvh = h / rep;
            // SAFETY: query head h (and its output) is this thread's alone;
            // the cache is only read in this phase.
            let (qh, out) = unsafe {
                (
                    q.part(h * hd..(h + 1) * hd),
                    b.att.part(h * hd..(h + 1) * hd),
                )
            };
            rope(qh, self.rope, cfg.rope_interleaved);
            let (k, v) = unsafe {
                (
                    &b.k[l].all(self.cap * nkv * hd)[kvh * self.cap * hd..][..s * hd],
                    &b.v[l].all(self.cap * nkv * hd)[kvh * self.cap * hd..][..s * hd],
                )
            };
            attend_head(qh, k, v, scale, &mut own.scores[..s], out);
        }
        self.barrier.wait();
        // SAFETY: the heads were written before the barrier.
        let att = unsafe { b.att.all(nh * hd) };
        self.add_product(phase + 3, m[3], att, own);
        rms_norm(&own.x, &plan.ffn_norm, eps, &mut own.h);
        // Gate and up rows together, and SwiGLU on the rows just made.
        let (gm, um) = (&m[4], &m[5]);
        // One split for both (the same shape and storage; candle's product
        // runs whole).
        let split = if matches!(um, Mat::Candle(_)) { um } else { gm };
        Self::quantize(&m[4..6], &own.h, &mut own.acts);
        for t in self.claims.take(phase + 4, split.tasks(f), own.me) {
            let rs = split.task_rows(f, t);
            // SAFETY: task t's rows are this thread's alone in this phase.
            let (g, u) = unsafe { (b.gate.part(rs.clone()), b.up.part(rs.clone())) };
            self.keep(gm.rows_into(&own.h, Some(&own.acts), rs.clone(), g));
            self.keep(um.rows_into(&own.h, Some(&own.acts), rs, u));
            silu_mul(g, u);
        }
        self.barrier.wait();
        // SAFETY: written before the barrier.
        let gate = unsafe { b.gate.all(f) };
        self.add_product(phase + 5, m[6], gate, own);
    }

    /// x += W·input: the product's rows split across the team into the
    /// shared output, then every thread adds all of it to its residual.
    fn add_product(&self, phase: usize, w: Mat, input: &[f32], own: &mut Own) {
        let out = self.bufs.out.prefix(own.x.len());
        self.products(phase, &[w], input, &mut own.acts, own.me, &[&out]);
        // SAFETY: written before the barrier that ends `products`;
        // rewritten only after the next barrier.
        let out = unsafe { out.all(own.x.len()) };
        own.x.iter_mut().zip(out).for_each(|(x, o)| *x += o);
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;
    use crate::models::{WeightFormat, shape};

    fn tokens(n: usize, vocab: usize) -> Vec<u32> {
        (0..n).map(|i| ((i * 37 + 11) % vocab) as u32).collect()
    }

    /// candle's cached steps after a prompt, and the fused steps after the
    /// same prompt on a pool of `threads`: the logits of each step, and `n`
    /// steps of each.
    fn both(m: &Model, threads: usize, n: usize) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let dev = Device::Cpu;
        let toks = tokens(5 + n, m.cfg.vocab);
        let mut cache = Cache::new(m.cfg.n_layers);
        let prompt = Tensor::new(&toks[..5], &dev).unwrap().unsqueeze(0).unwrap();
        m.forward(&prompt, Some(&mut cache)).unwrap();
        let f = FusedDecoder::new(m).unwrap().expect("a dense GQA model");
        // Room for exactly the n steps: a full cache is refused after.
        let mut st = f.start(&cache, cache.len + n).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let (mut want, mut got) = (vec![], vec![]);
        for &t in &toks[5..] {
            let x = Tensor::new(&[t], &dev).unwrap().unsqueeze(0).unwrap();
            let l = m.forward(&x, Some(&mut cache)).unwrap();
            want.push(
                l.flatten_all()
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap()
                    .to_vec1()
                    .unwrap(),
            );
            pool.install(|| f.step(&mut st, t)).unwrap();
            got.push(st.logits.clone());
        }
        assert_eq!(st.len, cache.len);
        assert!(f.step(&mut st, 0).is_err(), "a full cache is refused");
        (want, got)
    }

    fn max_rel(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
        let max = a.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = a.iter().flatten().zip(b.iter().flatten());
        d.map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / max
    }

    /// The fused step gives candle's logits: to f32 rounding where both
    /// hold activations in f32 (f32, q8_0, q4_0), within the half-precision
    /// activations of candle's path for f16/bf16. Both RoPE layouts, the
    /// per-layer head counts of openelm; the same bits on 1, 2 and 3
    /// threads.
    #[test]
    fn fused_steps_match_candle_steps() {
        let mut gguf_like = shape("dense-tiny").unwrap();
        gguf_like.rope_interleaved = true;
        gguf_like.tied_embeddings = false;
        for cfg in [
            shape("dense-tiny").unwrap(),
            shape("openelm-tiny").unwrap(),
            gguf_like,
        ] {
            for (format, tol) in [
                (WeightFormat::Float(DType::F32), 1e-5),
                (WeightFormat::Q8_0, 1e-4),
                (WeightFormat::Q4_0, 1e-4),
                (WeightFormat::Float(DType::F16), 2e-2),
                (WeightFormat::Float(DType::BF16), 1e-1),
            ] {
                let m = Model::generated(&cfg, 7, &Device::Cpu, format).unwrap();
                let (want, one) = both(&m, 1, 3);
                let d = max_rel(&want, &one);
                assert!(d <= tol, "{} {format:?}: {d}", cfg.name);
                // Whoever takes a task computes its rows the same way.
                for threads in [2, 3] {
                    let (_, got) = both(&m, threads, 3);
                    let same = one.iter().flatten().zip(got.iter().flatten());
                    let differ = same.filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                    assert_eq!(differ, 0, "{} {format:?} on {threads} threads", cfg.name);
                }
            }
        }
    }

    /// The fused prefill after a context from candle's cache gives
    /// candle's logits for the prompt's last position and leaves the cache
    /// that candle's steps continue from: one block, and blocks of three
    /// (a ragged last block); every format within the step test's bounds.
    #[test]
    fn fused_prefill_matches_candle() {
        let dev = Device::Cpu;
        let mut gguf_like = shape("dense-tiny").unwrap();
        gguf_like.rope_interleaved = true;
        gguf_like.tied_embeddings = false;
        let (depth, prompt, steps) = (3, 7, 2);
        for cfg in [
            shape("dense-tiny").unwrap(),
            shape("openelm-tiny").unwrap(),
            gguf_like,
        ] {
            for (format, tol) in [
                (WeightFormat::Float(DType::F32), 1e-5),
                (WeightFormat::Q8_0, 1e-4),
                (WeightFormat::Q4_0, 1e-4),
                (WeightFormat::Float(DType::F16), 2e-2),
                (WeightFormat::Float(DType::BF16), 1e-1),
            ] {
                let m = Model::generated(&cfg, 7, &dev, format).unwrap();
                let toks = tokens(depth + prompt + steps, m.cfg.vocab);
                let row = |t: &[u32]| Tensor::new(t, &dev).unwrap().unsqueeze(0).unwrap();
                let host = |l: Tensor| -> Vec<f32> {
                    let l = l.squeeze(0).unwrap().to_dtype(DType::F32).unwrap();
                    l.get(l.dim(0).unwrap() - 1).unwrap().to_vec1().unwrap()
                };
                let mut cache = Cache::new(m.cfg.n_layers);
                m.forward(&row(&toks[..depth]), Some(&mut cache)).unwrap();
                let context = cache.clone();
                let mut want = vec![host(
                    m.forward(&row(&toks[depth..depth + prompt]), Some(&mut cache))
                        .unwrap(),
                )];
                for i in depth + prompt..toks.len() {
                    want.push(host(
                        m.forward(&row(&toks[i..=i]), Some(&mut cache)).unwrap(),
                    ));
                }
                for block in [prefill::BLOCK_TOKENS, 3] {
                    let mut f = FusedDecoder::new(&m).unwrap().unwrap();
                    f.block_tokens = block;
                    let mut st = f.start(&context, toks.len()).unwrap();
                    assert!(f.prefill(&mut st, &[]).is_err(), "an empty prompt");
                    f.prefill(&mut st, &toks[depth..depth + prompt]).unwrap();
                    let mut got = vec![st.logits.clone()];
                    for &t in &toks[depth + prompt..] {
                        f.step(&mut st, t).unwrap();
                        got.push(st.logits.clone());
                    }
                    let d = max_rel(&want, &got);
                    assert!(d <= tol, "{} {format:?} block {block}: {d}", cfg.name);
                    let mut st = f.start(&context, depth + prompt - 1).unwrap();
                    let e = f.prefill(&mut st, &toks[depth..depth + prompt]);
                    assert!(e.is_err(), "a prompt past the cache is refused");
                }
            }
        }
    }

    #[test]
    fn refuses_models_it_does_not_run() {
        let cfg = shape("moe-mla-tiny").unwrap();
        let m = Model::generated(&cfg, 1, &Device::Cpu, WeightFormat::Q8_0).unwrap();
        assert!(FusedDecoder::new(&m).unwrap().is_none());
        let cfg = shape("dense-tiny").unwrap();
        let m = Model::generated(&cfg, 1, &Device::Cpu, WeightFormat::Float(DType::F64)).unwrap();
        assert!(FusedDecoder::new(&m).unwrap().is_none());
    }

    #[test]
    fn rope_matches_both_layouts() {
        let cs = [(0.6f32, 0.8f32), (0.0, 1.0)];
        let close = |a: [f32; 4], b: [f32; 4]| a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6);
        let mut x = [1.0f32, 2.0, 3.0, 4.0];
        rope(&mut x, &cs, false); // pairs (0, 2), (1, 3)
        assert!(close(x, [0.6 - 2.4, -4.0, 0.8 + 1.8, 2.0]), "{x:?}");
        let mut x = [1.0f32, 2.0, 3.0, 4.0];
        rope(&mut x, &cs, true); // pairs (0, 1), (2, 3)
        assert!(close(x, [0.6 - 1.6, 0.8 + 1.2, -4.0, 3.0]), "{x:?}");
    }
}
