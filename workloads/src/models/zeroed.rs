//! Large zeroed buffers backed by transparent huge pages where the kernel
//! offers them: drawing a 7B model touches 27 GB of fresh f32 memory for
//! its reference alone, and faulting it in 4 KiB pages cost more system
//! time than the drawing itself (9.7 M minor faults, 39 s of system time
//! on the 2-vCPU VM in one build and reference of `llama-2-7b`).

use candle_core::{Device, Tensor};

/// `n` zeros of f32 whose pages are faulted in as 2 MiB pages where the
/// kernel allows it (`MADV_HUGEPAGE`; Linux with THP in `madvise` or
/// `always` mode); elsewhere, or if the advice is refused, an ordinary
/// zeroed `Vec`: the advice changes no value, only the faults. (`vec!` of
/// a zero f32 is `calloc`, which leaves a large buffer's fresh pages
/// untouched, so the advice comes before the first fault.)
pub fn zeroed_f32(n: usize) -> Vec<f32> {
    let v = vec![0f32; n];
    advise_huge(v.as_ptr().cast(), n * 4);
    v
}

/// `n` copies of `value`, advised as `zeroed_f32` before they are written.
pub fn filled<T: Clone>(n: usize, value: T) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(n);
    advise_huge(v.as_ptr().cast(), n * std::mem::size_of::<T>());
    v.resize(n, value);
    v
}

/// `t` with its values in a buffer advised as `zeroed_f32` (a copy) when
/// it is a CPU tensor of f32, f16 or bf16 larger than 4 MiB; otherwise `t`
/// itself. Decode streams every weight once per token, and from 4 KiB pages
/// the 128256 × 2048 f32 LM head read at 56.6/58.6 GiB/s against 64.2/65.9
/// from 2 MiB pages (`f32-matvec/cpu`, 2 threads, the 2-vCPU EPYC VM, A B
/// ×2): a page-table walk every 4 KiB, and the hardware prefetchers stop at
/// page edges. candle's own buffers (`to_dtype`, `dequantize`) are plain.
pub fn rehomed(t: Tensor) -> candle_core::Result<Tensor> {
    use candle_core::{CpuStorage, Storage};
    let bytes = t.elem_count() * t.dtype().size_in_bytes();
    if !t.device().is_cpu() || bytes < 4 << 20 {
        return Ok(t);
    }
    let t = t.contiguous()?;
    let dims = t.dims().to_vec();
    let copy = {
        let (storage, layout) = t.storage_and_layout();
        let (a, n) = (layout.start_offset(), t.elem_count());
        match &*storage {
            Storage::Cpu(CpuStorage::F32(v)) => {
                Some(Tensor::from_vec(advised(&v[a..a + n]), dims, &Device::Cpu)?)
            }
            Storage::Cpu(CpuStorage::F16(v)) => {
                Some(Tensor::from_vec(advised(&v[a..a + n]), dims, &Device::Cpu)?)
            }
            Storage::Cpu(CpuStorage::BF16(v)) => {
                Some(Tensor::from_vec(advised(&v[a..a + n]), dims, &Device::Cpu)?)
            }
            _ => None,
        }
    };
    Ok(copy.unwrap_or(t))
}

/// A copy of `src` in a buffer advised before it is written.
fn advised<T: Copy>(src: &[T]) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(src.len());
    advise_huge(v.as_ptr().cast(), std::mem::size_of_val(src));
    v.extend_from_slice(src);
    v
}

#[cfg(target_os = "linux")]
fn advise_huge(ptr: *const u8, len: usize) {
    const HUGE: usize = 2 << 20;
    let start = ptr as usize;
    // Only the 2 MiB-aligned interior can be a huge page; small buffers
    // have none and stay as they are.
    let first = start.div_ceil(HUGE) * HUGE;
    let end = (start + len) / HUGE * HUGE;
    if end > first {
        // SAFETY: the range lies inside the allocation at `ptr`; the advice
        // changes how its pages are backed, never their contents.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge(_: *const u8, _: usize) {}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    /// The copy holds the same values, type and shape, from a tensor that
    /// starts inside its storage (a row range of a larger one); small
    /// tensors and integer ones are handed back as they are.
    #[test]
    fn rehomed_keeps_every_value() {
        let (rows, cols) = (1100, 1024);
        let v: Vec<f32> = (0..rows * cols).map(|i| (i % 977) as f32 - 400.5).collect();
        let big = Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap();
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let t = big.to_dtype(dt).unwrap().narrow(0, 3, rows - 5).unwrap();
            let got = rehomed(t.clone()).unwrap();
            assert_eq!((got.dtype(), got.dims()), (dt, t.dims()), "{dt:?}");
            let (a, b) = (
                t.to_dtype(DType::F32).unwrap().flatten_all().unwrap(),
                got.to_dtype(DType::F32).unwrap().flatten_all().unwrap(),
            );
            assert_eq!(
                a.to_vec1::<f32>().unwrap(),
                b.to_vec1::<f32>().unwrap(),
                "{dt:?}"
            );
        }
        let small = Tensor::from_vec(vec![1f32; 64], 64, &Device::Cpu).unwrap();
        assert_eq!(
            rehomed(small.clone()).unwrap().to_vec1::<f32>().unwrap(),
            vec![1f32; 64]
        );
        let ids = Tensor::from_vec(vec![7u32; 2 << 20], 2 << 20, &Device::Cpu).unwrap();
        assert_eq!(rehomed(ids).unwrap().dtype(), DType::U32);
    }
}
