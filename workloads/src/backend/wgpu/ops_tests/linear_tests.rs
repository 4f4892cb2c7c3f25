//! The engine's linear-algebra ops checked against the host: GEMM (every
//! kernel), the quantized mat-vec, and copy/embed/SwiGLU.

use rand_chacha::ChaCha8Rng;

use super::super::engine::{Builder, PlanId};
use super::super::ops::{Gemm, GemmKernel, Mat};
use super::super::quant::{QFmt, QMat, dequantize_host, pack_words, quantize};
use super::{assert_close, engine, rand_vec};
use crate::backend::WgpuSelector;

pub(super) fn check_gemm(sel: WgpuSelector, rng: &mut ChaCha8Rng) {
    // C = alpha·A·Wᵀ + beta·C with W stored (n, k): a transposed view.
    for (kind, m) in [
        (GemmKernel::Auto, 13),
        (GemmKernel::Auto, 3),
        (GemmKernel::Naive, 13),
        (GemmKernel::Tiled, 3),
    ] {
        let (n, k) = (19, 21);
        let (ha, hw, hc) = (
            rand_vec(rng, m * k),
            rand_vec(rng, n * k),
            rand_vec(rng, m * n),
        );
        let mut bld = Builder::new();
        let (a, w, c) = (bld.f(m * k), bld.f(n * k), bld.f(m * n));
        bld.begin();
        bld.gemm_with(
            kind,
            Mat::rows(a, k),
            Mat::rows(w, k).t(),
            Mat::rows(c, n),
            Gemm::new(m, n, k).alpha(0.5).beta(1.0),
        );
        let mut e = engine(sel, bld, &[(a, &ha), (w, &hw), (c, &hc)]);
        e.run(&[PlanId(0)]).unwrap();
        let want: Vec<f64> = (0..m * n)
            .map(|ij| {
                let (i, j) = (ij / n, ij % n);
                let dot: f64 = (0..k)
                    .map(|p| ha[i * k + p] as f64 * hw[j * k + p] as f64)
                    .sum();
                0.5 * dot + hc[ij] as f64
            })
            .collect();
        assert_close(
            &format!("gemm {kind:?} m={m}"),
            &e.read_f(c).unwrap(),
            &want,
            1e-5,
        );
    }
    // Batched over 3 "experts" with row counts 5, 2, 0: rows past the count
    // are left alone.
    let (eb, rows, k, n) = (3, 5, 7, 6);
    let (ha, hw, hc) = (
        rand_vec(rng, eb * rows * k),
        rand_vec(rng, eb * n * k),
        rand_vec(rng, eb * rows * n),
    );
    let mut bld = Builder::new();
    let (a, w, c) = (bld.f(ha.len()), bld.f(hw.len()), bld.f(hc.len()));
    let cnt = bld.u(eb);
    bld.begin();
    bld.gemm(
        Mat::rows(a, k).batch(rows * k, 0),
        Mat::rows(w, k).t().batch(n * k, 0),
        Mat::rows(c, n).batch(rows * n, 0),
        Gemm::new(rows, n, k).batches(eb, 1).count(cnt),
    );
    let mut e = engine(sel, bld, &[(a, &ha), (w, &hw), (c, &hc)]);
    e.write_u(cnt, &[5, 2, 0]);
    e.run(&[PlanId(0)]).unwrap();
    let counts = [5, 2, 0];
    let want: Vec<f64> = (0..eb * rows * n)
        .map(|x| {
            let (z, i, j) = (x / (rows * n), (x / n) % rows, x % n);
            if i >= counts[z] {
                return hc[x] as f64;
            }
            (0..k)
                .map(|p| ha[z * rows * k + i * k + p] as f64 * hw[z * n * k + j * k + p] as f64)
                .sum()
        })
        .collect();
    assert_close(
        "batched gemm with counts",
        &e.read_f(c).unwrap(),
        &want,
        1e-5,
    );
}

/// Random (rows, cols) weights quantized by candle: (ggml bytes, host f64
/// dequantization of those bytes).
fn quantized_weights(
    rng: &mut ChaCha8Rng,
    rows: usize,
    cols: usize,
    fmt: QFmt,
) -> (Vec<u8>, Vec<f64>) {
    let t = candle_core::Tensor::from_vec(
        rand_vec(rng, rows * cols),
        (rows, cols),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let bytes = quantize(&t, fmt).unwrap();
    let host = dequantize_host(&bytes, fmt);
    (bytes, host)
}

pub(super) fn check_qmatvec(sel: WgpuSelector, rng: &mut ChaCha8Rng) {
    // 3 blocks a row: q8_0 rows (51 halfwords) start on odd halfwords.
    let (n, k) = (5, 96);
    for fmt in [QFmt::Q8_0, QFmt::Q4_0, QFmt::F16, QFmt::Bf16] {
        // y = x · Wᵀ + y, x rows strided; 3 rows (one tile), 11 (two).
        for m in [3, 11] {
            let xs = k + 5;
            let (bytes, hw) = quantized_weights(rng, n, k, fmt);
            let (hx, hy) = (rand_vec(rng, m * xs), rand_vec(rng, m * n));
            let mut bld = Builder::new();
            let (x, y) = (bld.f(hx.len()), bld.f(hy.len()));
            let w = QMat {
                fmt,
                w: bld.u(fmt.words(n, k)),
                rows: n,
                cols: k,
            };
            bld.begin();
            bld.qmatmul(
                Mat::rows(x, k).with_rs(xs),
                w,
                0,
                Mat::rows(y, n),
                m,
                1,
                None,
                1.0,
            );
            let mut e = engine(sel, bld, &[(x, &hx), (y, &hy)]);
            e.write_u(w.w, &pack_words(&bytes));
            e.run(&[PlanId(0)]).unwrap();
            let want: Vec<f64> = (0..m * n)
                .map(|ij| {
                    let (i, j) = (ij / n, ij % n);
                    let dot: f64 = (0..k).map(|p| hx[i * xs + p] as f64 * hw[j * k + p]).sum();
                    dot + hy[ij] as f64
                })
                .collect();
            assert_close(
                &format!("qmatvec {fmt:?} m={m}"),
                &e.read_f(y).unwrap(),
                &want,
                1e-5,
            );
        }
        // Batched over 3 experts (weights 7 words apart beyond their size)
        // with row counts 9, 2, 0: rows past the count are left alone.
        let (eb, rows) = (3, 9);
        let stride = fmt.words(n, k) + 7;
        let mut words = vec![0u32; eb * stride];
        let mut hw = vec![];
        for z in 0..eb {
            let (bytes, h) = quantized_weights(rng, n, k, fmt);
            let p = pack_words(&bytes);
            words[z * stride..z * stride + p.len()].copy_from_slice(&p);
            hw.push(h);
        }
        let (hx, hy) = (rand_vec(rng, eb * rows * k), rand_vec(rng, eb * rows * n));
        let mut bld = Builder::new();
        let (x, y) = (bld.f(hx.len()), bld.f(hy.len()));
        let wv = bld.u(words.len());
        let cnt = bld.u(eb);
        bld.begin();
        let w = QMat {
            fmt,
            w: wv,
            rows: n,
            cols: k,
        };
        bld.qmatmul(
            Mat::rows(x, k).batch(rows * k, 0),
            w,
            stride,
            Mat::rows(y, n).batch(rows * n, 0),
            rows,
            eb,
            Some(cnt),
            0.0,
        );
        let mut e = engine(sel, bld, &[(x, &hx), (y, &hy)]);
        e.write_u(wv, &words);
        e.write_u(cnt, &[9, 2, 0]);
        e.run(&[PlanId(0)]).unwrap();
        let counts = [9, 2, 0];
        let want: Vec<f64> = (0..eb * rows * n)
            .map(|q| {
                let (z, i, j) = (q / (rows * n), (q / n) % rows, q % n);
                if i >= counts[z] {
                    return hy[q] as f64;
                }
                (0..k)
                    .map(|p| hx[z * rows * k + i * k + p] as f64 * hw[z][j * k + p])
                    .sum()
            })
            .collect();
        assert_close(
            &format!("batched qmatvec {fmt:?} with counts"),
            &e.read_f(y).unwrap(),
            &want,
            1e-5,
        );
    }
}

pub(super) fn check_copy_embed_swiglu(sel: WgpuSelector, rng: &mut ChaCha8Rng) {
    let hs = rand_vec(rng, 60); // (4, 3, 5)
    let hd = rand_vec(rng, 20); // (4, 5)
    let table = rand_vec(rng, 7 * 6); // (V 7, C 6)
    let toks = [3u32, 1, 3, 6, 0];
    let dx = rand_vec(rng, 5 * 6);
    let (g, u, da) = (rand_vec(rng, 40), rand_vec(rng, 40), rand_vec(rng, 40));
    let mut bld = Builder::new();
    let (s, d) = (bld.f(60), bld.f(20));
    let (tv, x, dtab, dxv) = (bld.f(42), bld.f(30), bld.f(42), bld.f(30));
    let tok = bld.u(5);
    let (gv, uv, av, dav, dgv, duv) = (
        bld.f(40),
        bld.f(40),
        bld.f(40),
        bld.f(40),
        bld.f(40),
        bld.f(40),
    );
    bld.begin();
    // dst = 2·Σ_middle src + dst
    bld.copy(
        [4, 1, 5],
        3,
        (s.off, [15, 0, 1], 5),
        (d.off, [5, 0, 1]),
        2.0,
        1.0,
    );
    bld.embed_fwd(tok, tv, x, 6);
    bld.embed_bwd(tok, dxv, dtab, 6);
    bld.swiglu_fwd(gv, uv, av);
    bld.swiglu_bwd(gv, uv, dav, dgv, duv);
    let mut e = engine(
        sel,
        bld,
        &[
            (s, &hs),
            (d, &hd),
            (tv, &table),
            (dxv, &dx),
            (gv, &g),
            (uv, &u),
            (dav, &da),
        ],
    );
    e.write_u(tok, &toks);
    e.run(&[PlanId(0)]).unwrap();
    let want: Vec<f64> = (0..20)
        .map(|x| {
            let (i, j) = (x / 5, x % 5);
            2.0 * (0..3).map(|r| hs[i * 15 + r * 5 + j] as f64).sum::<f64>() + hd[x] as f64
        })
        .collect();
    assert_close("copy with sum", &e.read_f(d).unwrap(), &want, 1e-6);
    let want: Vec<f64> = (0..30)
        .map(|x| table[toks[x / 6] as usize * 6 + x % 6] as f64)
        .collect();
    assert_close("embedding", &e.read_f(x).unwrap(), &want, 0.0);
    let mut want = vec![0.0f64; 42];
    for (t, tk) in toks.iter().enumerate() {
        for c in 0..6 {
            want[*tk as usize * 6 + c] += dx[t * 6 + c] as f64;
        }
    }
    assert_close("embedding backward", &e.read_f(dtab).unwrap(), &want, 1e-6);
    let silu = |x: f64| x / (1.0 + (-x).exp());
    let want: Vec<f64> = (0..40).map(|i| silu(g[i] as f64) * u[i] as f64).collect();
    assert_close("swiglu", &e.read_f(av).unwrap(), &want, 1e-5);
    // Backward against central differences of the host forward.
    let h = 1e-5;
    let want_g: Vec<f64> = (0..40)
        .map(|i| {
            let (gi, ui) = (g[i] as f64, u[i] as f64);
            (silu(gi + h) - silu(gi - h)) / (2.0 * h) * ui * da[i] as f64
        })
        .collect();
    let want_u: Vec<f64> = (0..40).map(|i| silu(g[i] as f64) * da[i] as f64).collect();
    assert_close("swiglu dg", &e.read_f(dgv).unwrap(), &want_g, 1e-4);
    assert_close("swiglu du", &e.read_f(duv).unwrap(), &want_u, 1e-5);
}
