//! Every kernel of the CPU executor against a reference: plain loops for the
//! products and AdamW, candle's f64 autograd (the ops the models are written
//! in) for the forward and backward kernels — random shapes, ragged sizes.

use candle_core::{D, DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::attention::{self, BwdScratch, Shape};
use super::kernels::{self as k, AdamW};
use super::{Compute, View, matmul};
use crate::models::ops;

fn rand_vec(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1e-6f64, |m, x| m.max(x.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= tol * scale,
            "{what}[{i}]: {g} vs {w} (scale {scale})"
        );
    }
}

/// A candle f64 variable holding `x` with `shape`.
fn var(x: &[f32], shape: &[usize]) -> Var {
    let t = Tensor::from_vec(x.to_vec(), shape, &Device::Cpu).unwrap();
    Var::from_tensor(&t.to_dtype(DType::F64).unwrap()).unwrap()
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn matmul_matches_loops_for_strided_and_ragged_shapes() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..40 {
        let (m, n, kk) = (
            rng.random_range(1..70),
            rng.random_range(1..70),
            rng.random_range(1..70),
        );
        let (ta, tb, acc) = (
            rng.random_bool(0.5),
            rng.random_bool(0.5),
            rng.random_bool(0.5),
        );
        let a = rand_vec(&mut rng, m * kk + 3);
        let b = rand_vec(&mut rng, kk * n + 5);
        // Stored transposed or not; offset by a few elements.
        let av = if ta {
            View::rows(&a, m).t()
        } else {
            View::rows(&a, kk)
        }
        .at(3);
        let bv = if tb {
            View::rows(&b, kk).t()
        } else {
            View::rows(&b, n)
        }
        .at(5);
        let ldc = n + 2;
        let c0 = rand_vec(&mut rng, m * ldc);
        let mut c = c0.clone();
        matmul((m, n, kk), av, bv, &mut c, 0, ldc, acc, true);
        let at = |i: usize, j: usize| av.data[av.off + i * av.rs + j * av.cs] as f64;
        let bt = |i: usize, j: usize| bv.data[bv.off + i * bv.rs + j * bv.cs] as f64;
        for i in 0..m {
            for j in 0..n {
                let dot: f64 = (0..kk).map(|l| at(i, l) * bt(l, j)).sum();
                let want = dot + if acc { c0[i * ldc + j] as f64 } else { 0.0 };
                let got = c[i * ldc + j] as f64;
                assert!(
                    (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                    "{m}x{n}x{kk}"
                );
            }
            // Columns past n are untouched.
            assert_eq!(
                &c[i * ldc + n..i * ldc + ldc],
                &c0[i * ldc + n..i * ldc + ldc]
            );
        }
    }
}

/// Both precisions against autograd in f64; for bf16 the reference gets
/// the operands rounded to bf16 first, so a product that skipped rounding
/// one of them (or rounded a result) would miss by far more than 1e-5.
#[test]
fn linear_and_its_gradients_match_autograd() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    for compute in [Compute::F32, Compute::Bf16] {
        let prec = |v: Vec<f32>| match compute {
            Compute::F32 => v,
            Compute::Bf16 => v
                .into_iter()
                .map(crate::models::bgemm::round_bf16)
                .collect(),
        };
        for (n, inp, out) in [(7, 13, 5), (33, 64, 17), (1, 3, 1), (40, 96, 70)] {
            let (x, w, dy) = (
                rand_vec(&mut rng, n * inp),
                rand_vec(&mut rng, out * inp),
                rand_vec(&mut rng, n * out),
            );
            let (xr, wr, dyr) = (prec(x.clone()), prec(w.clone()), prec(dy.clone()));
            let (xv, wv) = (var(&xr, &[n, inp]), var(&wr, &[out, inp]));
            let y = xv.as_tensor().matmul(&wv.as_tensor().t().unwrap()).unwrap();
            let dyt = Tensor::from_vec(dyr, (n, out), &Device::Cpu).unwrap();
            let loss = (y.clone() * dyt.to_dtype(DType::F64).unwrap())
                .unwrap()
                .sum_all()
                .unwrap();
            let g = loss.backward().unwrap();
            let mut got = vec![0f32; n * out];
            compute.linear(&x, &w, &mut got, n, inp, out, false);
            close(&got, &flat(&y), 1e-5, &format!("{compute:?} y"));
            let mut dx = vec![0f32; n * inp];
            compute.linear_bwd_x(&dy, &w, &mut dx, n, inp, out, false);
            let want = flat(g.get(xv.as_tensor()).unwrap());
            close(&dx, &want, 1e-5, &format!("{compute:?} dx"));
            let mut dw = vec![9f32; out * inp];
            compute.linear_bwd_w(&dy, &x, &mut dw, n, inp, out);
            let want = flat(g.get(wv.as_tensor()).unwrap());
            close(&dw, &want, 1e-5, &format!("{compute:?} dw"));
        }
    }
}

#[test]
fn rmsnorm_forward_and_backward_match_autograd() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for (n, c) in [(5, 7), (40, 64), (1, 1)] {
        let (x, w, dy) = (
            rand_vec(&mut rng, n * c),
            rand_vec(&mut rng, c),
            rand_vec(&mut rng, n * c),
        );
        let (xv, wv) = (var(&x, &[n, c]), var(&w, &[c]));
        let y = ops::rms_norm(xv.as_tensor(), wv.as_tensor(), 1e-5).unwrap();
        let dyt = var(&dy, &[n, c]);
        let g = (y.clone() * dyt.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let (mut got, mut rstd) = (vec![0f32; n * c], vec![0f32; n]);
        k::rmsnorm_fwd(&x, &w, &mut got, &mut rstd, c, 1e-5);
        close(&got, &flat(&y), 1e-5, "y");
        let (mut dx, mut dw) = (vec![1f32; n * c], vec![7f32; c]);
        k::rmsnorm_bwd(&x, &w, &rstd, &dy, &mut dx, &mut dw, c, true);
        let want: Vec<f64> = flat(g.get(xv.as_tensor()).unwrap())
            .iter()
            .map(|v| v + 1.0)
            .collect();
        close(&dx, &want, 1e-4, "dx (accumulated onto 1)");
        close(&dw, &flat(g.get(wv.as_tensor()).unwrap()), 1e-4, "dw");
    }
}

#[test]
fn rope_matches_the_model_and_inverts() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let (b, t, h, d) = (2, 5, 3, 8);
    let x = rand_vec(&mut rng, b * t * h * d);
    let mut got = x.clone();
    let tabs = k::rope_tables(d, 10_000.0, t);
    k::rope(&mut got, (&tabs.0, &tabs.1), t, h, d, false);
    let (cos, sin) = ops::rope_tables(d, 10_000.0, 0, t, DType::F64, &Device::Cpu).unwrap();
    let xt = var(&x, &[b, t, h, d]).as_tensor().transpose(1, 2).unwrap();
    let want = ops::rope(&xt.contiguous().unwrap(), &cos, &sin).unwrap();
    let want = want.transpose(1, 2).unwrap().contiguous().unwrap();
    close(&got, &flat(&want), 1e-5, "rope");
    // The backward rotation is the inverse: it brings x back.
    k::rope(&mut got, (&tabs.0, &tabs.1), t, h, d, true);
    close(
        &got,
        &x.iter().map(|v| *v as f64).collect::<Vec<_>>(),
        1e-5,
        "inverse",
    );
}

#[test]
fn swiglu_forward_and_backward_match_autograd() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let n = 16_384 + 77; // more than one chunk, ragged tail
    let (g, u, da) = (
        rand_vec(&mut rng, n),
        rand_vec(&mut rng, n),
        rand_vec(&mut rng, n),
    );
    let (gv, uv) = (var(&g, &[n]), var(&u, &[n]));
    let a = gv.as_tensor().silu().unwrap().mul(uv.as_tensor()).unwrap();
    let grads = (a.clone() * var(&da, &[n]).as_tensor())
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let mut got = vec![0f32; n];
    k::swiglu_fwd(&g, &u, &mut got);
    close(&got, &flat(&a), 1e-5, "a");
    let (mut dg, mut du) = (g.clone(), u.clone());
    k::swiglu_bwd(&mut dg, &mut du, &da);
    close(&dg, &flat(grads.get(gv.as_tensor()).unwrap()), 1e-5, "dg");
    close(&du, &flat(grads.get(uv.as_tensor()).unwrap()), 1e-5, "du");
}

#[test]
fn cross_entropy_and_its_gradient_match_autograd() {
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let (n, v) = (9, 37);
    // Wide logits: the max shift must keep exp finite.
    let logits: Vec<f32> = rand_vec(&mut rng, n * v).iter().map(|x| x * 40.0).collect();
    let targets: Vec<u32> = (0..n).map(|_| rng.random_range(0..v as u32)).collect();
    let lv = var(&logits, &[n, v]);
    let tt = Tensor::from_vec(targets.clone(), n, &Device::Cpu).unwrap();
    let loss = ops::cross_entropy(lv.as_tensor(), &tt).unwrap();
    let g = loss.backward().unwrap();
    let mut d = logits.clone();
    let got = k::cross_entropy(&mut d, &targets, v);
    let want: f64 = loss.to_scalar().unwrap();
    assert!(
        (got - want).abs() < 1e-5 * want.abs().max(1.0),
        "{got} vs {want}"
    );
    close(&d, &flat(g.get(lv.as_tensor()).unwrap()), 1e-5, "dlogits");
}

#[test]
fn fast_exp_is_within_a_few_ulp_of_libm() {
    let mut x = -87.0f32;
    while x < 88.0 {
        let (got, want) = (k::exp(x), (x as f64).exp());
        assert!(
            ((got as f64 - want) / want).abs() < 4e-7,
            "exp({x}) = {got}, want {want}"
        );
        x += 0.0137;
    }
    assert_eq!(k::exp(0.0), 1.0);
    // Far below the range: clamped to a tiny normal, never inf or NaN.
    assert!(k::exp(-1e9) < 1e-37 && k::exp(-1e9) > 0.0);
    assert!(k::exp(f32::NAN).is_nan());
}

#[test]
fn embedding_gathers_and_scatters_repeated_tokens() {
    let emb: Vec<f32> = (0..12).map(|i| i as f32).collect(); // (4, 3)
    let tokens = [2u32, 0, 2];
    let mut x = vec![0f32; 9];
    k::embed_fwd(&tokens, &emb, &mut x, 3);
    assert_eq!(x, vec![6., 7., 8., 0., 1., 2., 6., 7., 8.]);
    let mut d = vec![0f32; 12];
    k::embed_bwd(&tokens, &[1.0; 9], &mut d, 3);
    assert_eq!(d, vec![1., 1., 1., 0., 0., 0., 2., 2., 2., 0., 0., 0.]);
}

#[test]
fn adamw_matches_the_formula_over_steps() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let n = 16_384 * 2 + 5;
    let mut p = rand_vec(&mut rng, n);
    let (mut m, mut v) = (vec![0f32; n], vec![0f32; n]);
    let mut want: Vec<(f64, f64, f64)> = p.iter().map(|x| (*x as f64, 0.0, 0.0)).collect();
    for t in 1..=3 {
        let g = rand_vec(&mut rng, n);
        let h = AdamW {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
            t,
        };
        k::adamw(&mut p, &g, &mut m, &mut v, h);
        let (c1, c2) = (1.0 - 0.9f64.powi(t), 1.0 - 0.95f64.powi(t));
        for (w, g) in want.iter_mut().zip(&g) {
            let g = *g as f64;
            w.1 = 0.9 * w.1 + 0.1 * g;
            w.2 = 0.95 * w.2 + 0.05 * g * g;
            let upd = (w.1 / c1) / ((w.2 / c2).sqrt() + 1e-8);
            w.0 -= 1e-2 * (upd + 0.1 * w.0);
        }
    }
    close(&p, &want.iter().map(|w| w.0).collect::<Vec<_>>(), 1e-5, "p");
}

/// Causal GQA attention in candle f64 (the model's composite ops).
fn attention_ref(s: Shape, q: &Var, kk: &Var, v: &Var) -> Tensor {
    let (b, t, h, hkv, hd) = (s.b, s.t, s.h, s.hkv, s.hd);
    let heads = |x: &Tensor, n: usize| x.reshape((b, t, n, hd)).unwrap().transpose(1, 2).unwrap();
    let rep = |x: Tensor| {
        x.unsqueeze(2)
            .unwrap()
            .broadcast_as((b, hkv, h / hkv, t, hd))
            .unwrap()
            .reshape((b, h, t, hd))
            .unwrap()
    };
    let (qh, kh, vh) = (
        heads(q.as_tensor(), h),
        rep(heads(kk.as_tensor(), hkv)),
        rep(heads(v.as_tensor(), hkv)),
    );
    let mask = ops::causal_mask(t, t, DType::F64, &Device::Cpu).unwrap();
    let scores = (qh
        .contiguous()
        .unwrap()
        .matmul(&kh.t().unwrap().contiguous().unwrap())
        .unwrap()
        * (1.0 / (hd as f64).sqrt()))
    .unwrap()
    .broadcast_add(&mask)
    .unwrap();
    let o = ops::softmax(&scores)
        .unwrap()
        .matmul(&vh.contiguous().unwrap())
        .unwrap();
    o.transpose(1, 2).unwrap().reshape((b, t, h * hd)).unwrap()
}

#[test]
fn attention_forward_and_backward_match_autograd() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for s in [
        Shape {
            b: 2,
            t: 7,
            h: 4,
            hkv: 2,
            hd: 5,
        },
        Shape {
            b: 1,
            t: 33,
            h: 3,
            hkv: 3,
            hd: 16,
        },
        Shape {
            b: 3,
            t: 1,
            h: 2,
            hkv: 1,
            hd: 4,
        },
    ] {
        let (n, qw, kw) = (s.b * s.t, s.h * s.hd, s.hkv * s.hd);
        let (q, kk, v, d_o) = (
            rand_vec(&mut rng, n * qw),
            rand_vec(&mut rng, n * kw),
            rand_vec(&mut rng, n * kw),
            rand_vec(&mut rng, n * qw),
        );
        let (qv, kv, vv) = (var(&q, &[n, qw]), var(&kk, &[n, kw]), var(&v, &[n, kw]));
        let o_ref = attention_ref(s, &qv, &kv, &vv);
        let dot = (o_ref.clone() * var(&d_o, &[s.b, s.t, qw]).as_tensor()).unwrap();
        let g = dot.sum_all().unwrap().backward().unwrap();
        let mut p = vec![0f32; s.b * s.h * s.t * s.t];
        let (mut oh, mut o) = (vec![0f32; n * qw], vec![0f32; n * qw]);
        attention::forward(s, &q, &kk, &v, &mut p, &mut oh, &mut o);
        close(&o, &flat(&o_ref), 1e-5, "o");
        let mut sc = BwdScratch::new(s);
        let (mut dq, mut dk, mut dv) = (vec![0f32; n * qw], vec![0f32; n * kw], vec![0f32; n * kw]);
        attention::backward(
            s,
            &q,
            &kk,
            &v,
            &p,
            &d_o,
            &mut sc,
            (&mut dq, &mut dk, &mut dv),
        );
        close(&dq, &flat(g.get(qv.as_tensor()).unwrap()), 1e-4, "dq");
        close(&dk, &flat(g.get(kv.as_tensor()).unwrap()), 1e-4, "dk");
        close(&dv, &flat(g.get(vv.as_tensor()).unwrap()), 1e-4, "dv");
    }
}

#[test]
fn softmax_rows_of_the_reference_sum_to_one() {
    // Guards the reference itself: a wrong mask would make the attention
    // comparison above vacuous.
    let x = Tensor::new(&[[1.0f64, 2.0, 3.0]], &Device::Cpu).unwrap();
    let s: f64 = ops::softmax(&x)
        .unwrap()
        .sum(D::Minus1)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()[0];
    assert!((s - 1.0).abs() < 1e-12);
}
