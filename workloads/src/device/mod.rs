//! Which device a case runs on, as the harness and the result file name it:
//! the `Backend` type (every backend exists in every build; one that was not
//! compiled in answers with an error naming the cargo feature to enable),
//! the device records, and the caps a case runs under (`caps`).

pub mod caps;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Result, WorkloadError};

/// A graphics API wgpu can be pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WgpuApi {
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

impl WgpuApi {
    pub fn as_str(self) -> &'static str {
        match self {
            WgpuApi::Vulkan => "vulkan",
            WgpuApi::Metal => "metal",
            WgpuApi::Dx12 => "dx12",
            WgpuApi::Gl => "gl",
        }
    }
}

/// Which wgpu adapter a case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WgpuSelector {
    /// The best non-GL adapter (discrete > integrated > virtual > CPU).
    /// GL is never picked implicitly: it is a different API with different
    /// limits, and wgpu would otherwise fall back to it silently.
    Best,
    /// Only adapters of this API; none means the case fails, never a fallback.
    Api(WgpuApi),
    /// The N-th adapter in `capbench list backends` order.
    Index(usize),
}

/// Where llama.cpp (the `llamacpp` engine backend) runs the model: on the
/// host CPU, or with every layer offloaded to one of its GPU backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlamaOffload {
    Cpu,
    Cuda,
    Vulkan,
    Metal,
}

impl LlamaOffload {
    pub fn as_str(self) -> &'static str {
        match self {
            LlamaOffload::Cpu => "cpu",
            LlamaOffload::Cuda => "cuda",
            LlamaOffload::Vulkan => "vulkan",
            LlamaOffload::Metal => "metal",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    Cuda {
        ordinal: usize,
    },
    Metal {
        ordinal: usize,
    },
    Wgpu(WgpuSelector),
    /// llama.cpp through the `llama-cpp-2` crate, inside the worker.
    LlamaCpp(LlamaOffload),
}

impl Backend {
    /// Parses `cpu`, `cuda`, `cuda:N`, `metal`, `metal:N`, `wgpu`,
    /// `wgpu:vulkan|metal|dx12|gl`, `wgpu:N`, `llamacpp`,
    /// `llamacpp:cuda|vulkan|metal`.
    pub fn parse(s: &str) -> Result<Backend> {
        let s = s.trim();
        let unknown = || {
            WorkloadError::UnknownName {
            what: "backend",
            name: s.to_string(),
            hint: "expected cpu, cuda[:N], metal[:N], wgpu, wgpu:vulkan|metal|dx12|gl, wgpu:N, llamacpp or llamacpp:cuda|vulkan|metal"
                .to_string(),
        }
        };
        let (head, tail) = match s.split_once(':') {
            Some((h, t)) => (h, Some(t)),
            None => (s, None),
        };
        let ordinal = |t: Option<&str>| -> Result<usize> {
            match t {
                None => Ok(0),
                Some(t) => t.parse().map_err(|_| unknown()),
            }
        };
        match head {
            "cpu" if tail.is_none() => Ok(Backend::Cpu),
            "cuda" => Ok(Backend::Cuda {
                ordinal: ordinal(tail)?,
            }),
            "metal" => Ok(Backend::Metal {
                ordinal: ordinal(tail)?,
            }),
            "wgpu" => Ok(Backend::Wgpu(match tail {
                None => WgpuSelector::Best,
                Some("vulkan") => WgpuSelector::Api(WgpuApi::Vulkan),
                Some("metal") => WgpuSelector::Api(WgpuApi::Metal),
                Some("dx12") => WgpuSelector::Api(WgpuApi::Dx12),
                Some("gl") => WgpuSelector::Api(WgpuApi::Gl),
                Some(n) => WgpuSelector::Index(n.parse().map_err(|_| unknown())?),
            })),
            "llamacpp" => Ok(Backend::LlamaCpp(match tail {
                None => LlamaOffload::Cpu,
                Some("cuda") => LlamaOffload::Cuda,
                Some("vulkan") => LlamaOffload::Vulkan,
                Some("metal") => LlamaOffload::Metal,
                Some(_) => return Err(unknown()),
            })),
            _ => Err(unknown()),
        }
    }

    /// Family name without the device selector: `cpu`, `cuda`, `metal`,
    /// `wgpu`, `llamacpp`.
    pub fn family(&self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Cuda { .. } => "cuda",
            Backend::Metal { .. } => "metal",
            Backend::Wgpu(_) => "wgpu",
            Backend::LlamaCpp(_) => "llamacpp",
        }
    }

    /// The cargo feature that builds this backend (none for cpu).
    pub fn feature(&self) -> Option<&'static str> {
        match self {
            Backend::Cpu => None,
            Backend::LlamaCpp(LlamaOffload::Cpu) => Some("llamacpp"),
            Backend::LlamaCpp(LlamaOffload::Cuda) => Some("llamacpp-cuda"),
            Backend::LlamaCpp(LlamaOffload::Vulkan) => Some("llamacpp-vulkan"),
            Backend::LlamaCpp(LlamaOffload::Metal) => Some("llamacpp-metal"),
            other => Some(other.family()),
        }
    }

    pub fn compiled_in(&self) -> bool {
        match self {
            Backend::Cpu => true,
            Backend::Cuda { .. } => cfg!(feature = "cuda"),
            // candle's Metal device exists on macOS only.
            Backend::Metal { .. } => cfg!(all(feature = "metal", target_os = "macos")),
            Backend::Wgpu(_) => cfg!(feature = "wgpu"),
            Backend::LlamaCpp(LlamaOffload::Cpu) => cfg!(feature = "llamacpp"),
            Backend::LlamaCpp(LlamaOffload::Cuda) => cfg!(feature = "llamacpp-cuda"),
            Backend::LlamaCpp(LlamaOffload::Vulkan) => cfg!(feature = "llamacpp-vulkan"),
            Backend::LlamaCpp(LlamaOffload::Metal) => cfg!(feature = "llamacpp-metal"),
        }
    }

    /// `Ok` when compiled in; otherwise the "rebuild with --features" error.
    pub fn ensure_compiled(&self) -> Result<()> {
        if self.compiled_in() {
            return Ok(());
        }
        Err(WorkloadError::NotCompiled {
            backend: self.family().to_string(),
            feature: self.feature().unwrap_or_default().to_string(),
        })
    }

    /// Whether candle runs this backend (as opposed to our WGSL engine or
    /// llama.cpp).
    pub fn is_candle(&self) -> bool {
        !matches!(self, Backend::Wgpu(_) | Backend::LlamaCpp(_))
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Cpu => write!(f, "cpu"),
            Backend::Cuda { ordinal: 0 } => write!(f, "cuda"),
            Backend::Cuda { ordinal } => write!(f, "cuda:{ordinal}"),
            Backend::Metal { ordinal: 0 } => write!(f, "metal"),
            Backend::Metal { ordinal } => write!(f, "metal:{ordinal}"),
            Backend::Wgpu(WgpuSelector::Best) => write!(f, "wgpu"),
            Backend::Wgpu(WgpuSelector::Api(api)) => write!(f, "wgpu:{}", api.as_str()),
            Backend::Wgpu(WgpuSelector::Index(i)) => write!(f, "wgpu:{i}"),
            Backend::LlamaCpp(LlamaOffload::Cpu) => write!(f, "llamacpp"),
            Backend::LlamaCpp(o) => write!(f, "llamacpp:{}", o.as_str()),
        }
    }
}

/// One device as the result file records it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub backend: String,
    pub name: String,
    /// Graphics/compute API (`vulkan`, `gl`, `cuda`, …) or `host`.
    pub api: String,
    /// `cpu`, `discrete_gpu`, `integrated_gpu`, `virtual_gpu`, `other`.
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    /// Position in `capbench list backends` (wgpu adapters).
    pub index: Option<usize>,
    /// Selected limits and features, as `name=value` strings.
    pub details: Vec<String>,
}

/// Device memory of a GPU case: what the device had, the cap, the peak, and
/// how each was obtained (the mechanisms differ per backend).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceMemoryRecord {
    /// Device memory in all (Metal: the recommended working-set size).
    pub total_bytes: Option<u64>,
    /// Free when this process opened the device, before any cap.
    pub free_at_open_bytes: Option<u64>,
    /// `--device-mem-cap`, when one applied.
    pub cap_bytes: Option<u64>,
    /// How the cap was enforced.
    pub cap_mechanism: Option<String>,
    /// True where the cap could only be checked against the peak after the
    /// run (no allocation limit to set): a case over it is `oom` all the same.
    #[serde(default)]
    pub cap_checked_after_run: bool,
    /// Peak bytes in use by the case's device allocations.
    pub peak_bytes: Option<u64>,
    /// How `peak_bytes` was measured.
    pub peak_method: String,
    /// Held by this process at the end beyond what was free at open (less
    /// the cap's own ballast): live tensors, library workspaces, kernels.
    pub in_use_at_end_bytes: Option<u64>,
}

impl DeviceMemoryRecord {
    /// A cap that could only be checked afterwards, and was exceeded.
    pub fn over_checked_cap(&self) -> Option<(u64, u64)> {
        match (self.cap_checked_after_run, self.cap_bytes, self.peak_bytes) {
            (true, Some(cap), Some(peak)) if peak > cap => Some((peak, cap)),
            _ => None,
        }
    }
}

/// What `capbench list backends` says about one backend family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendStatus {
    pub backend: String,
    pub compiled_in: bool,
    pub usable: bool,
    /// Why not usable, or the rebuild hint when not compiled in.
    pub note: String,
    pub devices: Vec<DeviceRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_every_form() {
        for s in [
            "cpu",
            "cuda",
            "cuda:1",
            "metal",
            "wgpu",
            "wgpu:vulkan",
            "wgpu:gl",
            "wgpu:2",
            "llamacpp",
            "llamacpp:cuda",
            "llamacpp:vulkan",
            "llamacpp:metal",
        ] {
            assert_eq!(Backend::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Backend::parse("cuda:0").unwrap().to_string(), "cuda");
        for bad in ["gpu", "cpu:1", "wgpu:opengl", "cuda:x", "llamacpp:rocm", ""] {
            assert!(Backend::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_cap_checked_afterwards_is_judged_on_the_peak() {
        let mut m = DeviceMemoryRecord {
            cap_bytes: Some(100),
            peak_bytes: Some(150),
            ..Default::default()
        };
        // A ballast (cuda) enforces the cap itself: nothing to judge after.
        assert_eq!(m.over_checked_cap(), None);
        m.cap_checked_after_run = true;
        assert_eq!(m.over_checked_cap(), Some((150, 100)));
        m.peak_bytes = Some(100);
        assert_eq!(m.over_checked_cap(), None);
    }

    #[test]
    fn not_compiled_backend_names_the_feature() {
        let cuda = Backend::Cuda { ordinal: 0 };
        if !cuda.compiled_in() {
            let e = cuda.ensure_compiled().unwrap_err().to_string();
            assert_eq!(
                e,
                "capbench was built without cuda support; rebuild with --features cuda"
            );
        }
        assert!(Backend::Cpu.ensure_compiled().is_ok());
    }
}
