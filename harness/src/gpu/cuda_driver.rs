//! Finds the CUDA driver without linking to it: `dlopen("libcuda.so.1")`,
//! then `cuDriverGetVersion`, `cuInit` and `cuDeviceGetCount` through the
//! loaded symbols. The harness asks this before it starts a CUDA worker, so
//! a machine without the driver gets "no CUDA driver found", never a loader
//! error from a binary linked against libcuda.

use thiserror::Error;

/// The driver's soname on Linux, as the NVIDIA driver installs it.
pub const DRIVER_LIBRARY: &str = "libcuda.so.1";

/// CUDA_ERROR_STUB_LIBRARY: what a link-time stub libcuda answers (the
/// toolkit's `lib/stubs/libcuda.so`, or capbench's stand-in).
/// (Only the Linux loader reads these codes: elsewhere there is no driver
/// to ask.)
#[cfg(target_os = "linux")]
const CUDA_ERROR_STUB_LIBRARY: i32 = 34;
#[cfg(target_os = "linux")]
const CUDA_ERROR_NO_DEVICE: i32 = 100;

/// The driver as found: its version (e.g. 13000 for 13.0) and GPU count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverInfo {
    pub version: i32,
    pub devices: i32,
}

impl DriverInfo {
    /// `13.0` from 13000, the way nvidia-smi prints "CUDA Version".
    pub fn version_string(&self) -> String {
        format!("{}.{}", self.version / 1000, (self.version % 1000) / 10)
    }
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum CudaDriverError {
    #[error(
        "no CUDA driver found: {library} could not be loaded ({reason}); install the NVIDIA driver to run cuda cases"
    )]
    NotFound { library: String, reason: String },
    #[error(
        "no CUDA driver found: {library} is a link-time stub (CUDA_ERROR_STUB_LIBRARY), not the NVIDIA driver; remove its folder from LD_LIBRARY_PATH"
    )]
    Stub { library: String },
    #[error("no CUDA driver found: {library} lacks {symbol}")]
    MissingSymbol { library: String, symbol: String },
    #[error("CUDA driver {version} found but it sees no GPU ({detail})")]
    NoDevice { version: String, detail: String },
    #[error("CUDA driver {version} found but {call} failed with CUDA error {code}")]
    Call {
        version: String,
        call: &'static str,
        code: i32,
    },
    #[error("no CUDA driver found: capbench looks for the CUDA driver on Linux only")]
    UnsupportedOs,
}

/// Loads the driver and asks it for its version and GPUs. Loading is done
/// once per process by the dynamic loader; calling this again is cheap.
#[cfg(target_os = "linux")]
pub fn probe() -> Result<DriverInfo, CudaDriverError> {
    probe_library(DRIVER_LIBRARY)
}

#[cfg(not(target_os = "linux"))]
pub fn probe() -> Result<DriverInfo, CudaDriverError> {
    Err(CudaDriverError::UnsupportedOs)
}

/// `probe` on a given library name or path (tests point it at a stub).
#[cfg(target_os = "linux")]
pub fn probe_library(library: &str) -> Result<DriverInfo, CudaDriverError> {
    use std::ffi::{CStr, CString, c_int, c_uint, c_void};

    type GetVersion = unsafe extern "C" fn(*mut c_int) -> c_int;
    type Init = unsafe extern "C" fn(c_uint) -> c_int;
    type GetCount = unsafe extern "C" fn(*mut c_int) -> c_int;

    let name = CString::new(library).map_err(|_| CudaDriverError::NotFound {
        library: library.into(),
        reason: "name contains a NUL byte".into(),
    })?;
    // SAFETY: dlopen/dlerror are called with valid C strings; the handle is
    // never closed, so symbols taken from it stay valid for the process.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        let reason = unsafe {
            let e = libc::dlerror();
            if e.is_null() {
                "dlopen failed".to_string()
            } else {
                CStr::from_ptr(e).to_string_lossy().into_owned()
            }
        };
        return Err(CudaDriverError::NotFound {
            library: library.into(),
            reason,
        });
    }
    let sym = |s: &'static str| -> Result<*mut c_void, CudaDriverError> {
        let c = CString::new(s).expect("symbol names have no NUL");
        // SAFETY: handle is a live dlopen handle; c is a valid C string.
        let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
        if p.is_null() {
            Err(CudaDriverError::MissingSymbol {
                library: library.into(),
                symbol: s.into(),
            })
        } else {
            Ok(p)
        }
    };
    // SAFETY: the symbols have these C signatures in every CUDA driver
    // (cuda.h: CUresult cuDriverGetVersion(int*), cuInit(unsigned int),
    // cuDeviceGetCount(int*)); CUresult is a C enum (int).
    let (get_version, init, get_count) = unsafe {
        (
            std::mem::transmute::<*mut c_void, GetVersion>(sym("cuDriverGetVersion")?),
            std::mem::transmute::<*mut c_void, Init>(sym("cuInit")?),
            std::mem::transmute::<*mut c_void, GetCount>(sym("cuDeviceGetCount")?),
        )
    };
    let mut v: c_int = 0;
    // SAFETY: valid out-pointer.
    let rc = unsafe { get_version(&mut v) };
    if rc == CUDA_ERROR_STUB_LIBRARY {
        return Err(CudaDriverError::Stub {
            library: library.into(),
        });
    }
    let version = DriverInfo {
        version: v,
        devices: 0,
    }
    .version_string();
    if rc != 0 {
        return Err(CudaDriverError::Call {
            version,
            call: "cuDriverGetVersion",
            code: rc,
        });
    }
    // SAFETY: cuInit(0) is the documented first call; flags must be 0.
    match unsafe { init(0) } {
        0 => {}
        CUDA_ERROR_STUB_LIBRARY => {
            return Err(CudaDriverError::Stub {
                library: library.into(),
            });
        }
        CUDA_ERROR_NO_DEVICE => {
            return Err(CudaDriverError::NoDevice {
                version,
                detail: "cuInit: CUDA_ERROR_NO_DEVICE".into(),
            });
        }
        code => {
            return Err(CudaDriverError::Call {
                version,
                call: "cuInit",
                code,
            });
        }
    }
    let mut n: c_int = 0;
    // SAFETY: valid out-pointer, after a successful cuInit.
    let rc = unsafe { get_count(&mut n) };
    if rc != 0 {
        return Err(CudaDriverError::Call {
            version,
            call: "cuDeviceGetCount",
            code: rc,
        });
    }
    if n == 0 {
        return Err(CudaDriverError::NoDevice {
            version,
            detail: "cuDeviceGetCount = 0".into(),
        });
    }
    Ok(DriverInfo {
        version: v,
        devices: n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prints_like_nvidia_smi() {
        let d = DriverInfo {
            version: 12040,
            devices: 1,
        };
        assert_eq!(d.version_string(), "12.4");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_missing_library_is_no_driver_found() {
        let e = probe_library("libcapbench-no-such-driver.so.1").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("no CUDA driver found"), "{msg}");
        assert!(msg.contains("libcapbench-no-such-driver.so.1"), "{msg}");
    }

    /// A library that loads but is not the driver (libc has none of the
    /// cu* symbols) is named as such, never called.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_library_without_the_driver_api_is_no_driver_found() {
        let e = probe_library("libc.so.6").unwrap_err();
        assert!(
            matches!(&e, CudaDriverError::MissingSymbol { symbol, .. } if symbol == "cuDriverGetVersion"),
            "{e}"
        );
    }
}
