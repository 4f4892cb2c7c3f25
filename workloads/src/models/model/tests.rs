//! The CPU model: cached decoding against the full pass, streamed and
//! resident weights, quantized linears, seeded weights.

use super::*;
use crate::models::config::shape;
use crate::models::params::init;

fn tokens(dev: &Device, b: usize, t: usize, vocab: usize) -> Tensor {
    let v: Vec<u32> = (0..b * t).map(|i| ((i * 37 + 11) % vocab) as u32).collect();
    Tensor::from_vec(v, (b, t), dev).unwrap()
}

/// Same test body for every family: decoding token by token with the KV
/// cache gives the logits of the full causal forward pass.
#[test]
fn cached_decode_matches_the_full_forward_pass_for_every_family() {
    let dev = Device::Cpu;
    for name in ["dense-tiny", "moe-mla-tiny", "openelm-tiny"] {
        let cfg = shape(name).unwrap();
        let p = init(&cfg, 1, &dev, DType::F32).unwrap();
        let m = Model::from_params(&cfg, &p, WeightFormat::Float(DType::F32)).unwrap();
        let toks = tokens(&dev, 1, 6, cfg.vocab);
        let full: Vec<Vec<f32>> = m
            .forward(&toks, None)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap();
        let mut cache = Cache::new(cfg.n_layers);
        // A 4-token prefill, then two single-token steps.
        let pre = m
            .forward(&toks.narrow(1, 0, 4).unwrap(), Some(&mut cache))
            .unwrap();
        let mut rows: Vec<Vec<f32>> = pre.squeeze(0).unwrap().to_vec2().unwrap();
        for i in 4..6 {
            let step = m
                .forward(&toks.narrow(1, i, 1).unwrap(), Some(&mut cache))
                .unwrap();
            rows.extend(step.squeeze(0).unwrap().to_vec2::<f32>().unwrap());
        }
        assert_eq!(cache.len, 6);
        let max_diff = full
            .iter()
            .flatten()
            .zip(rows.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_diff < 1e-4, "{name}: {max_diff}");
        let mean_abs: f32 =
            full.iter().flatten().map(|v| v.abs()).sum::<f32>() / (6 * cfg.vocab) as f32;
        assert!(
            mean_abs.is_finite() && mean_abs > 0.01 && mean_abs < 100.0,
            "{name}: logits scale {mean_abs}"
        );
    }
}

#[test]
fn streamed_reference_matches_the_resident_model() {
    let dev = Device::Cpu;
    for name in ["dense-tiny", "moe-mla-tiny", "openelm-tiny"] {
        let cfg = shape(name).unwrap();
        let m = Model::generated(&cfg, 3, &dev, WeightFormat::Float(DType::F32)).unwrap();
        let toks: Vec<u32> = (0..7).map(|i| (i * 13 % cfg.vocab) as u32).collect();
        let t = Tensor::from_vec(toks.clone(), (1, 7), &dev).unwrap();
        let full: Vec<Vec<f32>> = m
            .forward(&t, None)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap();
        let streamed = Model::streamed_reference_logits(&cfg, 3, &toks, 4).unwrap();
        assert_eq!(streamed.len(), 3);
        for (a, b) in full[4..].iter().flatten().zip(streamed.iter().flatten()) {
            assert!((a - b).abs() < 1e-5, "{name}: {a} vs {b}");
        }
    }
}

#[test]
fn mla_cache_holds_only_the_latent() {
    let dev = Device::Cpu;
    let cfg = shape("moe-mla-tiny").unwrap();
    let p = init(&cfg, 1, &dev, DType::F32).unwrap();
    let m = Model::from_params(&cfg, &p, WeightFormat::Float(DType::F32)).unwrap();
    let mut cache = Cache::new(cfg.n_layers);
    m.forward(&tokens(&dev, 1, 5, cfg.vocab), Some(&mut cache))
        .unwrap();
    let mla = cfg.mla.unwrap();
    for lc in &cache.layers {
        let LayerCache::Latent { c_kv, k_pe } = lc else {
            panic!("MLA must cache latents")
        };
        assert_eq!(c_kv.dims(), &[1, 5, mla.kv_lora_rank]);
        assert_eq!(k_pe.dims(), &[1, 5, mla.rope_dim]);
    }
}

/// Row-split quantized weights give the same product as one quantized
/// weight (a view's offset once made every block quantize the first rows).
#[test]
fn row_split_quantized_linear_equals_the_whole() {
    let dev = Device::Cpu;
    let w = Tensor::from_vec(
        (0..512 * 1024usize)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect::<Vec<_>>(),
        (512, 1024),
        &dev,
    )
    .unwrap();
    let x = Tensor::from_vec(
        (0..1024usize)
            .map(|i| (i % 13) as f32 / 13.0)
            .collect::<Vec<_>>(),
        (1, 1024),
        &dev,
    )
    .unwrap();
    let whole = Lin::Quant(Arc::new(
        QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q8_0).unwrap()).unwrap(),
    ));
    let parts = (0..512)
        .step_by(128)
        .map(|r| {
            let rows: Vec<f32> = w
                .narrow(0, r, 128)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let block = Tensor::from_vec(rows, (128, 1024), &dev).unwrap();
            Arc::new(
                QMatMul::from_qtensor(QTensor::quantize(&block, GgmlDType::Q8_0).unwrap()).unwrap(),
            )
        })
        .collect();
    let split = Lin::QuantRows(parts);
    let a: Vec<f32> = whole
        .forward(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let b: Vec<f32> = split
        .forward(&x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn weights_are_seeded() {
    let dev = Device::Cpu;
    let cfg = shape("dense-tiny").unwrap();
    let a = init(&cfg, 7, &dev, DType::F32).unwrap().get("layers.0.wq");
    let b = init(&cfg, 7, &dev, DType::F32).unwrap().get("layers.0.wq");
    let c = init(&cfg, 8, &dev, DType::F32).unwrap().get("layers.0.wq");
    let v = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(v(a.clone()), v(b));
    assert_ne!(v(a), v(c));
}

/// The last position's logits alone are the full pass's last row, and the
/// cache advances the same.
#[test]
fn forward_last_is_the_last_row_of_forward() {
    let dev = Device::Cpu;
    for name in ["dense-tiny", "moe-mla-tiny"] {
        let cfg = shape(name).unwrap();
        let m = Model::generated(&cfg, 3, &dev, WeightFormat::Q4_0).unwrap();
        let toks = tokens(&dev, 2, 5, cfg.vocab);
        let (mut c1, mut c2) = (Cache::new(cfg.n_layers), Cache::new(cfg.n_layers));
        let full = m.forward(&toks, Some(&mut c1)).unwrap();
        let last = m.forward_last(&toks, Some(&mut c2)).unwrap();
        assert_eq!(last.dims(), &[2, 1, cfg.vocab]);
        let want: Vec<Vec<f32>> = full
            .narrow(1, 4, 1)
            .unwrap()
            .squeeze(1)
            .unwrap()
            .to_vec2()
            .unwrap();
        let got: Vec<Vec<f32>> = last.squeeze(1).unwrap().to_vec2().unwrap();
        assert_eq!(want, got, "{name}");
        assert_eq!((c1.len, c2.len), (5, 5));
    }
}
