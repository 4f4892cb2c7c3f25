//! `capbench list`: the workloads and model shapes, backends, energy
//! sources, hardware profiles and built-in suites, as tables or JSON.

use std::process::ExitCode;

use crate::cli::{ListArgs, ListWhat};
use crate::error::HarnessError;
use crate::format::{human_bytes, human_count};
use crate::gpu::probe_all;
use crate::meter::energy::{Probe, SourceAttempt};
use crate::profiles::{self, Profile};
use crate::report::table;
use crate::suite;

use super::json;

pub fn run(a: &ListArgs) -> Result<ExitCode, HarnessError> {
    let text = match a.what {
        ListWhat::Workloads => {
            let entries: Vec<_> = capbench_workloads::catalog()
                .into_iter()
                .filter(|e| a.all || !e.harness_test)
                .collect();
            if a.json {
                json(&serde_json::json!({ "workloads": entries, "models": model_rows() }))
            } else {
                let kinds = table::rows(
                    &[
                        "name pattern",
                        "kind",
                        "version",
                        "backends",
                        "example",
                        "what",
                    ],
                    entries
                        .iter()
                        .map(|e| {
                            vec![
                                e.pattern.to_string(),
                                e.kind.to_string(),
                                format!("v{}", e.version),
                                e.backends.to_string(),
                                e.example.to_string(),
                                e.description.to_string(),
                            ]
                        })
                        .collect(),
                );
                let models = table::rows(
                    &[
                        "model",
                        "family",
                        "parameters",
                        "active",
                        "KV/token (f16)",
                        "decode need f16 / q4_0",
                        "source",
                    ],
                    model_rows()
                        .iter()
                        .map(|m| {
                            let f = |k: &str| m[k].as_f64().unwrap_or(0.0);
                            vec![
                                m["name"].as_str().unwrap_or_default().to_string(),
                                m["family"].as_str().unwrap_or_default().to_string(),
                                human_count(f("params")),
                                human_count(f("active_params")),
                                human_bytes(f("kv_bytes_per_token_f16") as u64),
                                format!(
                                    "{} / {}",
                                    human_bytes(f("decode_f16_need_bytes") as u64),
                                    human_bytes(f("decode_q4_0_need_bytes") as u64)
                                ),
                                m["source"].as_str().unwrap_or_default().to_string(),
                            ]
                        })
                        .collect(),
                );
                format!(
                    "{kinds}\n<model> is one of (seeded synthetic weights; real shapes where a source is given):\n{models}"
                )
            }
        }
        ListWhat::Backends => {
            let mut all = probe_all();
            // External engines (docs/worker-protocol.md), probed here.
            all.extend(
                suite::built_in_external()
                    .iter()
                    .map(crate::runner::external::status),
            );
            if a.json {
                json(&all)
            } else {
                let mut rows = vec![];
                for b in &all {
                    rows.push(vec![
                        b.backend.clone(),
                        yes_no(b.compiled_in),
                        yes_no(b.usable),
                        b.note.clone(),
                    ]);
                    for d in &b.devices {
                        // The name `--backend` takes: the device's own
                        // (`llamacpp:vulkan`), else family and index (`wgpu:1`).
                        let idx = if d.backend.starts_with(&format!("{}:", b.backend)) {
                            format!("{} ", d.backend)
                        } else {
                            d.index
                                .map(|i| format!("{}:{i} ", b.backend))
                                .unwrap_or_default()
                        };
                        rows.push(vec![
                            String::new(),
                            String::new(),
                            String::new(),
                            format!(
                                "{idx}{} — api {}, type {}, driver {} {}",
                                d.name, d.api, d.device_type, d.driver, d.driver_info
                            ),
                        ]);
                    }
                }
                let mut t =
                    table::rows(&["backend", "compiled in", "usable here", "details"], rows);
                t.push_str("\n\nenergy sources (capbench list energy):\n");
                t.push_str(&energy_table());
                t
            }
        }
        ListWhat::Energy => {
            if a.json {
                json(&energy_survey())
            } else {
                energy_table()
            }
        }
        ListWhat::Profiles => {
            let all = profiles::load_all()?;
            if a.json {
                json(&all)
            } else {
                profiles_table(&all)
            }
        }
        ListWhat::Suites => {
            let suites = suite::built_in();
            if a.json {
                json(
                    &suites
                        .iter()
                        .map(|s| {
                            serde_json::json!({
                                "name": s.name,
                                "description": s.description,
                                "workloads": s.workloads.iter().map(|w| &w.name).collect::<Vec<_>>(),
                                "sampling": s.sampling,
                            })
                        })
                        .collect::<Vec<_>>(),
                )
            } else {
                table::rows(
                    &["suite", "workloads", "processes per case", "what"],
                    suites
                        .iter()
                        .map(|s| {
                            vec![
                                s.name.clone(),
                                s.workloads
                                    .iter()
                                    .map(|w| w.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join("\n"),
                                s.sampling.repeat.to_string(),
                                s.description.clone(),
                            ]
                        })
                        .collect(),
                )
            }
        }
    };
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}

fn profiles_table(all: &[Profile]) -> String {
    let tf = |p: &Profile, d: &str| {
        p.peak_flops_per_s
            .get(d)
            .map(|s| {
                let t = s.value / 1e12;
                match t {
                    t if t >= 100.0 => format!("{t:.0}"),
                    t if t >= 10.0 => format!("{t:.1}"),
                    t => format!("{t:.2}"),
                }
            })
            .unwrap_or_else(|| "—".into())
    };
    let mut t = table::rows(
        &[
            "profile",
            "kind",
            "memory (budget)",
            "GB/s",
            "TFLOP/s f32 / f16 / bf16",
            "TDP W",
            "caps here",
            "what",
        ],
        all.iter()
            .map(|p| {
                let mut caps = vec![format!("mem {}", human_bytes(p.memory_budget_bytes()))];
                if let Some(t) = p.caps.threads {
                    caps.push(format!("threads {t}"));
                }
                if let Some(w) = &p.caps.wgpu_limits {
                    caps.push(format!("wgpu {w}"));
                }
                vec![
                    p.name.clone(),
                    p.kind.as_str().to_string(),
                    format!(
                        "{} ({})",
                        human_bytes(p.memory.total_bytes.value),
                        human_bytes(p.memory_budget_bytes())
                    ),
                    p.bandwidth()
                        .map(|b| format!("{:.0}", b / 1e9))
                        .unwrap_or_else(|| "—".into()),
                    format!("{} / {} / {}", tf(p, "f32"), tf(p, "f16"), tf(p, "bf16")),
                    p.tdp()
                        .map(|w| format!("{w:.0}"))
                        .unwrap_or_else(|| "—".into()),
                    caps.join("\n"),
                    p.description.clone(),
                ]
            })
            .collect(),
    );
    t.push_str(&format!(
        "\nEvery figure's source: `capbench list profiles --json`. \
         User profiles: *.toml in {} (a file with a built-in's name replaces it). \
         — = no sourced figure.",
        profiles::user_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| format!("${}", profiles::DIR_ENV))
    ));
    t
}

fn energy_survey() -> Vec<SourceAttempt> {
    Probe::system(capbench_workloads::backend::candle::default_threads()).survey()
}

fn energy_table() -> String {
    table::rows(
        &["source", "kind", "usable here", "details"],
        energy_survey()
            .into_iter()
            .map(|s| {
                vec![
                    s.name,
                    s.kind.as_str().to_string(),
                    yes_no(s.available),
                    s.status,
                ]
            })
            .collect(),
    )
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

/// One JSON row per model shape: sizes and predicted memory needs.
fn model_rows() -> Vec<serde_json::Value> {
    use capbench_workloads::cost::work::memory_need_bytes;
    use capbench_workloads::models::shapes;
    shapes()
        .into_iter()
        .map(|m| {
            let need = |fmt: &str| {
                capbench_workloads::WorkloadSpec::parse(&format!("decode/{}/{fmt}", m.name))
                    .ok()
                    .and_then(|s| memory_need_bytes(&s))
            };
            serde_json::json!({
                "name": m.name,
                "family": m.family.as_str(),
                "params": m.param_count(),
                "active_params": m.active_param_count(),
                "kv_bytes_per_token_f16": m.kv_elems_per_token() * 2,
                "decode_f16_need_bytes": need("f16"),
                "decode_q4_0_need_bytes": need("q4_0"),
                "source": if m.source.is_empty() { "synthetic size".to_string() } else { m.source.clone() },
            })
        })
        .collect()
}
