//! The backward pass of the wgpu model, op by op: from the logits' gradient
//! to every parameter's gradient (the forward pass keeps what it needs).

use super::{Acts, AttnActs, FfnActs, Mlp, Net, Pass, Weights};
use crate::backend::wgpu::engine::{Builder, F, Ix};
use crate::backend::wgpu::ops::{Attn, Gemm, Mat};

impl Net {
    /// dh (+)= the FFN's input gradient for output gradient dy; weight
    /// gradients into `g`.
    #[allow(clippy::too_many_arguments)]
    fn mlp_bwd(
        &self,
        bld: &mut Builder,
        g: &Weights,
        name: &str,
        a: &Mlp,
        h: F,
        dy: F,
        dh: F,
        n: usize,
        width: usize,
        beta: f32,
    ) {
        let c = self.cfg.d_model;
        let w = |s: &str| self.w.get(&format!("{name}.{s}"));
        let gw = |s: &str| g.get(&format!("{name}.{s}"));
        let da = bld.f(n * width);
        let dg = bld.f(n * width);
        let du = bld.f(n * width);
        bld.linear_bwd_x(dy, w("down"), da, n, width, c, 0.0);
        bld.linear_bwd_w(dy, a.a, gw("down"), n, width, c);
        bld.swiglu_bwd(a.g, a.u, da, dg, du);
        bld.linear_bwd_x(dg, w("gate"), dh, n, c, width, beta);
        bld.linear_bwd_x(du, w("up"), dh, n, c, width, 1.0);
        bld.linear_bwd_w(dg, h, gw("gate"), n, c, width);
        bld.linear_bwd_w(du, h, gw("up"), n, c, width);
    }

    /// The backward pass of a training forward over `p` (pos0 = 0): from
    /// dlogits (n, V) to every parameter's gradient in `g` (which must be
    /// zeroed first: every gradient is accumulated).
    pub fn backward(
        &self,
        bld: &mut Builder,
        acts: &Acts,
        tok: Ix,
        p: Pass,
        dlogits: F,
        g: &Weights,
    ) {
        let cfg = &self.cfg;
        let (c, v, n) = (cfg.d_model, cfg.vocab, p.n());
        let dhf = bld.f(n * c);
        bld.linear_bwd_x(dlogits, self.head(), dhf, n, c, v, 0.0);
        bld.linear_bwd_w(dlogits, acts.hf, g.get(self.head_name()), n, c, v);
        let mut dx_out = bld.f(n * c);
        bld.rmsnorm_bwd(
            acts.xs[cfg.n_layers],
            self.w.get("final_norm"),
            acts.rstdf,
            dhf,
            dx_out,
            g.get("final_norm"),
            n,
            0.0,
        );
        for l in (0..cfg.n_layers).rev() {
            let dx_in = bld.f(n * c);
            self.layer_bwd(bld, l, acts, p, dx_out, dx_in, g);
            dx_out = dx_in;
        }
        bld.embed_bwd(tok, dx_out, g.get("embed"), c);
    }

    #[allow(clippy::too_many_arguments)]
    fn layer_bwd(
        &self,
        bld: &mut Builder,
        l: usize,
        acts: &Acts,
        p: Pass,
        dx_out: F,
        dx_in: F,
        g: &Weights,
    ) {
        let cfg = &self.cfg;
        let ld = cfg.layer(l);
        let la = &acts.layers[l];
        let (c, n, t) = (cfg.d_model, p.n(), p.t);
        let w = |s: &str| self.w.get(&format!("layers.{l}.{s}"));
        let gw = |s: &str| g.get(&format!("layers.{l}.{s}"));
        // FFN branch: dx_mid = dx_out + ∂ffn.
        let dx_mid = bld.f(n * c);
        let dh2 = bld.f(n * c);
        bld.add_into(dx_out, dx_mid, 0.0);
        match &la.ffn {
            FfnActs::Dense(mlp) => {
                let name = format!("layers.{l}.ffn");
                self.mlp_bwd(bld, g, &name, mlp, la.h2, dx_out, dh2, n, ld.ffn, 0.0);
            }
            FfnActs::Moe {
                shared,
                rl: _,
                probs,
                route,
                xe,
                routed,
                ye,
            } => {
                let m = cfg.moe.expect("MoE config");
                let (e, eff) = (m.routed, m.expert_ffn);
                bld.zero(dh2);
                for (i, mlp) in shared.iter().enumerate() {
                    let name = format!("layers.{l}.shared.{i}");
                    self.mlp_bwd(bld, g, &name, mlp, la.h2, dx_out, dh2, n, eff, 1.0);
                }
                // Router: d probs = dout · y_e for the chosen experts.
                let dprobs = bld.f(n * e);
                let drl = bld.f(n * e);
                bld.moe_dprob(dx_out, *ye, route, dprobs, n, e, c);
                bld.softmax_bwd(*probs, dprobs, drl, n, e);
                bld.linear_bwd_x(drl, w("router"), dh2, n, c, e, 1.0);
                bld.linear_bwd_w(drl, la.h2, gw("router"), n, c, e);
                // Routed experts, batched over experts as in the forward.
                let stride = 3 * eff * c;
                let dye = bld.f(e * n * c);
                let dae = bld.f(e * n * eff);
                let dge = bld.f(e * n * eff);
                let due = bld.f(e * n * eff);
                let dxe = bld.f(e * n * c);
                bld.moe_gather(dx_out, dye, route, n, e, c, Some(*probs));
                let wt = |s: &str| w(&format!("routed.0.{s}"));
                let gt = |s: &str| gw(&format!("routed.0.{s}"));
                // dae = dye · W_down (per expert)
                bld.gemm(
                    Mat::rows(dye, c).batch(n * c, 0),
                    Mat::rows(wt("down"), eff).batch(stride, 0),
                    Mat::rows(dae, eff).batch(n * eff, 0),
                    Gemm::new(n, eff, c).batches(e, 1).count(route.cnt),
                );
                // dW_down += dyeᵀ · ae (padded rows of dye are zero)
                bld.gemm(
                    Mat::rows(dye, c).t().batch(n * c, 0),
                    Mat::rows(routed.a, eff).batch(n * eff, 0),
                    Mat::rows(gt("down"), eff).batch(stride, 0),
                    Gemm::new(c, eff, n).batches(e, 1).beta(1.0),
                );
                bld.swiglu_bwd(routed.g, routed.u, dae, dge, due);
                for (i, (dgu, wn)) in [(dge, "gate"), (due, "up")].into_iter().enumerate() {
                    bld.gemm(
                        Mat::rows(dgu, eff).batch(n * eff, 0),
                        Mat::rows(wt(wn), c).batch(stride, 0),
                        Mat::rows(dxe, c).batch(n * c, 0),
                        Gemm::new(n, c, eff)
                            .batches(e, 1)
                            .count(route.cnt)
                            .beta(i as f32),
                    );
                    // padded rows of xe are zero
                    bld.gemm(
                        Mat::rows(dgu, eff).t().batch(n * eff, 0),
                        Mat::rows(*xe, c).batch(n * c, 0),
                        Mat::rows(gt(wn), c).batch(stride, 0),
                        Gemm::new(eff, c, n).batches(e, 1).beta(1.0),
                    );
                }
                bld.moe_combine(dxe, dh2, route, n, e, c, None, 1.0);
            }
        }
        bld.rmsnorm_bwd(
            la.x_mid,
            w("ffn_norm"),
            la.rstd2,
            dh2,
            dx_mid,
            gw("ffn_norm"),
            n,
            1.0,
        );
        // Attention branch: dx_in = dx_mid + ∂attn.
        bld.add_into(dx_mid, dx_in, 0.0);
        let (qw, kw, ow) = self.widths(&ld);
        let h = ld.n_heads;
        let d_o = bld.f(n * ow);
        bld.linear_bwd_x(dx_mid, w("wo"), d_o, n, ow, c, 0.0);
        bld.linear_bwd_w(dx_mid, la.o, gw("wo"), n, ow, c);
        let dh1 = bld.f(n * c);
        let tabs = self.rope.pair();
        match (&la.attn, cfg.mla) {
            (AttnActs::Gqa { q, k, v }, _) => {
                let hd = cfg.head_dim;
                let hkv = ld.n_kv_heads;
                let (dq, dk, dv) = (bld.f(n * qw), bld.f(n * kw), bld.f(n * kw));
                bld.attention_bwd(&Attn {
                    b: p.b,
                    h,
                    t,
                    hkv,
                    dk: hd,
                    dv: hd,
                    pos0: 0,
                    scale: 1.0 / (hd as f32).sqrt(),
                    q: (q.off, t * qw, qw, hd),
                    k: (k.off, t * kw, kw, hd),
                    v: (v.off, t * kw, kw, hd),
                    o: (la.o.off, t * ow, ow, hd),
                    lse: Some(la.lse),
                    grads: Some((d_o, dq, dk, dv)),
                });
                bld.rope(dq.off, n, t, h, hd, (qw, hd), 0, tabs, true);
                bld.rope(dk.off, n, t, hkv, hd, (kw, hd), 0, tabs, true);
                bld.linear_bwd_x(dq, w("wq"), dh1, n, c, qw, 0.0);
                bld.linear_bwd_x(dk, w("wk"), dh1, n, c, kw, 1.0);
                bld.linear_bwd_x(dv, w("wv"), dh1, n, c, kw, 1.0);
                bld.linear_bwd_w(dq, la.h1, gw("wq"), n, c, qw);
                bld.linear_bwd_w(dk, la.h1, gw("wk"), n, c, kw);
                bld.linear_bwd_w(dv, la.h1, gw("wv"), n, c, kw);
            }
            (
                AttnActs::Mla {
                    q,
                    ckv_raw,
                    ckv,
                    rstd_kv,
                    kpe: _,
                    knope: _,
                    vv,
                    kfull,
                },
                Some(m),
            ) => {
                let (nope, rope, r, dvd) = (m.nope_dim, m.rope_dim, m.kv_lora_rank, m.v_dim);
                let dqk = nope + rope;
                let (dq, dkfull, dvv) = (bld.f(n * qw), bld.f(n * kw), bld.f(n * ow));
                bld.attention_bwd(&Attn {
                    b: p.b,
                    h,
                    t,
                    hkv: h,
                    dk: dqk,
                    dv: dvd,
                    pos0: 0,
                    scale: 1.0 / (dqk as f32).sqrt(),
                    q: (q.off, t * qw, qw, dqk),
                    k: (kfull.off, t * qw, qw, dqk),
                    v: (vv.off, t * ow, ow, dvd),
                    o: (la.o.off, t * ow, ow, dvd),
                    lse: Some(la.lse),
                    grads: Some((d_o, dq, dkfull, dvv)),
                });
                bld.rope(
                    dq.off + nope as u32,
                    n,
                    t,
                    h,
                    rope,
                    (qw, dqk),
                    0,
                    tabs,
                    true,
                );
                let dknope = bld.f(n * h * nope);
                let dkpe = bld.f(n * rope);
                bld.copy(
                    [n, h, nope],
                    1,
                    (dkfull.off, [qw, dqk, 1], 0),
                    (dknope.off, [h * nope, nope, 1]),
                    1.0,
                    0.0,
                );
                // The RoPE key is shared by all heads: its gradient sums them.
                bld.copy(
                    [n, 1, rope],
                    h,
                    (dkfull.off + nope as u32, [qw, 0, 1], dqk),
                    (dkpe.off, [rope, 0, 1]),
                    1.0,
                    0.0,
                );
                bld.rope(dkpe.off, n, t, 1, rope, (rope, 0), 0, tabs, true);
                let dckv = bld.f(n * r);
                let dckv_raw = bld.f(n * r);
                bld.linear_bwd_x(dknope, w("w_uk"), dckv, n, r, h * nope, 0.0);
                bld.linear_bwd_x(dvv, w("w_uv"), dckv, n, r, ow, 1.0);
                bld.linear_bwd_w(dknope, *ckv, gw("w_uk"), n, r, h * nope);
                bld.linear_bwd_w(dvv, *ckv, gw("w_uv"), n, r, ow);
                bld.rmsnorm_bwd(
                    *ckv_raw,
                    w("kv_norm"),
                    *rstd_kv,
                    dckv,
                    dckv_raw,
                    gw("kv_norm"),
                    n,
                    0.0,
                );
                bld.linear_bwd_x(dq, w("wq"), dh1, n, c, qw, 0.0);
                bld.linear_bwd_x(dckv_raw, w("w_dkv"), dh1, n, c, r, 1.0);
                bld.linear_bwd_x(dkpe, w("w_kr"), dh1, n, c, rope, 1.0);
                bld.linear_bwd_w(dq, la.h1, gw("wq"), n, c, qw);
                bld.linear_bwd_w(dckv_raw, la.h1, gw("w_dkv"), n, c, r);
                bld.linear_bwd_w(dkpe, la.h1, gw("w_kr"), n, c, rope);
            }
            _ => unreachable!("attention activations match the family"),
        }
        bld.rmsnorm_bwd(
            acts.xs[l],
            w("attn_norm"),
            la.rstd1,
            dh1,
            dx_in,
            gw("attn_norm"),
            n,
            1.0,
        );
    }
}
