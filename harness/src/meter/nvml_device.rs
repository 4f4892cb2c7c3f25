//! NVIDIA GPU facts from NVML for a case's device record — driver version,
//! clocks, power limit, memory, PCIe link — found by the UUID the CUDA
//! driver gave (NVML and CUDA may number GPUs differently). Needs the
//! `nvml` feature; libnvidia-ml is loaded at run time.

/// `nvml_*=value` entries for the GPU with this UUID (`GPU-…`).
#[cfg(feature = "nvml")]
pub fn details(uuid: &str) -> Result<Vec<String>, String> {
    use nvml_wrapper::Nvml;
    use nvml_wrapper::enum_wrappers::device::Clock;

    let nvml = Nvml::init().map_err(|e| format!("NVML could not start: {e}"))?;
    let dev = nvml
        .device_by_uuid(uuid)
        .map_err(|e| format!("NVML has no GPU {uuid}: {e}"))?;
    let mut out = Vec::new();
    let mut push = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            out.push(format!("nvml_{k}={v}"));
        }
    };
    push("driver_version", nvml.sys_driver_version().ok());
    push(
        "cuda_driver_version",
        nvml.sys_cuda_driver_version()
            .ok()
            .map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10)),
    );
    push("name", dev.name().ok());
    if let Ok(m) = dev.memory_info() {
        push("memory_total_bytes", Some(m.total.to_string()));
        push("memory_used_bytes", Some(m.used.to_string()));
    }
    for (name, clock) in [
        ("graphics", Clock::Graphics),
        ("sm", Clock::SM),
        ("memory", Clock::Memory),
    ] {
        push(
            &format!("{name}_clock_mhz"),
            dev.clock_info(clock).ok().map(|v| v.to_string()),
        );
        push(
            &format!("{name}_clock_max_mhz"),
            dev.max_clock_info(clock).ok().map(|v| v.to_string()),
        );
    }
    push(
        "power_limit_w",
        dev.enforced_power_limit()
            .ok()
            .map(|mw| format!("{:.1}", mw as f64 / 1000.0)),
    );
    push(
        "pcie_link_gen",
        dev.current_pcie_link_gen().ok().map(|v| v.to_string()),
    );
    push(
        "pcie_link_width",
        dev.current_pcie_link_width().ok().map(|v| v.to_string()),
    );
    push(
        "performance_state",
        dev.performance_state().ok().map(|p| format!("{p:?}")),
    );
    Ok(out)
}

#[cfg(not(feature = "nvml"))]
pub fn details(_uuid: &str) -> Result<Vec<String>, String> {
    Err("capbench was built without NVML support; rebuild with --features nvml".into())
}

/// Adds NVML's facts to a CUDA device record (matched by its `uuid=`
/// detail), or a `nvml=` note saying why there are none.
pub fn enrich(device: &mut capbench_workloads::backend::DeviceRecord) {
    if device.api != "cuda" {
        return;
    }
    let Some(uuid) = device
        .details
        .iter()
        .find_map(|d| d.strip_prefix("uuid="))
        .map(str::to_string)
    else {
        device
            .details
            .push("nvml=unavailable: the CUDA driver gave no UUID".into());
        return;
    };
    match details(&uuid) {
        Ok(d) => device.details.extend(d),
        Err(e) => device.details.push(format!("nvml=unavailable: {e}")),
    }
}
