//! The CPU-time model, used where no counter can be read: the worker's CPU
//! time (user + sys, getrusage) × an assumed power per busy core, plus an
//! assumed idle draw of the cores it holds but leaves idle. An estimate: a
//! load × TDP model like this was −60 % to +190 % off RAPL in codecarbon's
//! comparison (docs/reference/hardware.md §3 [E6]), and the figure is labelled `modelled`.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{EnergyError, EnergyMeter, EnergySource, Interval};
use crate::meter::process_usage;

/// Per-core power when neither the environment nor the table below names the
/// CPU: the only CPU TDP in hardware.md §1, the Ryzen 7 7840U's 28 W over its
/// 8 cores [C2]. A stand-in of the right order for a modern x86 core, not a
/// datasheet value for whatever CPU runs the case.
pub const DEFAULT_TDP_PER_CORE_W: f64 = 28.0 / 8.0;
pub const DEFAULT_TDP_SOURCE: &str = "default: 3.5 W per core = Ryzen 7 7840U TDP 28 W / 8 cores (hardware.md §1 [C2]); not this CPU's datasheet — set CAPBENCH_CPU_TDP_W (and CAPBENCH_CPU_TDP_CORES) for this machine";

/// Fraction of per-core TDP a held-but-idle core draws. No source measures
/// this for us; 0.5 follows codecarbon's constant fallback of 50 % of TDP
/// (hardware.md §3 [E5]). Override with `CAPBENCH_CPU_IDLE_FRACTION`.
pub const DEFAULT_IDLE_FRACTION: f64 = 0.5;
pub const DEFAULT_IDLE_SOURCE: &str = "assumption: 0.5, after codecarbon's 50 %-of-TDP fallback (hardware.md §3 [E5]); not measured — set CAPBENCH_CPU_IDLE_FRACTION";

/// CPUs whose TDP a source in hardware.md gives: (substring of the model
/// name, TDP W, cores, source). Add a row only with a citation.
const KNOWN_CPUS: &[(&str, f64, usize, &str)] = &[(
    "Ryzen 7 7840U",
    28.0,
    8,
    "Ryzen 7 7840U: TDP 28 W, 8 cores (hardware.md §1 [C2])",
)];

/// The power figures the model uses, with where each came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuPowerAssumption {
    pub tdp_per_core_w: f64,
    pub tdp_source: String,
    pub idle_fraction: f64,
    pub idle_source: String,
}

impl CpuPowerAssumption {
    pub fn default_assumption() -> Self {
        CpuPowerAssumption {
            tdp_per_core_w: DEFAULT_TDP_PER_CORE_W,
            tdp_source: DEFAULT_TDP_SOURCE.into(),
            idle_fraction: DEFAULT_IDLE_FRACTION,
            idle_source: DEFAULT_IDLE_SOURCE.into(),
        }
    }

    /// `CAPBENCH_CPU_TDP_W` (package TDP) over `CAPBENCH_CPU_TDP_CORES`
    /// (default: physical cores visible here), else the known-CPU table, else
    /// the default. A bad value falls back to the default and says so in the
    /// source text rather than failing the case.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let cores_here = sysinfo::System::physical_core_count()
            .ok()
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1);
        let model = cpu_model_name();
        Self::resolve(
            var("CAPBENCH_CPU_TDP_W").as_deref(),
            var("CAPBENCH_CPU_TDP_CORES").as_deref(),
            var("CAPBENCH_CPU_IDLE_FRACTION").as_deref(),
            &model,
            cores_here,
        )
    }

    /// Pure part of [`from_env`], testable on known inputs.
    pub fn resolve(
        tdp_w: Option<&str>,
        tdp_cores: Option<&str>,
        idle_fraction: Option<&str>,
        cpu_model: &str,
        cores_here: usize,
    ) -> Self {
        let mut a = Self::default_assumption();
        if let Some((_, w, n, src)) = KNOWN_CPUS.iter().find(|k| cpu_model.contains(k.0)) {
            a.tdp_per_core_w = w / *n as f64;
            a.tdp_source = (*src).to_string();
        }
        if let Some(t) = tdp_w {
            let cores = match tdp_cores {
                Some(c) => c.trim().parse::<usize>().ok().filter(|c| *c > 0),
                None => Some(cores_here.max(1)),
            };
            match (
                t.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|w| *w > 0.0 && w.is_finite()),
                cores,
            ) {
                (Some(w), Some(n)) => {
                    a.tdp_per_core_w = w / n as f64;
                    a.tdp_source = format!(
                        "CAPBENCH_CPU_TDP_W={w} over {n} cores ({})",
                        if tdp_cores.is_some() {
                            "CAPBENCH_CPU_TDP_CORES"
                        } else {
                            "physical cores visible here; in a VM set CAPBENCH_CPU_TDP_CORES to the package's cores"
                        }
                    );
                }
                _ => {
                    a.tdp_source = format!(
                        "CAPBENCH_CPU_TDP_W={t:?} / CAPBENCH_CPU_TDP_CORES={tdp_cores:?} not usable (want positive numbers); {}",
                        a.tdp_source
                    )
                }
            }
        }
        if let Some(f) = idle_fraction {
            match f
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| (0.0..=1.0).contains(f))
            {
                Some(f) => {
                    a.idle_fraction = f;
                    a.idle_source = format!("CAPBENCH_CPU_IDLE_FRACTION={f}");
                }
                None => {
                    a.idle_source = format!(
                        "CAPBENCH_CPU_IDLE_FRACTION={f:?} not in [0, 1]; {}",
                        a.idle_source
                    )
                }
            }
        }
        a
    }

    /// One line for `capbench list energy`; the full sources go in results.
    pub fn describe(&self) -> String {
        let origin = |s: &str| -> String {
            if s.starts_with("default") || s.starts_with("assumption") {
                "assumed".into()
            } else {
                s.split(" (").next().unwrap_or(s).to_string()
            }
        };
        format!(
            "{:.2} W per busy core ({}), idle cores at {} of that ({}); override: CAPBENCH_CPU_TDP_W, CAPBENCH_CPU_TDP_CORES, CAPBENCH_CPU_IDLE_FRACTION",
            self.tdp_per_core_w,
            origin(&self.tdp_source),
            self.idle_fraction,
            origin(&self.idle_source)
        )
    }
}

fn cpu_model_name() -> String {
    let mut sys = match sysinfo::System::new() {
        Ok(s) => s,
        Err(_) => return String::new(),
    };
    sys.refresh_cpu_all();
    sys.cpus()
        .first()
        .map(|c| c.brand().trim().to_string())
        .unwrap_or_default()
}

/// Everything the model's figure depends on, recorded with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuModelInputs {
    pub cpu_user_s: f64,
    pub cpu_sys_s: f64,
    pub wall_s: f64,
    /// Cores the worker holds (its thread count): idle time is charged on these.
    pub cores_held: usize,
    /// max(0, wall_s × cores_held − cpu time).
    pub idle_core_s: f64,
    pub assumption: CpuPowerAssumption,
    /// `cpu_s × tdp_per_core_w + idle_core_s × tdp_per_core_w × idle_fraction`.
    pub formula: String,
}

/// The model on given inputs, joules.
pub fn model_energy_j(
    cpu_s: f64,
    wall_s: f64,
    cores_held: usize,
    a: &CpuPowerAssumption,
) -> (f64, f64) {
    let idle_core_s = (wall_s * cores_held as f64 - cpu_s).max(0.0);
    let e = cpu_s * a.tdp_per_core_w + idle_core_s * a.tdp_per_core_w * a.idle_fraction;
    (e, idle_core_s)
}

/// Reads getrusage at start and stop.
pub struct CpuTimeMeter {
    assumption: CpuPowerAssumption,
    cores_held: usize,
    start: Option<(Instant, f64, f64)>,
}

fn cpu_times() -> Result<(f64, f64), EnergyError> {
    let u = process_usage();
    match (u.cpu_user_s, u.cpu_sys_s) {
        (Some(user), Some(sys)) => Ok((user, sys)),
        _ => Err(EnergyError::absent(
            "the OS gave no CPU time for this process (getrusage unavailable)",
        )),
    }
}

impl CpuTimeMeter {
    pub fn new(assumption: CpuPowerAssumption, cores_held: usize) -> Result<Self, EnergyError> {
        cpu_times()?;
        Ok(CpuTimeMeter {
            assumption,
            cores_held: cores_held.max(1),
            start: None,
        })
    }
}

impl EnergyMeter for CpuTimeMeter {
    fn name(&self) -> &'static str {
        "cpu_time_model"
    }
    fn source(&self) -> EnergySource {
        EnergySource::Modelled
    }
    fn domains(&self) -> Vec<String> {
        vec![format!(
            "cpu: this worker process's CPU time and {} held cores",
            self.cores_held
        )]
    }
    /// getrusage reports microseconds; one µs at the per-core power.
    fn resolution_j(&self) -> Option<f64> {
        Some(1e-6 * self.assumption.tdp_per_core_w)
    }
    fn start(&mut self) -> Result<(), EnergyError> {
        let (u, s) = cpu_times()?;
        self.start = Some((Instant::now(), u, s));
        Ok(())
    }
    fn stop(&mut self) -> Result<Interval, EnergyError> {
        let (u1, s1) = cpu_times()?;
        let (t0, u0, s0) = self.start.take().ok_or(EnergyError::NotStarted)?;
        let wall_s = t0.elapsed().as_secs_f64();
        let (user, sys) = ((u1 - u0).max(0.0), (s1 - s0).max(0.0));
        let (energy_j, idle_core_s) =
            model_energy_j(user + sys, wall_s, self.cores_held, &self.assumption);
        Ok(Interval {
            energy_j,
            wall_s,
            readings: 2,
            per_domain_j: [("cpu".to_string(), energy_j)].into(),
            model_inputs: Some(CpuModelInputs {
                cpu_user_s: user,
                cpu_sys_s: sys,
                wall_s,
                cores_held: self.cores_held,
                idle_core_s,
                assumption: self.assumption.clone(),
                formula: "cpu_s × tdp_per_core_w + idle_core_s × tdp_per_core_w × idle_fraction"
                    .into(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_on_known_inputs() {
        let a = CpuPowerAssumption {
            tdp_per_core_w: 4.0,
            idle_fraction: 0.25,
            ..CpuPowerAssumption::default_assumption()
        };
        // 2 cores held for 3 s, 5 core-seconds busy → 1 idle core-second.
        let (e, idle) = model_energy_j(5.0, 3.0, 2, &a);
        assert_eq!(idle, 1.0);
        assert!((e - (5.0 * 4.0 + 1.0 * 4.0 * 0.25)).abs() < 1e-12);
        // More CPU time than held cores × wall (helper threads): no negative idle.
        let (e, idle) = model_energy_j(8.0, 3.0, 2, &a);
        assert_eq!(idle, 0.0);
        assert!((e - 32.0).abs() < 1e-12);
    }

    #[test]
    fn assumption_comes_from_env_table_or_default() {
        let d = CpuPowerAssumption::resolve(None, None, None, "AMD EPYC", 2);
        assert_eq!(d.tdp_per_core_w, 3.5);
        assert!(d.tdp_source.starts_with("default"));
        let t = CpuPowerAssumption::resolve(None, None, None, "AMD Ryzen 7 7840U w/ Radeon", 8);
        assert!(t.tdp_source.contains("[C2]") && !t.tdp_source.starts_with("default"));
        let e = CpuPowerAssumption::resolve(Some("280"), Some("64"), Some("0.2"), "AMD EPYC", 2);
        assert!((e.tdp_per_core_w - 4.375).abs() < 1e-12);
        assert_eq!(e.idle_fraction, 0.2);
        assert!(e.tdp_source.contains("CAPBENCH_CPU_TDP_W=280"));
        let e = CpuPowerAssumption::resolve(Some("100"), None, None, "x", 4);
        assert_eq!(e.tdp_per_core_w, 25.0);
        let bad = CpuPowerAssumption::resolve(Some("lots"), None, Some("2"), "x", 4);
        assert_eq!(bad.tdp_per_core_w, DEFAULT_TDP_PER_CORE_W);
        assert_eq!(bad.idle_fraction, DEFAULT_IDLE_FRACTION);
        assert!(bad.tdp_source.contains("not usable"), "{}", bad.tdp_source);
        assert!(bad.idle_source.contains("not in [0, 1]"));
    }

    #[test]
    fn meter_charges_busy_cpu_time() {
        let mut m = CpuTimeMeter::new(CpuPowerAssumption::default_assumption(), 1).unwrap();
        m.start().unwrap();
        // Burn 0.1 s of CPU: getrusage ticks far finer than that.
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_secs_f64() < 0.1 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let i = m.stop().unwrap();
        let inputs = i.model_inputs.unwrap();
        assert!(inputs.cpu_user_s + inputs.cpu_sys_s > 0.0, "{inputs:?}");
        assert!(i.energy_j > 0.0);
        let (expect, _) = model_energy_j(
            inputs.cpu_user_s + inputs.cpu_sys_s,
            inputs.wall_s,
            1,
            &inputs.assumption,
        );
        assert_eq!(i.energy_j, expect);
    }
}
