//! Typed errors of the workloads crate; the harness maps them to case statuses.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum WorkloadError {
    /// The backend exists in the `Backend` type but was not compiled in.
    #[error("capbench was built without {backend} support; rebuild with --features {feature}")]
    NotCompiled { backend: String, feature: String },

    /// Compiled in, but no usable device on this machine.
    #[error("backend {backend} is not usable on this machine: {reason}")]
    Unavailable { backend: String, reason: String },

    /// The workload does not (yet) run on this backend / dtype combination.
    #[error("{workload} is not supported on {backend}: {reason}")]
    Unsupported {
        workload: String,
        backend: String,
        reason: String,
    },

    /// A workload or backend name that does not parse.
    #[error("unknown {what} '{name}': {hint}")]
    UnknownName {
        what: &'static str,
        name: String,
        hint: String,
    },

    #[error("candle error on {backend} during {op}: {}", without_backtrace(.source))]
    Candle {
        backend: String,
        op: &'static str,
        // Boxed: candle's error is large and would bloat every Result.
        #[source]
        source: Box<candle_core::Error>,
    },

    /// A model file (`--model FILE.gguf`) that cannot be read or run: a
    /// `models::gguf::GgufError` (boxed so this bottom layer need not know
    /// the model code; `From` lives beside that type).
    #[error(transparent)]
    ModelFile(Box<dyn std::error::Error + Send + Sync>),

    /// A device allocation past `--device-mem-cap` (counted by our engines:
    /// wgpu buffers, the CUDA/Metal ballast counter).
    #[error(
        "device memory cap: {what} needs {requested_bytes} bytes with {in_use_bytes} in use; the cap is {cap_bytes}"
    )]
    DeviceOutOfMemory {
        what: String,
        requested_bytes: u64,
        in_use_bytes: u64,
        cap_bytes: u64,
    },
    /// The case's device allocations exceeded a cap that could only be
    /// checked afterwards (metal).
    #[error(
        "{backend}: peak device memory {peak_bytes} bytes exceeds the cap of {cap_bytes} bytes"
    )]
    DeviceMemCap {
        backend: String,
        peak_bytes: u64,
        cap_bytes: u64,
    },

    #[error("wgpu error during {op}: {message}")]
    Wgpu { op: &'static str, message: String },

    /// llama.cpp (the `llamacpp` backend) failed at run time.
    #[error("llama.cpp error during {op}: {message}")]
    LlamaCpp { op: &'static str, message: String },
}

impl WorkloadError {
    pub fn candle(
        backend: &str,
        op: &'static str,
    ) -> impl FnOnce(candle_core::Error) -> Self + use<> {
        let backend = backend.to_string();
        move |source| WorkloadError::Candle {
            backend,
            op,
            source: Box::new(source),
        }
    }
}

/// `map_err` adapter for candle errors on a backend, naming the operation.
pub fn cerr(
    backend: &dyn std::fmt::Display,
    op: &'static str,
) -> impl FnOnce(candle_core::Error) -> WorkloadError + use<> {
    WorkloadError::candle(&backend.to_string(), op)
}

impl WorkloadError {
    /// The device ran out of memory (its own, or under a device memory
    /// cap). candle passes CUDA errors on as text only, so the driver's
    /// error name is looked for in it.
    pub fn is_device_oom(&self) -> bool {
        match self {
            WorkloadError::DeviceMemCap { .. } => true,
            WorkloadError::Candle { source, .. } => {
                source.to_string().contains("CUDA_ERROR_OUT_OF_MEMORY")
            }
            _ => false,
        }
    }
}

pub type Result<T, E = WorkloadError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// cudarc's out-of-memory error reaches us as candle error text.
    #[test]
    fn cuda_out_of_memory_is_a_device_oom() {
        let oom = WorkloadError::candle("cuda", "matmul")(candle_core::Error::Msg(
            "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")".into(),
        ));
        assert!(oom.is_device_oom());
        let other = WorkloadError::candle("cuda", "matmul")(candle_core::Error::Msg(
            "DriverError(CUDA_ERROR_INVALID_VALUE, \"invalid argument\")".into(),
        ));
        assert!(!other.is_device_oom());
        let capped = WorkloadError::DeviceMemCap {
            backend: "metal".into(),
            peak_bytes: 2,
            cap_bytes: 1,
        };
        assert!(capped.is_device_oom());
    }
}

/// An error's text without the backtrace candle appends when
/// `RUST_BACKTRACE` is set (its `WithBacktrace` errors print the frames
/// after the message): messages for users and case records carry the
/// message only; backtraces belong to internal failures (panics).
pub fn without_backtrace(e: &impl std::fmt::Display) -> String {
    let text = e.to_string();
    let mut kept: Vec<&str> = vec![];
    for line in text.lines() {
        let t = line.trim_start();
        let frame = line.len() > t.len()
            && t.split_once(": ")
                .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if frame || t == "stack backtrace:" {
            break;
        }
        kept.push(line);
    }
    kept.join("\n").trim_end().to_string()
}

#[cfg(test)]
mod backtrace_tests {
    #[test]
    fn candle_backtraces_stay_out_of_messages() {
        let e = candle_core::Error::Msg("gguf: bad header".into());
        let with = candle_core::Error::WithBacktrace {
            inner: Box::new(e),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        assert!(with.to_string().lines().count() > 1);
        assert_eq!(super::without_backtrace(&with), "gguf: bad header");
        assert_eq!(super::without_backtrace(&"a\nb: c"), "a\nb: c");
    }
}
