//! The profile TOML format → `Profile`, with errors that name the file, the
//! line or field, and the fix.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{PEAK_DTYPES, Profile, ProfileCaps, ProfileKind, ProfileMemory, Sourced};
use crate::caps::size::parse_bytes;
use crate::caps::wgpu_limits::WgpuLimitsTier;
use crate::error::{HarnessError, Result};

const FORMAT_FIX: &str = "a profile needs `name`, `description`, `kind` (gpu|unified|cpu) and \
     [memory] total = { value = \"16GiB\", source = \"…\" }; optional: year, bandwidth_gb_per_s, \
     [peak_tflops] f32/f16/bf16/fp8/int8, tdp_w, [caps] threads/wgpu_limits, notes — every figure \
     as { value = …, source = \"…\" } (see docs/caps-and-profiles.md)";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSourced<T> {
    value: T,
    source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMemory {
    total: RawSourced<String>,
    #[serde(default)]
    os_reserved: Option<RawSourced<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCaps {
    threads: Option<usize>,
    wgpu_limits: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    name: String,
    description: String,
    kind: ProfileKind,
    #[serde(default)]
    year: Option<RawSourced<u32>>,
    memory: RawMemory,
    #[serde(default)]
    bandwidth_gb_per_s: Option<RawSourced<f64>>,
    #[serde(default)]
    peak_tflops: BTreeMap<String, RawSourced<f64>>,
    #[serde(default)]
    tdp_w: Option<RawSourced<f64>>,
    #[serde(default)]
    caps: RawCaps,
    #[serde(default)]
    notes: Vec<String>,
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

/// Parses one profile file; `path` names it in errors, `origin` is recorded.
pub fn parse(text: &str, path: &Path, origin: &str) -> Result<Profile> {
    let raw: RawProfile = toml::from_str(text).map_err(|e| {
        let place = match e.span() {
            Some(span) => {
                let (l, c) = line_col(text, span.start);
                format!("line {l}, column {c}")
            }
            None => "whole file".to_string(),
        };
        HarnessError::bad_input(path, place, e.message().trim().to_string(), FORMAT_FIX)
    })?;
    let bad = |field: &str, message: String, fix: &str| {
        HarnessError::bad_input(path, format!("field `{field}`"), message, fix)
    };
    let sourced = |field: &str, source: &str| -> Result<String> {
        if source.trim().is_empty() {
            return Err(bad(
                &format!("{field}.source"),
                "the figure has no source".into(),
                "cite where the number comes from (a datasheet, a spec database, or \"derived: …\" with the arithmetic)",
            ));
        }
        Ok(source.trim().to_string())
    };
    let positive = |field: &str, v: f64| -> Result<()> {
        if v > 0.0 && v.is_finite() {
            Ok(())
        } else {
            Err(bad(
                &format!("{field}.value"),
                format!("{v} is not a positive number"),
                "give the figure in the unit the field names",
            ))
        }
    };
    if raw.name.trim().is_empty()
        || !raw
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(bad(
            "name",
            format!("'{}' is not a usable profile name", raw.name),
            "use letters, digits, '-', '_' or '.', e.g. name = \"t4-16gb\"",
        ));
    }
    let size = |field: &str, s: &RawSourced<String>| -> Result<Sourced<u64>> {
        let value = parse_bytes(&s.value).map_err(|m| {
            bad(
                &format!("{field}.value"),
                m,
                "write a size such as \"16GiB\" or \"8GB\"",
            )
        })?;
        Ok(Sourced {
            value,
            source: sourced(field, &s.source)?,
        })
    };
    let total = size("memory.total", &raw.memory.total)?;
    let os_reserved = match (&raw.memory.os_reserved, raw.kind) {
        (Some(r), ProfileKind::Unified) => {
            let r = size("memory.os_reserved", r)?;
            if r.value >= total.value {
                return Err(bad(
                    "memory.os_reserved.value",
                    "the OS would keep all of memory".into(),
                    "os_reserved must be less than memory.total",
                ));
            }
            Some(r)
        }
        (None, ProfileKind::Unified) => {
            return Err(bad(
                "memory.os_reserved",
                "a unified-memory profile must say what the OS keeps".into(),
                "add os_reserved = { value = \"…GiB\", source = \"…\" } under [memory]",
            ));
        }
        (Some(_), _) => {
            return Err(bad(
                "memory.os_reserved",
                format!(
                    "only unified-memory profiles reserve memory for the OS (this one is kind = \"{}\")",
                    raw.kind.as_str()
                ),
                "remove it, or set kind = \"unified\"",
            ));
        }
        (None, _) => None,
    };
    let year = match &raw.year {
        Some(y) => Some(Sourced {
            value: y.value,
            source: sourced("year", &y.source)?,
        }),
        None => None,
    };
    let bandwidth = match &raw.bandwidth_gb_per_s {
        Some(b) => {
            positive("bandwidth_gb_per_s", b.value)?;
            Some(Sourced {
                value: b.value * 1e9,
                source: sourced("bandwidth_gb_per_s", &b.source)?,
            })
        }
        None => None,
    };
    let mut peaks = BTreeMap::new();
    for (dtype, p) in &raw.peak_tflops {
        let field = format!("peak_tflops.{dtype}");
        if !PEAK_DTYPES.contains(&dtype.as_str()) {
            return Err(bad(
                &field,
                format!("unknown dtype '{dtype}'"),
                &format!("use one of {}", PEAK_DTYPES.join(", ")),
            ));
        }
        positive(&field, p.value)?;
        peaks.insert(
            dtype.clone(),
            Sourced {
                value: p.value * 1e12,
                source: sourced(&field, &p.source)?,
            },
        );
    }
    let tdp = match &raw.tdp_w {
        Some(t) => {
            positive("tdp_w", t.value)?;
            Some(Sourced {
                value: t.value,
                source: sourced("tdp_w", &t.source)?,
            })
        }
        None => None,
    };
    if raw.caps.threads == Some(0) {
        return Err(bad(
            "caps.threads",
            "must be at least 1".into(),
            "give the target's core count, or leave it out",
        ));
    }
    if let Some(t) = &raw.caps.wgpu_limits
        && WgpuLimitsTier::parse_name(t).is_none()
    {
        return Err(bad(
            "caps.wgpu_limits",
            format!("unknown wgpu limit tier '{t}'"),
            "use downlevel, webgl2 or default",
        ));
    }
    Ok(Profile {
        name: raw.name,
        description: raw.description,
        kind: raw.kind,
        year,
        memory: ProfileMemory {
            total_bytes: total,
            os_reserved_bytes: os_reserved,
        },
        bandwidth_bytes_per_s: bandwidth,
        peak_flops_per_s: peaks,
        tdp_w: tdp,
        caps: ProfileCaps {
            threads: raw.caps.threads,
            wgpu_limits: raw.caps.wgpu_limits,
        },
        notes: raw.notes,
        origin: origin.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "name = \"x\"\ndescription = \"d\"\nkind = \"gpu\"\n\
        [memory]\ntotal = { value = \"16GiB\", source = \"s\" }\n";

    fn err(text: &str) -> String {
        let e = parse(text, Path::new("p.toml"), "p.toml").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        e.to_string()
    }

    #[test]
    fn minimal_profile_parses() {
        let p = parse(GOOD, Path::new("p.toml"), "p.toml").unwrap();
        assert_eq!(p.memory_budget_bytes(), 16 << 30);
        assert!(p.peak_flops_per_s.is_empty() && p.tdp_w.is_none());
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = err("name = \"x\"\ndescription = \"d\nkind = \"gpu\"\n");
        assert!(e.starts_with("p.toml: line 2"), "{e}");
        let e = err(&GOOD.replace("kind = \"gpu\"", "kind = \"tpu\""));
        assert!(e.contains("line 3") && e.contains("tpu"), "{e}");
        let e = err(&format!("{GOOD}tdp = 70\n"));
        assert!(e.contains("tdp"), "{e}");
    }

    #[test]
    fn bad_fields_are_named() {
        let e = err(&GOOD.replace("source = \"s\"", "source = \" \""));
        assert!(e.contains("field `memory.total.source`"), "{e}");
        let e = err(&GOOD.replace("16GiB", "lots"));
        assert!(e.contains("field `memory.total.value`"), "{e}");
        let e = err(&format!(
            "{GOOD}[peak_tflops]\nfp4 = {{ value = 1, source = \"s\" }}\n"
        ));
        assert!(e.contains("field `peak_tflops.fp4`"), "{e}");
        let e = err(&format!(
            "{GOOD}[peak_tflops]\nf32 = {{ value = -1, source = \"s\" }}\n"
        ));
        assert!(e.contains("field `peak_tflops.f32.value`"), "{e}");
        let e = err(&GOOD.replace("\"gpu\"", "\"unified\""));
        assert!(e.contains("field `memory.os_reserved`"), "{e}");
        let e = err(&format!("{GOOD}[caps]\nwgpu_limits = \"ultra\"\n"));
        assert!(e.contains("field `caps.wgpu_limits`"), "{e}");
    }
}
