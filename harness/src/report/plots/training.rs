//! Training loss curves against the corpus's entropy floor: the loss a
//! perfect model of the synthetic data would reach.

use super::chart::{Axis, Line, Point, Series};
use super::common::{Planned, backend_label, dashed, ok_cases, runs_text, value_axis};
use crate::report::model::{ReportInput, keys};

const ID: &str = "training-loss";
const TITLE: &str = "Training loss vs entropy floor";

pub fn plan(inputs: &[ReportInput]) -> Vec<Planned> {
    let mut series: Vec<Series> = vec![];
    let mut floors: Vec<(String, f64)> = vec![];
    let mut max_step = 0.0f64;
    let mut min_step = f64::INFINITY;
    let mut without_floor = 0;
    for it in ok_cases(inputs) {
        let Some(curve) = it.case.series.get(keys::SERIES_LOSS_CURVE) else {
            continue;
        };
        if curve.is_empty() {
            continue;
        }
        let name = format!("{} · {}", it.case.workload.name, backend_label(inputs, &it));
        for p in curve {
            max_step = max_step.max(p[0]);
            min_step = min_step.min(p[0]);
        }
        match it.case.metrics.get(keys::ENTROPY_FLOOR_NATS) {
            Some(f) => floors.push((name.clone(), *f)),
            None => without_floor += 1,
        }
        series.push(Series {
            name,
            color: series.len() % 7,
            marker: None,
            line: Line::Solid,
            points: curve.iter().map(|p| Point::at(p[0], p[1])).collect(),
        });
    }
    if series.is_empty() {
        return vec![Planned::skipped(
            ID,
            TITLE,
            "no case records a training loss curve (series loss_curve = [step, loss in nats])",
        )];
    }
    // One dashed black line per distinct floor (usually one corpus).
    let mut distinct: Vec<f64> = floors.iter().map(|f| f.1).collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    for f in &distinct {
        let name = if distinct.len() == 1 {
            format!("entropy floor {f:.3} nats")
        } else {
            let who: Vec<&str> = floors
                .iter()
                .filter(|x| (x.1 - f).abs() < 1e-9)
                .map(|x| x.0.as_str())
                .collect();
            format!("entropy floor {f:.3} ({})", who.join(", "))
        };
        series.push(dashed(
            name,
            7,
            vec![Point::at(min_step, *f), Point::at(max_step, *f)],
        ));
    }
    let steps = series.iter().flat_map(|s| s.points.iter().map(|p| p.x));
    let x = value_axis("optimizer step", steps, 100.0);
    vec![Planned::drawn(
        ID,
        TITLE,
        format!(
            "{} · series loss_curve (measured training loss), metric entropy_floor_nats (analytic, from the corpus)",
            runs_text(inputs)
        ),
        x,
        Axis::linear("loss (nats/token)"),
        series,
        (without_floor > 0).then(|| {
            format!("{without_floor} curve(s) without entropy_floor_nats: no floor drawn for them")
        }),
    )]
}
