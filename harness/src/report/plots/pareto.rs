//! Quality against throughput, one series per dtype/quantisation, with the
//! Pareto frontier (from `analysis::pareto`). Quality is the held-out loss
//! where a workload records one, else the verification error against the
//! f64 reference (kernels).

use super::chart::{Axis, Point, Series, plottable, wants_log};
use super::common::{
    Item, Planned, dashed, index_of, is_measured, measured_series, ok_cases, runs_text, unit_of,
};
use crate::analysis::pareto;
use crate::report::model::{ReportInput, dtype_of, keys};

const TITLE: &str = "Quality vs throughput per dtype (Pareto frontier)";

struct Quality {
    id: &'static str,
    axis: &'static str,
    source: &'static str,
    read: fn(&Item) -> Option<f64>,
}

const QUALITIES: [Quality; 2] = [
    Quality {
        id: "pareto-loss",
        axis: "held-out loss (nats/token), lower is better",
        source: "quality: metric eval_loss_nats",
        read: |it| it.case.metrics.get(keys::EVAL_LOSS_NATS).copied(),
    },
    Quality {
        id: "pareto-error",
        axis: "max error vs f64 reference (scaled), lower is better",
        source: "quality: verification.scaled_max_diff",
        read: |it| it.case.verification.as_ref().map(|v| v.scaled_max_diff),
    },
];

pub fn plan(inputs: &[ReportInput]) -> Vec<Planned> {
    let mut out = vec![];
    let mut taken: Vec<String> = vec![];
    for q in &QUALITIES {
        let cases: Vec<_> = ok_cases(inputs)
            .filter(|it| !taken.contains(&format!("{}|{}", it.input.run.run_id, it.case.id)))
            .filter_map(|it| {
                let h = it.case.headline.as_ref()?;
                let y = (q.read)(&it)?;
                Some((it, h.metric.clone(), h.value, y))
            })
            .collect();
        if cases.is_empty() {
            continue;
        }
        for (it, ..) in &cases {
            taken.push(format!("{}|{}", it.input.run.run_id, it.case.id));
        }
        let mut metrics: Vec<String> = vec![];
        for c in &cases {
            index_of(&mut metrics, &c.1);
        }
        for metric in &metrics {
            let pts: Vec<_> = cases.iter().filter(|c| &c.1 == metric).collect();
            let y_log = wants_log(pts.iter().map(|c| c.3), 20.0);
            let dropped = pts.iter().filter(|c| !plottable(c.3, y_log)).count();
            let mut dtypes: Vec<String> = vec![];
            let mut names: Vec<String> = vec![];
            let mut series: Vec<Series> = vec![];
            let mut any_projected = false;
            for (it, _, x, y) in &pts {
                let d = dtype_of(it.case);
                let color = index_of(&mut dtypes, if d.is_empty() { "unknown dtype" } else { &d });
                let measured = is_measured(it.case);
                any_projected |= !measured;
                let k = measured_series(&mut names, &mut series, &dtypes[color], color, measured);
                series[k].points.push(Point::at(*x, *y));
            }
            // The frontier over measured points only: a projection is not
            // evidence that a trade-off is reachable.
            let measured: Vec<(f64, f64)> = pts
                .iter()
                .filter(|c| is_measured(c.0.case) && plottable(c.3, y_log))
                .map(|c| (c.2, c.3))
                .collect();
            let front = pareto::frontier(&measured);
            if front.len() >= 2 {
                series.push(dashed(
                    "Pareto frontier (measured)".into(),
                    7,
                    front
                        .iter()
                        .map(|&i| Point::at(measured[i].0, measured[i].1))
                        .collect(),
                ));
            }
            let x_log = wants_log(pts.iter().map(|c| c.2), 20.0);
            let x_label = format!("throughput: {metric} ({})", unit_of(metric));
            let id = if metrics.len() > 1 {
                format!("{}-{metric}", q.id)
            } else {
                q.id.to_string()
            };
            out.push(Planned::drawn(
                id,
                TITLE,
                format!(
                    "{} · throughput: headline {metric} · {} · {}",
                    runs_text(inputs),
                    q.source,
                    if any_projected { "hollow = projected" } else { "all measured" }
                ),
                if x_log { Axis::log(format!("{x_label}, log scale")) } else { Axis::linear(x_label) },
                if y_log { Axis::log(format!("{}, log scale", q.axis)) } else { Axis::linear(q.axis) },
                series,
                (dropped > 0).then(|| {
                    format!("{dropped} case(s) with zero or non-finite quality left out of the log-scale axis")
                }),
            ));
        }
    }
    if out.is_empty() {
        out.push(Planned::skipped(
            "pareto",
            TITLE,
            "no case ended ok with both a headline throughput and a quality figure (metric eval_loss_nats, or a verification record)",
        ));
    }
    out
}
