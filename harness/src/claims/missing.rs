//! `capbench check --run`: the suite of what the claims need and the results
//! lack — each claim's workload not measured yet, and the ceilings of this
//! machine when no run of it holds them.

use crate::claims::ClaimSet;
use crate::results::merge::SourcedRun;

/// Workloads to run: the claims' own (GGUF claims excepted: they need
/// `--model`, which names one file per run) not in `runs`, then the probe
/// suite's when no run of this machine has ceilings. Empty: nothing to run.
pub fn workloads(set: &ClaimSet, runs: &[SourcedRun]) -> (Vec<String>, Vec<String>) {
    let mut todo: Vec<String> = vec![];
    let mut skipped = vec![];
    for c in &set.claims {
        if c.model.is_some() {
            skipped.push(format!(
                "{}: decode of a GGUF file — run `capbench run --model {}` and pass its folder",
                c.id,
                c.model.as_ref().map(|m| m.path.as_str()).unwrap_or("")
            ));
            continue;
        }
        let measured = runs.iter().any(|r| {
            r.run.cases.iter().any(|k| {
                k.workload.name == c.workload.name && k.workload.version == c.workload.version
            })
        });
        if !measured && !todo.contains(&c.workload.name) {
            todo.push(c.workload.name.clone());
        }
    }
    let here = crate::results::env::Env::machine_id_now();
    let has_ceilings = runs
        .iter()
        .any(|r| r.run.env.machine_id == here && !r.run.ceilings.is_empty());
    if !has_ceilings {
        let probe = crate::suite::load("probe").expect("the probe suite is built in");
        for w in probe.workloads {
            if !todo.contains(&w.name) {
                todo.push(w.name);
            }
        }
    }
    (todo, skipped)
}

/// Decode or prefill of a model this large takes seconds an iteration
/// (llama-2-7b q4_0 on a 2-core VM: ~8 s for p64g32); the quick suite's
/// 3 × (2 + 10) iterations of it alone would take minutes.
const LARGE_MODEL_PARAMS: usize = 1_000_000_000;

/// Whether `name` decodes or prefills a synthetic model of at least
/// `LARGE_MODEL_PARAMS` parameters.
fn large_model(name: &str) -> bool {
    use capbench_workloads::spec::Typed;
    let Ok(spec) = capbench_workloads::WorkloadSpec::parse(name) else {
        return false;
    };
    let Typed::Decode(p) = spec.params.typed() else {
        return false;
    };
    capbench_workloads::models::shape(&p.model)
        .is_some_and(|c| c.param_count() >= LARGE_MODEL_PARAMS)
}

/// A suite file running `workloads` with the quick suite's sampling, and a
/// lighter sampling for multi-second iterations: quality runs, and decode
/// of large models (two processes of three samples: still a between-process
/// interval, wider — a verdict it cannot settle says `cannot tell`).
pub fn suite_toml(workloads: &[String]) -> String {
    let list = workloads
        .iter()
        .map(|w| format!("    \"{w}\",\n"))
        .collect::<String>();
    let large = workloads
        .iter()
        .filter(|w| large_model(w))
        .map(|w| {
            format!(
                "\n[[override]]\nworkloads = \"{w}\"\n\
                 sampling = {{ repeat = 2, warmup_iters = 1, min_samples = 3, max_time_s = 0.5, target_ci_rel = 0.02 }}\n"
            )
        })
        .collect::<String>();
    format!(
        "# Written by `capbench check --run`: what the claims needed and the results lacked.\n\
         name = \"claims\"\n\
         description = \"workloads named by a claims file, with the probe suite's ceilings\"\n\
         workloads = [\n{list}]\n\n\
         [sampling]\nrepeat = 3\nwarmup_iters = 2\nmin_samples = 10\nmax_time_s = 0.5\ntarget_ci_rel = 0.02\n\n\
         [[override]]\nworkloads = \"train-quality/*\"\n\
         sampling = {{ repeat = 2, warmup_iters = 0, min_samples = 2, max_time_s = 0.1, target_ci_rel = 0.05 }}\n{large}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_suite_parses() {
        let text = suite_toml(&["decode/dense-tiny/f32".into(), "kernel/stream-16M".into()]);
        let s = crate::suite::parse(&text, std::path::Path::new("s.toml"), "t").unwrap();
        assert_eq!(s.workloads.len(), 2);
    }

    #[test]
    fn large_models_get_the_lighter_sampling() {
        let names = [
            "decode/llama-2-7b/q4_0".to_string(),
            "decode/dense-small/q4_0".to_string(),
        ];
        let text = suite_toml(&names);
        let s = crate::suite::parse(&text, std::path::Path::new("s.toml"), "t").unwrap();
        let big = s.sampling_for("decode/llama-2-7b/q4_0");
        assert_eq!((big.repeat, big.warmup_iters, big.min_samples), (2, 1, 3));
        assert_eq!(s.sampling_for("decode/dense-small/q4_0").min_samples, 10);
    }
}
