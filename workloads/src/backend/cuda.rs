//! CUDA through candle, beyond opening a device: what the result records
//! about the GPU (cudarc driver queries), the device memory cap, and the
//! peak device memory of the process. One worker process runs one case, so
//! the state of "the device this process uses" is process-wide.
//!
//! Memory mechanism (stated in every record): cudarc allocates candle's
//! tensors from the device's default stream-ordered memory pool
//! (`cuMemAllocAsync`) where the GPU supports pools; the pool's
//! `CU_MEMPOOL_ATTR_USED_MEM_HIGH` is the exact peak of bytes in use by
//! tensors. The cap is a ballast: right after the context opens, everything
//! free beyond the cap is allocated with `cuMemAlloc` and held, so any
//! allocation past the cap — tensors, cuBLAS workspaces, kernels — fails
//! with CUDA_ERROR_OUT_OF_MEMORY (recorded as status `oom`).

use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use candle_core::Device;
use candle_core::cuda_backend::cudarc::driver::{CudaContext, result, sys};

use super::{Backend, DeviceMemoryRecord, DeviceRecord};
use crate::error::{Result, WorkloadError};

/// How the peak is measured, as the record says it.
const PEAK_METHOD: &str = "default CUDA memory pool's CU_MEMPOOL_ATTR_USED_MEM_HIGH (candle tensors via cuMemAllocAsync), reset when the worker opened the device";
const CAP_MECHANISM: &str = "ballast: after the context opened, free memory beyond the cap was allocated (cuMemAlloc) and held, so allocations past the cap fail with CUDA_ERROR_OUT_OF_MEMORY";

/// The device this process opened, with what was true when it opened.
struct Opened {
    ordinal: usize,
    ctx: Arc<CudaContext>,
    total_bytes: u64,
    free_at_open_bytes: u64,
    /// (cap, ballast bytes held) once a cap was applied.
    cap: Option<(u64, u64)>,
    pool: Option<sys::CUmemoryPool>,
}

// SAFETY: the pool handle is an opaque driver handle, valid process-wide;
// the driver API is thread-safe.
unsafe impl Send for Opened {}

static OPENED: Mutex<Option<Opened>> = Mutex::new(None);

fn drv(
    backend: &str,
    op: &'static str,
) -> impl FnOnce(result::DriverError) -> WorkloadError + use<> {
    let backend = backend.to_string();
    move |e| WorkloadError::Candle {
        backend,
        op,
        source: Box::new(candle_core::Error::wrap(e)),
    }
}

fn context(dev: &Device) -> Option<Arc<CudaContext>> {
    match dev {
        Device::Cuda(d) => Some(d.cuda_stream().context().clone()),
        _ => None,
    }
}

/// Opens `cuda:ordinal` through candle; the first open in this process
/// records the memory free at that moment and resets the pool's peak.
pub fn open(ordinal: usize) -> Result<Device> {
    let name = Backend::Cuda { ordinal }.to_string();
    let dev = Device::new_cuda(ordinal).map_err(|e| WorkloadError::Unavailable {
        backend: name.clone(),
        reason: e.to_string(),
    })?;
    let mut opened = OPENED.lock().expect("cuda state lock");
    if opened.is_none() {
        let ctx = context(&dev).expect("a CUDA device has a context");
        ctx.bind_to_thread().map_err(drv(&name, "bind context"))?;
        let (free, total) = result::mem_get_info().map_err(drv(&name, "cuMemGetInfo"))?;
        let pool = default_pool(&ctx);
        if let Some(p) = pool {
            reset_pool_peak(p);
        }
        *opened = Some(Opened {
            ordinal,
            ctx,
            total_bytes: total as u64,
            free_at_open_bytes: free as u64,
            cap: None,
            pool,
        });
    }
    Ok(dev)
}

/// The device's default memory pool, where the GPU has pools (cudarc then
/// allocates from it).
fn default_pool(ctx: &CudaContext) -> Option<sys::CUmemoryPool> {
    let supported = ctx
        .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED)
        .ok()?;
    if supported == 0 {
        return None;
    }
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    // SAFETY: valid out-pointer and a device handle from a live context.
    let rc = unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device()) };
    (rc == sys::CUresult::CUDA_SUCCESS && !pool.is_null()).then_some(pool)
}

fn pool_attr(pool: sys::CUmemoryPool, attr: sys::CUmemPool_attribute) -> Option<u64> {
    let mut v: u64 = 0;
    // SAFETY: USED_MEM_* attributes are cuuint64_t (cuda.h); valid pointer.
    let rc = unsafe { sys::cuMemPoolGetAttribute(pool, attr, &mut v as *mut u64 as *mut c_void) };
    (rc == sys::CUresult::CUDA_SUCCESS).then_some(v)
}

fn reset_pool_peak(pool: sys::CUmemoryPool) {
    let mut zero: u64 = 0;
    // SAFETY: USED_MEM_HIGH may only be set to zero (a reset); valid pointer.
    unsafe {
        sys::cuMemPoolSetAttribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH,
            &mut zero as *mut u64 as *mut c_void,
        );
    }
}

/// Holds all free device memory beyond `cap_bytes`, for the rest of the
/// process. Call before the workload allocates.
pub fn apply_mem_cap(ordinal: usize, cap_bytes: u64) -> Result<()> {
    let name = Backend::Cuda { ordinal }.to_string();
    open(ordinal)?;
    let mut guard = OPENED.lock().expect("cuda state lock");
    let opened = guard.as_mut().expect("opened above");
    if let Some((cap, _)) = opened.cap {
        if cap == cap_bytes {
            return Ok(());
        }
        return Err(WorkloadError::Unsupported {
            workload: "device memory cap".into(),
            backend: name,
            reason: format!("a cap of {cap} bytes is already held in this process"),
        });
    }
    opened
        .ctx
        .bind_to_thread()
        .map_err(drv(&name, "bind context"))?;
    let (free, _) = result::mem_get_info().map_err(drv(&name, "cuMemGetInfo"))?;
    let ballast = (free as u64).saturating_sub(cap_bytes);
    if ballast > 0 {
        // SAFETY: a plain device allocation, never freed: it must outlive
        // every allocation of the case, and the process ends with the case.
        unsafe { result::malloc_sync(ballast as usize) }
            .map_err(drv(&name, "allocate the cap's ballast"))?;
    }
    opened.cap = Some((cap_bytes, ballast));
    Ok(())
}

/// Device memory of this process's case: totals at open, the cap, the peak.
pub fn memory(ordinal: usize) -> Option<DeviceMemoryRecord> {
    let guard = OPENED.lock().ok()?;
    let o = guard.as_ref().filter(|o| o.ordinal == ordinal)?;
    o.ctx.bind_to_thread().ok()?;
    let free_now = result::mem_get_info().ok().map(|(f, _)| f as u64);
    let ballast = o.cap.map(|(_, b)| b).unwrap_or(0);
    Some(DeviceMemoryRecord {
        total_bytes: Some(o.total_bytes),
        free_at_open_bytes: Some(o.free_at_open_bytes),
        cap_bytes: o.cap.map(|(c, _)| c),
        cap_mechanism: o.cap.map(|_| CAP_MECHANISM.to_string()),
        cap_checked_after_run: false,
        peak_bytes: o
            .pool
            .and_then(|p| pool_attr(p, sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH)),
        peak_method: if o.pool.is_some() {
            PEAK_METHOD.to_string()
        } else {
            "none: this GPU has no memory pools, so no exact peak is kept".to_string()
        },
        // Everything this process holds now beyond what was free at open,
        // less the ballast: tensors still alive, cuBLAS workspaces, modules.
        in_use_at_end_bytes: free_now.map(|f| {
            o.free_at_open_bytes
                .saturating_sub(f)
                .saturating_sub(ballast)
        }),
    })
}

/// `8.9` style compute capability, or `?` where the driver does not say.
fn attr(ctx: &CudaContext, a: sys::CUdevice_attribute) -> Option<i64> {
    ctx.attribute(a).ok().map(|v| v as i64)
}

/// The context of the device this process opened (opening it if needed).
fn opened_context(ordinal: usize) -> Option<Arc<CudaContext>> {
    let ctx = |g: &Option<Opened>| {
        g.as_ref()
            .filter(|o| o.ordinal == ordinal)
            .map(|o| o.ctx.clone())
    };
    if let Some(c) = ctx(&*OPENED.lock().ok()?) {
        return Some(c);
    }
    open(ordinal).ok()?;
    ctx(&*OPENED.lock().ok()?)
}

/// What the result records about the GPU, from the driver.
pub fn record(ordinal: usize) -> DeviceRecord {
    use sys::CUdevice_attribute as A;
    let backend = Backend::Cuda { ordinal }.to_string();
    let Some(ctx) = opened_context(ordinal) else {
        return DeviceRecord {
            backend: backend.clone(),
            name: backend,
            api: "cuda".into(),
            ..Default::default()
        };
    };
    let _ = ctx.bind_to_thread();
    let mut details = Vec::new();
    let mut push = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            details.push(format!("{k}={v}"));
        }
    };
    let cc = ctx.compute_capability().ok();
    push("compute_capability", cc.map(|(a, b)| format!("{a}.{b}")));
    push(
        "sm_count",
        attr(&ctx, A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT).map(|v| v.to_string()),
    );
    if let Ok((free, total)) = result::mem_get_info() {
        push("memory_total_bytes", Some(total.to_string()));
        push("memory_free_bytes", Some(free.to_string()));
    }
    push(
        "clock_khz",
        attr(&ctx, A::CU_DEVICE_ATTRIBUTE_CLOCK_RATE).map(|v| v.to_string()),
    );
    push(
        "memory_clock_khz",
        attr(&ctx, A::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE).map(|v| v.to_string()),
    );
    push(
        "memory_bus_width_bits",
        attr(&ctx, A::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH).map(|v| v.to_string()),
    );
    push(
        "l2_cache_bytes",
        attr(&ctx, A::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE).map(|v| v.to_string()),
    );
    let pci = (
        attr(&ctx, A::CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID),
        attr(&ctx, A::CU_DEVICE_ATTRIBUTE_PCI_BUS_ID),
        attr(&ctx, A::CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID),
    );
    if let (Some(d), Some(b), Some(s)) = pci {
        push("pci_bus_id", Some(format!("{d:08x}:{b:02x}:{s:02x}.0")));
    }
    push("uuid", ctx.uuid().ok().map(|u| uuid_string(&u.bytes)));
    push(
        "driver_cuda_version",
        driver_version().map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10)),
    );
    push(
        "memory_pools",
        attr(&ctx, A::CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED).map(|v| (v != 0).to_string()),
    );
    let integrated = attr(&ctx, A::CU_DEVICE_ATTRIBUTE_INTEGRATED).unwrap_or(0) != 0;
    DeviceRecord {
        backend,
        name: ctx
            .name()
            .unwrap_or_else(|_| format!("CUDA device {ordinal}")),
        api: "cuda".into(),
        device_type: if integrated {
            "integrated_gpu"
        } else {
            "discrete_gpu"
        }
        .into(),
        driver: match driver_version() {
            Some(v) => format!("CUDA driver API {}.{}", v / 1000, (v % 1000) / 10),
            None => "CUDA driver".into(),
        },
        driver_info: format!(
            "candle-core {}, kernels (PTX) from the CUDA toolkit it was built with",
            CANDLE_VERSION
        ),
        index: Some(ordinal),
        details,
    }
}

/// The candle version this crate is built against (Cargo.lock pins it).
const CANDLE_VERSION: &str = "0.11";

fn driver_version() -> Option<i32> {
    let mut v = 0;
    // SAFETY: valid out-pointer; callable before and after cuInit.
    let rc = unsafe { sys::cuDriverGetVersion(&mut v) };
    (rc == sys::CUresult::CUDA_SUCCESS).then_some(v)
}

/// `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, as nvidia-smi and NVML print it.
fn uuid_string(b: &[std::ffi::c_char; 16]) -> String {
    let h: Vec<String> = b.iter().map(|x| format!("{:02x}", *x as u8)).collect();
    format!(
        "GPU-{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}
