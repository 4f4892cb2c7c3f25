//! Matrix × vector for f16, bf16 and f32 weights on the CPU: the decode
//! step's weight reads. candle's f16 matmul with one activation row ran at
//! about half of llama.cpp's f16 decode on this class of machine (it packs
//! the weights for a GEMM each call); here each weight row is read once,
//! widened to f32 in registers (F16C / a 16-bit shift for bf16) and
//! multiplied into four f32 FMA accumulators. Rows run in parallel.
//!
//! The math is candle's: products and sums in f32, the weights exact.

use half::{bf16, f16};
use rayon::prelude::*;

/// A row-major (rows, cols) weight matrix borrowed in its stored type.
#[derive(Debug, Clone, Copy)]
pub enum Weights<'a> {
    F16(&'a [f16]),
    Bf16(&'a [bf16]),
    F32(&'a [f32]),
}

impl Weights<'_> {
    fn len(&self) -> usize {
        match self {
            Weights::F16(w) => w.len(),
            Weights::Bf16(w) => w.len(),
            Weights::F32(w) => w.len(),
        }
    }
}

/// The SIMD path in use: the widest this CPU offers, unless
/// `CAPBENCH_MATVEC_KERNEL=avx2|scalar` asks for a narrower one (to compare
/// paths on one machine; for development only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Avx512,
    Avx2,
    Scalar,
}

pub fn path() -> Path {
    static PATH: std::sync::OnceLock<Path> = std::sync::OnceLock::new();
    *PATH.get_or_init(|| {
        let asked = std::env::var("CAPBENCH_MATVEC_KERNEL").unwrap_or_default();
        let have = available();
        match asked.as_str() {
            "scalar" => Path::Scalar,
            "avx2" if have.contains(&Path::Avx2) => Path::Avx2,
            _ => have[0],
        }
    })
}

/// Every path this CPU can run, widest first (`Scalar` always last).
pub fn available() -> Vec<Path> {
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma") && has!("f16c");
        if avx2 && has!("avx512f") && has!("avx512bw") {
            v.push(Path::Avx512);
        }
        if avx2 {
            v.push(Path::Avx2);
        }
    }
    v.push(Path::Scalar);
    v
}

/// y[r] = Σ_c w[r, c]·x[c] for every row, on the widest path.
pub fn matvec(w: Weights, cols: usize, x: &[f32], y: &mut [f32]) {
    matvec_on(path(), w, cols, x, y)
}

/// Rows wider than this (16 KiB of f32 activations, half of L1) go four at
/// a time. One row at a time re-reads such an `x` from L2 for every weight
/// row, and the 8192-wide down projection of llama-3.2-1b streamed its f16
/// weights at 16-22 GB/s where 2048-wide matrices reach 25-35; four rows
/// sharing each activation load reached 25-32 there. Narrower rows stay
/// one at a time: four concurrent row streams were slower at 2048 wide
/// (both measured interleaved, best of 12, 2 threads).
///
/// f32 rows go four at a time at every width: at 2048 wide (the f32
/// format's matrices, and the tied 128256 × 2048 LM head exported
/// llama-3.2-1b files keep in f32) `f32-matvec/cpu` ran 52-56 GiB/s four at
/// a time against 46-48 one at a time in the same window (criterion, A B ×3).
/// An f32 row carries half the elements per byte of an f16 one, so the
/// shared activation load matters more and there is no widening to stall on.
const WIDE: usize = 4096;

/// As `matvec`, on a path the caller names (tests run every one).
pub fn matvec_on(p: Path, w: Weights, cols: usize, x: &[f32], y: &mut [f32]) {
    let rows = y.len();
    assert!(
        x.len() == cols && w.len() == rows * cols,
        "matvec shapes: w {} for {rows}×{cols}, x {}",
        w.len(),
        x.len()
    );
    let chunk = chunk_rows(rows);
    y.par_chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, ys)| rows_into(p, w, cols, x, i * chunk, ys));
}

/// Rows per parallel task for a matrix of `rows`: enough chunks to balance
/// two busy cores, few enough that rayon's per-task cost stays far below a
/// chunk's memory time.
pub fn chunk_rows(rows: usize) -> usize {
    (rows / 64).clamp(4, 256)
}

/// ys[k] = Σ_c w[r0 + k, c]·x[c] for the rows ys covers, on this thread:
/// one task of `matvec_on`, and of a caller that runs several matrices in
/// one parallel region.
pub fn rows_into(p: Path, w: Weights, cols: usize, x: &[f32], r0: usize, ys: &mut [f32]) {
    let mut k = 0;
    let four = cols > WIDE || matches!(w, Weights::F32(_));
    if four && p != Path::Scalar {
        for y4 in ys.chunks_exact_mut(4) {
            let at = (r0 + k) * cols;
            let y4: &mut [f32; 4] = y4.try_into().expect("four rows");
            match w {
                Weights::F16(w) => dot4_f16(p, &w[at..at + 4 * cols], x, y4),
                Weights::Bf16(w) => dot4_bf16(p, &w[at..at + 4 * cols], x, y4),
                Weights::F32(w) => dot4_f32(p, &w[at..at + 4 * cols], x, y4),
            }
            k += 4;
        }
    }
    for (k, y) in ys.iter_mut().enumerate().skip(k) {
        let at = (r0 + k) * cols;
        *y = match w {
            Weights::F16(w) => dot_f16(p, &w[at..at + cols], x),
            Weights::Bf16(w) => dot_bf16(p, &w[at..at + cols], x),
            Weights::F32(w) => dot_f32(p, &w[at..at + cols], x),
        };
    }
}

/// Σ a[i]·b[i] in f32 on the widest path: the attention's q·k and the
/// norms' sums of squares (a plain iterator sum is one serial add chain).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_f32(path(), a, b)
}

pub(super) fn dot_f16(p: Path, w: &[f16], x: &[f32]) -> f32 {
    match p {
        // SAFETY: a SIMD path is only chosen (or tested) where detected.
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => unsafe { simd::f16_avx512(w, x) },
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe { simd::f16_avx2(w, x) },
        _ => w.iter().zip(x).map(|(a, b)| a.to_f32() * b).sum(),
    }
}

pub(super) fn dot_bf16(p: Path, w: &[bf16], x: &[f32]) -> f32 {
    match p {
        // SAFETY: as in `dot_f16`.
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => unsafe { simd::bf16_avx512(w, x) },
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe { simd::bf16_avx2(w, x) },
        _ => w.iter().zip(x).map(|(a, b)| a.to_f32() * b).sum(),
    }
}

pub(super) fn dot_f32(p: Path, w: &[f32], x: &[f32]) -> f32 {
    match p {
        // SAFETY: as in `dot_f16`.
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => unsafe { simd::f32_avx512(w, x) },
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe { simd::f32_avx2(w, x) },
        _ => w.iter().zip(x).map(|(a, b)| a * b).sum(),
    }
}

/// Four consecutive rows (`w` holds 4 × `x.len()`) into `y`, each summed
/// exactly as the one-row kernel sums it, so the results are the same bits.
/// SIMD paths only.
macro_rules! dot4_fn {
    ($name:ident, $t:ty, $k512:ident, $k256:ident) => {
        fn $name(p: Path, w: &[$t], x: &[f32], y: &mut [f32; 4]) {
            match p {
                // SAFETY: a SIMD path is only chosen (or tested) where detected.
                #[cfg(target_arch = "x86_64")]
                Path::Avx512 => unsafe { simd::$k512(w, x, y) },
                #[cfg(target_arch = "x86_64")]
                Path::Avx2 => unsafe { simd::$k256(w, x, y) },
                _ => unreachable!("the four-row matvec runs on a SIMD path"),
            }
        }
    };
}
dot4_fn!(dot4_f16, f16, f16x4_avx512, f16x4_avx2);
dot4_fn!(dot4_bf16, bf16, bf16x4_avx512, bf16x4_avx2);
dot4_fn!(dot4_f32, f32, f32x4_avx512, f32x4_avx2);

/// One macro body per (width, weight type): the element loader differs,
/// the loop does not. Four accumulators so the FMA chains overlap; the
/// ragged tail (cols not a multiple of the vector width) runs scalar.
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{bf16, f16};
    use std::arch::x86_64::*;

    macro_rules! dot512 {
        ($name:ident, $t:ty, $load:expr) => {
            #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
            pub(super) unsafe fn $name(w: &[$t], x: &[f32]) -> f32 {
                let n = w.len().min(x.len());
                let (wp, xp) = (w.as_ptr(), x.as_ptr());
                let mut acc = [_mm512_setzero_ps(); 4];
                let mut i = 0;
                // SAFETY (all loads): i + 64 ≤ n, then i + 16 ≤ n.
                while i + 64 <= n {
                    for (k, a) in acc.iter_mut().enumerate() {
                        unsafe {
                            let wv = $load(wp.add(i + 16 * k));
                            *a = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xp.add(i + 16 * k)), *a);
                        }
                    }
                    i += 64;
                }
                while i + 16 <= n {
                    unsafe {
                        let wv = $load(wp.add(i));
                        acc[0] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xp.add(i)), acc[0]);
                    }
                    i += 16;
                }
                let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
                let mut total = _mm512_reduce_add_ps(s);
                for j in i..n {
                    total += f32::from(w[j]) * x[j];
                }
                total
            }
        };
    }

    macro_rules! dot256 {
        ($name:ident, $t:ty, $load:expr) => {
            #[target_feature(enable = "avx2,fma,f16c")]
            pub(super) unsafe fn $name(w: &[$t], x: &[f32]) -> f32 {
                let n = w.len().min(x.len());
                let (wp, xp) = (w.as_ptr(), x.as_ptr());
                let mut acc = [_mm256_setzero_ps(); 4];
                let mut i = 0;
                // SAFETY (all loads): i + 32 ≤ n, then i + 8 ≤ n.
                while i + 32 <= n {
                    for (k, a) in acc.iter_mut().enumerate() {
                        unsafe {
                            let wv = $load(wp.add(i + 8 * k));
                            *a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xp.add(i + 8 * k)), *a);
                        }
                    }
                    i += 32;
                }
                while i + 8 <= n {
                    unsafe {
                        let wv = $load(wp.add(i));
                        acc[0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xp.add(i)), acc[0]);
                    }
                    i += 8;
                }
                let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
                let h = _mm_add_ps(_mm256_extractf128_ps(s, 1), _mm256_castps256_ps128(s));
                let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
                let mut total = _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 0x55)));
                for j in i..n {
                    total += f32::from(w[j]) * x[j];
                }
                total
            }
        };
    }

    /// The one-row kernels above, four rows at a time: each activation
    /// vector is loaded once for the four rows. Per row, the same four
    /// accumulators take the same elements in the same order, and the
    /// reduction and the scalar tail are the same expressions.
    macro_rules! dot512x4 {
        ($name:ident, $t:ty, $load:expr) => {
            #[target_feature(enable = "avx512f,avx512bw,avx2,fma,f16c")]
            pub(super) unsafe fn $name(w: &[$t], x: &[f32], y: &mut [f32; 4]) {
                let n = x.len();
                assert!(w.len() >= 4 * n, "four rows of {n}");
                let (wp, xp) = (w.as_ptr(), x.as_ptr());
                let mut acc = [[_mm512_setzero_ps(); 4]; 4];
                let mut i = 0;
                // SAFETY (all loads): row r's element j is wp[r·n + j], j < n.
                while i + 64 <= n {
                    for k in 0..4 {
                        let xv = unsafe { _mm512_loadu_ps(xp.add(i + 16 * k)) };
                        for (r, a) in acc.iter_mut().enumerate() {
                            let wv = unsafe { $load(wp.add(r * n + i + 16 * k)) };
                            a[k] = _mm512_fmadd_ps(wv, xv, a[k]);
                        }
                    }
                    i += 64;
                }
                while i + 16 <= n {
                    let xv = unsafe { _mm512_loadu_ps(xp.add(i)) };
                    for (r, a) in acc.iter_mut().enumerate() {
                        let wv = unsafe { $load(wp.add(r * n + i)) };
                        a[0] = _mm512_fmadd_ps(wv, xv, a[0]);
                    }
                    i += 16;
                }
                for (r, a) in acc.iter().enumerate() {
                    let s = _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3]));
                    let mut total = _mm512_reduce_add_ps(s);
                    for j in i..n {
                        total += f32::from(w[r * n + j]) * x[j];
                    }
                    y[r] = total;
                }
            }
        };
    }

    macro_rules! dot256x4 {
        ($name:ident, $t:ty, $load:expr) => {
            #[target_feature(enable = "avx2,fma,f16c")]
            pub(super) unsafe fn $name(w: &[$t], x: &[f32], y: &mut [f32; 4]) {
                let n = x.len();
                assert!(w.len() >= 4 * n, "four rows of {n}");
                let (wp, xp) = (w.as_ptr(), x.as_ptr());
                let mut acc = [[_mm256_setzero_ps(); 4]; 4];
                let mut i = 0;
                // SAFETY (all loads): row r's element j is wp[r·n + j], j < n.
                while i + 32 <= n {
                    for k in 0..4 {
                        let xv = unsafe { _mm256_loadu_ps(xp.add(i + 8 * k)) };
                        for (r, a) in acc.iter_mut().enumerate() {
                            let wv = unsafe { $load(wp.add(r * n + i + 8 * k)) };
                            a[k] = _mm256_fmadd_ps(wv, xv, a[k]);
                        }
                    }
                    i += 32;
                }
                while i + 8 <= n {
                    let xv = unsafe { _mm256_loadu_ps(xp.add(i)) };
                    for (r, a) in acc.iter_mut().enumerate() {
                        let wv = unsafe { $load(wp.add(r * n + i)) };
                        a[0] = _mm256_fmadd_ps(wv, xv, a[0]);
                    }
                    i += 8;
                }
                for (r, a) in acc.iter().enumerate() {
                    let s = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
                    let h = _mm_add_ps(_mm256_extractf128_ps(s, 1), _mm256_castps256_ps128(s));
                    let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
                    let mut total = _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 0x55)));
                    for j in i..n {
                        total += f32::from(w[r * n + j]) * x[j];
                    }
                    y[r] = total;
                }
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
    unsafe fn f32x16(p: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(p) }
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
    unsafe fn f32x8(p: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(p) }
    }

    dot512!(f16_avx512, f16, f16x16);
    dot512!(bf16_avx512, bf16, bf16x16);
    dot512!(f32_avx512, f32, f32x16);
    dot256!(f16_avx2, f16, f16x8);
    dot256!(bf16_avx2, bf16, bf16x8);
    dot256!(f32_avx2, f32, f32x8);
    dot512x4!(f16x4_avx512, f16, f16x16);
    dot512x4!(bf16x4_avx512, bf16, bf16x16);
    dot512x4!(f32x4_avx512, f32, f32x16);
    dot256x4!(f16x4_avx2, f16, f16x8);
    dot256x4!(bf16x4_avx2, bf16, bf16x8);
    dot256x4!(f32x4_avx2, f32, f32x8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, salt: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 2654435761 + salt * 97) % 2001) as f32 / 1000.0 - 1.0)
            .collect()
    }

    /// Every path against an f64 sum of the same (rounded) weights, on
    /// shapes with every kind of ragged tail: below one vector, between the
    /// 8-, 16- and 64-wide steps, and row counts around the chunk size.
    #[test]
    fn every_path_matches_the_exact_sum() {
        let paths = available();
        assert_eq!(*paths.last().unwrap(), Path::Scalar);
        for (rows, cols) in [
            (1, 1),
            (3, 7),
            (5, 15),
            (9, 17),
            (70, 100),
            (300, 129),
            (6, 2051),
            (7, 4096 + 64 + 16 + 8 + 3),
            (9, 8192),
        ] {
            let wf = data(rows * cols, rows);
            let x = data(cols, cols + 1);
            let w16: Vec<f16> = wf.iter().map(|v| f16::from_f32(*v)).collect();
            let wb: Vec<bf16> = wf.iter().map(|v| bf16::from_f32(*v)).collect();
            let exact = |w: &dyn Fn(usize) -> f32, r: usize| -> (f64, f64) {
                (0..cols).fold((0.0, 0.0), |(s, m), c| {
                    let p = w(r * cols + c) as f64 * x[c] as f64;
                    (s + p, m + p.abs())
                })
            };
            for &p in &paths {
                for (name, weights, get) in [
                    (
                        "f16",
                        Weights::F16(&w16),
                        &(|i: usize| w16[i].to_f32()) as &dyn Fn(usize) -> f32,
                    ),
                    ("bf16", Weights::Bf16(&wb), &|i: usize| wb[i].to_f32()),
                    ("f32", Weights::F32(&wf), &|i: usize| wf[i]),
                ] {
                    let mut y = vec![f32::NAN; rows];
                    matvec_on(p, weights, cols, &x, &mut y);
                    for (r, got) in y.iter().enumerate() {
                        let (want, mag) = exact(get, r);
                        // f32 accumulation: a few ulps of the magnitude.
                        let tol = 1e-6 * mag * (cols as f64).sqrt() + 1e-30;
                        assert!(
                            (*got as f64 - want).abs() <= tol,
                            "{p:?} {name} {rows}×{cols} row {r}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    /// Rows wider than `WIDE` (f32 rows at every width) go four at a time,
    /// and give the one-row kernel's bits on every path and weight type
    /// (row counts that leave one to three rows of a chunk to the one-row
    /// kernel; every ragged tail).
    #[test]
    fn four_rows_give_the_one_row_bits() {
        for (rows, cols) in [
            (4, WIDE + 1),
            (7, WIDE + 64 + 16 + 8 + 3),
            (10, 8192),
            (13, 5632),
            (9, 2048 + 16 + 5),
            (6, 64 + 8 + 3),
            (5, 15),
        ] {
            let wf = data(rows * cols, rows);
            let x = data(cols, 3);
            let w16: Vec<f16> = wf.iter().map(|v| f16::from_f32(*v)).collect();
            let wb: Vec<bf16> = wf.iter().map(|v| bf16::from_f32(*v)).collect();
            for p in available().into_iter().filter(|p| *p != Path::Scalar) {
                let mut y = vec![f32::NAN; rows];
                let row = |r: usize| r * cols..(r + 1) * cols;
                matvec_on(p, Weights::F16(&w16), cols, &x, &mut y);
                for (r, got) in y.iter().enumerate() {
                    let want = dot_f16(p, &w16[row(r)], &x);
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{p:?} f16 {rows}×{cols} row {r}"
                    );
                }
                matvec_on(p, Weights::Bf16(&wb), cols, &x, &mut y);
                for (r, got) in y.iter().enumerate() {
                    let want = dot_bf16(p, &wb[row(r)], &x);
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{p:?} bf16 {rows}×{cols} row {r}"
                    );
                }
                matvec_on(p, Weights::F32(&wf), cols, &x, &mut y);
                for (r, got) in y.iter().enumerate() {
                    let want = dot_f32(p, &wf[row(r)], &x);
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{p:?} f32 {rows}×{cols} row {r}"
                    );
                }
            }
        }
    }

    #[test]
    fn dot_is_the_f32_row_kernel() {
        for n in [0, 5, 64, 100] {
            let (a, b) = (data(n, 1), data(n, 2));
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!(
                (dot(&a, &b) as f64 - want).abs() < 1e-5 * (n as f64 + 1.0),
                "{n}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "matvec shapes")]
    fn refuses_mismatched_shapes() {
        let mut y = vec![0.0; 2];
        matvec(Weights::F32(&[1.0; 5]), 3, &[1.0; 3], &mut y);
    }
}
