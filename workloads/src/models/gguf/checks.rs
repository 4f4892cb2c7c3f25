//! Checks of a GGUF file's numbers before anything is computed or allocated
//! from them: the data alignment (candle's reader divides by it), and the
//! model's counts and dimensions against the tensor table and the file size.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use candle_core::quantized::gguf_file::Value;

use super::{GgufError, REEXPORT, Result};
use crate::models::config::ModelConfig;

/// GGUF value type ids (ggml's `gguf_type`).
const T_STRING: u32 = 8;
const T_ARRAY: u32 = 9;

/// Bytes of a fixed-size GGUF value type; `None` for string, array, unknown.
fn fixed_size(t: u32) -> Option<u64> {
    match t {
        0 | 1 | 7 => Some(1), // u8, i8, bool
        2 | 3 => Some(2),     // u16, i16
        4..=6 => Some(4),     // u32, i32, f32
        10..=12 => Some(8),   // u64, i64, f64
        _ => None,
    }
}

struct Scan<'a, R> {
    r: &'a mut R,
    file_bytes: u64,
    /// v1 lengths and counts are u32, later versions u64.
    wide: bool,
}

impl<R: Read + Seek> Scan<'_, R> {
    fn u32(&mut self) -> Option<u32> {
        let mut b = [0u8; 4];
        self.r.read_exact(&mut b).ok()?;
        Some(u32::from_le_bytes(b))
    }

    fn len(&mut self) -> Option<u64> {
        if self.wide {
            let mut b = [0u8; 8];
            self.r.read_exact(&mut b).ok()?;
            Some(u64::from_le_bytes(b))
        } else {
            self.u32().map(u64::from)
        }
    }

    /// Skips `n` bytes if the file holds them.
    fn skip(&mut self, n: u64) -> Option<()> {
        let at = self.r.stream_position().ok()?;
        let to = at.checked_add(n).filter(|t| *t <= self.file_bytes)?;
        self.r.seek(SeekFrom::Start(to)).ok()?;
        Some(())
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        let n = self.len()?;
        let at = self.r.stream_position().ok()?;
        if n > self.file_bytes.saturating_sub(at) {
            return None;
        }
        let mut v = vec![0u8; n as usize];
        self.r.read_exact(&mut v).ok()?;
        Some(v)
    }

    /// Skips one value of type `t`; returns it when it is an unsigned or
    /// signed integer (the alignment's types).
    fn value(&mut self, t: u32, depth: usize) -> Option<Option<i128>> {
        if let Some(n) = fixed_size(t) {
            let mut b = [0u8; 8];
            self.r.read_exact(&mut b[..n as usize]).ok()?;
            let v = match t {
                0 => b[0] as i128,
                1 => b[0] as i8 as i128,
                2 => u16::from_le_bytes([b[0], b[1]]) as i128,
                3 => i16::from_le_bytes([b[0], b[1]]) as i128,
                4 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i128,
                5 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i128,
                10 => u64::from_le_bytes(b) as i128,
                11 => i64::from_le_bytes(b) as i128,
                _ => return Some(None),
            };
            return Some(Some(v));
        }
        match t {
            T_STRING => {
                let n = self.len()?;
                self.skip(n)?;
            }
            T_ARRAY if depth < 4 => {
                let et = self.u32()?;
                let n = self.len()?;
                match fixed_size(et) {
                    Some(size) => self.skip(n.checked_mul(size)?)?,
                    None => {
                        // Each string or nested array takes at least 8 bytes:
                        // a count the file cannot hold ends the scan.
                        let at = self.r.stream_position().ok()?;
                        if n > self.file_bytes.saturating_sub(at) / 8 {
                            return None;
                        }
                        for _ in 0..n {
                            self.value(et, depth + 1)?;
                        }
                    }
                }
            }
            _ => return None,
        }
        Some(None)
    }
}

/// Refuses a `general.alignment` of 0 (candle's reader divides by it) or
/// one that is not a power of two (llama.cpp's rule), before candle reads
/// the header. A header this scan cannot follow is left to candle's reader,
/// which reports it.
pub(super) fn alignment(path: &Path, r: &mut (impl Read + Seek), file_bytes: u64) -> Result<()> {
    let found = scan_alignment(r, file_bytes);
    let _ = r.seek(SeekFrom::Start(0));
    match found {
        Some(a) if a <= 0 || a > u32::MAX as i128 || (a as u64).count_ones() != 1 => {
            Err(GgufError::new(
                path,
                "metadata key general.alignment",
                format!("alignment {a}: must be a power of two (GGUF's default is 32)"),
                REEXPORT,
            ))
        }
        _ => Ok(()),
    }
}

fn scan_alignment(r: &mut (impl Read + Seek), file_bytes: u64) -> Option<i128> {
    r.seek(SeekFrom::Start(4)).ok()?;
    let mut s = Scan {
        r,
        file_bytes,
        wide: true,
    };
    let version = s.u32()?;
    s.wide = version >= 2;
    let _tensors = s.len()?;
    let kvs = s.len()?;
    // Every entry takes at least 13 bytes (a key length, a type, a value).
    if kvs > file_bytes / 13 {
        return None;
    }
    let mut alignment = None;
    for _ in 0..kvs {
        let key = s.string()?;
        let t = s.u32()?;
        let v = s.value(t, 0)?;
        if key == b"general.alignment" {
            alignment = Some(v.unwrap_or(0));
        }
    }
    alignment
}

/// The hyper-parameters against the tensor table and the file: every count
/// at least 1, no more blocks than tensors in the table, and
/// every weight matrix small enough to be stored in the file — so that the
/// expected-tensor list and every size derived from it are computed
/// without overflow and without allocating from an unchecked count.
pub(super) fn model_counts(
    path: &Path,
    cfg: &ModelConfig,
    tensors_in_file: usize,
    file_bytes: u64,
) -> Result<()> {
    let key_err =
        |key: &str, m: String| GgufError::new(path, format!("metadata key {key}"), m, REEXPORT);
    for (key, v) in [
        ("llama.block_count", cfg.n_layers),
        ("llama.embedding_length", cfg.d_model),
        ("llama.feed_forward_length", cfg.ffn),
        ("llama.attention.key_length", cfg.head_dim),
    ] {
        if v == 0 {
            return Err(key_err(key, "0: must be at least 1".into()));
        }
    }
    if cfg.vocab == 0 {
        return Err(GgufError::new(
            path,
            "tensor token_embd.weight",
            "a vocabulary of 0 tokens (its first dimension is 0)",
            REEXPORT,
        ));
    }
    // Every block has tensors of its own in the table: a count beyond the
    // table is refused before the expected-tensor list (9 per block) is
    // built from it. A tensor missing within it is named by the caller.
    if cfg.n_layers > tensors_in_file {
        return Err(key_err(
            "llama.block_count",
            format!(
                "{} blocks, but the tensor table holds {tensors_in_file} tensors",
                cfg.n_layers
            ),
        ));
    }
    // A stored element takes at least 18/32 byte (q4_0), so no tensor of
    // the file has more than 2 × file_bytes elements.
    let most = file_bytes.saturating_mul(2);
    let d = cfg.d_model as u64;
    let q_rows = (cfg.n_heads as u64).checked_mul(cfg.head_dim as u64);
    let kv_rows = (cfg.n_kv_heads as u64).checked_mul(cfg.head_dim as u64);
    for (what, rows) in [
        ("token_embd.weight", Some(cfg.vocab as u64)),
        ("blk.0.attn_q.weight", q_rows),
        ("blk.0.attn_k.weight", kv_rows),
        ("blk.0.ffn_up.weight", Some(cfg.ffn as u64)),
    ] {
        let elems = rows.and_then(|r| r.checked_mul(d));
        if elems.is_none_or(|e| e > most) {
            return Err(GgufError::new(
                path,
                format!("tensor {what}"),
                format!(
                    "the hyper-parameters (embedding_length {}, head_count {}, head_count_kv {}, key_length {}, feed_forward_length {}, vocabulary {}) make it larger than the whole file ({file_bytes} bytes)",
                    cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.ffn, cfg.vocab
                ),
                REEXPORT,
            ));
        }
    }
    Ok(())
}

/// Stored bytes of a tensor, `None` when its element count overflows.
pub(super) fn stored_bytes(info: &candle_core::quantized::gguf_file::TensorInfo) -> Option<u64> {
    let elems = info
        .shape
        .dims()
        .iter()
        .try_fold(1u64, |n, d| n.checked_mul(*d as u64))?;
    let block = info.ggml_dtype.block_size() as u64;
    (elems / block).checked_mul(info.ggml_dtype.type_size() as u64)
}

/// Reads an unsigned integer metadata value of any integer type.
pub(super) fn as_usize(v: &Value) -> Option<usize> {
    match v {
        Value::U8(x) => Some(*x as usize),
        Value::U16(x) => Some(*x as usize),
        Value::U32(x) => Some(*x as usize),
        Value::U64(x) => Some(*x as usize),
        Value::I8(x) if *x >= 0 => Some(*x as usize),
        Value::I16(x) if *x >= 0 => Some(*x as usize),
        Value::I32(x) if *x >= 0 => Some(*x as usize),
        Value::I64(x) if *x >= 0 => Some(*x as usize),
        _ => None,
    }
}

pub(super) fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::F32(x) => Some(*x as f64),
        Value::F64(x) => Some(*x),
        _ => None,
    }
}

pub(super) fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n
}
