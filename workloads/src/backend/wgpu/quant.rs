//! Stored weight formats of the wgpu engine's decode: q8_0 / q4_0 in ggml's
//! block layout (an f16 scale, then 32 int8 or 16 bytes of nibbles), and
//! f16 / bf16 (two halves a word), their bytes packed little-endian into u32
//! words of the engine's u32 arena. WGSL has no u8 or f16 storage without
//! extensions (f16 needs `SHADER_F16`); `qmatvec` in ops.wgsl unpacks the
//! words with core WGSL (`unpack2x16float`, shifts), so every adapter runs
//! every format, and computes in f32.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

use super::engine::Ix;
use crate::formats::WeightFmt;

/// Elements per block (both formats).
pub const BLOCK: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QFmt {
    Q8_0,
    Q4_0,
    F16,
    Bf16,
}

impl QFmt {
    pub fn of(f: WeightFmt) -> Option<QFmt> {
        match f {
            WeightFmt::Q8_0 => Some(QFmt::Q8_0),
            WeightFmt::Q4_0 => Some(QFmt::Q4_0),
            WeightFmt::F16 => Some(QFmt::F16),
            WeightFmt::Bf16 => Some(QFmt::Bf16),
            WeightFmt::F32 => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            QFmt::Q8_0 => "q8_0",
            QFmt::Q4_0 => "q4_0",
            QFmt::F16 => "f16",
            QFmt::Bf16 => "bf16",
        }
    }

    /// Bytes of 32 weights: f16 scale + 32 int8, or + 16 bytes of
    /// nibbles; 32 halves.
    pub fn block_bytes(self) -> usize {
        match self {
            QFmt::Q8_0 => 34,
            QFmt::Q4_0 => 18,
            QFmt::F16 | QFmt::Bf16 => 64,
        }
    }

    /// The `fmt` parameter of `qmatvec`.
    pub fn code(self) -> u32 {
        match self {
            QFmt::Q8_0 => 0,
            QFmt::Q4_0 => 1,
            QFmt::F16 => 2,
            QFmt::Bf16 => 3,
        }
    }

    fn ggml(self) -> Option<GgmlDType> {
        match self {
            QFmt::Q8_0 => Some(GgmlDType::Q8_0),
            QFmt::Q4_0 => Some(GgmlDType::Q4_0),
            QFmt::F16 | QFmt::Bf16 => None,
        }
    }

    /// u32 words a (rows, cols) matrix takes (its bytes rounded up to a word).
    pub fn words(self, rows: usize, cols: usize) -> usize {
        (rows * cols / BLOCK * self.block_bytes()).div_ceil(4)
    }
}

/// A (rows, cols) quantized matrix in the u32 arena, row-major blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QMat {
    pub fmt: QFmt,
    pub w: Ix,
    pub rows: usize,
    pub cols: usize,
}

/// The stored bytes of a (rows, cols) f32 matrix, converted by candle:
/// q8_0/q4_0 with ggml's reference rounding (the same blocks as candle's
/// CPU path), f16/bf16 rounded to nearest. `cols` must be a multiple of 32.
pub fn quantize(w: &Tensor, fmt: QFmt) -> candle_core::Result<Vec<u8>> {
    match (fmt.ggml(), fmt) {
        (Some(q), _) => Ok(QTensor::quantize(w, q)?.data()?.into_owned()),
        (None, QFmt::F16) => Ok(w
            .to_dtype(DType::F16)?
            .flatten_all()?
            .to_vec1::<half::f16>()?
            .iter()
            .flat_map(|h| h.to_le_bytes())
            .collect()),
        (None, _) => Ok(w
            .to_dtype(DType::BF16)?
            .flatten_all()?
            .to_vec1::<half::bf16>()?
            .iter()
            .flat_map(|h| h.to_le_bytes())
            .collect()),
    }
}

/// The f32 values the stored weights stand for, converted back by candle:
/// the weights the CPU reference uses for a wgpu run in `fmt`.
pub fn dequantized(w: &Tensor, fmt: QFmt) -> candle_core::Result<Tensor> {
    match fmt.ggml() {
        Some(q) => QTensor::quantize(w, q)?.dequantize(&Device::Cpu),
        None => {
            let dt = if fmt == QFmt::F16 {
                DType::F16
            } else {
                DType::BF16
            };
            w.to_dtype(dt)?.to_dtype(DType::F32)
        }
    }
}

/// Bytes → little-endian u32 words, the last one zero-padded.
pub fn pack_words(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect()
}

/// ggml blocks → f64 values, read by hand from the byte layout (the
/// op tests' reference, independent of candle and of the WGSL).
pub fn dequantize_host(bytes: &[u8], fmt: QFmt) -> Vec<f64> {
    let mut out = Vec::with_capacity(bytes.len() / fmt.block_bytes() * BLOCK);
    for b in bytes.chunks_exact(fmt.block_bytes()) {
        // The scale of a q8_0/q4_0 block (unused for f16/bf16).
        let d = half::f16::from_le_bytes([b[0], b[1]]).to_f64();
        match fmt {
            QFmt::Q8_0 => out.extend(b[2..].iter().map(|q| d * (*q as i8) as f64)),
            QFmt::Q4_0 => {
                let q = &b[2..];
                out.extend(q.iter().map(|x| d * ((x & 0xf) as f64 - 8.0)));
                out.extend(q.iter().map(|x| d * ((x >> 4) as f64 - 8.0)));
            }
            QFmt::F16 => out.extend(
                b.chunks_exact(2)
                    .map(|h| half::f16::from_le_bytes([h[0], h[1]]).to_f64()),
            ),
            QFmt::Bf16 => out.extend(
                b.chunks_exact(2)
                    .map(|h| half::bf16::from_le_bytes([h[0], h[1]]).to_f64()),
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written reading of the block layout agrees with candle's
    /// dequantization, so the op tests' reference reads what candle wrote.
    #[test]
    fn host_dequantization_matches_candle() {
        let data: Vec<f32> = (0..3 * 96)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let t = Tensor::from_vec(data, (3, 96), &Device::Cpu).unwrap();
        for fmt in [QFmt::Q8_0, QFmt::Q4_0, QFmt::F16, QFmt::Bf16] {
            let bytes = quantize(&t, fmt).unwrap();
            assert_eq!(bytes.len(), 3 * 3 * fmt.block_bytes());
            assert_eq!(pack_words(&bytes).len(), fmt.words(3, 96));
            let host = dequantize_host(&bytes, fmt);
            let candle: Vec<f32> = dequantized(&t, fmt)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(host.len(), candle.len());
            for (h, c) in host.iter().zip(&candle) {
                assert_eq!(*h as f32, *c, "{fmt:?}");
            }
            // Not trivially zero: the values carry the data.
            assert!(host.iter().any(|v| v.abs() > 1.0), "{fmt:?}");
        }
        assert_eq!(pack_words(&[1, 2, 3, 4, 5]), vec![0x0403_0201, 5]);
    }
}
