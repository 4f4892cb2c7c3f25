//! The `Backend` type: every backend exists in every build; one that was not
//! compiled in answers with an error naming the cargo feature to enable.

pub mod candle;
pub mod device_caps;
#[cfg(feature = "wgpu")]
pub mod wgpu;
#[cfg(not(feature = "wgpu"))]
#[path = "wgpu_stub.rs"]
pub mod wgpu;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    Cuda { ordinal: usize },
    Metal { ordinal: usize },
    Wgpu(WgpuSelector),
}

impl Backend {
    /// Parses `cpu`, `cuda`, `cuda:N`, `metal`, `metal:N`, `wgpu`,
    /// `wgpu:vulkan|metal|dx12|gl`, `wgpu:N`.
    pub fn parse(s: &str) -> Result<Backend> {
        let s = s.trim();
        let unknown = || WorkloadError::UnknownName {
            what: "backend",
            name: s.to_string(),
            hint: "expected cpu, cuda[:N], metal[:N], wgpu, wgpu:vulkan|metal|dx12|gl or wgpu:N"
                .to_string(),
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
            _ => Err(unknown()),
        }
    }

    /// Family name without the device selector: `cpu`, `cuda`, `metal`, `wgpu`.
    pub fn family(&self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Cuda { .. } => "cuda",
            Backend::Metal { .. } => "metal",
            Backend::Wgpu(_) => "wgpu",
        }
    }

    /// The cargo feature that builds this backend (none for cpu).
    pub fn feature(&self) -> Option<&'static str> {
        match self {
            Backend::Cpu => None,
            other => Some(other.family()),
        }
    }

    pub fn compiled_in(&self) -> bool {
        match self {
            Backend::Cpu => true,
            Backend::Cuda { .. } => cfg!(feature = "cuda"),
            Backend::Metal { .. } => cfg!(feature = "metal"),
            Backend::Wgpu(_) => cfg!(feature = "wgpu"),
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

    /// Whether candle runs this backend (as opposed to our WGSL engine).
    pub fn is_candle(&self) -> bool {
        !matches!(self, Backend::Wgpu(_))
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

/// Probes every backend family on this machine. Opens no model; for wgpu it
/// only enumerates adapters.
pub fn probe_all() -> Vec<BackendStatus> {
    let mut out = vec![candle::probe(Backend::Cpu)];
    out.push(candle::probe(Backend::Cuda { ordinal: 0 }));
    out.push(candle::probe(Backend::Metal { ordinal: 0 }));
    out.push(wgpu::probe());
    out
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
        ] {
            assert_eq!(Backend::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Backend::parse("cuda:0").unwrap().to_string(), "cuda");
        for bad in ["gpu", "cpu:1", "wgpu:opengl", "cuda:x", ""] {
            assert!(Backend::parse(bad).is_err(), "{bad}");
        }
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
