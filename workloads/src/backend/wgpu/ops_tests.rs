//! One test body checks every engine op, forward and backward, on every
//! available wgpu adapter against a host f64 computation (backward passes
//! also against central finite differences of the host forward).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::WgpuContext;
use super::engine::{Builder, Engine, F, NONE};
use super::ops::{AdamW, Attn, Route, adamw_params};
use crate::backend::WgpuSelector;

mod linear_tests;
use linear_tests::{check_copy_embed_swiglu, check_gemm, check_qmatvec};

/// Every primary adapter (`wgpu:N`), or none with the skip message (a
/// failure under CAPBENCH_REQUIRE_WGPU=1).
fn adapters() -> Vec<WgpuSelector> {
    if super::test_backend().is_none() {
        return vec![];
    }
    (0..super::adapters(wgpu::Backends::PRIMARY).len())
        .map(WgpuSelector::Index)
        .collect()
}

fn rand_vec(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn d64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| *x as f64).collect()
}

/// max |got − want| ≤ tol · max(1, max |want|).
fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f64, |m, x| m.max(x.abs()));
    let diff = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (g, w)| m.max((*g as f64 - w).abs()));
    assert!(
        diff <= tol * scale && got.iter().all(|x| x.is_finite()),
        "{what}: max diff {diff:.3e} (scale {scale:.3e})\n got {got:?}\nwant {want:?}"
    );
}

/// Builds an engine from `bld` on `sel` and writes the inputs.
fn engine(sel: WgpuSelector, bld: Builder, inputs: &[(F, &[f32])]) -> Engine {
    let e = Engine::build(WgpuContext::open(sel).unwrap(), bld, None).unwrap();
    for (view, data) in inputs {
        e.write_f(*view, data);
    }
    e
}

fn host_rmsnorm(x: &[f64], w: &[f64], eps: f64) -> Vec<f64> {
    let c = w.len();
    x.chunks(c)
        .flat_map(|row| {
            let r = 1.0 / (row.iter().map(|v| v * v).sum::<f64>() / c as f64 + eps).sqrt();
            row.iter().zip(w).map(move |(v, w)| v * r * w)
        })
        .collect()
}

/// Central-difference gradient of Σ f(x) ⊙ r with respect to x.
fn numeric_grad(x: &[f64], r: &[f64], f: impl Fn(&[f64]) -> Vec<f64>) -> Vec<f64> {
    let h = 1e-6;
    (0..x.len())
        .map(|i| {
            let mut xp = x.to_vec();
            xp[i] += h;
            let mut xm = x.to_vec();
            xm[i] -= h;
            let lp: f64 = f(&xp).iter().zip(r).map(|(a, b)| a * b).sum();
            let lm: f64 = f(&xm).iter().zip(r).map(|(a, b)| a * b).sum();
            (lp - lm) / (2.0 * h)
        })
        .collect()
}

fn check_norm_rope_softmax(sel: WgpuSelector, rng: &mut ChaCha8Rng) {
    let (rows, c) = (3, 70); // more columns than the 64-thread row kernels
    let (hx, hw, hdy, hdx0) = (
        rand_vec(rng, rows * c),
        rand_vec(rng, c),
        rand_vec(rng, rows * c),
        rand_vec(rng, rows * c),
    );
    // RoPE: (rows 2·T 3, heads 2, dim 8) after pos0 = 4, tables for 8 positions.
    let (rrows, t, heads, dim, pos0) = (6, 3, 2, 8, 4);
    let hr = rand_vec(rng, rrows * heads * dim);
    let (cos, sin): (Vec<f32>, Vec<f32>) = (0..8 * dim / 2)
        .map(|i| {
            let (p, j) = (i / (dim / 2), i % (dim / 2));
            let a = p as f64 / 10_000f64.powf(2.0 * j as f64 / dim as f64);
            (a.cos() as f32, a.sin() as f32)
        })
        .unzip();
    let (sx, sdy) = (rand_vec(rng, 4 * 70), rand_vec(rng, 4 * 70));
    let mut bld = Builder::new();
    let (x, w, y, rstd, dy, dx, dw) = (
        bld.f(rows * c),
        bld.f(c),
        bld.f(rows * c),
        bld.f(rows),
        bld.f(rows * c),
        bld.f(rows * c),
        bld.f(c),
    );
    let (r1, r2, tc, ts) = (
        bld.f(hr.len()),
        bld.f(hr.len()),
        bld.f(cos.len()),
        bld.f(sin.len()),
    );
    let (smx, smy, smdy, smdx) = (bld.f(280), bld.f(280), bld.f(280), bld.f(280));
    bld.begin();
    bld.rmsnorm_fwd(x, w, y, Some(rstd), rows, 1e-5);
    bld.rmsnorm_bwd(x, w, rstd, dy, dx, dw, rows, 1.0);
    bld.rope(
        r1.off,
        rrows,
        t,
        heads,
        dim,
        (heads * dim, dim),
        pos0,
        (tc, ts),
        false,
    );
    bld.rope(
        r2.off,
        rrows,
        t,
        heads,
        dim,
        (heads * dim, dim),
        pos0,
        (tc, ts),
        false,
    );
    bld.rope(
        r2.off,
        rrows,
        t,
        heads,
        dim,
        (heads * dim, dim),
        pos0,
        (tc, ts),
        true,
    );
    bld.softmax_fwd(smx, smy, 4, 70);
    bld.softmax_bwd(smy, smdy, smdx, 4, 70);
    let mut e = engine(
        sel,
        bld,
        &[
            (x, &hx),
            (w, &hw),
            (dy, &hdy),
            (dx, &hdx0),
            (r1, &hr),
            (r2, &hr),
            (tc, &cos),
            (ts, &sin),
            (smx, &sx),
            (smdy, &sdy),
        ],
    );
    e.run(&[super::engine::PlanId(0)]).unwrap();
    let (x64, w64, dy64) = (d64(&hx), d64(&hw), d64(&hdy));
    assert_close(
        "rmsnorm",
        &e.read_f(y).unwrap(),
        &host_rmsnorm(&x64, &w64, 1e-5),
        1e-5,
    );
    let gx = numeric_grad(&x64, &dy64, |x| host_rmsnorm(x, &w64, 1e-5));
    let want: Vec<f64> = gx.iter().zip(&hdx0).map(|(g, d0)| g + *d0 as f64).collect();
    assert_close(
        "rmsnorm dx (accumulated)",
        &e.read_f(dx).unwrap(),
        &want,
        1e-4,
    );
    let gw = numeric_grad(&w64, &dy64, |w| host_rmsnorm(&x64, w, 1e-5));
    assert_close("rmsnorm dw", &e.read_f(dw).unwrap(), &gw, 1e-4);
    let want: Vec<f64> = (0..hr.len())
        .map(|i| {
            let (row, h, j) = (i / (heads * dim), (i / dim) % heads, i % dim);
            let pos = pos0 + row % t;
            let half = dim / 2;
            let base = row * heads * dim + h * dim;
            let (k, sign) = if j < half { (j, -1.0) } else { (j - half, 1.0) };
            let (cs, sn) = (cos[pos * half + k] as f64, sin[pos * half + k] as f64);
            let other = if j < half {
                hr[base + j + half]
            } else {
                hr[base + j - half]
            };
            hr[i] as f64 * cs + sign * other as f64 * sn
        })
        .collect();
    assert_close("rope", &e.read_f(r1).unwrap(), &want, 1e-6);
    assert_close(
        "rope then its backward",
        &e.read_f(r2).unwrap(),
        &d64(&hr),
        1e-6,
    );
    let softmax = |x: &[f64]| -> Vec<f64> {
        x.chunks(70)
            .flat_map(|r| {
                let m = r.iter().cloned().fold(f64::MIN, f64::max);
                let s: f64 = r.iter().map(|v| (v - m).exp()).sum();
                r.iter().map(move |v| (v - m).exp() / s)
            })
            .collect()
    };
    let sx64 = d64(&sx);
    assert_close("softmax", &e.read_f(smy).unwrap(), &softmax(&sx64), 1e-6);
    let g = numeric_grad(&sx64, &d64(&sdy), softmax);
    assert_close("softmax backward", &e.read_f(smdx).unwrap(), &g, 1e-5);
}

fn check_xent_argmax_adamw(sel: WgpuSelector, rng: &mut ChaCha8Rng) {
    let (rows, v) = (3, 100);
    let hx = rand_vec(rng, rows * v);
    let tg = [5u32, 99, 0];
    let n = 300;
    let (hp, hg, hm, hv) = (
        rand_vec(rng, n),
        rand_vec(rng, n),
        rand_vec(rng, n),
        rand_vec(rng, n).iter().map(|x| x.abs()).collect::<Vec<_>>(),
    );
    let mut bld = Builder::new();
    let (x, loss, dx) = (bld.f(rows * v), bld.f(rows), bld.f(rows * v));
    let (tgt, am) = (bld.u(rows), bld.u(rows));
    let (p, g, m, vv) = (bld.f(n), bld.f(n), bld.f(n), bld.f(n));
    bld.begin();
    bld.xent(x, tgt, loss, Some(dx), rows, v);
    bld.argmax(x, rows, v, v, am);
    let adam = bld.adamw(p, g, m, vv);
    let mut e = engine(
        sel,
        bld,
        &[(x, &hx), (p, &hp), (g, &hg), (m, &hm), (vv, &hv)],
    );
    e.write_u(tgt, &tg);
    let h = AdamW::default();
    e.set_params(adam, &adamw_params(n, (p, g, m, vv), &h, 3));
    e.run(&[super::engine::PlanId(0)]).unwrap();
    let x64 = d64(&hx);
    let lse: Vec<f64> = x64
        .chunks(v)
        .map(|r| {
            let mx = r.iter().cloned().fold(f64::MIN, f64::max);
            mx + r.iter().map(|a| (a - mx).exp()).sum::<f64>().ln()
        })
        .collect();
    let want: Vec<f64> = (0..rows)
        .map(|r| lse[r] - x64[r * v + tg[r] as usize])
        .collect();
    assert_close("cross-entropy", &e.read_f(loss).unwrap(), &want, 1e-6);
    let mean_loss = |x: &[f64]| -> Vec<f64> {
        let l: f64 = x
            .chunks(v)
            .zip(tg)
            .map(|(r, t)| {
                let mx = r.iter().cloned().fold(f64::MIN, f64::max);
                mx + r.iter().map(|a| (a - mx).exp()).sum::<f64>().ln() - r[t as usize]
            })
            .sum();
        vec![l / rows as f64]
    };
    let g_num = numeric_grad(&x64, &[1.0], mean_loss);
    assert_close(
        "cross-entropy gradient",
        &e.read_f(dx).unwrap(),
        &g_num,
        1e-5,
    );
    let want: Vec<u32> = x64
        .chunks(v)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold(0, |b, (i, a)| if *a > r[b] { i } else { b }) as u32
        })
        .collect();
    assert_eq!(e.read_u(am).unwrap(), want, "argmax");
    let (b1, b2) = (h.beta1 as f64, h.beta2 as f64);
    let (c1, c2) = (1.0 - b1.powi(3), 1.0 - b2.powi(3));
    let want: Vec<f64> = (0..n)
        .map(|i| {
            let (pi, gi) = (hp[i] as f64, hg[i] as f64);
            let mi = b1 * hm[i] as f64 + (1.0 - b1) * gi;
            let vi = b2 * hv[i] as f64 + (1.0 - b2) * gi * gi;
            let upd = (mi / c1) / ((vi / c2).sqrt() + h.eps as f64);
            pi - h.lr as f64 * (upd + h.weight_decay as f64 * pi)
        })
        .collect();
    assert_close("adamw", &e.read_f(p).unwrap(), &want, 1e-6);
}

fn check_moe(sel: WgpuSelector, rng: &mut ChaCha8Rng) {
    let (n, ne, c, k) = (5, 4, 3, 2);
    let probs: Vec<f32> = rand_vec(rng, n * ne).iter().map(|x| x.abs()).collect();
    let (hx, hye, hdout) = (
        rand_vec(rng, n * c),
        rand_vec(rng, ne * n * c),
        rand_vec(rng, n * c),
    );
    let mut bld = Builder::new();
    let (pv, x, xe, ye, out, dp) = (
        bld.f(n * ne),
        bld.f(n * c),
        bld.f(ne * n * c),
        bld.f(ne * n * c),
        bld.f(n * c),
        bld.f(n * ne),
    );
    let dout = bld.f(n * c);
    let route = Route::alloc(&mut bld, n, ne);
    bld.begin();
    bld.moe_route(pv, n, ne, k, &route);
    bld.moe_gather(x, xe, &route, n, ne, c, Some(pv));
    bld.moe_combine(ye, out, &route, n, ne, c, Some(pv), 0.0);
    bld.moe_dprob(dout, ye, &route, dp, n, ne, c);
    let mut e = engine(
        sel,
        bld,
        &[(pv, &probs), (x, &hx), (ye, &hye), (dout, &hdout)],
    );
    e.run(&[super::engine::PlanId(0)]).unwrap();
    // Host routing: top-k by probability, lower index on ties; slots in
    // token order.
    let mut chosen = vec![vec![]; n];
    for (t, ch) in chosen.iter_mut().enumerate() {
        let mut idx: Vec<usize> = (0..ne).collect();
        let row = &probs[t * ne..(t + 1) * ne];
        idx.sort_by(|a, b| row[*b].total_cmp(&row[*a]).then(a.cmp(b)));
        *ch = idx[..k].to_vec();
    }
    let mut slot = vec![vec![NONE; ne]; n];
    let mut cnt = vec![0u32; ne];
    let mut idx = vec![0u32; ne * n];
    for t in 0..n {
        for ex in 0..ne {
            if chosen[t].contains(&ex) {
                slot[t][ex] = cnt[ex];
                idx[ex * n + cnt[ex] as usize] = t as u32;
                cnt[ex] += 1;
            }
        }
    }
    assert_eq!(e.read_u(route.cnt).unwrap(), cnt, "expert counts");
    let pos: Vec<u32> = slot.iter().flatten().cloned().collect();
    assert_eq!(e.read_u(route.pos).unwrap(), pos, "slots");
    let want: Vec<f64> = (0..ne * n * c)
        .map(|j| {
            let (ex, i, cc) = (j / (n * c), (j / c) % n, j % c);
            if i as u32 >= cnt[ex] {
                return 0.0;
            }
            let t = idx[ex * n + i] as usize;
            probs[t * ne + ex] as f64 * hx[t * c + cc] as f64
        })
        .collect();
    assert_close("moe gather", &e.read_f(xe).unwrap(), &want, 1e-6);
    let want: Vec<f64> = (0..n * c)
        .map(|j| {
            let (t, cc) = (j / c, j % c);
            chosen[t]
                .iter()
                .map(|ex| {
                    let s = slot[t][*ex] as usize;
                    probs[t * ne + ex] as f64 * hye[(ex * n + s) * c + cc] as f64
                })
                .sum()
        })
        .collect();
    assert_close("moe combine", &e.read_f(out).unwrap(), &want, 1e-6);
    let want: Vec<f64> = (0..n * ne)
        .map(|j| {
            let (t, ex) = (j / ne, j % ne);
            if slot[t][ex] == NONE {
                return 0.0;
            }
            let s = slot[t][ex] as usize;
            (0..c)
                .map(|cc| hdout[t * c + cc] as f64 * hye[(ex * n + s) * c + cc] as f64)
                .sum()
        })
        .collect();
    assert_close("moe dprob", &e.read_f(dp).unwrap(), &want, 1e-6);
}

/// Host causal GQA attention, (B, T, H, d) rows, queries at pos0 + t over
/// keys (B, S, Hkv, d).
#[allow(clippy::too_many_arguments)]
fn host_attention(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    (b, t, h, hkv, d, pos0, s): (usize, usize, usize, usize, usize, usize, usize),
) -> Vec<f64> {
    let mut o = vec![0.0; b * t * h * d];
    let scale = 1.0 / (d as f64).sqrt();
    for bi in 0..b {
        for ti in 0..t {
            for hi in 0..h {
                let kh = hi / (h / hkv);
                let qa = ((bi * t + ti) * h + hi) * d;
                let sc: Vec<f64> = (0..=pos0 + ti)
                    .map(|si| {
                        let ka = ((bi * s + si) * hkv + kh) * d;
                        (0..d).map(|x| q[qa + x] * k[ka + x]).sum::<f64>() * scale
                    })
                    .collect();
                let m = sc.iter().cloned().fold(f64::MIN, f64::max);
                let z: f64 = sc.iter().map(|x| (x - m).exp()).sum();
                for (si, x) in sc.iter().enumerate() {
                    let va = ((bi * s + si) * hkv + kh) * d;
                    for dd in 0..d {
                        o[qa + dd] += (x - m).exp() / z * v[va + dd];
                    }
                }
            }
        }
    }
    o
}

fn check_attention(sel: WgpuSelector, rng: &mut ChaCha8Rng) {
    // Forward against a cache: B 2, T 3 queries after pos0 2, S 5 keys in a
    // cache of 6 rows per sequence; GQA 4 query heads over 2 KV heads.
    let (b, t, h, hkv, d, pos0, ctx) = (2, 3, 4, 2, 8, 2, 6);
    let s = pos0 + t;
    let (hq, hk, hv) = (
        rand_vec(rng, b * t * h * d),
        rand_vec(rng, b * ctx * hkv * d),
        rand_vec(rng, b * ctx * hkv * d),
    );
    let mut bld = Builder::new();
    let (q, k, v, o) = (
        bld.f(hq.len()),
        bld.f(hk.len()),
        bld.f(hv.len()),
        bld.f(hq.len()),
    );
    bld.begin();
    let (qw, kw) = (h * d, hkv * d);
    bld.attention(&Attn {
        b,
        h,
        t,
        hkv,
        dk: d,
        dv: d,
        pos0,
        scale: 1.0 / (d as f32).sqrt(),
        q: (q.off, t * qw, qw, d),
        k: (k.off, ctx * kw, kw, d),
        v: (v.off, ctx * kw, kw, d),
        o: (o.off, t * qw, qw, d),
        lse: None,
        grads: None,
    });
    let mut e = engine(sel, bld, &[(q, &hq), (k, &hk), (v, &hv)]);
    e.run(&[super::engine::PlanId(0)]).unwrap();
    let want = host_attention(
        &d64(&hq),
        &d64(&hk),
        &d64(&hv),
        (b, t, h, hkv, d, pos0, ctx),
    );
    assert_close("attention with a cache", &e.read_f(o).unwrap(), &want, 1e-5);
    let _ = s;

    // Backward (training layout, pos0 0) against finite differences.
    let (b, t) = (2, 4);
    let (hq, hk, hv, hr) = (
        rand_vec(rng, b * t * qw),
        rand_vec(rng, b * t * kw),
        rand_vec(rng, b * t * kw),
        rand_vec(rng, b * t * qw),
    );
    let mut bld = Builder::new();
    let (q, k, v, o, lse) = (
        bld.f(hq.len()),
        bld.f(hk.len()),
        bld.f(hv.len()),
        bld.f(hq.len()),
        bld.f(b * h * t),
    );
    let (dov, dq, dk, dv) = (
        bld.f(hr.len()),
        bld.f(hq.len()),
        bld.f(hk.len()),
        bld.f(hv.len()),
    );
    bld.begin();
    let a = Attn {
        b,
        h,
        t,
        hkv,
        dk: d,
        dv: d,
        pos0: 0,
        scale: 1.0 / (d as f32).sqrt(),
        q: (q.off, t * qw, qw, d),
        k: (k.off, t * kw, kw, d),
        v: (v.off, t * kw, kw, d),
        o: (o.off, t * qw, qw, d),
        lse: Some(lse),
        grads: Some((dov, dq, dk, dv)),
    };
    bld.attention(&a);
    bld.attention_bwd(&a);
    let mut e = engine(sel, bld, &[(q, &hq), (k, &hk), (v, &hv), (dov, &hr)]);
    e.run(&[super::engine::PlanId(0)]).unwrap();
    let (q64, k64, v64, r64) = (d64(&hq), d64(&hk), d64(&hv), d64(&hr));
    let dims = (b, t, h, hkv, d, 0, t);
    let gq = numeric_grad(&q64, &r64, |q| host_attention(q, &k64, &v64, dims));
    let gk = numeric_grad(&k64, &r64, |k| host_attention(&q64, k, &v64, dims));
    let gv = numeric_grad(&v64, &r64, |v| host_attention(&q64, &k64, v, dims));
    assert_close("attention dq", &e.read_f(dq).unwrap(), &gq, 1e-4);
    assert_close("attention dk", &e.read_f(dk).unwrap(), &gk, 1e-4);
    assert_close("attention dv", &e.read_f(dv).unwrap(), &gv, 1e-4);
}

#[test]
fn every_op_matches_the_host_on_every_adapter() {
    for sel in adapters() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        check_gemm(sel, &mut rng);
        check_qmatvec(sel, &mut rng);
        check_copy_embed_swiglu(sel, &mut rng);
        check_norm_rope_softmax(sel, &mut rng);
        check_xent_argmax_adamw(sel, &mut rng);
        check_moe(sel, &mut rng);
        check_attention(sel, &mut rng);
    }
}
