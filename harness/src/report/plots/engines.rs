//! Engines side by side: tokens/s of each workload on every engine that ran
//! it — capbench's own, llama.cpp (`llamacpp`), PyTorch (`torch`) — one row
//! per model × format × shape, so "how far is our engine from the one
//! users run" reads off one figure. Drawn only when a workload ran on more
//! than one engine.

use super::chart::{Axis, Point};
use super::common::{Planned, dodge, index_of, measured_series, ok_cases, run_suffix, value_axis};
use crate::analysis::projection::engine_of;
use crate::report::model::ReportInput;

const ID: &str = "engines";
const TITLE: &str = "Tokens/s per engine × model and format (median, 95% CI)";
/// The headlines drawn: generated tokens/s (decode, training) and prompt
/// tokens/s (prefill); each row is one workload, so one metric.
const TOKEN_RATES: [&str; 2] = ["tokens_per_s", "prefill_tokens_per_s"];

pub fn plan(inputs: &[ReportInput]) -> Vec<Planned> {
    // (workload, engine label) of every ok case with a tokens/s headline.
    let cases: Vec<_> = ok_cases(inputs)
        .filter(|it| {
            it.case
                .headline
                .as_ref()
                .is_some_and(|h| TOKEN_RATES.contains(&h.metric.as_str()))
        })
        .map(|it| {
            let engine = format!("{}{}", engine_of(it.case), run_suffix(inputs, &it));
            (it, engine)
        })
        .collect();
    let mut shared: Vec<String> = vec![];
    for (it, engine) in &cases {
        let w = &it.case.workload.name;
        if cases
            .iter()
            .any(|(o, e)| &o.case.workload.name == w && e != engine)
        {
            index_of(&mut shared, w);
        }
    }
    if shared.is_empty() {
        return vec![Planned::skipped(
            ID,
            TITLE,
            "no workload ran on more than one engine (run with --backend cpu,llamacpp or cpu,torch)",
        )];
    }
    let mut engines: Vec<String> = vec![];
    let mut keys: Vec<String> = vec![];
    let mut series = vec![];
    for (it, engine) in cases
        .iter()
        .filter(|(it, _)| shared.contains(&it.case.workload.name))
    {
        let row = shared
            .iter()
            .position(|w| w == &it.case.workload.name)
            .expect("filtered on shared");
        let color = index_of(&mut engines, engine);
        let k = measured_series(&mut keys, &mut series, engine, color, true);
        let h = it.case.headline.as_ref().expect("filtered on headline");
        series[k].points.push(Point {
            x: h.value,
            y: row as f64,
            x_err: Some((h.ci95_low, h.ci95_high)),
            y_err: None,
        });
    }
    let n = series.len();
    for (k, s) in series.iter_mut().enumerate() {
        for p in &mut s.points {
            p.y += dodge(k, n);
        }
    }
    let x = value_axis(
        "tokens/s (prefill rows: prompt tokens/s)",
        series.iter().flat_map(|s| s.points.iter().map(|p| p.x)),
        20.0,
    );
    let source = format!(
        "engines: {} · same seeded weights and tokens on every engine, each verified against capbench's CPU f32 reference before timing · headline: median of worker-process medians",
        engines.join(", ")
    );
    vec![Planned::drawn(
        ID,
        TITLE,
        source,
        x,
        Axis::categories("workload", shared),
        series,
        None,
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fixtures::{case, jittered, run};
    use crate::results::Headline;

    fn inputs(backends: &[&str]) -> Vec<ReportInput> {
        let mut cases = vec![];
        for (i, b) in backends.iter().enumerate() {
            for w in ["decode/dense-tiny/q4_0/p8g4", "prefill/dense-tiny/f16/p16"] {
                let mut c = case(w, b, jittered(0.01, 3, i));
                let t = 100.0 * (i + 1) as f64;
                c.headline = Some(Headline {
                    metric: if w.starts_with("prefill") {
                        "prefill_tokens_per_s"
                    } else {
                        "tokens_per_s"
                    }
                    .into(),
                    value: t,
                    ci95_low: t * 0.98,
                    ci95_high: t * 1.02,
                    higher_is_better: true,
                });
                cases.push(c);
            }
        }
        vec![ReportInput {
            source: "results/local/engines".into(),
            run: run("m", cases),
        }]
    }

    #[test]
    fn draws_one_series_per_engine_on_shared_workloads() {
        let p = plan(&inputs(&["cpu", "llamacpp"]));
        let chart = p[0].chart.as_ref().expect("drawn");
        let names = chart.series_names();
        assert_eq!(names, vec!["capbench", "llamacpp"], "{names:?}");
        assert!(chart.series.iter().all(|s| s.points.len() == 2));
        assert!(chart.source.contains("verified"));
    }

    #[test]
    fn one_engine_is_skipped_with_how_to_get_two() {
        let p = plan(&inputs(&["cpu", "wgpu"]));
        let why = p[0].chart.as_ref().expect_err("skipped");
        assert!(why.contains("--backend cpu,llamacpp"), "{why}");
    }
}
