//! Products of f16/bf16/f32 weights with many activation rows (prefill).
//! Half-precision weights go through a register tile of several weight
//! rows × a few activation rows (`tile_dims`): the activation vectors are
//! loaded once per step and held, each weight vector is widened to f32 in
//! registers (F16C, or a shift for bf16) once for all of them, and every
//! (weight row, activation row) pair keeps its own f32 FMA chain.
//! candle's path multiplied f16 activations by f16 weights (rounding every
//! activation to f16) at 0.39× of llama.cpp's f16 prefill on the 1.1B
//! shape; here the activations stay f32, the math of the fused decode step.
//! f32 weights go to the `gemm` crate as they are. (Widening f16 panels
//! into a buffer for `gemm`, one call per panel, ran slower than candle.)

use half::{bf16, f16};
use rayon::prelude::*;

use super::matvec::{Path, Weights, dot_bf16, dot_f16, path};
use super::qact::OutPtr;
use crate::models::gemm::{View, matmul};

/// out[i·ldo + r] = Σ_c w[r, c]·x[i, c] for the (rows, cols) weights and
/// the m = x.len() / cols activation rows.
pub fn matmul_into(w: Weights, cols: usize, x: &[f32], out: &mut [f32], ldo: usize) {
    matmul_on(path(), w, cols, x, out, ldo)
}

/// As `matmul_into`, on a path the caller names (tests run every one).
pub fn matmul_on(p: Path, w: Weights, cols: usize, x: &[f32], out: &mut [f32], ldo: usize) {
    let len = match w {
        Weights::F16(w) => w.len(),
        Weights::Bf16(w) => w.len(),
        Weights::F32(w) => w.len(),
    };
    let rows = len / cols.max(1);
    let m = x.len() / cols.max(1);
    assert!(
        rows * cols == len
            && m * cols == x.len()
            && rows <= ldo
            && (m == 0 || out.len() >= (m - 1) * ldo + rows),
        "float gemm shapes: {len} weights in rows of {cols}, {} activations, out {} with stride {ldo}",
        x.len(),
        out.len()
    );
    if m == 0 || rows == 0 {
        return;
    }
    if let Weights::F32(w) = w {
        let b = View::rows(w, cols).t();
        return matmul(
            (m, rows, cols),
            View::rows(x, cols),
            b,
            out,
            0,
            ldo,
            false,
            true,
        );
    }
    let (wr, na_max) = tile_dims(p);
    // A task's weight rows (≤ 128 KiB of half floats) stay in L2 while
    // every activation tile passes; 8 tasks per thread or more.
    let tasks = 8 * rayon::current_num_threads();
    let chunk = ((128 << 10) / (2 * cols))
        .min(rows.div_ceil(tasks))
        .max(wr)
        .next_multiple_of(wr);
    let out = OutPtr(out.as_mut_ptr());
    (0..rows.div_ceil(chunk)).into_par_iter().for_each(|t| {
        let (r0, r1) = (t * chunk, ((t + 1) * chunk).min(rows));
        let xr = |i: usize| &x[i * cols..][..cols];
        // SAFETY: this task alone writes columns r0..r1 of the m rows, all
        // inside `out` (asserted above).
        let put = |i: usize, r: usize, v: f32| unsafe { *out.get().add(i * ldo + r) = v };
        for i in (0..m).step_by(na_max) {
            let na = (m - i).min(na_max);
            let mut r = r0;
            while r < r1 {
                // Whole tiles, then the rows left over one at a time.
                let full = r + wr <= r1;
                #[cfg(target_arch = "x86_64")]
                if p != Path::Scalar {
                    let tile = Tile { w, cols, r, i };
                    // SAFETY: a SIMD path is only chosen (or tested) where
                    // detected.
                    unsafe {
                        // Tiles of `tile_dims`, fewer activation rows at
                        // the end of m, one weight row at the end of a task.
                        match (p, full, na) {
                            (Path::Avx512, true, A512) => tile.run::<W512, A512>(p, &xr, &put),
                            (Path::Avx512, true, 2) => tile.run::<W512, 2>(p, &xr, &put),
                            (Path::Avx512, true, _) => tile.run::<W512, 1>(p, &xr, &put),
                            (Path::Avx512, false, A512) => tile.run::<1, A512>(p, &xr, &put),
                            (_, true, A256) => tile.run::<W256, A256>(p, &xr, &put),
                            (_, true, _) => tile.run::<W256, 1>(p, &xr, &put),
                            (_, false, 2) => tile.run::<1, 2>(p, &xr, &put),
                            (_, false, _) => tile.run::<1, 1>(p, &xr, &put),
                        }
                    }
                    r += if full { wr } else { 1 };
                    continue;
                }
                for j in 0..na {
                    let v = match w {
                        Weights::F16(w) => dot_f16(p, &w[r * cols..][..cols], xr(i + j)),
                        Weights::Bf16(w) => dot_bf16(p, &w[r * cols..][..cols], xr(i + j)),
                        Weights::F32(_) => unreachable!("handled above"),
                    };
                    put(i + j, r, v);
                }
                r += 1;
            }
        }
    });
}

/// (weight rows, activation rows) of a tile: WR·NA accumulators, NA
/// activation vectors held while each weight row is widened once — all in
/// registers (AVX-512 has 32: 24 + 3 + 1; AVX2 16: 12 + 2 + 1). Measured
/// on `f16-gemm/cpu` (2026-12-07, 2 threads, AVX-512): 8 × 3 took 2.84,
/// 7.75 and 7.03 ms where the earlier 4 × 4 took 2.99, 8.44 and 8.48;
/// under AVX2, 6 × 2 took 4.49, 12.4 and 12.0 ms against 6.90, 19.0 and
/// 17.9 (4 × 4 spilled).
fn tile_dims(p: Path) -> (usize, usize) {
    match p {
        Path::Avx512 => (W512, A512),
        _ => (W256, A256),
    }
}

// The dispatch in `matmul_on` names these as const generics and spells out
// each smaller activation count (A512 = 3: 2 and 1; A256 = 2: 1).
const W512: usize = 8;
const A512: usize = 3;
const W256: usize = 6;
const A256: usize = 2;

/// Where a tile sits: weight rows from `r`, activation rows from `i`.
#[cfg(target_arch = "x86_64")]
struct Tile<'w> {
    w: Weights<'w>,
    cols: usize,
    r: usize,
    i: usize,
}

#[cfg(target_arch = "x86_64")]
impl Tile<'_> {
    /// Computes the WR × NA tile and writes it out.
    ///
    /// # Safety
    /// `p` must be a detected SIMD path.
    #[inline(always)]
    unsafe fn run<'x, const WR: usize, const NA: usize>(
        &self,
        p: Path,
        xr: &dyn Fn(usize) -> &'x [f32],
        put: &dyn Fn(usize, usize, f32),
    ) {
        let (cols, r, i) = (self.cols, self.r, self.i);
        let xs: [&[f32]; NA] = std::array::from_fn(|j| xr(i + j));
        // SAFETY: the caller names a detected path.
        let y = unsafe {
            match (self.w, p) {
                (Weights::F16(w), Path::Avx512) => simd::f16_512(rows_at::<_, WR>(w, r, cols), xs),
                (Weights::F16(w), _) => simd::f16_256(rows_at::<_, WR>(w, r, cols), xs),
                (Weights::Bf16(w), Path::Avx512) => {
                    simd::bf16_512(rows_at::<_, WR>(w, r, cols), xs)
                }
                (Weights::Bf16(w), _) => simd::bf16_256(rows_at::<_, WR>(w, r, cols), xs),
                (Weights::F32(_), _) => unreachable!("handled by the caller"),
            }
        };
        for (k, yk) in y.iter().enumerate() {
            for (j, v) in yk.iter().enumerate() {
                put(i + j, r + k, *v);
            }
        }
    }
}

/// Rows r..r+WR of a (·, cols) matrix.
fn rows_at<T, const WR: usize>(w: &[T], r: usize, cols: usize) -> [&[T]; WR] {
    std::array::from_fn(|k| &w[(r + k) * cols..][..cols])
}

/// One macro body per (width, weight type): the loader differs. The
/// ragged tail (cols not a multiple of the width) runs scalar.
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{bf16, f16};
    use std::arch::x86_64::*;

    macro_rules! tile {
        ($name:ident, $t:ty, $feat:literal, $w:expr, $v:ty, $zero:ident, $fma:ident,
         $loadx:ident, $loadw:ident, $reduce:ident) => {
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn $name<const WR: usize, const NA: usize>(
                w: [&[$t]; WR],
                x: [&[f32]; NA],
            ) -> [[f32; NA]; WR] {
                let n = w[0].len();
                assert!(w.iter().all(|w| w.len() == n) && x.iter().all(|x| x.len() == n));
                let mut acc: [[$v; NA]; WR] = [[$zero(); NA]; WR];
                let mut c = 0;
                while c + $w <= n {
                    // SAFETY: c + width ≤ n, the length of every row.
                    unsafe {
                        let xv: [$v; NA] = std::array::from_fn(|j| $loadx(x[j].as_ptr().add(c)));
                        for k in 0..WR {
                            let wv = $loadw(w[k].as_ptr().add(c));
                            for j in 0..NA {
                                acc[k][j] = $fma(wv, xv[j], acc[k][j]);
                            }
                        }
                    }
                    c += $w;
                }
                let mut out = [[0.0f32; NA]; WR];
                for k in 0..WR {
                    for j in 0..NA {
                        let mut s = $reduce(acc[k][j]);
                        for e in c..n {
                            s += f32::from(w[k][e]) * x[j][e];
                        }
                        out[k][j] = s;
                    }
                }
                out
            }
        };
    }

    #[inline(always)]
    unsafe fn f16x16(p: *const f16) -> __m512 {
        unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i)) }
    }
    /// bf16 is the top half of an f32: widen to 32 bits and shift up.
    #[inline(always)]
    unsafe fn bf16x16(p: *const bf16) -> __m512 {
        unsafe {
            let v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const __m256i));
            _mm512_castsi512_ps(_mm512_slli_epi32(v, 16))
        }
    }
    #[inline(always)]
    unsafe fn f16x8(p: *const f16) -> __m256 {
        unsafe { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    }
    #[inline(always)]
    unsafe fn bf16x8(p: *const bf16) -> __m256 {
        unsafe {
            let v = _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i));
            _mm256_castsi256_ps(_mm256_slli_epi32(v, 16))
        }
    }
    #[inline(always)]
    fn sum256(s: __m256) -> f32 {
        // SAFETY: only called from functions compiled with AVX2.
        unsafe {
            let h = _mm_add_ps(_mm256_extractf128_ps(s, 1), _mm256_castps256_ps128(s));
            let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 0x55)))
        }
    }

    tile!(
        f16_512,
        f16,
        "avx512f,avx512bw,avx2,fma,f16c",
        16,
        __m512,
        _mm512_setzero_ps,
        _mm512_fmadd_ps,
        _mm512_loadu_ps,
        f16x16,
        _mm512_reduce_add_ps
    );
    tile!(
        bf16_512,
        bf16,
        "avx512f,avx512bw,avx2,fma,f16c",
        16,
        __m512,
        _mm512_setzero_ps,
        _mm512_fmadd_ps,
        _mm512_loadu_ps,
        bf16x16,
        _mm512_reduce_add_ps
    );
    tile!(
        f16_256,
        f16,
        "avx2,fma,f16c",
        8,
        __m256,
        _mm256_setzero_ps,
        _mm256_fmadd_ps,
        _mm256_loadu_ps,
        f16x8,
        sum256
    );
    tile!(
        bf16_256,
        bf16,
        "avx2,fma,f16c",
        8,
        __m256,
        _mm256_setzero_ps,
        _mm256_fmadd_ps,
        _mm256_loadu_ps,
        bf16x8,
        sum256
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    fn data(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 2654435761 + salt * 97) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// Every weight type against an f64 sum of the same (rounded) weights,
    /// into a wider output (stride > rows): ragged panels (rows not a
    /// multiple of the panel), one activation row, odd sizes.
    #[test]
    fn matches_the_exact_sums() {
        for (rows, cols, m) in [
            (1, 1, 1),
            (7, 33, 3),
            (300, 129, 5),
            (70, 2051, 2),
            (9, 64, 17),
        ] {
            let wf = data(rows * cols, rows);
            let x = data(m * cols, cols + 1);
            let w16: Vec<f16> = wf.iter().map(|v| f16::from_f32(*v)).collect();
            let wb: Vec<bf16> = wf.iter().map(|v| bf16::from_f32(*v)).collect();
            let ldo = rows + 3;
            for (name, w, get) in [
                (
                    "f16",
                    Weights::F16(&w16),
                    &(|i: usize| w16[i].to_f32()) as &dyn Fn(usize) -> f32,
                ),
                ("bf16", Weights::Bf16(&wb), &|i: usize| wb[i].to_f32()),
                ("f32", Weights::F32(&wf), &|i: usize| wf[i]),
            ] {
                for p in crate::models::matvec::available() {
                    let mut out = vec![f32::NAN; m * ldo];
                    matmul_on(p, w, cols, &x, &mut out, ldo);
                    for i in 0..m {
                        for r in 0..rows {
                            let (want, mag) = (0..cols).fold((0.0f64, 0.0f64), |(s, a), c| {
                                let pr = get(r * cols + c) as f64 * x[i * cols + c] as f64;
                                (s + pr, a + pr.abs())
                            });
                            let got = out[i * ldo + r] as f64;
                            let tol = 1e-6 * mag * (cols as f64).sqrt() + 1e-30;
                            assert!(
                                (got - want).abs() <= tol,
                                "{p:?} {name} {rows}×{cols} m={m} ({i}, {r}): {got} vs {want}"
                            );
                        }
                        // Columns past `rows` are not written.
                        assert!(
                            out[i * ldo + rows..i * ldo + ldo]
                                .iter()
                                .all(|v| v.is_nan())
                        );
                    }
                }
            }
        }
    }
}
