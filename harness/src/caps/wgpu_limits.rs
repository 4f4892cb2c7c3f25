//! `--wgpu-limits downlevel|webgl2|default|FILE` → the tier the wgpu device
//! is requested with. A FILE is TOML of `wgpu::Limits` names over `default`.

use std::collections::BTreeMap;
use std::path::Path;

pub use capbench_workloads::backend::device_caps::{WGPU_LIMIT_NAMES, WgpuLimitsTier};

use crate::error::{HarnessError, Result};

/// A tier name, or a TOML file such as `max_storage_buffer_binding_size = 134217728`.
pub fn load(arg: &str) -> Result<WgpuLimitsTier> {
    if let Some(t) = WgpuLimitsTier::parse_name(arg) {
        return Ok(t);
    }
    let path = Path::new(arg);
    if !path.exists() && path.extension().is_none_or(|e| e != "toml") {
        return Err(HarnessError::usage(format!(
            "--wgpu-limits '{arg}': expected downlevel, webgl2, default or a TOML file of limits"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        HarnessError::bad_input(
            path,
            "whole file",
            format!("cannot read wgpu limits file: {e}"),
            "check the path",
        )
    })?;
    parse_file(&text, path)
}

fn parse_file(text: &str, path: &Path) -> Result<WgpuLimitsTier> {
    let fix = || {
        format!(
            "write `name = bytes-or-count` lines with names from: {}",
            WGPU_LIMIT_NAMES.join(", ")
        )
    };
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        HarnessError::bad_input(path, "whole file", e.message().trim().to_string(), fix())
    })?;
    let mut overrides = BTreeMap::new();
    for (k, v) in &table {
        if !WGPU_LIMIT_NAMES.contains(&k.as_str()) {
            return Err(HarnessError::bad_input(
                path,
                format!("key `{k}`"),
                "not a wgpu limit capbench can set",
                fix(),
            ));
        }
        let n = v.as_integer().filter(|n| *n >= 0).ok_or_else(|| {
            HarnessError::bad_input(
                path,
                format!("key `{k}`"),
                format!("{v} is not a non-negative integer"),
                fix(),
            )
        })?;
        overrides.insert(k.clone(), n as u64);
    }
    Ok(WgpuLimitsTier::Custom { overrides })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_files() {
        assert_eq!(load("downlevel").unwrap(), WgpuLimitsTier::Downlevel);
        assert_eq!(load("nonsense").unwrap_err().exit_code(), 2);
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("old-gpu.toml");
        std::fs::write(&f, "max_storage_buffer_binding_size = 1048576\n").unwrap();
        let WgpuLimitsTier::Custom { overrides } = load(f.to_str().unwrap()).unwrap() else {
            panic!()
        };
        assert_eq!(overrides["max_storage_buffer_binding_size"], 1 << 20);
        std::fs::write(&f, "max_shoe_size = 44\n").unwrap();
        let e = load(f.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("key `max_shoe_size`"), "{e}");
        assert_eq!(e.exit_code(), 2);
    }
}
