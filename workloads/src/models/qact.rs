//! q8_0 activations in the interleaved group order that the q4_0 and q8_0
//! kernels (`q4`, `q8`, `qgemm`) all read, the SIMD path they choose, and
//! the output pointer their GEMM tasks share. Below those kernels, so that
//! each of them imports it rather than one another.

use half::f16;
use rayon::prelude::*;

pub const BLOCK: usize = 32;
/// Blocks interleaved together: one 32-bit lane per block in a 512-bit
/// register (two 256-bit halves on AVX2).
pub const GROUP: usize = 16;
/// Rows per parallel task of a quantized matrix × vector.
pub const MATVEC_CHUNK: usize = 64;
/// q8 activations of a group: 8 vectors of 64 bytes.
pub(crate) const GROUP_ACT_BYTES: usize = GROUP * BLOCK;

/// One activation row quantized to q8_0 in the groups' interleaved order,
/// borrowed from an `ActRows`. Shared with `q8`, whose groups interleave
/// the same way.
#[derive(Clone, Copy)]
pub(crate) struct ActQ8<'a> {
    /// Group g, vector k (0..8), lane j: elements 4k..4k+4 of block 16g + j.
    pub(crate) qs: &'a [i8],
    /// Per-block scale (rounded to f16 as ggml stores it); 0 for padding.
    pub(crate) d: &'a [f32],
    /// Per-block 8·Σqs: the −8 offset of the nibbles, taken out once.
    pub(crate) sum8: &'a [i32],
}

/// m activation rows quantized to q8_0, each as an `ActQ8`. Reused across
/// calls (prefill quantizes each layer input once for all the matrices
/// that read it), so the buffers only grow.
#[derive(Debug, Default)]
pub struct ActRows {
    m: usize,
    groups: usize,
    qs: Vec<i8>,
    d: Vec<f32>,
    sum8: Vec<i32>,
}

impl ActRows {
    /// Quantizes the m rows of `xs` ((m, cols) row-major; cols % 32 == 0).
    pub fn quantize(&mut self, xs: &[f32], cols: usize) {
        assert!(
            cols.is_multiple_of(BLOCK) && xs.len().is_multiple_of(cols.max(1)),
            "activation rows: {} values in rows of {cols}",
            xs.len()
        );
        self.m = xs.len() / cols.max(1);
        self.groups = (cols / BLOCK).div_ceil(GROUP);
        let (bq, bs) = (self.groups * GROUP_ACT_BYTES, self.groups * GROUP);
        self.qs.resize(self.m * bq, 0);
        self.d.resize(self.m * bs, 0.0);
        self.sum8.resize(self.m * bs, 0);
        let w = cols.max(1);
        if self.m > 1 {
            self.qs
                .par_chunks_exact_mut(bq)
                .zip(self.d.par_chunks_exact_mut(bs))
                .zip(self.sum8.par_chunks_exact_mut(bs))
                .zip(xs.par_chunks_exact(w))
                .with_min_len(4)
                .for_each(|(((qs, d), s8), x)| quantize_row(x, qs, d, s8));
        } else if self.m == 1 {
            quantize_row(xs, &mut self.qs, &mut self.d, &mut self.sum8);
        }
    }

    pub fn rows(&self) -> usize {
        self.m
    }

    pub(crate) fn groups(&self) -> usize {
        self.groups
    }

    pub(crate) fn row(&self, i: usize) -> ActQ8<'_> {
        let (bq, bs) = (self.groups * GROUP_ACT_BYTES, self.groups * GROUP);
        ActQ8 {
            qs: &self.qs[i * bq..][..bq],
            d: &self.d[i * bs..][..bs],
            sum8: &self.sum8[i * bs..][..bs],
        }
    }
}

/// One row in the interleaved order; the padding blocks are zeroed (the
/// buffers are reused across widths).
fn quantize_row(x: &[f32], qs: &mut [i8], dd: &mut [f32], sum8: &mut [i32]) {
    qs.fill(0);
    dd.fill(0.0);
    sum8.fill(0);
    for (i, blk) in x.chunks_exact(BLOCK).enumerate() {
        let amax = blk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        // ggml stores the q8_0 scale as f16; rounding it the same way keeps
        // our products identical to ggml's (and candle's) for the same weights.
        let d = f16::from_f32(amax / 127.0).to_f32();
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let (g, j) = (i / GROUP, i % GROUP);
        let base = g * GROUP_ACT_BYTES + 4 * j;
        let mut sum = 0i32;
        for (e, v) in blk.iter().enumerate() {
            let q = (v * id).round() as i8;
            sum += q as i32;
            qs[base + 64 * (e / 4) + e % 4] = q;
        }
        dd[i] = d;
        sum8[i] = 8 * sum;
    }
}

/// One row quantized on its own (decode's matrix-vector products).
pub(crate) fn quantize_act(x: &[f32]) -> ActRows {
    let mut a = ActRows::default();
    a.quantize(x, x.len());
    a
}

/// Raw output pointer shared by the tasks of a GEMM that write disjoint
/// columns of the same rows.
#[derive(Clone, Copy)]
pub(crate) struct OutPtr(pub(crate) *mut f32);
// SAFETY: every user writes a set of elements no other task writes.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The pointer (a method, so closures capture the whole `Send` value
    /// rather than its raw field).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// The dot-product path in use: the widest this CPU offers, unless
/// `CAPBENCH_Q4_KERNEL=avx2|scalar` asks for a narrower one (to compare
/// paths on one machine; recorded nowhere else, so only for development).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Q4Path {
    Avx512Vnni,
    Avx2,
    Scalar,
}

pub fn path() -> Q4Path {
    static PATH: std::sync::OnceLock<Q4Path> = std::sync::OnceLock::new();
    *PATH.get_or_init(|| {
        let asked = std::env::var("CAPBENCH_Q4_KERNEL").unwrap_or_default();
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma") && has!("f16c");
            let avx512 = avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vnni");
            match asked.as_str() {
                "scalar" => Q4Path::Scalar,
                "avx2" if avx2 => Q4Path::Avx2,
                _ if avx512 => Q4Path::Avx512Vnni,
                _ if avx2 => Q4Path::Avx2,
                _ => Q4Path::Scalar,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = asked;
            Q4Path::Scalar
        }
    })
}
