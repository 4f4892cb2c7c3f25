//! Writing GGUF: the synthetic dense model with llama.cpp's tensor names and
//! `llama.*` metadata, so other tools run the exact same weights.

use super::*;

/// Metadata and tensors of the GGUF export of a synthetic dense model.
pub struct Export {
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<(String, QTensor)>,
}

/// A minimal llama (SentencePiece-style) vocabulary, so llama.cpp-style
/// readers that require one load the file: byte tokens `<0xXX>` for the
/// first 256 ids, then `[capbench N]` placeholders. The synthetic models
/// work on token ids; there is no text tokenizer behind them.
fn vocabulary(vocab: usize) -> Vec<(String, Value)> {
    let tokens: Vec<Value> = (0..vocab)
        .map(|i| {
            Value::String(if i < 256 {
                format!("<0x{i:02X}>")
            } else {
                format!("[capbench {i}]")
            })
        })
        .collect();
    // llama_token_type: 1 normal, 6 byte.
    let types: Vec<Value> = (0..vocab)
        .map(|i| Value::I32(if i < 256 { 6 } else { 1 }))
        .collect();
    vec![
        ("tokenizer.ggml.model".into(), Value::String("llama".into())),
        ("tokenizer.ggml.tokens".into(), Value::Array(tokens)),
        (
            "tokenizer.ggml.scores".into(),
            Value::Array(vec![Value::F32(0.0); vocab]),
        ),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
        ("tokenizer.ggml.unknown_token_id".into(), Value::U32(0)),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
    ]
}

/// Builds the GGUF export of the `dense` model `cfg` with weights from
/// `seed`, linear weights in `format` (norms f32; the embedding f32, or f16
/// in an f16 export — as the model runs them), tensor by tensor.
pub fn export_model(
    cfg: &ModelConfig,
    seed: u64,
    format: WeightFmt,
) -> std::result::Result<Export, String> {
    if cfg.family != Family::Dense {
        return Err(format!(
            "{} is a {} model; GGUF export writes llama-compatible files, which only the dense family is",
            cfg.name,
            cfg.family.as_str()
        ));
    }
    if !cfg.head_dim.is_multiple_of(2) || !cfg.n_heads.is_multiple_of(cfg.n_kv_heads) {
        return Err(format!("{}: head layout not expressible in GGUF", cfg.name));
    }
    let src = Generated::new(cfg, seed, &Device::Cpu);
    let lin_dt = ggml_dtype(format);
    let embed_dt = if format == WeightFmt::F16 {
        GgmlDType::F16
    } else if format == WeightFmt::Bf16 {
        GgmlDType::BF16
    } else {
        GgmlDType::F32
    };
    let mut tensors = Vec::new();
    for (name, shape) in expected_tensors(cfg) {
        let e = |err: candle_core::Error| format!("tensor {name}: {err}");
        let mut t = src.get(&name).map_err(e)?;
        let part = name.rsplit('.').next().unwrap_or_default();
        if part == "wq" {
            t = permute_rows(&t, cfg.n_heads).map_err(e)?;
        } else if part == "wk" {
            t = permute_rows(&t, cfg.n_kv_heads).map_err(e)?;
        }
        let dt = match (name.as_str(), shape.len()) {
            ("embed", _) => embed_dt,
            (_, 1) => GgmlDType::F32,
            _ => lin_dt,
        };
        let q = QTensor::quantize(&t, dt).map_err(e)?;
        tensors.push((gguf_name(&name).expect("mapped name"), q));
    }
    let u = |v: usize| Value::U32(v as u32);
    let mut metadata: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String("llama".into())),
        ("general.name".into(), Value::String(cfg.name.clone())),
        ("general.file_type".into(), Value::U32(file_type(format))),
        ("llama.context_length".into(), u(cfg.max_context)),
        ("llama.embedding_length".into(), u(cfg.d_model)),
        ("llama.block_count".into(), u(cfg.n_layers)),
        ("llama.feed_forward_length".into(), u(cfg.ffn)),
        ("llama.attention.head_count".into(), u(cfg.n_heads)),
        ("llama.attention.head_count_kv".into(), u(cfg.n_kv_heads)),
        ("llama.attention.key_length".into(), u(cfg.head_dim)),
        ("llama.attention.value_length".into(), u(cfg.head_dim)),
        (
            "llama.rope.freq_base".into(),
            Value::F32(cfg.rope_theta as f32),
        ),
        ("llama.rope.dimension_count".into(), u(cfg.head_dim)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(cfg.norm_eps as f32),
        ),
        ("llama.vocab_size".into(), u(cfg.vocab)),
        // Provenance: which synthetic model this is.
        ("capbench.shape".into(), Value::String(cfg.name.clone())),
        ("capbench.seed".into(), Value::U64(seed)),
    ];
    metadata.extend(vocabulary(cfg.vocab));
    Ok(Export { metadata, tensors })
}

/// Writes metadata and tensors as a GGUF file: to `path.partial`, renamed
/// when complete, so a failed export never leaves a half file at `path`.
pub fn write_file(
    path: &Path,
    metadata: &[(String, Value)],
    tensors: &[(String, QTensor)],
) -> Result<u64> {
    let fail = |m: String| {
        GgufError::new(
            path,
            "writing",
            m,
            "check that the folder exists, is writable and has space",
        )
    };
    let tmp = PathBuf::from(format!("{}.partial", path.display()));
    let file =
        File::create(&tmp).map_err(|e| fail(format!("cannot create {}: {e}", tmp.display())))?;
    let mut w = BufWriter::new(file);
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let written = gguf_file::write(&mut w, &md, &ts)
        .map_err(|e| fail(e.to_string()))
        .and_then(|_| {
            w.into_inner()
                .map_err(|e| fail(e.to_string()))?
                .sync_all()
                .map_err(|e| fail(e.to_string()))
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)
        .map_err(|e| fail(format!("cannot rename {}: {e}", tmp.display())))?;
    Ok(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0))
}

/// Exports the synthetic model `cfg` (seed `seed`) to `path` in `format`;
/// returns the file size in bytes.
pub fn export(cfg: &ModelConfig, seed: u64, format: WeightFmt, path: &Path) -> Result<u64> {
    let ex = export_model(cfg, seed, format).map_err(|m| {
        GgufError::new(
            path,
            "export",
            m,
            "export a dense-family shape (see `capbench list workloads`)",
        )
    })?;
    write_file(path, &ex.metadata, &ex.tensors)
}
