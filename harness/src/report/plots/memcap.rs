//! Decode throughput against the memory cap, per model: where it ran, where
//! it did not fit (status `oom`), and the fit/no-fit frontier between them
//! (from `analysis::fit`).

use super::chart::{Axis, Line, Marker, Point, Series};
use super::common::{Planned, all_cases, dashed, index_of, is_measured, runs_text, value_axis};
use crate::analysis::fit;
use crate::format::sig3;
use crate::report::model::{ReportInput, keys};
use crate::results::Status;

const ID: &str = "decode-memory-cap";
const TITLE: &str = "Decode throughput vs memory cap (fit / no-fit frontier)";
const GIB: f64 = (1u64 << 30) as f64;

pub fn plan(inputs: &[ReportInput]) -> Vec<Planned> {
    let mut workloads: Vec<String> = vec![];
    // Per workload: (cap GiB, tokens/s if ran, measured?)
    let mut points: Vec<Vec<(f64, Option<f64>, bool)>> = vec![];
    let mut other_failures = 0;
    for it in all_cases(inputs) {
        let Some(cap) = it.case.metrics.get(keys::MEM_CAP_BYTES) else {
            continue;
        };
        let tps = it.case.metrics.get(keys::TOKENS_PER_S).copied();
        let ran = match (it.case.status, tps) {
            (Status::Ok, Some(t)) => Some(t),
            (Status::Oom, _) => None,
            _ => {
                // Crashes and timeouts say nothing about fitting.
                other_failures += 1;
                continue;
            }
        };
        let w = index_of(&mut workloads, &it.case.workload.name);
        if w == points.len() {
            points.push(vec![]);
        }
        points[w].push((cap / GIB, ran, is_measured(it.case)));
    }
    if workloads.is_empty() {
        return vec![Planned::skipped(
            ID,
            TITLE,
            "no decode case under a memory cap (metrics mem_cap_bytes and tokens_per_s; status oom = did not fit)",
        )];
    }
    let mut series = vec![];
    let mut y_max = 0.0f64;
    for p in points.iter().flatten() {
        y_max = y_max.max(p.1.unwrap_or(0.0));
    }
    for (w, name) in workloads.iter().enumerate() {
        let mut pts = points[w].clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        for measured in [true, false] {
            let ran: Vec<Point> = pts
                .iter()
                .filter(|p| p.2 == measured)
                .filter_map(|p| Some(Point::at(p.0, p.1?)))
                .collect();
            if !ran.is_empty() {
                series.push(Series {
                    name: if measured {
                        format!("{name} · ran")
                    } else {
                        format!("{name} · ran (projected)")
                    },
                    color: w % 7,
                    marker: Some(if measured {
                        Marker::Circle
                    } else {
                        Marker::HollowCircle
                    }),
                    line: if measured { Line::Solid } else { Line::Dashed },
                    points: ran,
                });
            }
        }
        let no_fit: Vec<Point> = pts
            .iter()
            .filter(|p| p.1.is_none())
            .map(|p| Point::at(p.0, 0.0))
            .collect();
        if !no_fit.is_empty() {
            series.push(Series {
                name: format!("{name} · did not fit (oom)"),
                color: w % 7,
                marker: Some(Marker::Cross),
                line: Line::None,
                points: no_fit,
            });
        }
        let caps: Vec<(f64, bool)> = pts.iter().map(|p| (p.0, p.1.is_some())).collect();
        let edge = fit::frontier(&caps).and_then(|f| {
            match (f.largest_no_fit_bytes, f.smallest_fit_bytes, f.inconsistent) {
                (Some(no), Some(yes), false) => Some((no, yes)),
                _ => None,
            }
        });
        if let Some((no, yes)) = edge {
            // The frontier lies somewhere in (no, yes]: draw it at `yes`.
            series.push(dashed(
                format!("{name} · fits from {} GiB (oom at {})", sig3(yes), sig3(no)),
                w % 7,
                vec![Point::at(yes, 0.0), Point::at(yes, y_max * 1.05)],
            ));
        }
    }
    let caps = points.iter().flatten().map(|p| p.0);
    vec![Planned::drawn(
        ID,
        TITLE,
        format!(
            "{} · metrics tokens_per_s, mem_cap_bytes; × = status oom at that cap · dashed = fit frontier",
            runs_text(inputs)
        ),
        value_axis("memory cap (GiB)", caps, 16.0),
        Axis::linear("decode throughput (tokens/s)"),
        series,
        (other_failures > 0).then(|| {
            format!("{other_failures} capped case(s) failed for reasons other than memory and are not drawn")
        }),
    )]
}
