//! GGUF export → load round trips and the errors of damaged or foreign files.

use super::*;
use crate::models::config::shape;

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("capbench-gguf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn tokens(vocab: usize) -> Tensor {
    let v: Vec<u32> = (0..9).map(|i| ((i * 37 + 5) % vocab) as u32).collect();
    Tensor::from_vec(v, (1, 9), &Device::Cpu).unwrap()
}

fn logits(m: &Model, vocab: usize) -> Vec<f32> {
    m.forward(&tokens(vocab), None)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// (max |a − b|, max |b|)
fn max_diff(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let d = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    (d, b.iter().fold(0.0f32, |m, v| m.max(v.abs())))
}

/// Export → load → the same logits as the original model, for tied and
/// untied embeddings (GQA: 4 query heads, 2 KV heads) in every format.
/// Quantized exports quantize the same rows (only permuted) to the same
/// blocks, so they must match the original quantized model just as closely.
#[test]
fn export_then_load_gives_the_original_logits() {
    let tied = shape("dense-tiny").unwrap();
    let untied = ModelConfig {
        tied_embeddings: false,
        ..tied.clone()
    };
    for cfg in [tied, untied] {
        for (fmt, tol) in [
            (WeightFmt::F32, 1e-4),
            (WeightFmt::Q8_0, 1e-4),
            (WeightFmt::Q4_0, 1e-4),
            (WeightFmt::F16, 1e-4),
        ] {
            let path = tmp(&format!("rt-{}-{}.gguf", cfg.tied_embeddings, fmt.as_str()));
            export(&cfg, 42, fmt, &path).unwrap();
            let f = GgufFile::open(&path).unwrap();
            assert_eq!(f.format, fmt);
            assert!(f.cfg.rope_interleaved);
            assert_eq!(f.cfg.tied_embeddings, cfg.tied_embeddings);
            let wf = weight_format(fmt);
            let loaded = f.load(&Device::Cpu, wf).unwrap();
            let original = Model::generated(&cfg, 42, &Device::Cpu, wf).unwrap();
            let (d, scale) = max_diff(&logits(&loaded, cfg.vocab), &logits(&original, cfg.vocab));
            eprintln!(
                "{} tied={}: max |Δlogit| {d:.3e} at logit scale {scale:.3}",
                fmt.as_str(),
                cfg.tied_embeddings
            );
            assert!(
                scale > 0.1 && d <= tol * scale,
                "{} tied={}: max diff {d} at logit scale {scale}",
                fmt.as_str(),
                cfg.tied_embeddings
            );
            // Quantized linear weights stay quantized when loaded.
            let quant = matches!(fmt, WeightFmt::Q8_0 | WeightFmt::Q4_0);
            let super::super::model::Attn::Gqa { wq, .. } = &loaded.layers[0].attn else {
                panic!("dense attention")
            };
            assert_eq!(wq.dense().is_none(), quant, "{}", fmt.as_str());
            std::fs::remove_file(&path).unwrap();
        }
    }
}

/// The f32 reference of a loaded file (its tensors dequantized, one layer at
/// a time) equals the loaded model run in f32.
#[test]
fn streamed_reference_of_a_file_matches_the_loaded_model() {
    let cfg = shape("dense-tiny").unwrap();
    let path = tmp("ref.gguf");
    export(&cfg, 7, WeightFmt::Q8_0, &path).unwrap();
    let f = GgufFile::open(&path).unwrap();
    let m = f
        .load(&Device::Cpu, WeightFormat::Float(DType::F32))
        .unwrap();
    let toks: Vec<u32> = tokens(cfg.vocab).flatten_all().unwrap().to_vec1().unwrap();
    let full = logits(&m, cfg.vocab);
    let src = f.source(&Device::Cpu).unwrap();
    let streamed = Model::streamed_reference_logits_from(&f.cfg, &src, &toks, 5).unwrap();
    let tail = &full[5 * cfg.vocab..];
    let (d, _) = max_diff(&streamed.concat(), tail);
    assert!(d < 1e-5, "{d}");
    std::fs::remove_file(&path).unwrap();
}

fn expect_err(path: &Path, place: &str, message: &str) -> GgufError {
    let e = GgufFile::open(path).unwrap_err();
    assert_eq!(e.path, path.display().to_string());
    assert!(
        e.place.contains(place),
        "place {:?}, wanted {place:?}: {e}",
        e.place
    );
    assert!(
        e.message.contains(message),
        "message {:?}, wanted {message:?}",
        e.message
    );
    assert!(!e.fix.is_empty());
    e
}

#[test]
fn damaged_and_foreign_files_are_rejected_with_the_place_and_a_fix() {
    let cfg = shape("dense-tiny").unwrap();
    let good = tmp("good.gguf");
    export(&cfg, 1, WeightFmt::Q4_0, &good).unwrap();
    let bytes = std::fs::read(&good).unwrap();

    // Truncated inside the tensor data: the first tensor past the end.
    let cut = tmp("cut-data.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    expect_err(&cut, "tensor ", "the file ends at byte");
    // Truncated inside the header.
    std::fs::write(&cut, &bytes[..300]).unwrap();
    expect_err(&cut, "header", "cannot read");
    // Garbled magic bytes.
    let mut garbled = bytes.clone();
    garbled[..4].copy_from_slice(b"GGML");
    std::fs::write(&cut, &garbled).unwrap();
    expect_err(&cut, "bytes 0..4", "not a GGUF file");
    // An empty file.
    std::fs::write(&cut, b"").unwrap();
    expect_err(&cut, "bytes 0..4", "not a GGUF file");
    // A missing file.
    expect_err(&tmp("absent.gguf"), "whole file", "cannot open");

    // A non-llama architecture.
    let ex = export_model(&cfg, 1, WeightFmt::Q4_0).unwrap();
    let mut md = ex.metadata.clone();
    md[0].1 = Value::String("gpt2".into());
    let foreign = tmp("gpt2.gguf");
    write_file(&foreign, &md, &ex.tensors).unwrap();
    expect_err(
        &foreign,
        "metadata key general.architecture",
        "'gpt2' is not supported",
    );
    // A missing tensor.
    let missing = tmp("missing.gguf");
    let tensors: Vec<_> = ex
        .tensors
        .iter()
        .filter(|(n, _)| n != "blk.1.ffn_down.weight")
        .map(|(n, q)| {
            (
                n.clone(),
                QTensor::quantize(&q.dequantize(&Device::Cpu).unwrap(), q.dtype()).unwrap(),
            )
        })
        .collect();
    write_file(&missing, &ex.metadata, &tensors).unwrap();
    expect_err(&missing, "tensor blk.1.ffn_down.weight", "missing");
    // A missing hyper-parameter.
    let md: Vec<_> = ex
        .metadata
        .iter()
        .filter(|(k, _)| k != "llama.block_count")
        .cloned()
        .collect();
    write_file(&missing, &md, &ex.tensors).unwrap();
    expect_err(&missing, "metadata key llama.block_count", "missing");
    // A tensor the model would silently ignore.
    let mut extra: Vec<_> = ex
        .tensors
        .iter()
        .map(|(n, q)| {
            (
                n.clone(),
                QTensor::quantize(&q.dequantize(&Device::Cpu).unwrap(), q.dtype()).unwrap(),
            )
        })
        .collect();
    let bias = Tensor::zeros(64, DType::F32, &Device::Cpu).unwrap();
    extra.push((
        "blk.0.attn_q.bias".into(),
        QTensor::quantize(&bias, GgmlDType::F32).unwrap(),
    ));
    write_file(&missing, &ex.metadata, &extra).unwrap();
    expect_err(&missing, "tensor blk.0.attn_q.bias", "not part of");

    for p in [good, cut, foreign, missing] {
        std::fs::remove_file(p).unwrap();
    }
}

#[test]
fn only_the_dense_family_exports() {
    let e = export(
        &shape("moe-mla-tiny").unwrap(),
        1,
        WeightFmt::F32,
        &tmp("moe.gguf"),
    )
    .unwrap_err();
    assert!(e.message.contains("only the dense family"), "{e}");
    assert!(!tmp("moe.gguf").exists());
}

/// A copy of the export's tensors (QTensor is not Clone).
fn copy_tensors(ex: &Export) -> Vec<(String, QTensor)> {
    ex.tensors
        .iter()
        .map(|(n, q)| {
            (
                n.clone(),
                QTensor::quantize(&q.dequantize(&Device::Cpu).unwrap(), q.dtype()).unwrap(),
            )
        })
        .collect()
}

/// The export's metadata with `key` set to `v` (added when absent).
fn with_key(ex: &Export, key: &str, v: Value) -> Vec<(String, Value)> {
    let mut md: Vec<_> = ex
        .metadata
        .iter()
        .filter(|(k, _)| k != key)
        .cloned()
        .collect();
    md.insert(3, (key.into(), v));
    md
}

/// Numbers in a header that crashed the parent before (issue 16): each is
/// refused by `open` with the key or tensor named, never a panic or an
/// allocation sized by the unchecked number.
#[test]
fn hostile_numbers_in_the_header_are_refused_before_use() {
    let cfg = shape("dense-tiny").unwrap();
    let ex = export_model(&cfg, 1, WeightFmt::F32).unwrap();
    let p = tmp("hostile.gguf");
    // alignment 0: candle's reader divided by it.
    write_file(
        &p,
        &with_key(&ex, "general.alignment", Value::U32(0)),
        &copy_tensors(&ex),
    )
    .unwrap();
    expect_err(&p, "general.alignment", "power of two");
    write_file(
        &p,
        &with_key(&ex, "general.alignment", Value::U32(48)),
        &copy_tensors(&ex),
    )
    .unwrap();
    expect_err(&p, "general.alignment", "power of two");
    // block_count 2^40: the expected-tensor list was built from it.
    let md = with_key(&ex, "llama.block_count", Value::U64(1 << 40));
    write_file(&p, &md, &copy_tensors(&ex)).unwrap();
    expect_err(&p, "llama.block_count", "tensor table holds");
    // block_count 0 without output.weight: a panic on "no linear weight".
    let md = with_key(&ex, "llama.block_count", Value::U32(0));
    let only: Vec<_> = copy_tensors(&ex)
        .into_iter()
        .filter(|(n, _)| !n.starts_with("blk."))
        .collect();
    write_file(&p, &md, &only).unwrap();
    expect_err(&p, "llama.block_count", "at least 1");
    // d_model 2^62: the sizes derived from it wrapped.
    let md = with_key(&ex, "llama.embedding_length", Value::U64(1 << 62));
    write_file(&p, &md, &copy_tensors(&ex)).unwrap();
    expect_err(&p, "tensor ", "larger than the whole file");
    // A vocabulary of 0 tokens.
    let mut zero_vocab = copy_tensors(&ex);
    let empty = Tensor::zeros((0, cfg.d_model), DType::F32, &Device::Cpu).unwrap();
    zero_vocab[0] = (
        "token_embd.weight".into(),
        QTensor::quantize(&empty, GgmlDType::F32).unwrap(),
    );
    write_file(&p, &ex.metadata, &zero_vocab).unwrap();
    expect_err(&p, "token_embd.weight", "0 tokens");
    // A tensor offset that wraps when added to the data start.
    write_file(&p, &ex.metadata, &copy_tensors(&ex)).unwrap();
    let mut bytes = std::fs::read(&p).unwrap();
    let name = b"output_norm.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    // n_dims (u32) = 1, one u64 dim, the dtype (u32), then the offset.
    let off = at + 4 + 8 + 4;
    bytes[off..off + 8].copy_from_slice(&(u64::MAX - 7).to_le_bytes());
    std::fs::write(&p, &bytes).unwrap();
    expect_err(&p, "tensor output_norm.weight", "the file ends at byte");
    std::fs::remove_file(&p).unwrap();
}
