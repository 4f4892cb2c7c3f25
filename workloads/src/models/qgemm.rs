//! Products of q4_0/q8_0 weights (the interleaved layouts of `q4` and `q8`)
//! with many activation rows at once: prefill and batched decode. Decode's
//! matrix-vector kernel reads each weight group once per activation row;
//! here a tile of 2 weight rows × 4 activation rows shares every load —
//! each unpacked weight vector feeds four VNNI dot products and each
//! activation vector two — and the activation tile stays in L1 while a
//! chunk of weight rows streams past it from L2.
//!
//! The numbers are those of the per-row kernels: the integer block sums are
//! exact and each lane accumulates its blocks' scaled sums in the same
//! order, so a tile gives `dot_avx512`'s result for every pair.

use rayon::prelude::*;

use super::qact::{ActQ8, ActRows, GROUP, GROUP_ACT_BYTES, OutPtr, Q4Path};

/// Which packed layout a matrix has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// 256 bytes of nibbles, then 16 f16 scales (`q4`).
    Q4,
    /// 512 biased bytes, then 16 f16 scales (`q8`).
    Q8,
}

impl Kind {
    fn group_bytes(self) -> usize {
        self.scales_at() + 2 * GROUP
    }
    fn scales_at(self) -> usize {
        match self {
            Kind::Q4 => GROUP * 16,
            Kind::Q8 => GROUP * 32,
        }
    }
}

/// A packed matrix borrowed for one product, with its per-row kernel (for
/// the edges of the tiling and the paths without a tile kernel).
#[derive(Clone, Copy)]
pub(super) struct Packed<'a> {
    pub kind: Kind,
    pub data: &'a [u8],
    pub rows: usize,
    pub dot: fn(Q4Path, &[u8], ActQ8) -> f32,
}

/// out[i·ldo + r] = W[r]·a[i] for every weight row r and activation row i,
/// on path `p` (tiles only on AVX-512 VNNI).
pub(super) fn gemm_on(p: Q4Path, w: Packed, a: &ActRows, out: &mut [f32], ldo: usize) {
    let (m, rows) = (a.rows(), w.rows);
    let row_bytes = a.groups() * w.kind.group_bytes();
    assert!(
        w.data.len() == rows * row_bytes
            && rows <= ldo
            && (m == 0 || out.len() >= (m - 1) * ldo + rows),
        "quantized gemm shapes: {} weight bytes for {rows} rows of {row_bytes}, {m} activation rows, out {} with stride {ldo}",
        w.data.len(),
        out.len()
    );
    if m == 0 || rows == 0 {
        return;
    }
    // A task's weight rows stay in L2 (≤ 256 KiB) while every activation
    // tile passes; at least 8 tasks per thread to balance a busy machine.
    let tasks = 8 * rayon::current_num_threads();
    let chunk = ((256 << 10) / row_bytes)
        .min(rows.div_ceil(tasks))
        .max(2)
        .next_multiple_of(2);
    let out = OutPtr(out.as_mut_ptr());
    let tile = p == Q4Path::Avx512Vnni;
    (0..rows.div_ceil(chunk)).into_par_iter().for_each(|c| {
        let (r0, r1) = (c * chunk, ((c + 1) * chunk).min(rows));
        let row = |r: usize| &w.data[r * row_bytes..][..row_bytes];
        // SAFETY: this task alone writes columns r0..r1 of the m rows, all
        // inside `out` (asserted above).
        let put = |i: usize, r: usize, v: f32| unsafe { *out.get().add(i * ldo + r) = v };
        for i in (0..m).step_by(4) {
            let na = (m - i).min(4);
            let mut r = r0;
            while r < r1 {
                if tile && na == 4 && r + 2 <= r1 {
                    let acts = [a.row(i), a.row(i + 1), a.row(i + 2), a.row(i + 3)];
                    #[cfg(target_arch = "x86_64")]
                    {
                        // SAFETY: the path was detected (or asked for and
                        // detected); row lengths match the activations.
                        let y = unsafe {
                            match w.kind {
                                Kind::Q4 => tile_q4_avx512(row(r), row(r + 1), &acts),
                                Kind::Q8 => tile_q8_avx512(row(r), row(r + 1), &acts),
                            }
                        };
                        for (k, yk) in y.iter().enumerate() {
                            for (j, v) in yk.iter().enumerate() {
                                put(i + j, r + k, *v);
                            }
                        }
                    }
                    r += 2;
                } else {
                    for j in 0..na {
                        put(i + j, r, (w.dot)(p, row(r), a.row(i + j)));
                    }
                    r += 1;
                }
            }
        }
    });
}

/// One 2 × 4 tile: per group, each weight vector pair (`$load`: vector
/// pair v of a group and the activation vectors it multiplies) is loaded
/// once for the four activation rows. `$shift`: the block offset is
/// `sum8 << shift` (8·Σx for q4's −8, 128·Σx for q8's +128).
#[cfg(target_arch = "x86_64")]
macro_rules! tile512 {
    ($name:ident, $kind:expr, $shift:expr, $load:ident) => {
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        unsafe fn $name(w0: &[u8], w1: &[u8], a: &[ActQ8; 4]) -> [[f32; 4]; 2] {
            use std::arch::x86_64::*;
            let gb = $kind.group_bytes();
            let groups = w0.len() / gb;
            assert!(
                w1.len() == w0.len()
                    && a.iter().all(|a| a.qs.len() == groups * GROUP_ACT_BYTES
                        && a.d.len() == groups * GROUP
                        && a.sum8.len() == groups * GROUP)
            );
            let mut acc = [[_mm512_setzero_ps(); 4]; 2];
            for g in 0..groups {
                // SAFETY: group g lies inside both weight rows and every
                // activation row (lengths asserted above).
                unsafe {
                    let p = [w0.as_ptr().add(g * gb), w1.as_ptr().add(g * gb)];
                    // Arrays built by index, not `array::map`: a map that
                    // LLVM leaves out of line (it did in some builds) is a
                    // call per group that spills every live accumulator —
                    // prefill q4_0 ran at 0.6× with it.
                    let o = g * GROUP_ACT_BYTES;
                    let x = [
                        a[0].qs.as_ptr().add(o),
                        a[1].qs.as_ptr().add(o),
                        a[2].qs.as_ptr().add(o),
                        a[3].qs.as_ptr().add(o),
                    ];
                    let mut d = [[_mm512_setzero_si512(); 4]; 2];
                    for v in 0..4 {
                        let (wa0, wb0, ka, kb) = $load(p[0], v);
                        let (wa1, wb1, _, _) = $load(p[1], v);
                        for j in 0..4 {
                            let xa = _mm512_loadu_si512(x[j].add(64 * ka) as *const __m512i);
                            let xb = _mm512_loadu_si512(x[j].add(64 * kb) as *const __m512i);
                            d[0][j] = _mm512_dpbusd_epi32(d[0][j], wa0, xa);
                            d[1][j] = _mm512_dpbusd_epi32(d[1][j], wa1, xa);
                            d[0][j] = _mm512_dpbusd_epi32(d[0][j], wb0, xb);
                            d[1][j] = _mm512_dpbusd_epi32(d[1][j], wb1, xb);
                        }
                    }
                    let sa = $kind.scales_at();
                    let dw = [
                        _mm512_cvtph_ps(_mm256_loadu_si256(p[0].add(sa) as *const __m256i)),
                        _mm512_cvtph_ps(_mm256_loadu_si256(p[1].add(sa) as *const __m256i)),
                    ];
                    let i = g * GROUP;
                    for j in 0..4 {
                        let s8 = _mm512_loadu_si512(a[j].sum8.as_ptr().add(i) as *const __m512i);
                        let off = _mm512_slli_epi32(s8, $shift);
                        let da = _mm512_loadu_ps(a[j].d.as_ptr().add(i));
                        for k in 0..2 {
                            let dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(d[k][j], off));
                            acc[k][j] = _mm512_fmadd_ps(dot, _mm512_mul_ps(dw[k], da), acc[k][j]);
                        }
                    }
                }
            }
            let mut out = [[0f32; 4]; 2];
            for k in 0..2 {
                for j in 0..4 {
                    out[k][j] = _mm512_reduce_add_ps(acc[k][j]);
                }
            }
            out
        }
    };
}

/// q4: packed bytes 64v..64v+64 hold, in their low nibbles, the elements
/// of activation vector v and, in their high nibbles, those of vector 4+v.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn load_q4(
    p: *const u8,
    v: usize,
) -> (
    std::arch::x86_64::__m512i,
    std::arch::x86_64::__m512i,
    usize,
    usize,
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller passes a group's start and v < 4.
    unsafe {
        let mask = _mm512_set1_epi8(0x0F);
        let packed = _mm512_loadu_si512(p.add(64 * v) as *const __m512i);
        let lo = _mm512_and_si512(packed, mask);
        let hi = _mm512_and_si512(_mm512_srli_epi16(packed, 4), mask);
        (lo, hi, v, 4 + v)
    }
}

/// q8: weight vectors 2v and 2v+1 (biased bytes) against activation
/// vectors 2v and 2v+1.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn load_q8(
    p: *const u8,
    v: usize,
) -> (
    std::arch::x86_64::__m512i,
    std::arch::x86_64::__m512i,
    usize,
    usize,
) {
    use std::arch::x86_64::*;
    // SAFETY: the caller passes a group's start and v < 4.
    unsafe {
        let a = _mm512_loadu_si512(p.add(128 * v) as *const __m512i);
        let b = _mm512_loadu_si512(p.add(128 * v + 64) as *const __m512i);
        (a, b, 2 * v, 2 * v + 1)
    }
}

#[cfg(target_arch = "x86_64")]
tile512!(tile_q4_avx512, Kind::Q4, 0, load_q4);
#[cfg(target_arch = "x86_64")]
tile512!(tile_q8_avx512, Kind::Q8, 4, load_q8);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::q4::Q4Matrix;
    use crate::models::q8::Q8Matrix;

    fn data(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (((i * 2654435761 + salt) % 2001) as f32 / 1000.0 - 1.0)
                    * if i % 7 == 0 { 3.0 } else { 1.0 }
            })
            .collect()
    }

    /// Every path this CPU has (the 2 × 4 tiles on AVX-512 VNNI, per-pair
    /// kernels elsewhere) gives each pair's per-row dot product on that
    /// path exactly, and the scalar one within f32 rounding; shapes with
    /// odd weight rows (a half tile), activation rows not a multiple of
    /// four, padded groups, several tasks, a stride wider than the rows.
    #[test]
    fn every_path_gives_the_per_row_products() {
        let paths = [Q4Path::Avx512Vnni, Q4Path::Avx2, Q4Path::Scalar];
        #[cfg(target_arch = "x86_64")]
        let have = |p: Q4Path| {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma") && has!("f16c");
            match p {
                Q4Path::Avx512Vnni => {
                    avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vnni")
                }
                Q4Path::Avx2 => avx2,
                Q4Path::Scalar => true,
            }
        };
        #[cfg(not(target_arch = "x86_64"))]
        let have = |p: Q4Path| p == Q4Path::Scalar;
        for (rows, cols, m) in [
            (1, 32, 1),
            (7, 288, 5),
            (70, 1056, 9),
            (301, 544, 4),
            (4, 64, 3),
        ] {
            let w = data(rows * cols, rows);
            let x = data(m * cols, cols);
            let mut a = ActRows::default();
            // A wider input first: the reused buffers must not leak into
            // the padding of the narrower one.
            a.quantize(&data(3 * (cols + 512), 9), cols + 512);
            a.quantize(&x, cols);
            let q4 = Q4Matrix::quantize(&w, rows, cols).unwrap();
            let q8 = Q8Matrix::quantize(&w, rows, cols).unwrap();
            for packed in [q4.packed(), q8.packed()] {
                let row_bytes = packed.data.len() / rows;
                let ldo = rows + 2;
                for p in paths.into_iter().filter(|p| have(*p)) {
                    let mut out = vec![f32::NAN; m * ldo];
                    gemm_on(p, packed, &a, &mut out, ldo);
                    for i in 0..m {
                        for r in 0..rows {
                            let wr = &packed.data[r * row_bytes..][..row_bytes];
                            let own = (packed.dot)(p, wr, a.row(i));
                            let scalar = (packed.dot)(Q4Path::Scalar, wr, a.row(i));
                            let got = out[i * ldo + r];
                            assert_eq!(
                                got, own,
                                "{:?} {p:?} {rows}×{cols} ({i}, {r})",
                                packed.kind
                            );
                            assert!(
                                (got - scalar).abs() <= 1e-4 * scalar.abs().max(1.0),
                                "{:?} {p:?}: {got} vs scalar {scalar}",
                                packed.kind
                            );
                        }
                        assert!(
                            out[i * ldo + rows..(i + 1) * ldo]
                                .iter()
                                .all(|v| v.is_nan())
                        );
                    }
                }
            }
        }
    }
}
