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

/// `t` in `dtype`, as candle's `to_dtype` makes it (the same `half`
/// conversions, so the same bits), but into a buffer advised as
/// `zeroed_f32` when `t` is an f32 CPU tensor of over 4 MiB going to f16 or
/// bf16 outside any gradient graph; otherwise candle's `to_dtype`. The
/// seeded models draw their weights in f32 (already advised) and convert
/// them here: the same two buffers at once as candle's conversion, so the
/// load peak the memory model predicts stands, and the f16 weights decode
/// streams come from 2 MiB pages like the f32 ones.
pub fn to_dtype(t: &Tensor, dtype: candle_core::DType) -> candle_core::Result<Tensor> {
    use candle_core::{CpuStorage, DType, Storage};
    use half::{bf16, f16};
    use rayon::prelude::*;
    let big = t.elem_count() * 4 >= 4 << 20;
    let wanted = matches!(dtype, DType::F16 | DType::BF16);
    if !t.device().is_cpu() || t.dtype() != DType::F32 || !wanted || !big || t.track_op() {
        return t.to_dtype(dtype);
    }
    let t = t.contiguous()?;
    let dims = t.dims().to_vec();
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(v)) = &*storage else {
        return t.to_dtype(dtype);
    };
    let src = &v[layout.start_offset()..layout.start_offset() + t.elem_count()];
    fn converted<T: Copy + Send + Sync>(src: &[f32], zero: T, f: fn(f32) -> T) -> Vec<T> {
        const CHUNK: usize = 1 << 16;
        let mut out = filled(src.len(), zero);
        out.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(o, s)| o.iter_mut().zip(s).for_each(|(o, &x)| *o = f(x)));
        out
    }
    match dtype {
        DType::F16 => {
            Tensor::from_vec(converted(src, f16::ZERO, f16::from_f32), dims, &Device::Cpu)
        }
        _ => Tensor::from_vec(
            converted(src, bf16::ZERO, bf16::from_f32),
            dims,
            &Device::Cpu,
        ),
    }
}

/// A CPU tensor of `dtype` (f32, f16 or bf16) and shape `dims` from its
/// little-endian bytes, in a buffer advised as `zeroed_f32` — what
/// candle's `from_raw_buffer` makes, which copies into a plain one. Other
/// dtypes: candle's.
pub fn from_le_bytes(
    bytes: &[u8],
    dtype: candle_core::DType,
    dims: &[usize],
) -> candle_core::Result<Tensor> {
    use candle_core::DType;
    fn copied<T: bytemuck::Pod>(bytes: &[u8], zero: T) -> Vec<T> {
        let mut out = filled(bytes.len() / std::mem::size_of::<T>(), zero);
        bytemuck::cast_slice_mut::<T, u8>(&mut out).copy_from_slice(bytes);
        out
    }
    let n: usize = dims.iter().product();
    if n * dtype.size_in_bytes() != bytes.len() {
        // candle's own error names the mismatch.
        return Tensor::from_raw_buffer(bytes, dtype, dims, &Device::Cpu);
    }
    match dtype {
        DType::F32 => Tensor::from_vec(copied(bytes, 0f32), dims, &Device::Cpu),
        DType::F16 => Tensor::from_vec(copied(bytes, half::f16::ZERO), dims, &Device::Cpu),
        DType::BF16 => Tensor::from_vec(copied(bytes, half::bf16::ZERO), dims, &Device::Cpu),
        _ => Tensor::from_raw_buffer(bytes, dtype, dims, &Device::Cpu),
    }
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

    /// Bits of a tensor of any float dtype, for exact comparison.
    fn bits(t: &Tensor) -> Vec<u32> {
        fn each<T: candle_core::WithDType>(t: &Tensor, f: fn(&T) -> u32) -> Vec<u32> {
            t.to_vec1::<T>().unwrap().iter().map(f).collect()
        }
        let t = t.flatten_all().unwrap();
        match t.dtype() {
            DType::F32 => each::<f32>(&t, |x| x.to_bits()),
            DType::F16 => each::<half::f16>(&t, |x| x.to_bits().into()),
            DType::BF16 => each::<half::bf16>(&t, |x| x.to_bits().into()),
            other => panic!("{other:?}"),
        }
    }

    /// The advised conversion gives candle's bits (round to nearest even,
    /// overflow to infinity, NaN kept) from a tensor that starts inside its
    /// storage; small, non-f32 and gradient-tracked tensors go through
    /// candle's own `to_dtype` (a tracked one keeps its graph).
    #[test]
    fn to_dtype_gives_candles_bits() {
        let (rows, cols) = (1100, 1024);
        let mut v: Vec<f32> = (0..rows * cols)
            .map(|i| ((i as f32) * 0.618_034).sin() * 70000.0 / (1 + i % 13) as f32)
            .collect();
        v[5000] = f32::NAN;
        v[5001] = f32::INFINITY;
        v[5002] = 1e-30;
        let big = Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap();
        let t = big.narrow(0, 3, rows - 5).unwrap();
        for dt in [DType::F16, DType::BF16, DType::F32] {
            let got = to_dtype(&t, dt).unwrap();
            let want = t.to_dtype(dt).unwrap();
            assert_eq!((got.dtype(), got.dims()), (dt, want.dims()), "{dt:?}");
            assert!(bits(&got) == bits(&want), "{dt:?}: bits differ");
        }
        let small = Tensor::from_vec(vec![0.1f32; 64], 64, &Device::Cpu).unwrap();
        assert_eq!(
            bits(&to_dtype(&small, DType::F16).unwrap()),
            bits(&small.to_dtype(DType::F16).unwrap())
        );
        let var = candle_core::Var::from_tensor(&big).unwrap();
        assert!(to_dtype(var.as_tensor(), DType::BF16).unwrap().track_op());
    }

    /// Stored bytes read back as candle's `from_raw_buffer` reads them, for
    /// every float dtype; a length that does not fit the shape is an error.
    #[test]
    fn from_le_bytes_reads_what_from_raw_buffer_reads() {
        let n = 1 << 20;
        let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).cos() * 3.0).collect();
        let t = Tensor::from_vec(v, (1024, 1024), &Device::Cpu).unwrap();
        for dt in [DType::F32, DType::F16, DType::BF16] {
            let t = t.to_dtype(dt).unwrap();
            let mut bytes = Vec::new();
            for x in bits(&t) {
                let b = x.to_le_bytes();
                bytes.extend_from_slice(&b[..dt.size_in_bytes()]);
            }
            let got = from_le_bytes(&bytes, dt, &[1024, 1024]).unwrap();
            let want = Tensor::from_raw_buffer(&bytes, dt, &[1024, 1024], &Device::Cpu).unwrap();
            assert_eq!(got.dtype(), dt);
            assert!(
                bits(&got) == bits(&want) && bits(&got) == bits(&t),
                "{dt:?}"
            );
            assert!(
                from_le_bytes(&bytes[1..], dt, &[1024, 1024]).is_err(),
                "{dt:?}"
            );
            assert!(from_le_bytes(&bytes, dt, &[1024, 1023]).is_err(), "{dt:?}");
        }
    }
}
