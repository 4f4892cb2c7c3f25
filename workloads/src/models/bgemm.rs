//! Matrix products in bf16 compute: each operand rounded to bf16 (round to
//! nearest even), every product of two bf16 numbers exact in f32, sums in
//! f32 — what bf16 mixed-precision training means by a bf16 GEMM (oneDNN's
//! and cuBLAS's bf16 GEMMs with f32 accumulation compute the same). The
//! training executor's bf16 steps use it (`backend::cpu`).
//!
//! Two paths, same operands: on CPUs with AVX512-BF16 a packed kernel of
//! `vdpbf16ps` (two bf16 products and their sum per f32 lane, twice the
//! multiply-adds of an f32 FMA per instruction); elsewhere the rounded
//! operands go to the f32 `gemm`. They differ only in the order of the f32
//! sums. `path()` says which one this machine takes, for the record.

use std::cell::RefCell;

use super::gemm::{View, matmul, threads};

/// f32 → bf16 bits, rounded to nearest even; a NaN stays a (quiet) NaN.
#[inline]
pub fn to_bf16(x: f32) -> u16 {
    bf16_bits(x.to_bits()) as u16
}

/// `to_bf16` on raw f32 bits, in the low half of a word: branch-free, so
/// the packing loops vectorize.
#[inline(always)]
fn bf16_bits(b: u32) -> u32 {
    let rounded = b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16;
    let nan = (b & 0x7FFF_FFFF) > 0x7F80_0000;
    if nan { (b >> 16) | 0x40 } else { rounded }
}

/// `x` rounded to the nearest bf16, as an f32.
#[inline]
pub fn round_bf16(x: f32) -> f32 {
    f32::from_bits((to_bf16(x) as u32) << 16)
}

/// Which kernel `matmul_bf16` runs on this machine.
pub fn path() -> &'static str {
    if kernel_available() {
        "AVX512-BF16 kernel (vdpbf16ps), f32 accumulation"
    } else {
        "operands rounded to bf16, products by the f32 gemm"
    }
}

fn kernel_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Bytes of scratch one (m, n, k) product takes on this machine's path, for
/// a and for b. Each is kept per thread and reused, so a step holds the
/// largest a's and the largest b's of its products.
pub fn scratch_bytes(m: usize, n: usize, k: usize) -> (usize, usize) {
    if kernel_available() {
        let kp = k.div_ceil(2);
        (4 * kp * m.div_ceil(MR) * MR, 4 * kp * n.div_ceil(NR) * NR)
    } else {
        (4 * m * k, 4 * k * n)
    }
}

thread_local! {
    /// Packed or rounded operands, grown to the largest product and reused:
    /// no allocation per product once a step has run.
    static SCRATCH: RefCell<(Vec<u32>, Vec<u32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// c (m, n) ← bf16(a) (m, k) · bf16(b) (k, n) with f32 sums (`acc`:
/// c += …); arguments as `gemm::matmul`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_bf16(
    dims: (usize, usize, usize),
    a: View,
    b: View,
    c: &mut [f32],
    c_off: usize,
    ldc: usize,
    acc: bool,
    par: bool,
) {
    matmul_bf16_on(kernel_available(), dims, a, b, c, c_off, ldc, acc, par)
}

/// `matmul_bf16` with the path chosen (tests run both where they can).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_bf16_on(
    kernel: bool,
    (m, n, k): (usize, usize, usize),
    a: View,
    b: View,
    c: &mut [f32],
    c_off: usize,
    ldc: usize,
    acc: bool,
    par: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(c_off + (m - 1) * ldc + n <= c.len() && n <= ldc.max(1));
    let par = par && threads() > 1 && m * n * k >= 1 << 15;
    SCRATCH.with_borrow_mut(|(sa, sb)| {
        #[cfg(target_arch = "x86_64")]
        if kernel && k > 0 {
            assert!(
                kernel_available(),
                "AVX512-BF16 asked for on a CPU without it"
            );
            // SAFETY: the CPU has avx512f, avx512bw and avx512bf16 (asserted above).
            unsafe { x86::matmul((m, n, k), a, b, c, c_off, ldc, acc, par, sa, sb) };
            return;
        }
        let _ = kernel;
        rounded(sa, a, m, k);
        rounded(sb, b, k, n);
        let fa: &[f32] = bytemuck::cast_slice(&sa[..m * k]);
        let fb: &[f32] = bytemuck::cast_slice(&sb[..k * n]);
        matmul(
            (m, n, k),
            View::rows(fa, k),
            View::rows(fb, n),
            c,
            c_off,
            ldc,
            acc,
            par,
        );
    });
}

/// The (r, cols) view `v`, each element rounded to bf16, row-major into
/// `out` (as f32 bits).
fn rounded(out: &mut Vec<u32>, v: View, r: usize, cols: usize) {
    if out.len() < r * cols {
        out.resize(r * cols, 0);
    }
    for i in 0..r {
        let row = &mut out[i * cols..(i + 1) * cols];
        for (j, o) in row.iter_mut().enumerate() {
            *o = round_bf16(at(v, i, j)).to_bits();
        }
    }
}

#[inline]
fn at(v: View, i: usize, j: usize) -> f32 {
    v.data[v.off + i * v.rs + j * v.cs]
}

/// Two bf16 values in one 32-bit word, `lo` in the low half: the layout
/// `vdpbf16ps` multiplies pairwise.
#[inline(always)]
fn pair(lo: f32, hi: f32) -> u32 {
    bf16_bits(lo.to_bits()) | bf16_bits(hi.to_bits()) << 16
}

/// Rows of a tile: 12 rows × 2 vectors of 16 columns hold 24 accumulators,
/// leaving registers for two B vectors and the broadcast A pair.
const MR: usize = 12;
/// Columns of a tile: two 16-lane vectors.
const NR: usize = 32;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use rayon::prelude::*;

    use super::{MR, NR, View, pair};

    /// Packs a into panels of MR rows and b into panels of NR columns —
    /// for each pair of k, one word per row (column) holding the pair —
    /// zero-padded at every ragged edge; then one tile per (row panel,
    /// column panel) over the whole of k, summed into c.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
    pub(super) unsafe fn matmul(
        (m, n, k): (usize, usize, usize),
        a: View,
        b: View,
        c: &mut [f32],
        c_off: usize,
        ldc: usize,
        acc: bool,
        par: bool,
        sa: &mut Vec<u32>,
        sb: &mut Vec<u32>,
    ) {
        let kp = k.div_ceil(2);
        let (mp, np) = (m.div_ceil(MR), n.div_ceil(NR));
        let (la, lb) = (mp * MR * kp, np * NR * kp);
        if sa.len() < la {
            sa.resize(la, 0);
        }
        if sb.len() < lb {
            sb.resize(lb, 0);
        }
        let (pa, pb) = (&mut sa[..la], &mut sb[..lb]);
        // a's panels are panels of its transpose's columns: (k, m) as b is (k, n).
        let at = a.t();
        // SAFETY (both): the CPU has avx512f (the caller's features).
        let pack_a = |(i, p): (usize, &mut [u32])| unsafe { pack(at, (k, m), i * MR, MR, p) };
        let pack_b = |(j, p): (usize, &mut [u32])| unsafe { pack(b, (k, n), j * NR, NR, p) };
        if par {
            pa.par_chunks_mut(MR * kp).enumerate().for_each(pack_a);
            pb.par_chunks_mut(NR * kp).enumerate().for_each(pack_b);
        } else {
            pa.chunks_mut(MR * kp).enumerate().for_each(pack_a);
            pb.chunks_mut(NR * kp).enumerate().for_each(pack_b);
        }
        let (pa, pb) = (&*pa, &*pb);
        // Each tile writes its own rows × columns of c; the pointer crosses
        // threads as an address.
        let c_ptr = c.as_mut_ptr() as usize;
        let tile = |t: usize| {
            // Column panel outer: consecutive tiles share b's panel in cache.
            let (jp, ip) = (t / mp, t % mp);
            let mut out = [0f32; MR * NR];
            // SAFETY: both panels are kp pairs long (sized above); the CPU
            // features are the caller's.
            unsafe {
                kernel(
                    kp,
                    pa[ip * MR * kp..].as_ptr(),
                    pb[jp * NR * kp..].as_ptr(),
                    &mut out,
                )
            };
            let rows = MR.min(m - ip * MR);
            let cols = NR.min(n - jp * NR);
            for r in 0..rows {
                let at = c_off + (ip * MR + r) * ldc + jp * NR;
                // SAFETY: rows and columns inside (m, n), checked against
                // c's length by the caller; no two tiles share an element.
                let row =
                    unsafe { std::slice::from_raw_parts_mut((c_ptr as *mut f32).add(at), cols) };
                let src = &out[r * NR..r * NR + cols];
                if acc {
                    row.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                } else {
                    row.copy_from_slice(src);
                }
            }
        };
        if par {
            (0..mp * np).into_par_iter().for_each(tile);
        } else {
            (0..mp * np).for_each(tile);
        }
    }

    /// One panel of `w` columns from x0 of s, a (k, x) view: for each pair
    /// p of k, `panel[p·w + j] = pair(s(2p, x0 + j), s(2p + 1, x0 + j))`,
    /// zeros past either edge. The two layouts the executor passes (columns
    /// contiguous, or k contiguous) are rounded and paired 16 words at a
    /// time with vector ops; any other stride goes element by element.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn pack(s: View, (k, x): (usize, usize), x0: usize, w: usize, panel: &mut [u32]) {
        let kp = k.div_ceil(2);
        let cols = w.min(x - x0);
        let full_k = k / 2;
        let base = s.off + x0 * s.cs;
        if cols < w || full_k < kp {
            panel.fill(0);
        }
        if s.cs == 1 {
            // Two rows of s give a row of words: low halves from row 2p,
            // high halves from row 2p + 1.
            let hi_mask = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
            for p in 0..full_k {
                let r0 = &s.data[base + 2 * p * s.rs..][..cols];
                let r1 = &s.data[base + (2 * p + 1) * s.rs..][..cols];
                let out = &mut panel[p * w..p * w + cols];
                let mut j = 0;
                while j < cols {
                    let lanes = (cols - j).min(16);
                    let m = (1u32 << lanes).wrapping_sub(1) as u16;
                    // SAFETY: lanes past `cols` are masked off both ways.
                    unsafe {
                        let lo =
                            rounded(_mm512_maskz_loadu_epi32(m, r0.as_ptr().add(j) as *const _));
                        let hi =
                            rounded(_mm512_maskz_loadu_epi32(m, r1.as_ptr().add(j) as *const _));
                        let word = _mm512_or_si512(
                            _mm512_srli_epi32(lo, 16),
                            _mm512_and_si512(hi, hi_mask),
                        );
                        _mm512_mask_storeu_epi32(out.as_mut_ptr().add(j) as *mut _, m, word);
                    }
                    j += lanes;
                }
            }
        } else if s.rs == 1 {
            // A column of s is contiguous in k: 32 values give 16 words,
            // written down the panel.
            let blocks = full_k / 16;
            let mut tmp = [0u32; 16];
            for j in 0..cols {
                let row = &s.data[base + j * s.cs..][..2 * full_k];
                for blk in 0..blocks {
                    // SAFETY: 32 values from 32·blk lie inside the row.
                    unsafe {
                        let v = words16(row.as_ptr().add(32 * blk));
                        _mm512_storeu_si512(tmp.as_mut_ptr() as *mut _, v);
                    }
                    for (q, t) in tmp.iter().enumerate() {
                        panel[(16 * blk + q) * w + j] = *t;
                    }
                }
                for p in 16 * blocks..full_k {
                    panel[p * w + j] = pair(row[2 * p], row[2 * p + 1]);
                }
            }
        } else {
            for p in 0..full_k {
                for j in 0..cols {
                    let e = |kk: usize| s.data[base + kk * s.rs + j * s.cs];
                    panel[p * w + j] = pair(e(2 * p), e(2 * p + 1));
                }
            }
        }
        if full_k < kp {
            // Odd k: the last pair's second half is zero.
            for j in 0..cols {
                let last = s.data[base + (k - 1) * s.rs + j * s.cs];
                panel[full_k * w + j] = pair(last, 0.0);
            }
        }
    }

    /// f32 bits rounded to nearest even at bit 16 (the bf16 in the high
    /// half), a NaN kept a quiet NaN: `bf16_bits` before its shift, 16
    /// lanes at a time.
    #[target_feature(enable = "avx512f")]
    fn rounded(b: __m512i) -> __m512i {
        let lsb = _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1));
        let r = _mm512_add_epi32(b, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
        let abs = _mm512_and_si512(b, _mm512_set1_epi32(0x7FFF_FFFF));
        let nan = _mm512_cmpgt_epu32_mask(abs, _mm512_set1_epi32(0x7F80_0000));
        _mm512_mask_blend_epi32(nan, r, _mm512_or_si512(b, _mm512_set1_epi32(0x0040_0000)))
    }

    /// The high halves of 32 words, in order (a u16 index per output lane).
    const HIGH_HALVES: [u16; 32] = {
        let mut v = [0u16; 32];
        let mut i = 0;
        while i < 32 {
            v[i] = 2 * i as u16 + 1;
            i += 1;
        }
        v
    };

    /// 32 consecutive f32 at `src` → 16 pair words (`pair(src[2q], src[2q + 1])`).
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn words16(src: *const f32) -> __m512i {
        // SAFETY: the caller's 32 values; HIGH_HALVES is 64 bytes.
        unsafe {
            let r0 = rounded(_mm512_loadu_si512(src as *const _));
            let r1 = rounded(_mm512_loadu_si512(src.add(16) as *const _));
            let idx = _mm512_loadu_si512(HIGH_HALVES.as_ptr() as *const _);
            _mm512_permutex2var_epi16(r0, idx, r1)
        }
    }

    /// Both vector packings give the scalar `pair` words, on the values
    /// rounding can get wrong: ties, carries into the exponent, NaNs with
    /// every mantissa bit set, infinities, subnormals, signed zeros.
    #[cfg(test)]
    #[test]
    fn packing_rounds_as_the_scalar_does() {
        if !super::kernel_available() {
            eprintln!("no AVX512-BF16 here: the vector packing is not run");
            return;
        }
        let special = [
            1.0 + 2f32.powi(-8),
            1.0 + 3.0 * 2f32.powi(-8),
            f32::from_bits(0x3FFF_FFFF),
            f32::from_bits(0x7F7F_FFFF),
            f32::from_bits(0x7FFF_FFFF),
            f32::from_bits(0xFFFF_FFFF),
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::from_bits(1),
            f32::from_bits(0x0000_8000),
            -0.0,
            0.0,
            -1.5e-3,
        ];
        let (k, x) = (70, 37);
        let vals: Vec<f32> = (0..k * x)
            .map(|i| special[(i * 7) % special.len()])
            .collect();
        let want = |p: usize, j: usize, at: &dyn Fn(usize, usize) -> f32| {
            pair(
                at(2 * p, j),
                if 2 * p + 1 < k { at(2 * p + 1, j) } else { 0.0 },
            )
        };
        // (k, x) with columns contiguous, and the same values k-contiguous.
        let by_rows = View::rows(&vals, x);
        let cols: Vec<f32> = (0..k * x).map(|i| vals[(i % k) * x + i / k]).collect();
        let by_cols = View::rows(&cols, k).t();
        for (view, name) in [(by_rows, "columns contiguous"), (by_cols, "k contiguous")] {
            for (x0, w) in [(0, NR), (32, NR), (24, MR)] {
                let mut panel = vec![7u32; k.div_ceil(2) * w];
                // SAFETY: kernel_available() checked the features above.
                unsafe { pack(view, (k, x), x0, w, &mut panel) };
                for p in 0..k.div_ceil(2) {
                    for j in 0..w {
                        let expect = if x0 + j < x {
                            want(p, x0 + j, &|kk, jj| vals[kk * x + jj])
                        } else {
                            0
                        };
                        assert_eq!(
                            panel[p * w + j],
                            expect,
                            "{name}: pair {p}, column {}",
                            x0 + j
                        );
                    }
                }
            }
        }
    }

    /// out (MR, NR) = Σ over kp pairs of a's pair × b's pair.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn kernel(kp: usize, a: *const u32, b: *const u32, out: &mut [f32; MR * NR]) {
        let mut lo = [_mm512_setzero_ps(); MR];
        let mut hi = [_mm512_setzero_ps(); MR];
        for p in 0..kp {
            // SAFETY: pair p of both panels lies inside them (caller).
            unsafe {
                let bp = b.add(p * NR);
                let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp as *const _));
                let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bp.add(16) as *const _));
                let ap = a.add(p * MR);
                for r in 0..MR {
                    let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(*ap.add(r) as i32));
                    lo[r] = _mm512_dpbf16_ps(lo[r], av, b0);
                    hi[r] = _mm512_dpbf16_ps(hi[r], av, b1);
                }
            }
        }
        for r in 0..MR {
            // SAFETY: out holds MR rows of NR floats.
            unsafe {
                _mm512_storeu_ps(out.as_mut_ptr().add(r * NR), lo[r]);
                _mm512_storeu_ps(out.as_mut_ptr().add(r * NR + 16), hi[r]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(round_bf16(1.0), 1.0);
        // 1 + 2⁻⁸ lies halfway between 1 and 1 + 2⁻⁷: ties go to the even 1.
        assert_eq!(round_bf16(1.0 + 2f32.powi(-8)), 1.0);
        assert_eq!(round_bf16(1.0 + 3.0 * 2f32.powi(-8)), 1.0 + 2f32.powi(-6));
        assert_eq!(
            round_bf16(1.0 + 2f32.powi(-8) + 2f32.powi(-20)),
            1.0 + 2f32.powi(-7)
        );
        assert!(round_bf16(f32::NAN).is_nan());
        assert_eq!(round_bf16(f32::INFINITY), f32::INFINITY);
        for x in [0.1f32, -3.7, 1e-30, 6.5e4] {
            assert_eq!(round_bf16(x), half::bf16::from_f32(x).to_f32(), "{x}");
        }
    }

    /// Every path against the f64 product of the rounded operands, on
    /// ragged shapes (odd k, partial tiles), both layouts of each operand,
    /// with and without accumulation, serial and parallel.
    #[test]
    fn both_paths_match_the_rounded_f64_product() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut paths = vec![false];
        if kernel_available() {
            paths.push(true);
        } else {
            eprintln!("no AVX512-BF16 here: only the rounded-gemm path is tested");
        }
        for (m, n, k) in [
            (1, 1, 1),
            (13, 33, 7),
            (12, 32, 64),
            (50, 70, 129),
            (64, 96, 256),
        ] {
            let av: Vec<f32> = (0..m * k).map(|_| rng.random_range(-2.0..2.0)).collect();
            let bv: Vec<f32> = (0..k * n).map(|_| rng.random_range(-2.0..2.0)).collect();
            let c0: Vec<f32> = (0..m * (n + 3))
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let want = |i: usize, j: usize| -> f64 {
                (0..k)
                    .map(|p| round_bf16(av[i * k + p]) as f64 * round_bf16(bv[p * n + j]) as f64)
                    .sum()
            };
            // a row-major or as the transpose of a (k, m) buffer; b likewise.
            let at_: Vec<f32> = (0..k * m).map(|x| av[(x % m) * k + x / m]).collect();
            let bt: Vec<f32> = (0..n * k).map(|x| bv[(x % k) * n + x / k]).collect();
            for kernel in paths.clone() {
                for (ta, tb, acc, par) in [
                    (false, false, false, false),
                    (true, false, true, true),
                    (false, true, false, true),
                    (true, true, true, false),
                ] {
                    let a = if ta {
                        View::rows(&at_, m).t()
                    } else {
                        View::rows(&av, k)
                    };
                    let b = if tb {
                        View::rows(&bt, k).t()
                    } else {
                        View::rows(&bv, n)
                    };
                    let mut c = c0.clone();
                    matmul_bf16_on(kernel, (m, n, k), a, b, &mut c, 0, n + 3, acc, par);
                    for i in 0..m {
                        for j in 0..n + 3 {
                            let got = c[i * (n + 3) + j] as f64;
                            let before = c0[i * (n + 3) + j] as f64;
                            let expect = if j >= n {
                                before
                            } else {
                                want(i, j) + if acc { before } else { 0.0 }
                            };
                            let tol = 1e-5 * (k as f64).sqrt() * 4.0 + 1e-6;
                            assert!(
                                (got - expect).abs() <= tol,
                                "kernel {kernel} ({m},{n},{k}) ta {ta} tb {tb} acc {acc} at ({i},{j}): {got} vs {expect}"
                            );
                        }
                    }
                }
            }
        }
    }
}
