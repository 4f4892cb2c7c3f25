//! GGUF model files: export a synthetic dense model with llama.cpp's tensor
//! names and `llama.*` metadata (so other tools run the exact same weights),
//! and load a llama-family GGUF — ours or a user's — into `Model`, keeping
//! quantized tensors as they are stored.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

use self::checks::{as_f64, as_usize, read_up_to};
use super::config::{Family, ModelConfig};
use super::model::{Generated, Model, TensorSource, WeightFormat};
use crate::formats::WeightFmt;

/// A GGUF file that cannot be written, read or run: the file, the place in
/// it (metadata key, tensor name, byte offset) and what to do about it.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {place}: {message}\n  fix: {fix}")]
pub struct GgufError {
    pub path: String,
    pub place: String,
    pub message: String,
    pub fix: String,
}

impl GgufError {
    fn new(
        path: &Path,
        place: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> GgufError {
        GgufError {
            path: path.display().to_string(),
            place: place.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

type Result<T, E = GgufError> = std::result::Result<T, E>;

impl From<GgufError> for crate::error::WorkloadError {
    fn from(e: GgufError) -> Self {
        crate::error::WorkloadError::ModelFile(Box::new(e))
    }
}

const REEXPORT: &str = "the file is truncated or damaged: download or export it again";

/// Our parameter name → llama.cpp's tensor name.
fn gguf_name(name: &str) -> Option<String> {
    Some(match name {
        "embed" => "token_embd.weight".into(),
        "final_norm" => "output_norm.weight".into(),
        "lm_head" => "output.weight".into(),
        _ => {
            let rest = name.strip_prefix("layers.")?;
            let (l, part) = rest.split_once('.')?;
            let g = match part {
                "attn_norm" => "attn_norm",
                "wq" => "attn_q",
                "wk" => "attn_k",
                "wv" => "attn_v",
                "wo" => "attn_output",
                "ffn_norm" => "ffn_norm",
                "ffn.gate" => "ffn_gate",
                "ffn.up" => "ffn_up",
                "ffn.down" => "ffn_down",
                _ => return None,
            };
            format!("blk.{l}.{g}.weight")
        }
    })
}

/// The tensors of a llama-family dense model: (our name, shape (rows, cols)
/// or (len)), in the order they are written.
fn expected_tensors(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let (d, hd) = (cfg.d_model, cfg.head_dim);
    let mut v = vec![("embed".to_string(), vec![cfg.vocab, d])];
    for l in 0..cfg.n_layers {
        let p = format!("layers.{l}");
        v.push((format!("{p}.attn_norm"), vec![d]));
        v.push((format!("{p}.wq"), vec![cfg.n_heads * hd, d]));
        v.push((format!("{p}.wk"), vec![cfg.n_kv_heads * hd, d]));
        v.push((format!("{p}.wv"), vec![cfg.n_kv_heads * hd, d]));
        v.push((format!("{p}.wo"), vec![d, cfg.n_heads * hd]));
        v.push((format!("{p}.ffn_norm"), vec![d]));
        v.push((format!("{p}.ffn.gate"), vec![cfg.ffn, d]));
        v.push((format!("{p}.ffn.up"), vec![cfg.ffn, d]));
        v.push((format!("{p}.ffn.down"), vec![d, cfg.ffn]));
    }
    v.push(("final_norm".into(), vec![d]));
    if !cfg.tied_embeddings {
        v.push(("lm_head".into(), vec![cfg.vocab, d]));
    }
    v
}

/// convert_hf_to_gguf.py's `permute` for Q and K: within each head, row
/// j·hd/2 + i moves to 2i + j, so llama.cpp's interleaved RoPE (pairs
/// 2i, 2i+1) rotates the pairs the rotate-half layout rotates. w (out, in).
fn permute_rows(w: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (out, inp) = w.dims2()?;
    w.reshape((heads, 2, out / heads / 2, inp))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((out, inp))
}

fn ggml_dtype(f: WeightFmt) -> GgmlDType {
    match f {
        WeightFmt::F32 => GgmlDType::F32,
        WeightFmt::F16 => GgmlDType::F16,
        WeightFmt::Bf16 => GgmlDType::BF16,
        WeightFmt::Q8_0 => GgmlDType::Q8_0,
        WeightFmt::Q4_0 => GgmlDType::Q4_0,
    }
}

/// llama.cpp's `general.file_type` (enum llama_ftype).
fn file_type(f: WeightFmt) -> u32 {
    match f {
        WeightFmt::F32 => 0,
        WeightFmt::F16 => 1,
        WeightFmt::Q4_0 => 2,
        WeightFmt::Q8_0 => 7,
        WeightFmt::Bf16 => 32,
    }
}

/// The weight format a model runs in, from the format it is stored in.
pub fn weight_format(f: WeightFmt) -> WeightFormat {
    match f {
        WeightFmt::F32 => WeightFormat::Float(DType::F32),
        WeightFmt::F16 => WeightFormat::Float(DType::F16),
        WeightFmt::Bf16 => WeightFormat::Float(DType::BF16),
        WeightFmt::Q8_0 => WeightFormat::Q8_0,
        WeightFmt::Q4_0 => WeightFormat::Q4_0,
    }
}

/// An opened, checked llama-family GGUF file: everything needed to build the
/// model, known before any tensor data is read.
#[derive(Debug)]
pub struct GgufFile {
    pub path: PathBuf,
    pub cfg: ModelConfig,
    /// The format most linear weights are stored in (by element count).
    pub format: WeightFmt,
    pub file_bytes: u64,
    /// Bytes of weights one decode step reads as the model runs them (every
    /// tensor as stored but the embedding, of which one row is read; a tied
    /// embedding is the LM head, in the activation dtype).
    pub decode_weight_bytes: f64,
    /// Tensor counts per stored dtype, e.g. {"q4_0": 154, "f32": 45}.
    pub dtypes: BTreeMap<String, usize>,
    content: Content,
}

fn dtype_name(d: GgmlDType) -> String {
    format!("{d:?}").to_lowercase()
}

impl GgufFile {
    /// Opens and checks `path`: magic, header, `llama` architecture, the
    /// hyper-parameters, every tensor the model needs (present, right shape,
    /// data inside the file) and none it would silently ignore.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let file = File::open(path).map_err(|e| {
            GgufError::new(
                path,
                "whole file",
                format!("cannot open: {e}"),
                "pass a readable .gguf model file",
            )
        })?;
        let file_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut r = BufReader::new(file);
        let mut magic = [0u8; 4];
        let n = read_up_to(&mut r, &mut magic);
        if n < 4 || &magic != b"GGUF" {
            return Err(GgufError::new(
                path,
                "bytes 0..4",
                format!(
                    "not a GGUF file: starts with {:?}, expected \"GGUF\"",
                    String::from_utf8_lossy(&magic[..n])
                ),
                "pass a GGUF model file (llama.cpp's format; convert safetensors with llama.cpp's convert_hf_to_gguf.py)",
            ));
        }
        checks::alignment(path, &mut r, file_bytes)?;
        r.seek(SeekFrom::Start(0))
            .map_err(|e| GgufError::new(path, "byte 0", e.to_string(), REEXPORT))?;
        let content = Content::read(&mut r).map_err(|e| {
            let at = r.stream_position().unwrap_or(0);
            GgufError::new(
                path,
                format!("header (metadata and tensor table), near byte {at} of {file_bytes}"),
                format!("cannot read: {}", crate::error::without_backtrace(&e)),
                REEXPORT,
            )
        })?;
        let md = &content.metadata;
        let key_err = |key: &str, m: String, fix: &str| {
            GgufError::new(path, format!("metadata key {key}"), m, fix)
        };
        let arch = match md.get("general.architecture") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => {
                return Err(key_err(
                    "general.architecture",
                    format!("expected a string, found {v:?}"),
                    REEXPORT,
                ));
            }
            None => {
                return Err(key_err(
                    "general.architecture",
                    "missing".into(),
                    "the file is not a llama.cpp model file; convert the model with llama.cpp's convert_hf_to_gguf.py",
                ));
            }
        };
        if arch != "llama" {
            return Err(key_err(
                "general.architecture",
                format!("architecture '{arch}' is not supported"),
                "capbench runs llama-family GGUF files (general.architecture = llama: Llama 1/2/3, TinyLlama, Mistral-7B, …)",
            ));
        }
        let req = |key: &str| -> Result<usize> {
            let full = format!("llama.{key}");
            match md.get(&full) {
                Some(v) => as_usize(v).ok_or_else(|| {
                    key_err(
                        &full,
                        format!("expected an unsigned integer, found {v:?}"),
                        REEXPORT,
                    )
                }),
                None => Err(key_err(&full, "missing".into(), REEXPORT)),
            }
        };
        let opt_usize = |key: &str| md.get(&format!("llama.{key}")).and_then(as_usize);
        let opt_f64 = |key: &str| md.get(&format!("llama.{key}")).and_then(as_f64);
        let unsupported = |key: &str, m: String| {
            key_err(
                key,
                m,
                "capbench runs dense llama models with plain RoPE; pick another model file",
            )
        };
        if let Some(n) = opt_usize("expert_count").filter(|n| *n > 0) {
            return Err(unsupported(
                "llama.expert_count",
                format!("a mixture-of-experts model ({n} experts) is not supported"),
            ));
        }
        if let Some(Value::String(s)) = md.get("llama.rope.scaling.type")
            && s != "none"
        {
            return Err(unsupported(
                "llama.rope.scaling.type",
                format!("RoPE scaling '{s}' is not supported"),
            ));
        }
        let d_model = req("embedding_length")?;
        let n_layers = req("block_count")?;
        let ffn = req("feed_forward_length")?;
        let n_heads = req("attention.head_count")?;
        let n_kv_heads = opt_usize("attention.head_count_kv").unwrap_or(n_heads);
        if n_heads == 0 || n_kv_heads == 0 || !n_heads.is_multiple_of(n_kv_heads) {
            return Err(key_err(
                "llama.attention.head_count_kv",
                format!("{n_kv_heads} KV heads for {n_heads} query heads (must divide it)"),
                REEXPORT,
            ));
        }
        let head_dim = opt_usize("attention.key_length").unwrap_or(d_model / n_heads);
        let rope_dims = opt_usize("rope.dimension_count").unwrap_or(head_dim);
        if rope_dims != head_dim || !head_dim.is_multiple_of(2) {
            return Err(unsupported(
                "llama.rope.dimension_count",
                format!("RoPE over {rope_dims} of {head_dim} head dimensions is not supported"),
            ));
        }
        let emb = content
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| {
                GgufError::new(
                    path,
                    "tensor token_embd.weight",
                    "missing",
                    "the file is incomplete or not a llama model; export or convert it again",
                )
            })?;
        let vocab = emb.shape.dims().first().copied().unwrap_or(0);
        let tied = !content.tensor_infos.contains_key("output.weight");
        let cfg = ModelConfig {
            name: format!(
                "gguf:{}",
                path.file_stem().unwrap_or_default().to_string_lossy()
            ),
            family: Family::Dense,
            vocab,
            d_model,
            n_layers,
            head_dim,
            n_heads,
            n_kv_heads,
            ffn,
            tied_embeddings: tied,
            rope_theta: opt_f64("rope.freq_base").unwrap_or(10_000.0),
            rope_interleaved: true,
            norm_eps: opt_f64("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            max_context: opt_usize("context_length").unwrap_or(2048),
            mla: None,
            moe: None,
            qkv_mult: None,
            ffn_mult: None,
            source: path.display().to_string(),
        };
        checks::model_counts(path, &cfg, content.tensor_infos.len(), file_bytes)?;
        // Every tensor the model needs: present, right shape, data inside.
        let mut used = std::collections::HashSet::new();
        let mut by_dtype: HashMap<GgmlDType, usize> = HashMap::new();
        let mut dtypes = BTreeMap::new();
        let mut weight_bytes = 0.0;
        for (name, shape) in expected_tensors(&cfg) {
            let g = gguf_name(&name).expect("mapped name");
            let place = format!("tensor {g}");
            let info = content.tensor_infos.get(&g).ok_or_else(|| {
                GgufError::new(
                    path,
                    &place,
                    "missing",
                    "the file is incomplete or not a llama model; export or convert it again",
                )
            })?;
            if info.shape.dims() != shape.as_slice() {
                return Err(GgufError::new(
                    path,
                    &place,
                    format!(
                        "shape {:?}, but the metadata's hyper-parameters need {shape:?}",
                        info.shape.dims()
                    ),
                    REEXPORT,
                ));
            }
            let bytes = checks::stored_bytes(info).unwrap_or(u64::MAX);
            // u128: an offset near 2^64 must not wrap to a place inside the file.
            let start = content.tensor_data_offset as u128 + info.offset as u128;
            let end = start + bytes as u128;
            if end > file_bytes as u128 {
                return Err(GgufError::new(
                    path,
                    &place,
                    format!("data at bytes {start}..{end}, but the file ends at byte {file_bytes}"),
                    REEXPORT,
                ));
            }
            used.insert(g);
            *dtypes.entry(dtype_name(info.ggml_dtype)).or_insert(0) += 1;
            if shape.len() == 2 && name != "embed" {
                *by_dtype.entry(info.ggml_dtype).or_insert(0) += info.shape.elem_count();
            }
            if name != "embed" {
                weight_bytes += bytes as f64;
            }
        }
        if let Some(extra) = content
            .tensor_infos
            .keys()
            .filter(|k| !used.contains(*k))
            .min()
        {
            return Err(GgufError::new(
                path,
                format!("tensor {extra}"),
                "not part of the dense llama model capbench runs (biases, rope frequency factors, experts, … would be silently ignored)",
                "pick a plain llama-architecture model file",
            ));
        }
        let (major, _) = by_dtype
            .iter()
            .max_by_key(|(d, n)| (**n, dtype_name(**d)))
            .map(|(d, n)| (*d, *n))
            .ok_or_else(|| {
                GgufError::new(
                    path,
                    "tensor types",
                    "no linear weight in the file",
                    REEXPORT,
                )
            })?;
        let format = match major {
            GgmlDType::F32 => WeightFmt::F32,
            GgmlDType::F16 => WeightFmt::F16,
            GgmlDType::BF16 => WeightFmt::Bf16,
            GgmlDType::Q8_0 => WeightFmt::Q8_0,
            GgmlDType::Q4_0 => WeightFmt::Q4_0,
            other => {
                return Err(GgufError::new(
                    path,
                    "tensor types",
                    format!(
                        "most weights are stored as {}; capbench's decode formats are f32, f16, bf16, q8_0 and q4_0",
                        dtype_name(other)
                    ),
                    "requantize, e.g. `llama-quantize --allow-requantize FILE.gguf OUT.gguf Q4_0`, or convert with --outtype q8_0/f16",
                ));
            }
        };
        if tied {
            let act = match format {
                WeightFmt::F16 | WeightFmt::Bf16 => 2.0,
                _ => 4.0,
            };
            weight_bytes += (vocab * d_model) as f64 * act;
        }
        Ok(GgufFile {
            path: path.to_path_buf(),
            cfg,
            format,
            file_bytes,
            decode_weight_bytes: weight_bytes,
            dtypes,
            content,
        })
    }

    /// The model on `device`: linear weights stored quantized stay quantized
    /// (QMatMul) when `format` is quantized; everything else is dequantized
    /// to the activation dtype of `format` (f32 for the reference).
    pub fn load(&self, device: &Device, format: WeightFormat) -> Result<Model> {
        let src = self.source(device)?;
        Model::from_source(&self.cfg, &src, format).map_err(|e| {
            GgufError::new(
                &self.path,
                "tensor data",
                format!(
                    "cannot build the model: {}",
                    crate::error::without_backtrace(&e)
                ),
                REEXPORT,
            )
        })
    }

    /// A tensor source reading this file on `device`.
    pub fn source(&self, device: &Device) -> Result<GgufSource<'_>> {
        let f = File::open(&self.path).map_err(|e| {
            GgufError::new(
                &self.path,
                "whole file",
                format!("cannot open: {e}"),
                "pass a readable .gguf model file",
            )
        })?;
        Ok(GgufSource {
            file: self,
            reader: Mutex::new(BufReader::new(f)),
            device: device.clone(),
        })
    }
}

#[cfg(test)]
mod tests;

mod checks;
mod export;
mod source;

pub use export::{Export, export, export_model, write_file};
pub use source::GgufSource;
