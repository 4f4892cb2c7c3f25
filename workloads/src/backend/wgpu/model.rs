//! The three model families on the wgpu engine, written out op by op (as
//! llm.c does): the forward pass — for training (every activation kept) or
//! for inference (T tokens against the KV cache). The parameter layout and
//! seeded weights of the CPU model are in `weights`, the backward pass in
//! `backward`.

use super::engine::{Builder, Engine, F, Ix};
use super::ops::{Attn, Gemm, Mat, Route};
use super::quant::{QFmt, QMat};
use crate::error::Result;
use crate::models::ModelConfig;
use crate::models::config::LayerDims;
use crate::models::params::param_specs;

mod backward;
mod weights;

pub use weights::{QWeights, RopeTables, Weights, is_quantized};

/// One FFN's activations (a dense FFN or one expert).
#[derive(Clone, Copy)]
struct Mlp {
    g: F,
    u: F,
    a: F,
}

impl Mlp {
    fn alloc(b: &mut Builder, rows: usize, width: usize) -> Mlp {
        Mlp {
            g: b.f(rows * width),
            u: b.f(rows * width),
            a: b.f(rows * width),
        }
    }
}

enum AttnActs {
    Gqa {
        q: F,
        k: F,
        v: F,
    },
    Mla {
        q: F,
        ckv_raw: F,
        ckv: F,
        rstd_kv: F,
        kpe: F,
        knope: F,
        vv: F,
        kfull: F,
    },
}

enum FfnActs {
    Dense(Mlp),
    Moe {
        shared: Vec<Mlp>,
        rl: F,
        probs: F,
        route: Route,
        xe: F,
        routed: Mlp,
        ye: F,
    },
}

struct LayerActs {
    h1: F,
    rstd1: F,
    attn: AttnActs,
    o: F,
    lse: F,
    x_mid: F,
    h2: F,
    rstd2: F,
    ffn: FfnActs,
}

/// Activations of a pass over up to `n` token rows (`s` key rows for the
/// MLA up-projections: B·max context in inference, n in training).
pub struct Acts {
    xs: Vec<F>,
    layers: Vec<LayerActs>,
    pub hf: F,
    rstdf: F,
}

/// Per-layer KV cache, (B, max context, ·): GQA keeps keys and values, MLA
/// only the normalised latent c_kv and the RoPE key, like the CPU model.
pub struct LayerCache {
    a: F,
    b: F,
}

/// Which tokens a pass computes: batch B, T tokens per sequence, the first
/// at position pos0.
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    pub b: usize,
    pub t: usize,
    pub pos0: usize,
}

impl Pass {
    fn n(&self) -> usize {
        self.b * self.t
    }
}

/// A model on the engine: config, weights and RoPE tables.
pub struct Net {
    pub cfg: ModelConfig,
    /// The f32 parameters (all of them, unless quantized).
    pub w: Weights,
    /// The quantized linear weights of a q8_0/q4_0 model.
    pub q: Option<QWeights>,
    rope: RopeTables,
    eps: f32,
}

impl Net {
    /// Lays out the weights and RoPE tables for positions below `positions`.
    pub fn new(b: &mut Builder, cfg: &ModelConfig, positions: usize) -> Net {
        Net::with_format(b, cfg, positions, None)
    }

    /// As `new`, with the linear weights quantized to `q` (inference only:
    /// `backward` needs f32 weights).
    pub fn with_format(
        b: &mut Builder,
        cfg: &ModelConfig,
        positions: usize,
        q: Option<QFmt>,
    ) -> Net {
        let (w, q) = match q {
            None => (Weights::layout(b, cfg), None),
            Some(fmt) => {
                let (qs, fs): (Vec<_>, Vec<_>) =
                    param_specs(cfg).into_iter().partition(is_quantized);
                (
                    Weights::layout_of(b, fs),
                    Some(QWeights::layout(b, fmt, qs)),
                )
            }
        };
        let dim = cfg.mla.map(|m| m.rope_dim).unwrap_or(cfg.head_dim);
        Net {
            cfg: cfg.clone(),
            w,
            q,
            rope: RopeTables::new(b, dim, cfg.rope_theta, positions),
            eps: cfg.norm_eps as f32,
        }
    }

    pub fn upload(&self, e: &Engine, seed: u64) -> Result<()> {
        self.rope.upload(e);
        if let Some(q) = &self.q {
            q.upload(e, seed)?;
        }
        self.w.upload(e, seed)
    }

    /// The named weight when it is stored quantized.
    fn qmat(&self, name: &str) -> Option<QMat> {
        self.q.as_ref().and_then(|q| q.get(name))
    }

    /// y (rows, out) (+)= x (rows, inp) · Wᵀ for the named linear weight,
    /// f32 or quantized.
    #[allow(clippy::too_many_arguments)]
    fn lin(
        &self,
        bld: &mut Builder,
        x: F,
        name: &str,
        y: F,
        rows: usize,
        inp: usize,
        out: usize,
        beta: f32,
    ) {
        match self.qmat(name) {
            Some(w) => bld.qlinear(x, w, y, rows, beta),
            None => bld.linear(x, self.w.get(name), y, rows, inp, out, beta),
        }
    }

    fn head(&self) -> F {
        if self.cfg.tied_embeddings {
            self.w.get("embed")
        } else {
            self.w.get("lm_head")
        }
    }

    fn head_name(&self) -> &'static str {
        if self.cfg.tied_embeddings {
            "embed"
        } else {
            "lm_head"
        }
    }

    /// Width of q rows, key/value rows and attention output rows.
    fn widths(&self, ld: &LayerDims) -> (usize, usize, usize) {
        match self.cfg.mla {
            Some(m) => (
                ld.n_heads * (m.nope_dim + m.rope_dim),
                ld.n_heads * (m.nope_dim + m.rope_dim),
                ld.n_heads * m.v_dim,
            ),
            None => {
                let hd = self.cfg.head_dim;
                (ld.n_heads * hd, ld.n_kv_heads * hd, ld.n_heads * hd)
            }
        }
    }

    pub fn alloc_acts(&self, b: &mut Builder, n: usize, s: usize) -> Acts {
        let c = self.cfg.d_model;
        let xs = (0..=self.cfg.n_layers).map(|_| b.f(n * c)).collect();
        let layers = (0..self.cfg.n_layers)
            .map(|l| {
                let ld = self.cfg.layer(l);
                let (qw, kw, ow) = self.widths(&ld);
                let attn = match self.cfg.mla {
                    Some(m) => AttnActs::Mla {
                        q: b.f(n * qw),
                        ckv_raw: b.f(n * m.kv_lora_rank),
                        ckv: b.f(n * m.kv_lora_rank),
                        rstd_kv: b.f(n),
                        kpe: b.f(n * m.rope_dim),
                        knope: b.f(s * ld.n_heads * m.nope_dim),
                        vv: b.f(s * ow),
                        kfull: b.f(s * kw),
                    },
                    None => AttnActs::Gqa {
                        q: b.f(n * qw),
                        k: b.f(n * kw),
                        v: b.f(n * kw),
                    },
                };
                let ffn = match (ld.moe, self.cfg.moe) {
                    (true, Some(m)) => FfnActs::Moe {
                        shared: (0..m.shared)
                            .map(|_| Mlp::alloc(b, n, m.expert_ffn))
                            .collect(),
                        rl: b.f(n * m.routed),
                        probs: b.f(n * m.routed),
                        route: Route::alloc(b, n, m.routed),
                        xe: b.f(m.routed * n * c),
                        routed: Mlp::alloc(b, m.routed * n, m.expert_ffn),
                        ye: b.f(m.routed * n * c),
                    },
                    _ => FfnActs::Dense(Mlp::alloc(b, n, ld.ffn)),
                };
                LayerActs {
                    h1: b.f(n * c),
                    rstd1: b.f(n),
                    attn,
                    o: b.f(n * ow),
                    lse: b.f(n * ld.n_heads),
                    x_mid: b.f(n * c),
                    h2: b.f(n * c),
                    rstd2: b.f(n),
                    ffn,
                }
            })
            .collect();
        Acts {
            xs,
            layers,
            hf: b.f(n * c),
            rstdf: b.f(n),
        }
    }

    /// KV caches for batch `batch` and `ctx` positions.
    pub fn alloc_cache(&self, b: &mut Builder, batch: usize, ctx: usize) -> Vec<LayerCache> {
        (0..self.cfg.n_layers)
            .map(|l| {
                let ld = self.cfg.layer(l);
                let (a, bb) = match self.cfg.mla {
                    Some(m) => (m.kv_lora_rank, m.rope_dim),
                    None => (
                        ld.n_kv_heads * self.cfg.head_dim,
                        ld.n_kv_heads * self.cfg.head_dim,
                    ),
                };
                LayerCache {
                    a: b.f(batch * ctx * a),
                    b: b.f(batch * ctx * bb),
                }
            })
            .collect()
    }

    /// The forward pass up to the final norm (`acts.hf`). With a cache
    /// (`ctx` positions per sequence), the new keys go into it and attention
    /// reads it; without, the pass is a training pass over whole sequences.
    pub fn forward(
        &self,
        bld: &mut Builder,
        acts: &Acts,
        tok: Ix,
        p: Pass,
        cache: Option<(&[LayerCache], usize)>,
    ) {
        let c = self.cfg.d_model;
        let n = p.n();
        bld.embed_fwd(tok, self.w.get("embed"), acts.xs[0].at(0, n * c), c);
        for l in 0..self.cfg.n_layers {
            let lc = cache.map(|(cs, ctx)| (&cs[l], ctx));
            self.layer_fwd(bld, l, acts, p, lc);
        }
        let keep = cache.is_none().then_some(acts.rstdf);
        bld.rmsnorm_fwd(
            acts.xs[self.cfg.n_layers],
            self.w.get("final_norm"),
            acts.hf,
            keep,
            n,
            self.eps,
        );
    }

    /// Logits of every row: (n, V) ← hf (n, C).
    pub fn logits_all(&self, bld: &mut Builder, acts: &Acts, n: usize, logits: F) {
        let (c, v) = (self.cfg.d_model, self.cfg.vocab);
        self.lin(bld, acts.hf, self.head_name(), logits, n, c, v, 0.0);
    }

    /// Logits of the last row of each sequence: (B, V).
    pub fn logits_last(&self, bld: &mut Builder, acts: &Acts, p: Pass, logits: F) {
        let (c, v) = (self.cfg.d_model, self.cfg.vocab);
        let a = Mat::rows(acts.hf.at((p.t - 1) * c, c), c).with_rs(p.t * c);
        if let Some(w) = self.qmat(self.head_name()) {
            bld.qmatmul(a, w, 0, Mat::rows(logits, v), p.b, 1, None, 0.0);
            return;
        }
        bld.gemm(
            a,
            Mat::rows(self.head(), c).t(),
            Mat::rows(logits, v),
            Gemm::new(p.b, v, c),
        );
    }

    fn layer_fwd(
        &self,
        bld: &mut Builder,
        l: usize,
        acts: &Acts,
        p: Pass,
        cache: Option<(&LayerCache, usize)>,
    ) {
        let cfg = &self.cfg;
        let ld = cfg.layer(l);
        let la = &acts.layers[l];
        let (c, n, t) = (cfg.d_model, p.n(), p.t);
        let w = |s: &str| self.w.get(&format!("layers.{l}.{s}"));
        let name = |s: &str| format!("layers.{l}.{s}");
        let train = cache.is_none();
        let x_in = acts.xs[l];
        let x_out = acts.xs[l + 1];
        bld.rmsnorm_fwd(
            x_in,
            w("attn_norm"),
            la.h1,
            train.then_some(la.rstd1),
            n,
            self.eps,
        );
        let (qw, kw, ow) = self.widths(&ld);
        let h = ld.n_heads;
        let lse = train.then_some(la.lse);
        let attn = match (&la.attn, cfg.mla) {
            (AttnActs::Gqa { q, k, v }, _) => {
                let hd = cfg.head_dim;
                let hkv = ld.n_kv_heads;
                self.lin(bld, la.h1, &name("wq"), *q, n, c, qw, 0.0);
                self.lin(bld, la.h1, &name("wk"), *k, n, c, kw, 0.0);
                self.lin(bld, la.h1, &name("wv"), *v, n, c, kw, 0.0);
                let tabs = self.rope.pair();
                bld.rope(q.off, n, t, h, hd, (qw, hd), p.pos0, tabs, false);
                bld.rope(k.off, n, t, hkv, hd, (kw, hd), p.pos0, tabs, false);
                let (ks, vs) = match cache {
                    Some((lc, ctx)) => {
                        for (src, dst) in [(k, lc.a), (v, lc.b)] {
                            bld.copy(
                                [p.b, t, kw],
                                1,
                                (src.off, [t * kw, kw, 1], 0),
                                (dst.off + (p.pos0 * kw) as u32, [ctx * kw, kw, 1]),
                                1.0,
                                0.0,
                            );
                        }
                        ((lc.a.off, ctx * kw, kw, hd), (lc.b.off, ctx * kw, kw, hd))
                    }
                    None => ((k.off, t * kw, kw, hd), (v.off, t * kw, kw, hd)),
                };
                Attn {
                    b: p.b,
                    h,
                    t,
                    hkv,
                    dk: hd,
                    dv: hd,
                    pos0: p.pos0,
                    scale: 1.0 / (hd as f32).sqrt(),
                    q: (q.off, t * qw, qw, hd),
                    k: ks,
                    v: vs,
                    o: (la.o.off, t * ow, ow, hd),
                    lse,
                    grads: None,
                }
            }
            (
                AttnActs::Mla {
                    q,
                    ckv_raw,
                    ckv,
                    rstd_kv,
                    kpe,
                    knope,
                    vv,
                    kfull,
                },
                Some(m),
            ) => {
                let (nope, rope, r, dv) = (m.nope_dim, m.rope_dim, m.kv_lora_rank, m.v_dim);
                let dqk = nope + rope;
                let tabs = self.rope.pair();
                self.lin(bld, la.h1, &name("wq"), *q, n, c, qw, 0.0);
                bld.rope(
                    q.off + nope as u32,
                    n,
                    t,
                    h,
                    rope,
                    (qw, dqk),
                    p.pos0,
                    tabs,
                    false,
                );
                self.lin(bld, la.h1, &name("w_dkv"), *ckv_raw, n, c, r, 0.0);
                bld.rmsnorm_fwd(
                    *ckv_raw,
                    w("kv_norm"),
                    *ckv,
                    train.then_some(*rstd_kv),
                    n,
                    self.eps,
                );
                self.lin(bld, la.h1, &name("w_kr"), *kpe, n, c, rope, 0.0);
                bld.rope(kpe.off, n, t, 1, rope, (rope, 0), p.pos0, tabs, false);
                // Keys and values are up-projected from the (cached) latent.
                let s = p.pos0 + t;
                match cache {
                    Some((lc, ctx)) => {
                        for (src, dst, width) in [(ckv, lc.a, r), (kpe, lc.b, rope)] {
                            bld.copy(
                                [p.b, t, width],
                                1,
                                (src.off, [t * width, width, 1], 0),
                                (dst.off + (p.pos0 * width) as u32, [ctx * width, width, 1]),
                                1.0,
                                0.0,
                            );
                        }
                        for (wn, out, width) in [("w_uk", knope, h * nope), ("w_uv", vv, ow)] {
                            let x = Mat::rows(lc.a, r).batch(ctx * r, 0);
                            let y = Mat::rows(*out, width).batch(s * width, 0);
                            match self.qmat(&name(wn)) {
                                Some(wq) => {
                                    bld.qmatmul(x, wq, 0, y, s, p.b, None, 0.0);
                                }
                                None => {
                                    bld.gemm(
                                        x,
                                        Mat::rows(w(wn), r).t(),
                                        y,
                                        Gemm::new(s, width, r).batches(p.b, 1),
                                    );
                                }
                            }
                        }
                        bld.copy(
                            [p.b * s, h, nope],
                            1,
                            (knope.off, [h * nope, nope, 1], 0),
                            (kfull.off, [qw, dqk, 1]),
                            1.0,
                            0.0,
                        );
                        for bi in 0..p.b {
                            bld.copy(
                                [s, h, rope],
                                1,
                                (lc.b.off + (bi * ctx * rope) as u32, [rope, 0, 1], 0),
                                (kfull.off + (bi * s * qw + nope) as u32, [qw, dqk, 1]),
                                1.0,
                                0.0,
                            );
                        }
                    }
                    None => {
                        self.lin(bld, *ckv, &name("w_uk"), *knope, n, r, h * nope, 0.0);
                        self.lin(bld, *ckv, &name("w_uv"), *vv, n, r, ow, 0.0);
                        bld.copy(
                            [n, h, nope],
                            1,
                            (knope.off, [h * nope, nope, 1], 0),
                            (kfull.off, [qw, dqk, 1]),
                            1.0,
                            0.0,
                        );
                        bld.copy(
                            [n, h, rope],
                            1,
                            (kpe.off, [rope, 0, 1], 0),
                            (kfull.off + nope as u32, [qw, dqk, 1]),
                            1.0,
                            0.0,
                        );
                    }
                }
                Attn {
                    b: p.b,
                    h,
                    t,
                    hkv: h,
                    dk: dqk,
                    dv,
                    pos0: p.pos0,
                    scale: 1.0 / (dqk as f32).sqrt(),
                    q: (q.off, t * qw, qw, dqk),
                    k: (kfull.off, s * qw, qw, dqk),
                    v: (vv.off, s * ow, ow, dv),
                    o: (la.o.off, t * ow, ow, dv),
                    lse,
                    grads: None,
                }
            }
            _ => unreachable!("attention activations match the family"),
        };
        bld.attention(&attn);
        bld.add_into(x_in.at(0, n * c), la.x_mid.at(0, n * c), 0.0);
        self.lin(bld, la.o, &name("wo"), la.x_mid, n, ow, c, 1.0);
        bld.rmsnorm_fwd(
            la.x_mid,
            w("ffn_norm"),
            la.h2,
            train.then_some(la.rstd2),
            n,
            self.eps,
        );
        bld.add_into(la.x_mid.at(0, n * c), x_out.at(0, n * c), 0.0);
        match &la.ffn {
            FfnActs::Dense(mlp) => self.mlp_fwd(
                bld,
                &format!("layers.{l}.ffn"),
                mlp,
                la.h2,
                x_out,
                n,
                ld.ffn,
            ),
            FfnActs::Moe {
                shared,
                rl,
                probs,
                route,
                xe,
                routed,
                ye,
            } => {
                let m = cfg.moe.expect("MoE config");
                for (i, mlp) in shared.iter().enumerate() {
                    let name = format!("layers.{l}.shared.{i}");
                    self.mlp_fwd(bld, &name, mlp, la.h2, x_out, n, m.expert_ffn);
                }
                let e = m.routed;
                self.lin(bld, la.h2, &name("router"), *rl, n, c, e, 0.0);
                bld.softmax_fwd(*rl, *probs, n, e);
                bld.moe_route(*probs, n, e, m.top_k, route);
                bld.moe_gather(la.h2, *xe, route, n, e, c, None);
                let eff = m.expert_ffn;
                let stride = 3 * eff * c;
                if let Some(q) = &self.q {
                    // The experts' gate, up and down, each eff·c weights.
                    let qstride = 3 * q.fmt.words(eff, c);
                    let wq = |s: &str| {
                        q.get(&name(&format!("routed.0.{s}")))
                            .expect("quantized expert weight")
                    };
                    for (wn, out) in [("gate", routed.g), ("up", routed.u)] {
                        bld.qmatmul(
                            Mat::rows(*xe, c).batch(n * c, 0),
                            wq(wn),
                            qstride,
                            Mat::rows(out, eff).batch(n * eff, 0),
                            n,
                            e,
                            Some(route.cnt),
                            0.0,
                        );
                    }
                    bld.swiglu_fwd(routed.g, routed.u, routed.a.at(0, e * n * eff));
                    bld.qmatmul(
                        Mat::rows(routed.a, eff).batch(n * eff, 0),
                        wq("down"),
                        qstride,
                        Mat::rows(*ye, c).batch(n * c, 0),
                        n,
                        e,
                        Some(route.cnt),
                        0.0,
                    );
                    bld.moe_combine(*ye, x_out, route, n, e, c, Some(*probs), 1.0);
                    return;
                }
                for (wn, out) in [("gate", routed.g), ("up", routed.u)] {
                    bld.gemm(
                        Mat::rows(*xe, c).batch(n * c, 0),
                        Mat::rows(w(&format!("routed.0.{wn}")), c)
                            .t()
                            .batch(stride, 0),
                        Mat::rows(out, eff).batch(n * eff, 0),
                        Gemm::new(n, eff, c).batches(e, 1).count(route.cnt),
                    );
                }
                bld.swiglu_fwd(routed.g, routed.u, routed.a.at(0, e * n * eff));
                bld.gemm(
                    Mat::rows(routed.a, eff).batch(n * eff, 0),
                    Mat::rows(w("routed.0.down"), eff).t().batch(stride, 0),
                    Mat::rows(*ye, c).batch(n * c, 0),
                    Gemm::new(n, c, eff).batches(e, 1).count(route.cnt),
                );
                bld.moe_combine(*ye, x_out, route, n, e, c, Some(*probs), 1.0);
            }
        }
    }

    /// x_out += down(silu(gate(h)) ⊙ up(h)).
    #[allow(clippy::too_many_arguments)]
    fn mlp_fwd(
        &self,
        bld: &mut Builder,
        name: &str,
        a: &Mlp,
        h: F,
        x_out: F,
        n: usize,
        width: usize,
    ) {
        let c = self.cfg.d_model;
        let w = |s: &str| format!("{name}.{s}");
        self.lin(bld, h, &w("gate"), a.g, n, c, width, 0.0);
        self.lin(bld, h, &w("up"), a.u, n, c, width, 0.0);
        bld.swiglu_fwd(a.g, a.u, a.a.at(0, n * width));
        self.lin(bld, a.a, &w("down"), x_out, n, width, c, 1.0);
    }
}
