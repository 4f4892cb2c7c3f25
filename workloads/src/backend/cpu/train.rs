//! The dense-attention families (dense, openelm: RMSNorm, RoPE, GQA,
//! SwiGLU) as one explicit training step on the CPU: forward keeping every
//! activation, fused cross-entropy, backward to every parameter, fused
//! AdamW — the op list of the wgpu engine's model, over buffers allocated
//! once.

use std::collections::HashMap;

use super::Compute;
use super::attention::{self, BwdScratch, Shape};
use super::kernels::{self as k, AdamW};
use crate::models::ModelConfig;
use crate::models::params::param_specs;

/// Activations of one layer, kept from the forward for the backward.
struct LayerActs {
    h1: Vec<f32>,
    rstd1: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    p: Vec<f32>,
    o: Vec<f32>,
    x_mid: Vec<f32>,
    h2: Vec<f32>,
    rstd2: Vec<f32>,
    g: Vec<f32>,
    u: Vec<f32>,
    a: Vec<f32>,
}

/// Buffers the backward pass reuses layer after layer.
struct Grads {
    dx: Vec<f32>,
    dh: Vec<f32>,
    da: Vec<f32>,
    d_o: Vec<f32>,
    dq: Vec<f32>,
    dk: Vec<f32>,
    dv: Vec<f32>,
    attn: Vec<BwdScratch>,
}

/// One model's training state on the CPU: parameters in `param_specs`
/// order, their gradients and AdamW moments, and every buffer of a step.
pub struct Trainer {
    cfg: ModelConfig,
    compute: Compute,
    b: usize,
    t: usize,
    pub names: Vec<String>,
    pub params: Vec<Vec<f32>>,
    pub grads: Vec<Vec<f32>>,
    moments: Vec<(Vec<f32>, Vec<f32>)>,
    index: HashMap<String, usize>,
    rope: (Vec<f32>, Vec<f32>),
    xs: Vec<Vec<f32>>,
    layers: Vec<LayerActs>,
    hf: Vec<f32>,
    rstdf: Vec<f32>,
    logits: Vec<f32>,
    o_heads: Vec<f32>,
    work: Grads,
}

impl Trainer {
    /// Whether this executor implements the family: GQA attention with a
    /// dense FFN in every layer (dense, openelm), not MLA or MoE.
    pub fn supports(cfg: &ModelConfig) -> bool {
        cfg.mla.is_none() && cfg.moe.is_none() && !cfg.rope_interleaved
    }

    /// A trainer for batch `b` × `t` tokens starting from `params` (named
    /// values in any order; every parameter of `cfg` must be present), its
    /// weight products in `compute`.
    pub fn new(
        cfg: &ModelConfig,
        b: usize,
        t: usize,
        mut params: HashMap<String, Vec<f32>>,
        compute: Compute,
    ) -> Trainer {
        assert!(Trainer::supports(cfg), "unsupported model family");
        let specs = param_specs(cfg);
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        let params: Vec<Vec<f32>> = specs
            .iter()
            .map(|s| {
                let v = params.remove(&s.name).expect("every parameter given");
                assert_eq!(v.len(), s.shape.iter().product::<usize>(), "{}", s.name);
                v
            })
            .collect();
        let zeros = |v: &Vec<f32>| vec![0f32; v.len()];
        let (c, n, hd) = (cfg.d_model, b * t, cfg.head_dim);
        let z = |len: usize| vec![0f32; len];
        let layers: Vec<LayerActs> = (0..cfg.n_layers)
            .map(|l| {
                let ld = cfg.layer(l);
                LayerActs {
                    h1: z(n * c),
                    rstd1: z(n),
                    q: z(n * ld.n_heads * hd),
                    k: z(n * ld.n_kv_heads * hd),
                    v: z(n * ld.n_kv_heads * hd),
                    p: z(b * ld.n_heads * t * t),
                    o: z(n * ld.n_heads * hd),
                    x_mid: z(n * c),
                    h2: z(n * c),
                    rstd2: z(n),
                    g: z(n * ld.ffn),
                    u: z(n * ld.ffn),
                    a: z(n * ld.ffn),
                }
            })
            .collect();
        let max = |f: &dyn Fn(usize) -> usize| (0..cfg.n_layers).map(f).max().unwrap_or(0);
        let heads = max(&|l| cfg.layer(l).n_heads);
        let kv_heads = max(&|l| cfg.layer(l).n_kv_heads);
        let ffn = max(&|l| cfg.layer(l).ffn);
        let work = Grads {
            dx: z(n * c),
            dh: z(n * c),
            da: z(n * ffn),
            d_o: z(n * heads * hd),
            dq: z(n * heads * hd),
            dk: z(n * kv_heads * hd),
            dv: z(n * kv_heads * hd),
            attn: (0..cfg.n_layers)
                .map(|l| BwdScratch::new(shape(cfg, l, b, t)))
                .collect(),
        };
        Trainer {
            cfg: cfg.clone(),
            compute,
            b,
            t,
            index: names
                .iter()
                .enumerate()
                .map(|(i, s)| (s.clone(), i))
                .collect(),
            grads: params.iter().map(zeros).collect(),
            moments: params.iter().map(|p| (zeros(p), zeros(p))).collect(),
            names,
            params,
            rope: k::rope_tables(hd, cfg.rope_theta, t),
            xs: (0..=cfg.n_layers).map(|_| z(n * c)).collect(),
            layers,
            hf: z(n * c),
            rstdf: z(n),
            logits: z(n * cfg.vocab),
            o_heads: z(b * heads * t * hd),
            work,
        }
    }

    fn id(&self, name: &str) -> usize {
        self.index[name]
    }

    fn head_name(&self) -> &'static str {
        if self.cfg.tied_embeddings {
            "embed"
        } else {
            "lm_head"
        }
    }

    /// Forward, cross-entropy and backward on (inputs, targets), each B·T
    /// long: returns the mean loss; `grads` then holds every gradient.
    pub fn loss_and_grads(&mut self, inputs: &[u32], targets: &[u32]) -> f64 {
        self.forward(inputs);
        let loss = k::cross_entropy(&mut self.logits, targets, self.cfg.vocab);
        self.backward(inputs);
        loss
    }

    /// One AdamW update with the current gradients (step `t`, 1-based).
    pub fn adamw(&mut self, h: AdamW) {
        for ((p, g), (m, v)) in self
            .params
            .iter_mut()
            .zip(&self.grads)
            .zip(&mut self.moments)
        {
            k::adamw(p, g, m, v, h);
        }
    }

    fn forward(&mut self, inputs: &[u32]) {
        let (c, n) = (self.cfg.d_model, self.b * self.t);
        let eps = self.cfg.norm_eps as f32;
        k::embed_fwd(inputs, &self.params[self.id("embed")], &mut self.xs[0], c);
        for l in 0..self.cfg.n_layers {
            self.layer_fwd(l);
        }
        let last = &self.xs[self.cfg.n_layers];
        let w = &self.params[self.id("final_norm")];
        k::rmsnorm_fwd(last, w, &mut self.hf, &mut self.rstdf, c, eps);
        let head = &self.params[self.id(self.head_name())];
        self.compute.linear(
            &self.hf,
            head,
            &mut self.logits,
            n,
            c,
            self.cfg.vocab,
            false,
        );
    }

    fn layer_fwd(&mut self, l: usize) {
        let cfg = &self.cfg;
        let ld = cfg.layer(l);
        let (c, n, hd) = (cfg.d_model, self.b * self.t, cfg.head_dim);
        let eps = cfg.norm_eps as f32;
        let (qw, kw) = (ld.n_heads * hd, ld.n_kv_heads * hd);
        let s = shape(cfg, l, self.b, self.t);
        let cp = self.compute;
        let pi = |name: &str| self.index[&format!("layers.{l}.{name}")];
        let w = |name: &str| &self.params[pi(name)];
        let (before, after) = self.xs.split_at_mut(l + 1);
        let (x_in, x_out) = (&before[l], &mut after[0]);
        let a = &mut self.layers[l];
        k::rmsnorm_fwd(x_in, w("attn_norm"), &mut a.h1, &mut a.rstd1, c, eps);
        cp.linear(&a.h1, w("wq"), &mut a.q, n, c, qw, false);
        cp.linear(&a.h1, w("wk"), &mut a.k, n, c, kw, false);
        cp.linear(&a.h1, w("wv"), &mut a.v, n, c, kw, false);
        let tabs = (&self.rope.0[..], &self.rope.1[..]);
        k::rope(&mut a.q, tabs, self.t, ld.n_heads, hd, false);
        k::rope(&mut a.k, tabs, self.t, ld.n_kv_heads, hd, false);
        let o_heads = &mut self.o_heads[..n * qw];
        attention::forward(s, &a.q, &a.k, &a.v, &mut a.p, o_heads, &mut a.o);
        a.x_mid.copy_from_slice(x_in);
        cp.linear(&a.o, w("wo"), &mut a.x_mid, n, qw, c, true);
        k::rmsnorm_fwd(&a.x_mid, w("ffn_norm"), &mut a.h2, &mut a.rstd2, c, eps);
        cp.linear(&a.h2, w("ffn.gate"), &mut a.g, n, c, ld.ffn, false);
        cp.linear(&a.h2, w("ffn.up"), &mut a.u, n, c, ld.ffn, false);
        k::swiglu_fwd(&a.g, &a.u, &mut a.a);
        x_out.copy_from_slice(&a.x_mid);
        cp.linear(&a.a, w("ffn.down"), x_out, n, ld.ffn, c, true);
    }

    fn backward(&mut self, inputs: &[u32]) {
        let (c, n, v) = (self.cfg.d_model, self.b * self.t, self.cfg.vocab);
        let head = self.id(self.head_name());
        let fi = self.id("final_norm");
        let (cp, wk) = (self.compute, &mut self.work);
        // logits now hold dlogits (cross_entropy wrote them in place).
        cp.linear_bwd_x(&self.logits, &self.params[head], &mut wk.dh, n, c, v, false);
        cp.linear_bwd_w(&self.logits, &self.hf, &mut self.grads[head], n, c, v);
        let last = &self.xs[self.cfg.n_layers];
        let (w, dw) = (&self.params[fi], &mut self.grads[fi]);
        k::rmsnorm_bwd(last, w, &self.rstdf, &wk.dh, &mut wk.dx, dw, c, false);
        for l in (0..self.cfg.n_layers).rev() {
            self.layer_bwd(l);
        }
        let ei = self.id("embed");
        if !self.cfg.tied_embeddings {
            self.grads[ei].fill(0.0);
        }
        k::embed_bwd(inputs, &self.work.dx, &mut self.grads[ei], c);
    }

    /// work.dx: the gradient at the layer's output on entry, at its input
    /// on return.
    fn layer_bwd(&mut self, l: usize) {
        let cfg = &self.cfg;
        let ld = cfg.layer(l);
        let (c, n, hd) = (cfg.d_model, self.b * self.t, cfg.head_dim);
        let (qw, kw, f) = (ld.n_heads * hd, ld.n_kv_heads * hd, ld.ffn);
        let s = shape(cfg, l, self.b, self.t);
        let cp = self.compute;
        let idx = |name: &str| self.index[&format!("layers.{l}.{name}")];
        let [gate, up, down, wq, wk_, wv, wo, n1, n2] = [
            "ffn.gate",
            "ffn.up",
            "ffn.down",
            "wq",
            "wk",
            "wv",
            "wo",
            "attn_norm",
            "ffn_norm",
        ]
        .map(idx);
        let (p, g) = (&self.params, &mut self.grads);
        let a = &mut self.layers[l];
        let wk = &mut self.work;
        let x_in = &self.xs[l];
        // FFN: x_out = x_mid + down(silu(gate(h2)) ⊙ up(h2)).
        let da = &mut wk.da[..n * f];
        cp.linear_bwd_x(&wk.dx, &p[down], da, n, f, c, false);
        cp.linear_bwd_w(&wk.dx, &a.a, &mut g[down], n, f, c);
        k::swiglu_bwd(&mut a.g, &mut a.u, da);
        let (dg, du) = (&a.g, &a.u);
        cp.linear_bwd_x(dg, &p[gate], &mut wk.dh, n, c, f, false);
        cp.linear_bwd_x(du, &p[up], &mut wk.dh, n, c, f, true);
        cp.linear_bwd_w(dg, &a.h2, &mut g[gate], n, c, f);
        cp.linear_bwd_w(du, &a.h2, &mut g[up], n, c, f);
        k::rmsnorm_bwd(
            &a.x_mid, &p[n2], &a.rstd2, &wk.dh, &mut wk.dx, &mut g[n2], c, true,
        );
        // Attention: x_mid = x_in + wo(attn(rope(q), rope(k), v)).
        let d_o = &mut wk.d_o[..n * qw];
        cp.linear_bwd_x(&wk.dx, &p[wo], d_o, n, qw, c, false);
        cp.linear_bwd_w(&wk.dx, &a.o, &mut g[wo], n, qw, c);
        let (dq, dk, dv) = (
            &mut wk.dq[..n * qw],
            &mut wk.dk[..n * kw],
            &mut wk.dv[..n * kw],
        );
        attention::backward(
            s,
            &a.q,
            &a.k,
            &a.v,
            &a.p,
            d_o,
            &mut wk.attn[l],
            (dq, dk, dv),
        );
        let tabs = (&self.rope.0[..], &self.rope.1[..]);
        k::rope(dq, tabs, self.t, ld.n_heads, hd, true);
        k::rope(dk, tabs, self.t, ld.n_kv_heads, hd, true);
        cp.linear_bwd_x(dq, &p[wq], &mut wk.dh, n, c, qw, false);
        cp.linear_bwd_x(dk, &p[wk_], &mut wk.dh, n, c, kw, true);
        cp.linear_bwd_x(dv, &p[wv], &mut wk.dh, n, c, kw, true);
        cp.linear_bwd_w(dq, &a.h1, &mut g[wq], n, c, qw);
        cp.linear_bwd_w(dk, &a.h1, &mut g[wk_], n, c, kw);
        cp.linear_bwd_w(dv, &a.h1, &mut g[wv], n, c, kw);
        k::rmsnorm_bwd(
            x_in, &p[n1], &a.rstd1, &wk.dh, &mut wk.dx, &mut g[n1], c, true,
        );
    }
}

fn shape(cfg: &ModelConfig, l: usize, b: usize, t: usize) -> Shape {
    let ld = cfg.layer(l);
    Shape {
        b,
        t,
        h: ld.n_heads,
        hkv: ld.n_kv_heads,
        hd: cfg.head_dim,
    }
}
