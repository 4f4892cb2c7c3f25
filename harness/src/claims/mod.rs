//! Claim files (TOML): what a user asserts about a workload on a machine,
//! parsed and checked into `Claim`s; `claims::verdict` judges them against
//! results. A bad file is an exit-2 error naming the claim and the field.

pub mod expect;
pub mod missing;
pub mod verdict;

use std::collections::BTreeMap;
use std::path::Path;

use capbench_workloads::WorkloadSpec;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::analysis::projection::Target;
use crate::error::{HarnessError, Result};
pub use expect::{Expectation, Op, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimsFile {
    /// Spec sheets for profiles the claims name, `[profile.NAME]`.
    #[serde(default)]
    profile: BTreeMap<String, ProfileFile>,
    #[serde(default)]
    claim: Vec<ClaimFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    #[serde(default)]
    description: String,
    memory_gib: Option<f64>,
    bandwidth_gb_per_s: f64,
    /// Dense peak per dtype, 10¹² FLOP/s, e.g. { f32 = 8.1, f16 = 65 }.
    #[serde(default)]
    peak_tflops: BTreeMap<String, f64>,
    source: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimFile {
    id: Spanned<String>,
    statement: String,
    workload: Option<Spanned<String>>,
    model: Option<Spanned<String>>,
    profile: Option<Spanned<String>>,
    versus: Option<Spanned<String>>,
    backend: Option<Spanned<String>>,
    engine: Option<Spanned<String>>,
    machine: Option<Spanned<String>>,
    mem_cap: Option<Spanned<String>>,
    expect: Spanned<Vec<Spanned<String>>>,
}

/// A user's GGUF file a claim is about: results count only when their run
/// decoded this exact file (same FNV-1a hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    pub path: String,
    pub fnv1a: String,
    pub format: String,
}

/// A checked claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub id: String,
    pub statement: String,
    pub workload: WorkloadSpec,
    pub model: Option<ModelRef>,
    /// The machine the claim is about; `None`: the machine the results were
    /// measured on.
    pub profile: Option<String>,
    /// A second profile `<metric>_ratio` expectations compare against.
    pub versus: Option<String>,
    pub backend: Option<String>,
    /// The engine whose measurements count and whose efficiency a
    /// projection carries (`llamacpp`, `torch`); `None`: capbench's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// A machine id (or its prefix) or hostname among the results.
    pub machine: Option<String>,
    /// The memory cap `fits` is about when there is no profile (a run with
    /// `--mem-cap` of this size is the evidence).
    pub mem_cap_bytes: Option<u64>,
    pub expect: Vec<Expectation>,
    pub line: usize,
}

/// A claims file: the claims and the profiles they name.
#[derive(Debug, Clone)]
pub struct ClaimSet {
    pub path: String,
    pub claims: Vec<Claim>,
    pub profiles: BTreeMap<String, Target>,
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

/// The `id` of the `[[claim]]` table that contains byte `offset`, read from
/// the text, for errors serde reports before the claim has a value.
fn claim_id_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())].rfind("[[claim]]")?;
    let body = &text[start + "[[claim]]".len()..];
    let end = body.find("\n[").unwrap_or(body.len());
    body[..end].lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "id").then(|| v.trim().trim_matches('"').to_string())
    })
}

/// A built-in (or user-folder) hardware profile, or a profile .toml file,
/// as a projection target; `None` when there is no such profile.
pub fn built_in_profile(name: &str) -> Option<(Target, crate::profiles::Profile)> {
    let p = crate::profiles::find(name).ok()?;
    Some((Target::from(&p), p))
}

/// Names of the built-in and user-folder profiles, for error messages.
fn known_profiles() -> Vec<String> {
    crate::profiles::load_all()
        .map(|all| all.into_iter().map(|p| p.name).collect())
        .unwrap_or_default()
}

const FIX: &str = "see docs/claims.md: each [[claim]] has id, statement, workload (or model), expect = [\"tokens_per_s >= 10\", …] and optionally profile, versus, backend, engine, machine, mem_cap";

/// Parses and checks a claims file; `path` is used in messages and to find
/// `model` files relative to the claims file.
pub fn parse(text: &str, path: &Path) -> Result<ClaimSet> {
    let file: ClaimsFile = toml::from_str(text).map_err(|e| {
        let place = match e.span() {
            Some(span) => {
                let (l, c) = line_col(text, span.start);
                match claim_id_at(text, span.start) {
                    Some(id) => format!("claim '{id}' (line {l}, column {c})"),
                    None => format!("line {l}, column {c}"),
                }
            }
            None => "whole file".into(),
        };
        HarnessError::bad_input(path, place, e.message().trim().to_string(), FIX)
    })?;
    let mut profiles = BTreeMap::new();
    for (name, p) in &file.profile {
        let bad = |field: &str, msg: &str| {
            HarnessError::bad_input(
                path,
                format!("[profile.{name}], field {field}"),
                msg.to_string(),
                "give positive numbers: memory_gib, bandwidth_gb_per_s, peak_tflops = { f32 = …, f16 = … }, and a source",
            )
        };
        if !(p.bandwidth_gb_per_s > 0.0 && p.bandwidth_gb_per_s.is_finite()) {
            return Err(bad("bandwidth_gb_per_s", "must be a positive number"));
        }
        if p.memory_gib.is_some_and(|m| !(m > 0.0 && m.is_finite())) {
            return Err(bad("memory_gib", "must be a positive number"));
        }
        if let Some((d, _)) = p
            .peak_tflops
            .iter()
            .find(|(_, v)| !(**v > 0.0 && v.is_finite()))
        {
            return Err(bad(
                &format!("peak_tflops.{d}"),
                "must be a positive number",
            ));
        }
        if p.source.trim().is_empty() {
            return Err(bad("source", "say where the figures come from"));
        }
        let described = if p.description.is_empty() {
            name.clone()
        } else {
            p.description.clone()
        };
        profiles.insert(
            name.clone(),
            Target {
                name: name.clone(),
                source: format!("{described} — {}", p.source),
                memory_bytes: p.memory_gib.map(|g| g * (1u64 << 30) as f64),
                bandwidth_bytes_per_s: p.bandwidth_gb_per_s * 1e9,
                read_bandwidth_bytes_per_s: None,
                peak_flops_per_s: p
                    .peak_tflops
                    .iter()
                    .map(|(d, v)| (d.clone(), v * 1e12))
                    .collect(),
            },
        );
    }
    if file.claim.is_empty() {
        return Err(HarnessError::bad_input(
            path,
            "whole file",
            "no [[claim]] tables",
            FIX,
        ));
    }
    let mut claims: Vec<Claim> = Vec::new();
    for c in &file.claim {
        let id = c.id.get_ref().trim().to_string();
        let (line, _) = line_col(text, c.id.span().start);
        let at = |field: &str, span: std::ops::Range<usize>| {
            let (l, col) = line_col(text, span.start);
            format!("claim '{id}', field {field} (line {l}, column {col})")
        };
        if id.is_empty() {
            return Err(HarnessError::bad_input(
                path,
                at("id", c.id.span()),
                "empty id",
                "give each claim a short unique id",
            ));
        }
        if claims.iter().any(|o| o.id == id) {
            return Err(HarnessError::bad_input(
                path,
                at("id", c.id.span()),
                format!("a claim with id '{id}' already exists"),
                "give each claim a unique id",
            ));
        }
        let model = match &c.model {
            None => None,
            Some(m) => Some(model_ref(path, m.get_ref()).map_err(|e| match e {
                HarnessError::BadInput { message, fix, .. } => HarnessError::bad_input(
                    path,
                    at("model", m.span()),
                    format!("{}: {message}", m.get_ref()),
                    fix,
                ),
                other => other,
            })?),
        };
        let workload = match (&c.workload, &model) {
            (Some(w), _) => WorkloadSpec::parse(w.get_ref()).map_err(|e| {
                HarnessError::bad_input(
                    path,
                    at("workload", w.span()),
                    e.to_string(),
                    "use a name from `capbench list workloads`",
                )
            })?,
            (None, Some(m)) => WorkloadSpec::parse(&format!("decode/gguf/{}", m.format))
                .expect("a GGUF format names a workload"),
            (None, None) => {
                return Err(HarnessError::bad_input(
                    path,
                    at("id", c.id.span()),
                    "neither workload nor model is given",
                    "add workload = \"decode/<model>/<format>\" (see `capbench list workloads`) or model = \"FILE.gguf\"",
                ));
            }
        };
        let is_gguf = matches!(&workload.params, capbench_workloads::spec::Params::Decode { model, .. } if model == capbench_workloads::spec::GGUF_MODEL);
        if let (Some(w), None) = (&c.workload, &model)
            && is_gguf
        {
            return Err(HarnessError::bad_input(
                path,
                at("workload", w.span()),
                format!(
                    "{} runs a user's GGUF file, but the claim names none",
                    w.get_ref()
                ),
                "add model = \"FILE.gguf\"",
            ));
        }
        if let (Some(w), Some(m)) = (&c.workload, &model)
            && !(is_gguf && workload.name.ends_with(&format!("/{}", m.format)))
        {
            return Err(HarnessError::bad_input(
                path,
                at("workload", w.span()),
                format!(
                    "with model = …, the workload is decode/gguf/{0} or prefill/gguf/{0} (the file is stored as {0})",
                    m.format
                ),
                "drop workload (decode is assumed) or name the file's format",
            ));
        }
        let mut named = |field: &str, s: &Option<Spanned<String>>| -> Result<Option<String>> {
            let Some(s) = s else { return Ok(None) };
            let name = s.get_ref().clone();
            if !profiles.contains_key(&name) {
                match built_in_profile(&name) {
                    Some((t, _)) => {
                        profiles.insert(name.clone(), t);
                    }
                    None => {
                        let mut known: Vec<String> = profiles.keys().cloned().collect();
                        known.extend(known_profiles());
                        return Err(HarnessError::bad_input(
                            path,
                            at(field, s.span()),
                            format!("unknown profile '{name}'"),
                            format!(
                                "use one of {} (`capbench list profiles`), or define it in this file as [profile.{name}] (bandwidth_gb_per_s, memory_gib, peak_tflops, source)",
                                known.join(", ")
                            ),
                        ));
                    }
                }
            }
            Ok(Some(name))
        };
        let profile = named("profile", &c.profile)?;
        let versus = named("versus", &c.versus)?;
        let backend = match &c.backend {
            None => None,
            Some(b) => {
                let parsed = capbench_workloads::Backend::parse(b.get_ref()).map_err(|e| {
                    HarnessError::bad_input(
                        path,
                        at("backend", b.span()),
                        e.to_string(),
                        "use cpu, cuda, metal or wgpu (as `capbench list backends` names them)",
                    )
                })?;
                Some(parsed.to_string())
            }
        };
        let engine = match &c.engine {
            None => None,
            Some(e) => {
                use crate::analysis::projection::{OTHER_ENGINES, OWN_ENGINE};
                let name = e.get_ref().trim();
                if name != OWN_ENGINE && !OTHER_ENGINES.contains(&name) {
                    return Err(HarnessError::bad_input(
                        path,
                        at("engine", e.span()),
                        format!("unknown engine '{name}'"),
                        format!(
                            "use {OWN_ENGINE} (capbench's own: candle, the WGSL engine) or one of {}",
                            OTHER_ENGINES.join(", ")
                        ),
                    ));
                }
                (name != OWN_ENGINE).then(|| name.to_string())
            }
        };
        let mem_cap_bytes = match &c.mem_cap {
            None => None,
            Some(m) => Some(crate::caps::size::parse_bytes(m.get_ref()).map_err(|e| {
                HarnessError::bad_input(
                    path,
                    at("mem_cap", m.span()),
                    e,
                    "a size such as \"4GiB\", \"512MiB\" or \"8GB\"",
                )
            })?),
        };
        if c.expect.get_ref().is_empty() {
            return Err(HarnessError::bad_input(
                path,
                at("expect", c.expect.span()),
                "no expectations",
                "e.g. expect = [\"tokens_per_s >= 10\"]",
            ));
        }
        let mut exps = Vec::new();
        for (i, e) in c.expect.get_ref().iter().enumerate() {
            let x = expect::parse(e.get_ref()).map_err(|m| {
                HarnessError::bad_input(
                    path,
                    at(&format!("expect[{i}]"), e.span()),
                    m,
                    "write `metric >= number`, `metric <= number` or `fits = true`",
                )
            })?;
            if x.metric == "fits" && profile.is_none() && mem_cap_bytes.is_none() {
                return Err(HarnessError::bad_input(
                    path,
                    at(&format!("expect[{i}]"), e.span()),
                    "fits needs the memory it is about",
                    "add profile = \"<name>\" (its memory budget) or mem_cap = \"4GiB\"",
                ));
            }
            if x.metric.ends_with("_ratio") && (versus.is_none() || profile.is_none()) {
                return Err(HarnessError::bad_input(
                    path,
                    at(&format!("expect[{i}]"), e.span()),
                    format!(
                        "{} compares two profiles: the claim needs profile = … and versus = …",
                        x.metric
                    ),
                    "add versus = \"<profile to compare with>\"",
                ));
            }
            exps.push(x);
        }
        claims.push(Claim {
            id,
            statement: c.statement.trim().to_string(),
            workload,
            model,
            profile,
            versus,
            backend,
            engine,
            machine: c.machine.as_ref().map(|m| m.get_ref().clone()),
            mem_cap_bytes,
            expect: exps,
            line,
        });
    }
    Ok(ClaimSet {
        path: path.display().to_string(),
        claims,
        profiles,
    })
}

/// Opens and fingerprints a claim's GGUF file (relative paths are taken
/// from the claims file's folder).
fn model_ref(claims_path: &Path, file: &str) -> Result<ModelRef> {
    let p = Path::new(file);
    let p = if p.is_relative() {
        claims_path
            .parent()
            .map(|d| d.join(p))
            .unwrap_or(p.to_path_buf())
    } else {
        p.to_path_buf()
    };
    let f = capbench_workloads::models::gguf::GgufFile::open(&p).map_err(HarnessError::from)?;
    let bytes = std::fs::read(&p)
        .map_err(|e| HarnessError::bad_input(&p, "whole file", e.to_string(), "check the path"))?;
    let mut h = crate::results::env::Fnv1a::default();
    h.update(&bytes);
    Ok(ModelRef {
        path: p.display().to_string(),
        fnv1a: h.hex(),
        format: f.format.as_str().to_string(),
    })
}

/// Reads a claims file.
pub fn load(path: &Path) -> Result<ClaimSet> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        HarnessError::bad_input(
            path,
            "whole file",
            format!("cannot read claims file: {e}"),
            "check the path (examples: claims/examples.toml)",
        )
    })?;
    parse(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[profile.laptop]
memory_gib = 8
bandwidth_gb_per_s = 100
peak_tflops = { f32 = 2.6 }
source = "spec sheet"

[[claim]]
id = "decode-fast"
statement = "tiny decodes at ≥ 10 tok/s on the laptop"
workload = "decode/dense-tiny/q4_0"
profile = "laptop"
expect = ["tokens_per_s >= 10", "fits = true"]
"#;

    fn err(text: &str) -> String {
        let e = parse(text, Path::new("c.toml")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        e.to_string()
    }

    #[test]
    fn a_good_file_parses() {
        let s = parse(GOOD, Path::new("c.toml")).unwrap();
        assert_eq!(s.claims.len(), 1);
        let c = &s.claims[0];
        assert_eq!(c.workload.name, "decode/dense-tiny/q4_0");
        assert_eq!(c.expect.len(), 2);
        assert_eq!(c.line, 9);
        assert_eq!(s.profiles["laptop"].bandwidth_bytes_per_s, 100e9);
        assert_eq!(
            s.profiles["laptop"].memory_bytes,
            Some(8.0 * (1u64 << 30) as f64)
        );
    }

    #[test]
    fn errors_name_the_claim_and_the_field() {
        let e = err(&GOOD.replace("tokens_per_s >= 10", "tokens_per_s >> 10"));
        assert!(
            e.contains("claim 'decode-fast', field expect[0] (line 13"),
            "{e}"
        );
        let e = err(&GOOD.replace("dense-tiny", "dense-huge"));
        assert!(e.contains("claim 'decode-fast', field workload"), "{e}");
        let e = err(&GOOD.replace("profile = \"laptop\"", "profile = \"m9\""));
        assert!(
            e.contains("field profile") && e.contains("unknown profile 'm9'"),
            "{e}"
        );
        let e = err(&GOOD.replace("expect =", "expects ="));
        assert!(
            e.contains("claim 'decode-fast' (line 13") && e.contains("expects"),
            "{e}"
        );
        let e = err(&GOOD.replace("bandwidth_gb_per_s = 100", "bandwidth_gb_per_s = -1"));
        assert!(
            e.contains("[profile.laptop], field bandwidth_gb_per_s"),
            "{e}"
        );
        let e = err(&format!(
            "{GOOD}\n[[claim]]\nid = \"decode-fast\"\nstatement = \"x\"\nworkload = \"decode/dense-tiny/f32\"\nexpect = [\"tokens_per_s >= 1\"]\n"
        ));
        assert!(e.contains("already exists"), "{e}");
        let e = err(&GOOD.replace("tokens_per_s >= 10", "tokens_per_s_ratio >= 1"));
        assert!(e.contains("versus"), "{e}");
        let e = err("[[claim]]\nid = \"x\"\nstatement = \"s\"\nexpect = [\"a >= 1\"]\n");
        assert!(e.contains("neither workload nor model"), "{e}");
        let e = err(
            "[[claim]]\nid = \"x\"\nstatement = \"s\"\nworkload = \"decode/gguf/q4_0\"\nexpect = [\"a >= 1\"]\n",
        );
        assert!(
            e.contains("field workload") && e.contains("model = "),
            "{e}"
        );
        let e = err(
            "[[claim]]\nid = \"x\"\nstatement = \"s\"\nmodel = \"missing.gguf\"\nexpect = [\"a >= 1\"]\n",
        );
        assert!(
            e.contains("field model") && e.contains("missing.gguf"),
            "{e}"
        );
        let e = err(&GOOD.replace("profile = \"laptop\"\n", ""));
        assert!(
            e.contains("field expect[1]") && e.contains("mem_cap"),
            "{e}"
        );
        let e = err(&GOOD.replace("profile = \"laptop\"", "mem_cap = \"4 potatoes\""));
        assert!(e.contains("field mem_cap"), "{e}");
        // Built-in profiles resolve by name.
        let s = parse(
            &GOOD.replace("\"laptop\"", "\"t4-16gb\""),
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(s.profiles["t4-16gb"].bandwidth_bytes_per_s, 320e9);
        assert!(err("").contains("no [[claim]]"));
        assert!(err("[[claim]\n").contains("line 1"));
    }
}
