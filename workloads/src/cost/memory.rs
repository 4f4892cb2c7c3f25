//! The predicted memory need of a workload: what a worker holds at its peak
//! (data in its dtype, the host copies it is verified against, the runtime's
//! own buffers: GEMM packing slabs, per-op temporaries, the autograd graph).
//! `fits / does not fit` under a cap is judged with it before the cap is put
//! to the test, and its error against the measured peak is reported beside
//! it. Every term is a function of the shape and of this machine's cache
//! size and thread count, derived from what the code allocates. This file
//! holds the CPU runtime's own buffers; `super::memory_need` adds the
//! kernels' data, `super::work` the model workloads'.

use crate::spec::DType;

/// candle's CPU GEMM (the `gemm` crate, gemm-common 0.19) gives every thread
/// that runs a GEMM a thread-local packing slab of one L2 cache
/// (`L2_SLAB`, `CACHE_INFO[1].cache_bytes`), allocated on first use and kept
/// for the thread's life. The size per core comes from sysfs, as gemm reads
/// it from the CPU; 1 MiB where it cannot be read.
pub fn gemm_slab_bytes() -> f64 {
    static SLAB: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *SLAB.get_or_init(|| l2_bytes_from_sysfs().unwrap_or((1u64 << 20) as f64))
}

fn l2_bytes_from_sysfs() -> Option<f64> {
    let base = std::path::Path::new(super::llc::SYSFS_CPU0_CACHE);
    super::llc::cache_bytes_in(base, Some(2)).map(|(_, b)| b as f64)
}

/// Threads of the pool a parallel GEMM runs on (candle's `get_num_threads`:
/// `RAYON_NUM_THREADS`, else the cores available).
pub fn gemm_pool_threads() -> f64 {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())) as f64
}

/// gemm's `DEFAULT_THREADING_THRESHOLD` (48·48·256 multiply-adds per
/// column chunk): below it a GEMM runs on the calling thread.
const GEMM_THREADING_THRESHOLD: usize = 48 * 48 * 256;
/// The column chunk gemm splits n into at these sizes: at 64 the counting
/// allocator shows a 128×128×64 product on the calling thread and a
/// 128×128×128 one on the pool.
const GEMM_N_CHUNK: usize = 64;

/// Whether an (m × k)·(k × n) product runs on the pool (slabs on its
/// threads) rather than on the calling thread.
pub fn gemm_parallel(m: usize, n: usize, k: usize) -> bool {
    gemm_pool_threads() > 1.0 && m * n.min(GEMM_N_CHUNK) * k >= GEMM_THREADING_THRESHOLD
}

/// Slab bytes held once GEMMs have run: one on the calling thread if any
/// product ran there, one per pool thread if any ran on the pool.
pub fn gemm_slabs(on_caller: bool, on_pool: bool) -> f64 {
    let threads = on_caller as u8 as f64 + if on_pool { gemm_pool_threads() } else { 0.0 };
    threads * gemm_slab_bytes()
}

/// Extra f32 buffers candle's CPU matmul makes for a half-precision
/// (m × k)·(k × n) product: f16 runs in gemm's f16 kernel, which widens the
/// packed right-hand side to f32 (k·n floats); bf16 has no kernel there, so
/// both operands and the result are converted to f32 (m·k + k·n + m·n).
pub fn half_matmul_extra_bytes(dtype: DType, m: usize, n: usize, k: usize) -> f64 {
    match dtype {
        DType::F16 => (k * n) as f64 * 4.0,
        DType::Bf16 => (m * k + k * n + m * n) as f64 * 4.0,
        _ => 0.0,
    }
}

/// The CPU's route through candle's quantized matmul (candle-core 0.11,
/// `quantized::repack`), which decides whether a q8_0 weight gets a second,
/// repacked copy on its first product. Host-dependent, so read from the
/// CPU as candle reads it, not assumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantRoute {
    /// x86_64 with AVX-512 VNNI or AVX-VNNI: q8_0 weights whose rows are a
    /// multiple of 16 and columns a multiple of 256 are repacked into
    /// 16-row tiles (`repack_x86::pack_q8_0`).
    X86Vnni,
    /// aarch64 with dotprod: rows a multiple of 4 are repacked into 4-row
    /// interleaved blocks (`Q8_0x4`).
    ArmDotprod,
    /// Anything else (x86 with AVX2 only: its `maddubs` overflows on q8_0,
    /// so candle keeps the blocks): no second copy.
    Blocks,
}

impl QuantRoute {
    /// This CPU's route, with candle's own override variables honoured.
    pub fn of_this_cpu() -> QuantRoute {
        #[cfg(target_arch = "x86_64")]
        {
            let var = |k: &str| std::env::var(k).as_deref() == Ok("1");
            let (force_avx2, force_vnni) =
                (var("MISTRALRS_FORCE_AVX2"), var("MISTRALRS_FORCE_AVXVNNI"));
            let avx512vnni = std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vnni");
            let avxvnni = (force_vnni || std::arch::is_x86_feature_detected!("avxvnni"))
                && std::arch::is_x86_feature_detected!("avx2");
            if !force_avx2 && (avx512vnni || avxvnni) {
                QuantRoute::X86Vnni
            } else {
                QuantRoute::Blocks
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("dotprod") {
                QuantRoute::ArmDotprod
            } else {
                QuantRoute::Blocks
            }
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            QuantRoute::Blocks
        }
    }

    /// Bytes of the repacked copy of one (rows × cols) q8_0 weight, kept
    /// beside its blocks for the weight's life once it has run a product.
    /// Both tile layouts hold what the blocks hold: 32 int8 and one f16
    /// scale per 32 weights (34 bytes).
    pub fn q8_0_repack_bytes(self, rows: usize, cols: usize) -> f64 {
        let repacked = match self {
            QuantRoute::X86Vnni => rows.is_multiple_of(16) && cols.is_multiple_of(256),
            QuantRoute::ArmDotprod => rows.is_multiple_of(4) && cols.is_multiple_of(32),
            QuantRoute::Blocks => false,
        };
        if repacked && cols > 0 {
            (rows * cols) as f64 / 32.0 * 34.0
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_repack_follows_the_route_and_the_tile_shape() {
        // dense-small's wq (512 × 512) is repacked on a VNNI x86 and on
        // arm; its FFN down (512 × 1408: 1408 is not a multiple of 256) only
        // on arm; nothing on an AVX2-only x86.
        let full = 512.0 * 512.0 / 32.0 * 34.0;
        assert_eq!(QuantRoute::X86Vnni.q8_0_repack_bytes(512, 512), full);
        assert_eq!(QuantRoute::ArmDotprod.q8_0_repack_bytes(512, 512), full);
        assert_eq!(QuantRoute::Blocks.q8_0_repack_bytes(512, 512), 0.0);
        assert_eq!(QuantRoute::X86Vnni.q8_0_repack_bytes(512, 1408), 0.0);
        assert!(QuantRoute::ArmDotprod.q8_0_repack_bytes(512, 1408) > 0.0);
        // A row block of 8 rows is not a whole x86 tile.
        assert_eq!(QuantRoute::X86Vnni.q8_0_repack_bytes(8, 512), 0.0);
    }

    #[test]
    fn small_products_stay_on_the_calling_thread() {
        assert!(!gemm_parallel(16, 128, 64));
        if gemm_pool_threads() > 1.0 {
            assert!(gemm_parallel(128, 128, 128));
        }
    }
}
