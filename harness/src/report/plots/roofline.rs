//! Roofline: achieved GFLOP/s against arithmetic intensity (analytic
//! flops_per_iter / bytes_per_iter), with the device's measured ceilings
//! when the case records them (`analysis::roofline`).

use super::chart::{Axis, Line, Point, Series};
use super::common::{
    Planned, backend_label, index_of, is_measured, measured_series, ok_cases, runs_text,
};
use crate::analysis::roofline;
use crate::report::model::{ReportInput, keys};

const ID: &str = "roofline";
const TITLE: &str = "Roofline: achieved GFLOP/s vs arithmetic intensity";

pub fn plan(inputs: &[ReportInput]) -> Vec<Planned> {
    let mut backends: Vec<String> = vec![];
    let mut names: Vec<String> = vec![];
    let mut series: Vec<Series> = vec![];
    // Per backend: the measured ceilings (GFLOP/s, GB/s), first seen.
    let mut ceilings: Vec<Option<(f64, f64)>> = vec![];
    let (mut ai_lo, mut ai_hi) = (f64::INFINITY, 0.0f64);
    for it in ok_cases(inputs) {
        let m = &it.case.metrics;
        let (Some(f), Some(b), Some(g)) = (
            m.get(keys::FLOPS_PER_ITER),
            m.get(keys::BYTES_PER_ITER),
            m.get(keys::GFLOPS_PER_S),
        ) else {
            continue;
        };
        let Some(ai) = roofline::arithmetic_intensity(*f, *b) else {
            continue;
        };
        ai_lo = ai_lo.min(ai);
        ai_hi = ai_hi.max(ai);
        let bl = backend_label(inputs, &it);
        let color = index_of(&mut backends, &bl);
        if color == ceilings.len() {
            ceilings.push(None);
        }
        if let (None, Some(pf), Some(pb)) = (
            ceilings[color],
            m.get(keys::PEAK_GFLOPS_PER_S),
            m.get(keys::PEAK_GBYTES_PER_S),
        ) {
            ceilings[color] = Some((*pf, *pb));
        }
        let measured = is_measured(it.case);
        let k = measured_series(&mut names, &mut series, &bl, color, measured);
        let ci = match (
            m.get("gflops_per_s_ci95_low"),
            m.get("gflops_per_s_ci95_high"),
        ) {
            (Some(l), Some(h)) => Some((*l, *h)),
            _ => None,
        };
        series[k].points.push(Point {
            x: ai,
            y: *g,
            x_err: None,
            y_err: ci,
        });
    }
    if series.is_empty() {
        return vec![Planned::skipped(
            ID,
            TITLE,
            "no case ended ok with gflops_per_s, flops_per_iter and bytes_per_iter",
        )];
    }
    let mut with_roof = 0;
    for (i, c) in ceilings.iter().enumerate() {
        let Some((pf, pb)) = c else { continue };
        with_roof += 1;
        let ridge = roofline::ridge_point(*pf, *pb);
        let lo = (ai_lo.min(ridge)) / 4.0;
        let hi = (ai_hi.max(ridge)) * 4.0;
        series.push(Series {
            name: format!(
                "{} roof: {pf:.0} GFLOP/s, {pb:.0} GB/s (measured)",
                backends[i]
            ),
            color: i,
            marker: None,
            line: Line::Solid,
            points: [lo, ridge, hi]
                .iter()
                .map(|&x| Point::at(x, roofline::attainable_gflops_per_s(x, *pf, *pb)))
                .collect(),
        });
    }
    let note = (with_roof < backends.len()).then(|| {
        format!(
            "{} of {} backend(s) have no measured ceilings (metrics peak_gflops_per_s, peak_gbytes_per_s): points only",
            backends.len() - with_roof,
            backends.len()
        )
    });
    vec![Planned::drawn(
        ID,
        TITLE,
        format!(
            "{} · gflops_per_s (measured, 95% CI) · intensity = flops_per_iter / bytes_per_iter (analytic){}",
            runs_text(inputs),
            if with_roof > 0 {
                " · roofs: peak_gflops_per_s, peak_gbytes_per_s (measured)"
            } else {
                " · no measured ceilings"
            }
        ),
        Axis::log("arithmetic intensity (FLOP/byte), log scale"),
        Axis::log("achieved throughput (GFLOP/s), log scale"),
        series,
        note,
    )]
}
