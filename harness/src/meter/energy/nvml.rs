//! NVIDIA GPUs through NVML: the total-energy counter (mJ since driver load,
//! Volta and newer, docs/reference/hardware.md §3 [E7]) when the device has it, else power
//! readings (mW) polled on a thread and integrated — labelled `polled`, with
//! the polling interval recorded. The device sits behind a trait so tests use
//! a fake; the real one needs the `nvml` cargo feature.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{EnergyError, EnergyMeter, EnergySource, Interval};

/// What the meter needs from one GPU.
pub trait GpuEnergyDevice: Send + Sync {
    fn name(&self) -> String;
    /// Millijoules since driver load; `Ok(None)` where the GPU has no counter
    /// (before Volta).
    fn total_energy_mj(&self) -> Result<Option<u64>, EnergyError>;
    /// Current power draw, milliwatts.
    fn power_mw(&self) -> Result<u32, EnergyError>;
}

/// Power polling interval: the NVML energy counter itself updates every
/// 20–100 ms (hardware.md §3 [E9]); polling faster than that on the power
/// reading mostly re-reads the same value, and Ampere+ averages over 1 s [E7b].
pub const POLL_INTERVAL_S: f64 = 0.02;

enum Mode {
    Counter { start: Option<(Instant, u64)> },
    Polled { poller: Option<Poller> },
}

pub struct NvmlMeter {
    device: Arc<dyn GpuEnergyDevice>,
    index: usize,
    mode: Mode,
}

impl NvmlMeter {
    /// Chooses counter or polling by asking the device once.
    pub fn new(device: Box<dyn GpuEnergyDevice>, index: usize) -> Result<Self, EnergyError> {
        let device: Arc<dyn GpuEnergyDevice> = Arc::from(device);
        let mode = match device.total_energy_mj()? {
            Some(_) => Mode::Counter { start: None },
            None => {
                device.power_mw()?;
                Mode::Polled { poller: None }
            }
        };
        Ok(NvmlMeter {
            device,
            index,
            mode,
        })
    }
}

/// Trapezoidal integral of (time s, power W) readings, joules.
pub fn integrate_trapezoid(readings: &[(f64, f64)]) -> f64 {
    readings
        .windows(2)
        .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
        .sum()
}

struct Poller {
    t0: Instant,
    stop: Arc<AtomicBool>,
    readings: Arc<Mutex<Vec<(f64, f64)>>>,
    handle: JoinHandle<Option<EnergyError>>,
}

impl Poller {
    fn spawn(device: Arc<dyn GpuEnergyDevice>) -> Result<Poller, EnergyError> {
        let t0 = Instant::now();
        let first = device.power_mw()? as f64 * 1e-3;
        let readings = Arc::new(Mutex::new(vec![(0.0, first)]));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (readings.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_secs_f64(POLL_INTERVAL_S));
                match device.power_mw() {
                    Ok(mw) => {
                        let t = t0.elapsed().as_secs_f64();
                        if let Ok(mut v) = r.lock() {
                            v.push((t, mw as f64 * 1e-3));
                        }
                    }
                    Err(e) => return Some(e),
                }
            }
            None
        });
        Ok(Poller {
            t0,
            stop,
            readings,
            handle,
        })
    }

    /// Stops polling and closes the interval with a last reading at `now`.
    fn finish(self, device: &dyn GpuEnergyDevice) -> Result<Interval, EnergyError> {
        self.stop.store(true, Ordering::Relaxed);
        let last = device.power_mw();
        let wall_s = self.t0.elapsed().as_secs_f64();
        if let Some(e) = self.handle.join().ok().flatten() {
            return Err(e);
        }
        let mut v = self.readings.lock().map(|v| v.clone()).unwrap_or_default();
        v.retain(|(t, _)| *t <= wall_s);
        v.push((wall_s, last? as f64 * 1e-3));
        let energy_j = integrate_trapezoid(&v);
        Ok(Interval {
            energy_j,
            wall_s,
            readings: v.len() as u64,
            per_domain_j: Default::default(),
            model_inputs: None,
        })
    }
}

impl EnergyMeter for NvmlMeter {
    fn name(&self) -> &'static str {
        "nvml"
    }
    fn source(&self) -> EnergySource {
        match self.mode {
            Mode::Counter { .. } => EnergySource::Measured,
            Mode::Polled { .. } => EnergySource::Polled,
        }
    }
    fn domains(&self) -> Vec<String> {
        vec![format!("gpu:{} ({})", self.index, self.device.name())]
    }
    fn resolution_j(&self) -> Option<f64> {
        match self.mode {
            Mode::Counter { .. } => Some(1e-3),
            // A power reading is 1 mW; over one interval that is 1 mW × interval.
            Mode::Polled { .. } => Some(1e-3 * POLL_INTERVAL_S),
        }
    }
    fn sample_interval_s(&self) -> Option<f64> {
        matches!(self.mode, Mode::Polled { .. }).then_some(POLL_INTERVAL_S)
    }
    fn start(&mut self) -> Result<(), EnergyError> {
        match &mut self.mode {
            Mode::Counter { start } => {
                let mj = self.device.total_energy_mj()?.ok_or(EnergyError::Device {
                    source_name: "nvml",
                    message: "energy counter disappeared".into(),
                })?;
                *start = Some((Instant::now(), mj));
            }
            Mode::Polled { poller } => *poller = Some(Poller::spawn(self.device.clone())?),
        }
        Ok(())
    }
    fn stop(&mut self) -> Result<Interval, EnergyError> {
        let domain = self.domains().remove(0);
        let mut i = match &mut self.mode {
            Mode::Counter { start } => {
                let end = self.device.total_energy_mj()?;
                let (t0, s) = start.take().ok_or(EnergyError::NotStarted)?;
                let end = end.ok_or(EnergyError::Device {
                    source_name: "nvml",
                    message: "energy counter disappeared".into(),
                })?;
                Interval {
                    // The counter only counts up since driver load.
                    energy_j: end.saturating_sub(s) as f64 * 1e-3,
                    wall_s: t0.elapsed().as_secs_f64(),
                    readings: 2,
                    per_domain_j: Default::default(),
                    model_inputs: None,
                }
            }
            Mode::Polled { poller } => poller
                .take()
                .ok_or(EnergyError::NotStarted)?
                .finish(self.device.as_ref())?,
        };
        i.per_domain_j.insert(domain, i.energy_j);
        Ok(i)
    }
}

/// Opens NVML device `index` (CUDA index; see `Target::CudaGpu`).
#[cfg(feature = "nvml")]
pub fn open_system_device(index: usize) -> Result<Box<dyn GpuEnergyDevice>, EnergyError> {
    real::open(index)
}

#[cfg(not(feature = "nvml"))]
pub fn open_system_device(_index: usize) -> Result<Box<dyn GpuEnergyDevice>, EnergyError> {
    Err(EnergyError::absent(
        "capbench was built without NVML support; rebuild with --features nvml",
    ))
}

#[cfg(feature = "nvml")]
mod real {
    use nvml_wrapper::Nvml;
    use nvml_wrapper::error::NvmlError;

    use super::{EnergyError, GpuEnergyDevice};

    fn err(e: NvmlError) -> EnergyError {
        match e {
            NvmlError::NoPermission => EnergyError::PermissionDenied {
                path: "NVML".into(),
            },
            NvmlError::LibloadingError(e) => {
                EnergyError::absent(format!("no NVIDIA driver (libnvidia-ml not loadable: {e})"))
            }
            e => EnergyError::Device {
                source_name: "nvml",
                message: e.to_string(),
            },
        }
    }

    /// Holds NVML initialised for as long as the device is used.
    struct RealDevice {
        nvml: Nvml,
        index: u32,
    }

    pub fn open(index: usize) -> Result<Box<dyn GpuEnergyDevice>, EnergyError> {
        let nvml = Nvml::init().map_err(err)?;
        let index = u32::try_from(index)
            .map_err(|_| EnergyError::absent(format!("no NVML device {index}")))?;
        nvml.device_by_index(index).map_err(err)?;
        Ok(Box::new(RealDevice { nvml, index }))
    }

    impl GpuEnergyDevice for RealDevice {
        fn name(&self) -> String {
            self.nvml
                .device_by_index(self.index)
                .and_then(|d| d.name())
                .unwrap_or_else(|_| format!("nvml device {}", self.index))
        }
        fn total_energy_mj(&self) -> Result<Option<u64>, EnergyError> {
            let d = self.nvml.device_by_index(self.index).map_err(err)?;
            match d.total_energy_consumption() {
                Ok(mj) => Ok(Some(mj)),
                Err(NvmlError::NotSupported) => Ok(None),
                Err(e) => Err(err(e)),
            }
        }
        fn power_mw(&self) -> Result<u32, EnergyError> {
            let d = self.nvml.device_by_index(self.index).map_err(err)?;
            d.power_usage().map_err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// A GPU drawing a constant power: with a counter it ticks 1 mJ per ms,
    /// without one only the power reading exists.
    struct Fake {
        watts: u32,
        counter: Option<Arc<AtomicU64>>,
        fail_power: bool,
    }

    impl GpuEnergyDevice for Fake {
        fn name(&self) -> String {
            "Fake GPU".into()
        }
        fn total_energy_mj(&self) -> Result<Option<u64>, EnergyError> {
            Ok(self.counter.as_ref().map(|c| c.load(Ordering::SeqCst)))
        }
        fn power_mw(&self) -> Result<u32, EnergyError> {
            if self.fail_power {
                return Err(EnergyError::Device {
                    source_name: "nvml",
                    message: "GPU is lost".into(),
                });
            }
            Ok(self.watts * 1000)
        }
    }

    #[test]
    fn counter_gpu_is_measured_from_the_counter() {
        let c = Arc::new(AtomicU64::new(5_000));
        let dev = Fake {
            watts: 0,
            counter: Some(c.clone()),
            fail_power: false,
        };
        let mut m = NvmlMeter::new(Box::new(dev), 0).unwrap();
        assert_eq!(m.source(), EnergySource::Measured);
        assert_eq!(m.sample_interval_s(), None);
        m.start().unwrap();
        c.store(12_500, Ordering::SeqCst);
        let i = m.stop().unwrap();
        assert!((i.energy_j - 7.5).abs() < 1e-12);
        assert_eq!(i.per_domain_j["gpu:0 (Fake GPU)"], i.energy_j);
    }

    #[test]
    fn gpu_without_counter_is_polled_and_integrated() {
        let dev = Fake {
            watts: 100,
            counter: None,
            fail_power: false,
        };
        let mut m = NvmlMeter::new(Box::new(dev), 1).unwrap();
        assert_eq!(m.source(), EnergySource::Polled);
        assert_eq!(m.sample_interval_s(), Some(POLL_INTERVAL_S));
        m.start().unwrap();
        std::thread::sleep(Duration::from_millis(120));
        let i = m.stop().unwrap();
        // Constant 100 W: the integral is exactly 100 W × the interval.
        assert!((i.energy_j - 100.0 * i.wall_s).abs() < 1e-9, "{i:?}");
        assert!(i.readings >= 3, "polled during the interval: {i:?}");
    }

    #[test]
    fn failing_device_is_an_error_not_zero() {
        let dev = Fake {
            watts: 1,
            counter: None,
            fail_power: true,
        };
        let err = NvmlMeter::new(Box::new(dev), 0).err().unwrap();
        assert!(err.to_string().contains("GPU is lost"), "{err}");
    }

    #[test]
    fn trapezoid_on_known_readings() {
        assert_eq!(integrate_trapezoid(&[(0.0, 10.0)]), 0.0);
        assert!(
            (integrate_trapezoid(&[(0.0, 0.0), (1.0, 10.0), (3.0, 10.0)]) - 25.0).abs() < 1e-12
        );
    }

    #[cfg(not(feature = "nvml"))]
    #[test]
    fn without_the_feature_nvml_says_how_to_get_it() {
        let err = open_system_device(0).err().unwrap();
        assert!(err.to_string().contains("--features nvml"));
    }
}
