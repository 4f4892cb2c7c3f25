//! Throughput per workload × backend: the headline median with its 95% CI
//! as whiskers, one figure per headline metric.

use super::chart::{Axis, Chart, Point, Series};
use super::common::{
    Planned, backend_label, dodge_rows, index_of, is_measured, measured_series, ok_cases,
    runs_text, unit_of, value_axis,
};
use crate::report::model::ReportInput;

const ID: &str = "throughput";
const TITLE: &str = "Throughput per workload × backend (median, 95% CI)";

pub fn plan(inputs: &[ReportInput]) -> Vec<Planned> {
    let mut metrics: Vec<String> = vec![];
    for it in ok_cases(inputs) {
        if let Some(h) = &it.case.headline {
            index_of(&mut metrics, &h.metric);
        }
    }
    if metrics.is_empty() {
        return vec![Planned::skipped(
            ID,
            TITLE,
            "no case ended ok with a headline figure",
        )];
    }
    let several = metrics.len() > 1;
    metrics
        .iter()
        .map(|m| {
            let id = if several {
                format!("{ID}-{m}")
            } else {
                ID.into()
            };
            Planned {
                id,
                title: TITLE.into(),
                chart: Ok(chart(inputs, m)),
                note: None,
            }
        })
        .collect()
}

fn chart(inputs: &[ReportInput], metric: &str) -> Chart {
    let mut workloads: Vec<String> = vec![];
    let mut backends: Vec<String> = vec![];
    // (series key, colour, measured?) → points
    let mut keys: Vec<String> = vec![];
    let mut series: Vec<Series> = vec![];
    let mut any_projected = false;
    let mut ci_bases: Vec<String> = vec![];
    let cases: Vec<_> = ok_cases(inputs)
        .filter(|it| {
            it.case
                .headline
                .as_ref()
                .is_some_and(|h| h.metric == metric)
        })
        .collect();
    for it in &cases {
        let w = index_of(&mut workloads, &it.case.workload.name);
        let b = backend_label(inputs, it);
        let color = index_of(&mut backends, &b);
        let measured = is_measured(it.case);
        any_projected |= !measured;
        let k = measured_series(&mut keys, &mut series, &b, color, measured);
        if let Some(s) = &it.case.stats {
            index_of(&mut ci_bases, &s.ci_basis.replace('_', "-"));
        }
        let h = it.case.headline.as_ref().expect("filtered on headline");
        series[k].points.push(Point {
            x: h.value,
            y: w as f64,
            x_err: Some((h.ci95_low, h.ci95_high)),
            y_err: None,
        });
    }
    dodge_rows(&mut series);
    let values = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.x))
        .collect::<Vec<_>>();
    let x = value_axis(
        format!("{metric} ({})", unit_of(metric)),
        values.into_iter(),
        20.0,
    );
    let mut source = format!(
        "{} · headline {metric}: median of worker-process medians, 95% CI {} ",
        runs_text(inputs),
        ci_bases.join("/")
    );
    source.push_str(if any_projected {
        "· hollow = projected, not measured"
    } else {
        "· all measured"
    });
    Chart {
        title: TITLE.into(),
        source,
        x,
        y: Axis::categories("workload", workloads),
        series,
        bands: vec![],
        marks: vec![],
    }
}
