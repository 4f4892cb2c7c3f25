//! NVIDIA compute caps: a board power limit and locked GPU clocks, set
//! through NVML in the worker before the workload is prepared and restored
//! when the case ends. Where they cannot be set (no permission, not
//! supported, no `nvml` feature, not a CUDA backend) the case records
//! `not applied: <reason>` and runs on — never a silent pretend.
//!
//! The NVML calls sit behind `GpuControl`, so the apply/restore logic is
//! tested with a fake device; the real one is `nvml::NvmlControl`.

use serde::{Deserialize, Serialize};

/// Why an NVML call failed, in the words a record shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlError {
    /// NVML `NoPermission`: setting limits needs root (or admin rights).
    NoPermission,
    /// NVML `NotSupported`: this GPU or driver does not offer the setting.
    NotSupported,
    Other(String),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::NoPermission => f.write_str("permission denied"),
            ControlError::NotSupported => f.write_str("not supported on this GPU"),
            ControlError::Other(m) => f.write_str(m),
        }
    }
}

/// The NVML calls the caps need, on one GPU.
pub trait GpuControl {
    /// The enforced power limit, milliwatts.
    fn power_limit_mw(&self) -> Result<u32, ControlError>;
    /// The power limit the board allows setting, (min, max) milliwatts.
    fn power_limit_range_mw(&self) -> Result<(u32, u32), ControlError>;
    fn set_power_limit_mw(&mut self, mw: u32) -> Result<(), ControlError>;
    /// Locks the graphics clock into [min, max] MHz.
    fn lock_clocks_mhz(&mut self, min: u32, max: u32) -> Result<(), ControlError>;
    fn reset_locked_clocks(&mut self) -> Result<(), ControlError>;
    /// The current graphics clock, MHz.
    fn graphics_clock_mhz(&self) -> Result<u32, ControlError>;
}

/// The compute caps a case asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ComputeCapsRequest {
    pub power_limit_w: Option<f64>,
    pub lock_clocks_mhz: Option<(u32, u32)>,
}

impl ComputeCapsRequest {
    pub fn is_empty(&self) -> bool {
        self.power_limit_w.is_none() && self.lock_clocks_mhz.is_none()
    }
}

/// The compute caps as the worker applied and observed them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuComputeRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_limit_w_requested: Option<f64>,
    /// The enforced limit before capbench changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_limit_w_before: Option<f64>,
    /// The enforced limit NVML reports after setting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_limit_w_observed: Option<f64>,
    /// `applied` or `not applied: <reason>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_limit_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_clocks_mhz_requested: Option<[u32; 2]>,
    /// `applied` or `not applied: <reason>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_clocks_status: Option<String>,
    /// Graphics clock NVML reports once the clocks are locked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graphics_clock_mhz_observed: Option<u32>,
    /// What restoring the GPU's settings after the case gave: `restored`,
    /// or the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<String>,
}

/// `not applied: <reason>`, the form every record uses.
pub fn not_applied(reason: impl std::fmt::Display) -> String {
    format!("not applied: {reason}")
}

/// Holds the GPU's previous settings; `restore` (or drop) puts them back.
pub struct ComputeCapsGuard {
    control: Option<Box<dyn GpuControl>>,
    power_before_mw: Option<u32>,
    clocks_locked: bool,
}

impl ComputeCapsGuard {
    /// A guard with nothing to restore.
    pub fn none() -> Self {
        ComputeCapsGuard {
            control: None,
            power_before_mw: None,
            clocks_locked: false,
        }
    }

    /// Restores what was changed: `restored`, or what failed. `None` when
    /// nothing was changed.
    pub fn restore(&mut self) -> Option<String> {
        let c = self.control.as_mut()?;
        let mut failed = Vec::new();
        let mut changed = false;
        if let Some(mw) = self.power_before_mw.take() {
            changed = true;
            if let Err(e) = c.set_power_limit_mw(mw) {
                failed.push(format!("power limit back to {:.1} W: {e}", mw as f64 / 1e3));
            }
        }
        if std::mem::take(&mut self.clocks_locked) {
            changed = true;
            if let Err(e) = c.reset_locked_clocks() {
                failed.push(format!("clock reset: {e}"));
            }
        }
        changed.then(|| {
            if failed.is_empty() {
                "restored".to_string()
            } else {
                format!("not restored: {}", failed.join("; "))
            }
        })
    }
}

impl Drop for ComputeCapsGuard {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Applies `req` through `control`: the power limit (checked against the
/// board's range) and the clock lock, each recorded as requested, applied
/// or not, and observed.
pub fn apply(
    mut control: Box<dyn GpuControl>,
    req: &ComputeCapsRequest,
) -> (ComputeCapsGuard, GpuComputeRecord) {
    let mut rec = GpuComputeRecord {
        power_limit_w_requested: req.power_limit_w,
        lock_clocks_mhz_requested: req.lock_clocks_mhz.map(|(a, b)| [a, b]),
        ..Default::default()
    };
    let mut guard = ComputeCapsGuard::none();
    if let Some(w) = req.power_limit_w {
        let mw = (w * 1000.0).round() as u32;
        let before = control.power_limit_mw();
        rec.power_limit_w_before = before.as_ref().ok().map(|v| *v as f64 / 1e3);
        let result = control.power_limit_range_mw().and_then(|(lo, hi)| {
            if mw < lo || mw > hi {
                Err(ControlError::Other(format!(
                    "{w} W is outside this board's range {:.0}–{:.0} W",
                    lo as f64 / 1e3,
                    hi as f64 / 1e3
                )))
            } else {
                control.set_power_limit_mw(mw)
            }
        });
        match result {
            Ok(()) => {
                rec.power_limit_status = Some("applied".into());
                guard.power_before_mw = before.ok();
                rec.power_limit_w_observed = control.power_limit_mw().ok().map(|v| v as f64 / 1e3);
            }
            Err(e) => rec.power_limit_status = Some(not_applied(e)),
        }
    }
    if let Some((lo, hi)) = req.lock_clocks_mhz {
        match control.lock_clocks_mhz(lo, hi) {
            Ok(()) => {
                rec.lock_clocks_status = Some("applied".into());
                guard.clocks_locked = true;
                rec.graphics_clock_mhz_observed = control.graphics_clock_mhz().ok();
            }
            Err(e) => rec.lock_clocks_status = Some(not_applied(e)),
        }
    }
    guard.control = Some(control);
    (guard, rec)
}

/// Every requested cap recorded `not applied: <reason>` (not a CUDA
/// backend, no `nvml` feature, NVML missing).
pub fn none_applied(req: &ComputeCapsRequest, reason: &str) -> GpuComputeRecord {
    GpuComputeRecord {
        power_limit_w_requested: req.power_limit_w,
        power_limit_status: req.power_limit_w.map(|_| not_applied(reason)),
        lock_clocks_mhz_requested: req.lock_clocks_mhz.map(|(a, b)| [a, b]),
        lock_clocks_status: req.lock_clocks_mhz.map(|_| not_applied(reason)),
        ..Default::default()
    }
}

/// `--lock-clocks MIN[:MAX]` (MHz; MAX defaults to MIN).
pub fn parse_clocks(s: &str) -> Result<(u32, u32), String> {
    let num = |p: &str| {
        p.trim()
            .parse::<u32>()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| format!("'{s}' is not MIN[:MAX] in MHz, e.g. 1200 or 900:1410"))
    };
    let (lo, hi) = match s.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(s)?, num(s)?),
    };
    if lo > hi {
        return Err(format!("'{s}': MIN {lo} MHz is above MAX {hi} MHz"));
    }
    Ok((lo, hi))
}

/// Applies `req` on the CUDA GPU with this UUID through NVML.
#[cfg(feature = "nvml")]
pub fn apply_nvml(uuid: &str, req: &ComputeCapsRequest) -> (ComputeCapsGuard, GpuComputeRecord) {
    match nvml::NvmlControl::open(uuid) {
        Ok(c) => apply(Box::new(c), req),
        Err(e) => (ComputeCapsGuard::none(), none_applied(req, &e)),
    }
}

#[cfg(feature = "nvml")]
mod nvml {
    use super::{ControlError, GpuControl};
    use nvml_wrapper::Nvml;
    use nvml_wrapper::enum_wrappers::device::Clock;
    use nvml_wrapper::error::NvmlError;

    fn map(e: NvmlError) -> ControlError {
        match e {
            NvmlError::NoPermission => ControlError::NoPermission,
            NvmlError::NotSupported => ControlError::NotSupported,
            e => ControlError::Other(e.to_string()),
        }
    }

    /// NVML and the index of one GPU (found by UUID: NVML and CUDA may
    /// number GPUs differently). The device handle is looked up per call,
    /// since it borrows the library handle.
    pub struct NvmlControl {
        nvml: Nvml,
        index: u32,
    }

    impl NvmlControl {
        pub fn open(uuid: &str) -> Result<Self, String> {
            let nvml = Nvml::init().map_err(|e| format!("NVML could not start: {e}"))?;
            let index = nvml
                .device_by_uuid(uuid)
                .and_then(|d| d.index())
                .map_err(|e| format!("NVML has no GPU {uuid}: {e}"))?;
            Ok(NvmlControl { nvml, index })
        }

        fn dev(&self) -> Result<nvml_wrapper::Device<'_>, ControlError> {
            self.nvml.device_by_index(self.index).map_err(map)
        }
    }

    impl GpuControl for NvmlControl {
        fn power_limit_mw(&self) -> Result<u32, ControlError> {
            self.dev()?.enforced_power_limit().map_err(map)
        }
        fn power_limit_range_mw(&self) -> Result<(u32, u32), ControlError> {
            let c = self
                .dev()?
                .power_management_limit_constraints()
                .map_err(map)?;
            Ok((c.min_limit, c.max_limit))
        }
        fn set_power_limit_mw(&mut self, mw: u32) -> Result<(), ControlError> {
            let mut d = self.dev()?;
            d.set_power_management_limit(mw).map_err(map)
        }
        fn lock_clocks_mhz(&mut self, min: u32, max: u32) -> Result<(), ControlError> {
            use nvml_wrapper::enums::device::GpuLockedClocksSetting;
            let mut d = self.dev()?;
            d.set_gpu_locked_clocks(GpuLockedClocksSetting::Numeric {
                min_clock_mhz: min,
                max_clock_mhz: max,
            })
            .map_err(map)
        }
        fn reset_locked_clocks(&mut self) -> Result<(), ControlError> {
            let mut d = self.dev()?;
            d.reset_gpu_locked_clocks().map_err(map)
        }
        fn graphics_clock_mhz(&self) -> Result<u32, ControlError> {
            self.dev()?.clock_info(Clock::Graphics).map_err(map)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What the fake GPU was told, shared with the test.
    #[derive(Default)]
    struct Log {
        power_mw: u32,
        locked: Option<(u32, u32)>,
        calls: Vec<String>,
    }

    struct Fake {
        log: Arc<Mutex<Log>>,
        deny: Option<ControlError>,
    }

    impl Fake {
        fn boxed(deny: Option<ControlError>) -> (Box<dyn GpuControl>, Arc<Mutex<Log>>) {
            let log = Arc::new(Mutex::new(Log {
                power_mw: 300_000,
                ..Default::default()
            }));
            (
                Box::new(Fake {
                    log: log.clone(),
                    deny,
                }),
                log,
            )
        }
        fn check(&self) -> Result<(), ControlError> {
            self.deny.clone().map_or(Ok(()), Err)
        }
    }

    impl GpuControl for Fake {
        fn power_limit_mw(&self) -> Result<u32, ControlError> {
            Ok(self.log.lock().unwrap().power_mw)
        }
        fn power_limit_range_mw(&self) -> Result<(u32, u32), ControlError> {
            Ok((100_000, 350_000))
        }
        fn set_power_limit_mw(&mut self, mw: u32) -> Result<(), ControlError> {
            self.check()?;
            let mut l = self.log.lock().unwrap();
            l.power_mw = mw;
            l.calls.push(format!("power {mw}"));
            Ok(())
        }
        fn lock_clocks_mhz(&mut self, min: u32, max: u32) -> Result<(), ControlError> {
            self.check()?;
            let mut l = self.log.lock().unwrap();
            l.locked = Some((min, max));
            l.calls.push(format!("lock {min}:{max}"));
            Ok(())
        }
        fn reset_locked_clocks(&mut self) -> Result<(), ControlError> {
            self.check()?;
            let mut l = self.log.lock().unwrap();
            l.locked = None;
            l.calls.push("reset clocks".into());
            Ok(())
        }
        fn graphics_clock_mhz(&self) -> Result<u32, ControlError> {
            Ok(self.log.lock().unwrap().locked.map_or(1980, |(_, hi)| hi))
        }
    }

    fn both() -> ComputeCapsRequest {
        ComputeCapsRequest {
            power_limit_w: Some(150.0),
            lock_clocks_mhz: Some((900, 1200)),
        }
    }

    #[test]
    fn applies_records_and_restores_on_drop() {
        let (fake, log) = Fake::boxed(None);
        let (guard, rec) = apply(fake, &both());
        assert_eq!(rec.power_limit_status.as_deref(), Some("applied"));
        assert_eq!(rec.power_limit_w_before, Some(300.0));
        assert_eq!(rec.power_limit_w_observed, Some(150.0));
        assert_eq!(rec.lock_clocks_status.as_deref(), Some("applied"));
        assert_eq!(rec.graphics_clock_mhz_observed, Some(1200));
        assert_eq!(log.lock().unwrap().power_mw, 150_000);
        drop(guard);
        let l = log.lock().unwrap();
        assert_eq!(l.power_mw, 300_000, "power limit restored");
        assert_eq!(l.locked, None, "clocks unlocked");
    }

    #[test]
    fn explicit_restore_reports_and_is_not_repeated_on_drop() {
        let (fake, log) = Fake::boxed(None);
        let (mut guard, _) = apply(fake, &both());
        assert_eq!(guard.restore().as_deref(), Some("restored"));
        let n = log.lock().unwrap().calls.len();
        drop(guard);
        assert_eq!(log.lock().unwrap().calls.len(), n);
    }

    #[test]
    fn permission_denied_is_recorded_and_nothing_is_changed() {
        let (fake, log) = Fake::boxed(Some(ControlError::NoPermission));
        let (mut guard, rec) = apply(fake, &both());
        assert_eq!(
            rec.power_limit_status.as_deref(),
            Some("not applied: permission denied")
        );
        assert_eq!(
            rec.lock_clocks_status.as_deref(),
            Some("not applied: permission denied")
        );
        assert_eq!(rec.power_limit_w_observed, None);
        assert_eq!(guard.restore(), None, "nothing to restore");
        assert!(log.lock().unwrap().calls.is_empty());
    }

    #[test]
    fn unsupported_and_out_of_range_are_recorded() {
        let (fake, _) = Fake::boxed(Some(ControlError::NotSupported));
        let (_, rec) = apply(fake, &both());
        assert_eq!(
            rec.lock_clocks_status.as_deref(),
            Some("not applied: not supported on this GPU")
        );
        let (fake, log) = Fake::boxed(None);
        let req = ComputeCapsRequest {
            power_limit_w: Some(50.0),
            lock_clocks_mhz: None,
        };
        let (_, rec) = apply(fake, &req);
        let s = rec.power_limit_status.unwrap();
        assert!(s.starts_with("not applied: 50 W is outside"), "{s}");
        assert_eq!(log.lock().unwrap().power_mw, 300_000);
    }

    #[test]
    fn without_nvml_every_request_says_why() {
        let rec = none_applied(&both(), "cpu is not a CUDA backend");
        assert_eq!(
            rec.power_limit_status.as_deref(),
            Some("not applied: cpu is not a CUDA backend")
        );
        assert_eq!(rec.lock_clocks_mhz_requested, Some([900, 1200]));
    }

    #[test]
    fn clock_ranges_parse() {
        assert_eq!(parse_clocks("1200"), Ok((1200, 1200)));
        assert_eq!(parse_clocks("900:1410"), Ok((900, 1410)));
        assert!(parse_clocks("1410:900").is_err());
        assert!(parse_clocks("fast").is_err());
        assert!(parse_clocks("0").is_err());
    }
}
