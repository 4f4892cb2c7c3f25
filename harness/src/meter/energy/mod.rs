//! Energy of a case: one `EnergyMeter` per source (RAPL, NVML, IOReport, the
//! CPU-time model), tried in order of preference, each figure labelled with
//! where it came from. The analytic (Horowitz) estimate is separate: it is a
//! projection, never a measurement.

pub mod analytic;
pub mod ioreport;
pub mod model;
pub mod nvml;
pub mod rapl;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Where an energy figure came from, best first. Figures of different kinds
/// are never summed or compared without this label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnergySource {
    /// A hardware energy counter (RAPL `energy_uj`, NVML total energy).
    Measured,
    /// Power readings integrated over time (NVML power on pre-Volta GPUs).
    Polled,
    /// CPU time × an assumed power per core: an estimate, not a measurement.
    Modelled,
    /// FLOPs and bytes × energy per operation: a projection.
    Analytic,
}

impl EnergySource {
    pub fn as_str(self) -> &'static str {
        match self {
            EnergySource::Measured => "measured",
            EnergySource::Polled => "polled",
            EnergySource::Modelled => "modelled",
            EnergySource::Analytic => "analytic",
        }
    }
}

#[derive(Debug, Error)]
pub enum EnergyError {
    /// The source does not exist here (no driver, wrong OS, not compiled in).
    #[error("{reason}")]
    Absent { reason: String },
    /// The source exists but this process may not read it.
    #[error("permission denied: {path} (see docs/energy.md for a udev rule)")]
    PermissionDenied { path: String },
    #[error("read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot parse {text:?} as an integer")]
    Parse { path: String, text: String },
    /// A device query failed (NVML error, device lost).
    #[error("{source_name}: {message}")]
    Device {
        source_name: &'static str,
        message: String,
    },
    #[error("stop() called before start()")]
    NotStarted,
}

impl EnergyError {
    pub fn absent(reason: impl Into<String>) -> Self {
        EnergyError::Absent {
            reason: reason.into(),
        }
    }

    /// Maps an I/O error on `path`, keeping permission errors distinct: they
    /// are the common case for RAPL since CVE-2020-8694.
    pub fn from_io(path: &std::path::Path, e: std::io::Error) -> Self {
        let path = path.display().to_string();
        match e.kind() {
            std::io::ErrorKind::PermissionDenied => EnergyError::PermissionDenied { path },
            _ => EnergyError::Io { path, source: e },
        }
    }
}

/// Energy over one start → stop interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub energy_j: f64,
    pub wall_s: f64,
    /// Counter or power reads that went into `energy_j`.
    pub readings: u64,
    /// Energy of each domain (e.g. `package-0`, `dram`), joules.
    pub per_domain_j: BTreeMap<String, f64>,
    /// Inputs of the model, for `modelled` intervals.
    pub model_inputs: Option<model::CpuModelInputs>,
}

/// One energy source. `start` and `stop` bracket the work; a meter may poll
/// in between (NVML power) or read counters only at the ends.
pub trait EnergyMeter {
    /// Short name recorded with every figure: `rapl`, `nvml`, `cpu_time_model`.
    fn name(&self) -> &'static str;
    fn source(&self) -> EnergySource;
    /// What the figure covers, e.g. `package-0`, `dram`, `gpu:0`.
    fn domains(&self) -> Vec<String>;
    /// Smallest energy step the source can show, joules (counter unit).
    fn resolution_j(&self) -> Option<f64>;
    /// Interval between power readings, for `polled` sources.
    fn sample_interval_s(&self) -> Option<f64> {
        None
    }
    fn start(&mut self) -> Result<(), EnergyError>;
    fn stop(&mut self) -> Result<Interval, EnergyError>;
}

/// One source considered for a case (or for `capbench list energy`): used,
/// or why not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceAttempt {
    /// `rapl`, `nvml`, `ioreport`, `gpu_tdp_model`, `cpu_time_model`, `analytic`.
    pub name: String,
    pub kind: EnergySource,
    pub available: bool,
    /// `used`, `available`, `not needed: …`, or `unavailable: <why>`.
    pub status: String,
}

impl SourceAttempt {
    pub fn unavailable(name: &str, kind: EnergySource, why: impl std::fmt::Display) -> Self {
        SourceAttempt {
            name: name.into(),
            kind,
            available: false,
            status: format!("unavailable: {why}"),
        }
    }
}

/// The kind of device a case runs on, which decides the sources tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The host CPU (cpu backend, or wgpu on a software driver like lavapipe).
    Cpu,
    /// An NVIDIA GPU by CUDA index (NVML index assumed equal: set
    /// `CUDA_DEVICE_ORDER=PCI_BUS_ID` so the two orders agree).
    CudaGpu(usize),
    /// Any other GPU (Metal, wgpu on hardware): no counter wired up yet.
    OtherGpu(String),
}

impl Target {
    /// From the backend name and the device the workload reported.
    pub fn of(backend: &str, device_type: Option<&str>) -> Target {
        let (family, index) = backend.split_once(':').unwrap_or((backend, ""));
        match family {
            "cpu" => Target::Cpu,
            "cuda" => Target::CudaGpu(index.parse().unwrap_or(0)),
            _ if device_type == Some("cpu") => Target::Cpu,
            _ => Target::OtherGpu(backend.to_string()),
        }
    }

    fn is_gpu(&self) -> bool {
        !matches!(self, Target::Cpu)
    }
}

/// Opens the energy device of a GPU by index.
pub type OpenGpu = dyn Fn(usize) -> Result<Box<dyn nvml::GpuEnergyDevice>, EnergyError>;

/// Where to look for each source; tests point these at fakes.
pub struct Probe {
    pub rapl_root: PathBuf,
    pub rapl_fs: std::sync::Arc<dyn rapl::SysfsRead>,
    /// Opens the NVML device for a CUDA index.
    pub open_nvml: Box<OpenGpu>,
    pub cpu_model: model::CpuPowerAssumption,
    /// Cores the worker keeps busy or idle-but-reserved (its thread count).
    pub cores_held: usize,
}

impl Probe {
    /// The real machine: `/sys/class/powercap`, NVML if compiled in, and the
    /// CPU power assumption from the environment.
    pub fn system(cores_held: usize) -> Probe {
        Probe {
            rapl_root: PathBuf::from(rapl::POWERCAP_ROOT),
            rapl_fs: std::sync::Arc::new(rapl::RealFs),
            open_nvml: Box::new(nvml::open_system_device),
            cpu_model: model::CpuPowerAssumption::from_env(),
            cores_held,
        }
    }

    /// Tries each source for `target` in order of preference. Returns the
    /// first meter that works (ready to `start`) and every source considered,
    /// with the reason each was skipped.
    pub fn choose(&self, target: &Target) -> (Option<Box<dyn EnergyMeter>>, Vec<SourceAttempt>) {
        let mut tried = vec![];
        let mut chosen: Option<Box<dyn EnergyMeter>> = None;
        let mut offer = |name: &str,
                         kind: EnergySource,
                         r: Result<Box<dyn EnergyMeter>, EnergyError>,
                         tried: &mut Vec<SourceAttempt>| match r {
            Ok(m) if chosen.is_none() => {
                tried.push(SourceAttempt {
                    name: name.into(),
                    kind: m.source(),
                    available: true,
                    status: "used".into(),
                });
                chosen = Some(m);
            }
            Ok(_) => tried.push(SourceAttempt {
                name: name.into(),
                kind,
                available: true,
                status: "available, not needed: a better source is used".into(),
            }),
            Err(e) => tried.push(SourceAttempt::unavailable(name, kind, e)),
        };
        let host_only = if target.is_gpu() {
            " (host CPU only; the GPU is not covered)"
        } else {
            ""
        };
        // GPU sources first for GPU cases: they cover the device doing the work.
        match target {
            Target::CudaGpu(i) => {
                let r = (self.open_nvml)(*i).and_then(|d| {
                    nvml::NvmlMeter::new(d, *i).map(|m| Box::new(m) as Box<dyn EnergyMeter>)
                });
                offer("nvml", EnergySource::Measured, r, &mut tried);
            }
            Target::OtherGpu(b) => tried.push(SourceAttempt::unavailable(
                "nvml",
                EnergySource::Measured,
                format!("NVML is used for cuda backends only, not {b}"),
            )),
            Target::Cpu => {}
        }
        if target.is_gpu() {
            let r: Result<Box<dyn EnergyMeter>, _> = Err(ioreport::unavailable());
            offer("ioreport", EnergySource::Measured, r, &mut tried);
            tried.push(SourceAttempt::unavailable(
                "gpu_tdp_model",
                EnergySource::Modelled,
                "not implemented: no energy model uses a profile's GPU TDP yet",
            ));
        }
        let r = rapl::RaplMeter::discover(&self.rapl_root, self.rapl_fs.clone())
            .map(|m| Box::new(m) as Box<dyn EnergyMeter>);
        offer("rapl", EnergySource::Measured, r, &mut tried);
        let r = model::CpuTimeMeter::new(self.cpu_model.clone(), self.cores_held)
            .map(|m| Box::new(m) as Box<dyn EnergyMeter>);
        offer("cpu_time_model", EnergySource::Modelled, r, &mut tried);
        for t in tried.iter_mut().filter(|t| t.available) {
            if t.name == "rapl" || t.name == "cpu_time_model" {
                t.status.push_str(host_only);
            }
        }
        (chosen, tried)
    }

    /// Every source and whether it could be used here, for `capbench list
    /// energy` and the environment fingerprint.
    pub fn survey(&self) -> Vec<SourceAttempt> {
        let mut all = vec![];
        let avail = |name: &str, kind, r: Result<Box<dyn EnergyMeter>, EnergyError>| match r {
            Ok(m) => SourceAttempt {
                name: name.into(),
                kind: m.source(),
                available: true,
                status: format!("available: {}", m.domains().join(", ")),
            },
            Err(e) => SourceAttempt::unavailable(name, kind, e),
        };
        all.push(avail(
            "rapl",
            EnergySource::Measured,
            rapl::RaplMeter::discover(&self.rapl_root, self.rapl_fs.clone())
                .map(|m| Box::new(m) as Box<dyn EnergyMeter>),
        ));
        all.push(avail(
            "nvml",
            EnergySource::Measured,
            (self.open_nvml)(0).and_then(|d| {
                nvml::NvmlMeter::new(d, 0).map(|m| Box::new(m) as Box<dyn EnergyMeter>)
            }),
        ));
        all.push(avail(
            "ioreport",
            EnergySource::Measured,
            Err(ioreport::unavailable()),
        ));
        all.push(SourceAttempt::unavailable(
            "gpu_tdp_model",
            EnergySource::Modelled,
            "not implemented: no energy model uses a profile's GPU TDP yet",
        ));
        all.push(avail(
            "cpu_time_model",
            EnergySource::Modelled,
            model::CpuTimeMeter::new(self.cpu_model.clone(), self.cores_held)
                .map(|m| Box::new(m) as Box<dyn EnergyMeter>),
        ));
        if let Some(m) = all.last_mut().filter(|m| m.available) {
            m.status = format!("available: {}", self.cpu_model.describe());
        }
        all.push(SourceAttempt {
            name: "analytic".into(),
            kind: EnergySource::Analytic,
            available: true,
            status: "available: FLOPs and bytes × Horowitz ISSCC 2014 (45 nm) energies; a projection beside the case's figure".into(),
        });
        all
    }
}

/// Idle power measured just before the timed loop, with the same meter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleBaseline {
    pub wall_s: f64,
    pub energy_j: f64,
    pub power_w: f64,
}

/// What one worker process records about energy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerEnergy {
    /// Every source considered, in order, with why it was or was not used.
    pub sources_tried: Vec<SourceAttempt>,
    /// The timed sampling loop, when some source worked.
    pub measurement: Option<EnergyMeasurement>,
    /// Why there is no measurement (all sources failed, or a read failed).
    pub failure: Option<String>,
}

/// Energy over the timed sampling loop of one process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyMeasurement {
    pub source: EnergySource,
    pub meter: String,
    pub domains: Vec<String>,
    pub resolution_j: Option<f64>,
    pub sample_interval_s: Option<f64>,
    /// Energy of the timed loop, idle baseline included (what the meter saw).
    pub energy_j: f64,
    pub wall_s: f64,
    /// Timed iterations inside the interval.
    pub iters: usize,
    pub readings: u64,
    pub per_domain_j: BTreeMap<String, f64>,
    /// For measured and polled sources: idle power before the loop.
    pub idle_baseline: Option<IdleBaseline>,
    /// `energy_j` minus baseline power × `wall_s` (measured/polled only).
    pub energy_above_idle_j: Option<f64>,
    pub model_inputs: Option<model::CpuModelInputs>,
}

/// How long the idle baseline of a measured source lasts: long enough for
/// several RAPL updates (~1 ms) and a few NVML counter updates (20–100 ms,
/// hardware.md §3 [E9]), short enough not to dominate small cases.
pub const IDLE_BASELINE_S: f64 = 0.2;

/// Runs the idle baseline (measured and polled sources only) and starts the
/// meter; the caller runs the work and then calls [`finish`].
pub fn begin(meter: &mut dyn EnergyMeter) -> Result<Option<IdleBaseline>, EnergyError> {
    let baseline = if meter.source() <= EnergySource::Polled {
        meter.start()?;
        std::thread::sleep(std::time::Duration::from_secs_f64(IDLE_BASELINE_S));
        let i = meter.stop()?;
        Some(IdleBaseline {
            wall_s: i.wall_s,
            energy_j: i.energy_j,
            power_w: if i.wall_s > 0.0 {
                i.energy_j / i.wall_s
            } else {
                0.0
            },
        })
    } else {
        None
    };
    meter.start()?;
    Ok(baseline)
}

/// Stops the meter and labels the interval.
pub fn finish(
    meter: &mut dyn EnergyMeter,
    baseline: Option<IdleBaseline>,
    iters: usize,
) -> Result<EnergyMeasurement, EnergyError> {
    let i = meter.stop()?;
    let above = baseline.as_ref().map(|b| i.energy_j - b.power_w * i.wall_s);
    Ok(EnergyMeasurement {
        source: meter.source(),
        meter: meter.name().to_string(),
        domains: meter.domains(),
        resolution_j: meter.resolution_j(),
        sample_interval_s: meter.sample_interval_s(),
        energy_j: i.energy_j,
        wall_s: i.wall_s,
        iters,
        readings: i.readings,
        per_domain_j: i.per_domain_j,
        idle_baseline: baseline,
        energy_above_idle_j: above,
        model_inputs: i.model_inputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe_with(root: PathBuf) -> Probe {
        Probe {
            rapl_root: root,
            rapl_fs: std::sync::Arc::new(rapl::RealFs),
            open_nvml: Box::new(|_| Err(EnergyError::absent("no NVIDIA driver (test)"))),
            cpu_model: model::CpuPowerAssumption::default_assumption(),
            cores_held: 1,
        }
    }

    #[test]
    fn falls_back_to_the_model_visibly_when_rapl_is_absent() {
        let tmp = tempfile::tempdir().unwrap();
        let p = probe_with(tmp.path().join("missing"));
        let (m, tried) = p.choose(&Target::Cpu);
        assert_eq!(m.unwrap().source(), EnergySource::Modelled);
        let names: Vec<_> = tried.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["rapl", "cpu_time_model"]);
        assert!(tried[0].status.starts_with("unavailable: "), "{tried:?}");
        assert_eq!(tried[1].status, "used");
    }

    #[test]
    fn gpu_cases_say_the_cpu_model_covers_only_the_host() {
        let tmp = tempfile::tempdir().unwrap();
        let p = probe_with(tmp.path().to_path_buf());
        let (m, tried) = p.choose(&Target::CudaGpu(0));
        assert_eq!(m.unwrap().name(), "cpu_time_model");
        assert_eq!(tried[0].name, "nvml");
        assert_eq!(tried[0].status, "unavailable: no NVIDIA driver (test)");
        assert!(tried.last().unwrap().status.contains("GPU is not covered"));
    }

    #[test]
    fn target_follows_backend_and_device_type() {
        assert_eq!(Target::of("cpu", None), Target::Cpu);
        assert_eq!(Target::of("cuda:1", None), Target::CudaGpu(1));
        assert_eq!(Target::of("wgpu", Some("cpu")), Target::Cpu);
        assert!(matches!(
            Target::of("wgpu", Some("discrete_gpu")),
            Target::OtherGpu(_)
        ));
    }
}
