//! Energy per unit of work (per token, else per iteration) by case, one
//! series per backend × energy source: measured, polled, modelled and
//! analytic figures never share a series, and each has its own marker.

use super::chart::{Axis, Marker, Point, Series};
use super::common::{
    Planned, backend_label, dodge_rows, index_of, ok_cases, runs_text, series_index, value_axis,
};
use crate::report::model::{ReportInput, energy_source, keys};

const TITLE: &str = "Energy per unit of work by backend and energy source";

/// Filled markers for counters and power polling, hollow for estimates.
fn marker_of(source: &str) -> Marker {
    match source {
        "measured" => Marker::Circle,
        "polled" => Marker::Square,
        "modelled" => Marker::HollowCircle,
        "analytic" => Marker::HollowTriangle,
        _ => Marker::Cross,
    }
}

pub fn plan(inputs: &[ReportInput]) -> Vec<Planned> {
    let units = [
        (keys::ENERGY_J_PER_TOKEN, "J/token", "energy-per-token"),
        (keys::ENERGY_J_PER_ITER, "J/iteration", "energy-per-iter"),
    ];
    let mut out = vec![];
    for (n, (key, unit, id)) in units.iter().enumerate() {
        // A case with both keys is drawn per token only.
        let cases: Vec<_> = ok_cases(inputs)
            .filter(|it| it.case.metrics.contains_key(*key))
            .filter(|it| !units[..n].iter().any(|u| it.case.metrics.contains_key(u.0)))
            .collect();
        if cases.is_empty() {
            continue;
        }
        let mut rows: Vec<String> = vec![];
        let mut backends: Vec<String> = vec![];
        let mut names: Vec<String> = vec![];
        let mut series: Vec<Series> = vec![];
        let mut sources: Vec<String> = vec![];
        for it in &cases {
            let row = index_of(&mut rows, &it.case.workload.name);
            let b = backend_label(inputs, it);
            let color = index_of(&mut backends, &b);
            let src = energy_source(it.case).unwrap_or("source not recorded");
            index_of(&mut sources, src);
            let name = format!("{b} · {src}");
            let k = series_index(&mut names, &mut series, name, color, marker_of(src));
            series[k]
                .points
                .push(Point::at(it.case.metrics[*key], row as f64));
        }
        dodge_rows(&mut series);
        let values: Vec<f64> = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.x))
            .collect();
        let x = value_axis(format!("energy ({unit})"), values.into_iter(), 20.0);
        out.push(Planned::drawn(
            *id,
            TITLE,
            format!(
                "{} · metric {key}, source tag energy_source ({}) · filled = measured/polled, hollow = modelled/analytic",
                runs_text(inputs),
                sources.join(", ")
            ),
            x,
            Axis::categories("workload", rows),
            series,
            None,
        ));
    }
    if out.is_empty() {
        out.push(Planned::skipped(
            "energy",
            TITLE,
            "no case records energy (metrics energy_j_per_token or energy_j_per_iter, with tag energy_source)",
        ));
    }
    out
}
