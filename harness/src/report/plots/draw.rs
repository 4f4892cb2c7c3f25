//! Renders a `Chart` with plotters onto any backend (SVG, PNG): log axes by
//! plotting log10 values with decade-aware tick labels, categorical axes by
//! index, whiskers for CIs, and a legend in its own strip so it never hides
//! data. The source label is printed under every figure.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::chart::{Axis, Chart, Line, Marker, PALETTE, plottable};
use super::font::FAMILY;
use crate::format::sig3;

pub const WIDTH_PX: u32 = 1000;
pub const HEIGHT_PX: u32 = 600;

/// Legend entry of the vertical marks.
const MARK_LEGEND: &str = "change point";

/// Every name the legend shows: series, bands, and the marks' entry.
fn legend_names(chart: &Chart) -> Vec<&str> {
    let mut names: Vec<&str> = chart.series.iter().map(|s| s.name.as_str()).collect();
    names.extend(chart.bands.iter().map(|b| b.name.as_str()));
    if !chart.marks.is_empty() {
        names.push(MARK_LEGEND);
    }
    names
}

type DrawResult = Result<(), String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn color(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

/// Data value → axis position: log10 on log axes; categorical axes run top
/// to bottom, so category 0 is drawn at the top.
fn to_axis(a: &Axis, v: f64) -> f64 {
    if !a.categories.is_empty() {
        (a.categories.len() as f64 - 1.0) - v
    } else if a.log {
        v.log10()
    } else {
        v
    }
}

/// A log-axis tick at 10^`v`: decades as 0.01 … 10000 or 1e-5, others with
/// three significant digits.
fn log_tick(v: f64) -> String {
    let k = v.round();
    if (v - k).abs() > 1e-9 {
        return sig3(10f64.powf(v));
    }
    let k = k as i32;
    match k {
        -3..=-1 => format!("{:.*}", (-k) as usize, 10f64.powi(k)),
        0..=5 => format!("{:.0}", 10f64.powi(k)),
        _ => format!("1e{k}"),
    }
}

/// Draws marker `$m` at `$at` by binding the element to `$e` and running
/// `$body` (a macro, not a function: each marker is its own element type,
/// and plotters' type-erased elements would need `'static` backends).
macro_rules! with_marker {
    ($m:expr, $at:expr, $c:expr, |$e:ident| $body:expr) => {{
        let filled = ShapeStyle::from(&$c).filled();
        let stroke = ShapeStyle::from(&$c).stroke_width(2);
        let at = $at;
        match $m {
            Marker::Circle => {
                let $e = Circle::new(at, 5, filled);
                $body
            }
            Marker::HollowCircle => {
                let $e = Circle::new(at, 5, stroke);
                $body
            }
            Marker::Square => {
                let $e = EmptyElement::at(at) + Rectangle::new([(-4, -4), (4, 4)], filled);
                $body
            }
            Marker::Triangle => {
                let $e = TriangleMarker::new(at, 6, filled);
                $body
            }
            Marker::HollowTriangle => {
                let $e = EmptyElement::at(at)
                    + PathElement::new(vec![(0, -6), (5, 4), (-5, 4), (0, -6)], stroke);
                $body
            }
            Marker::Cross => {
                let $e = Cross::new(at, 5, stroke);
                $body
            }
        }
    }};
}

/// (low, high) of an axis over the values, padded so points are not on the frame.
fn range(a: &Axis, values: &[f64]) -> (f64, f64) {
    if !a.categories.is_empty() {
        return (-0.6, a.categories.len() as f64 - 0.4);
    }
    if !a.ticks.is_empty() {
        return (-0.5, a.ticks.len() as f64 - 0.5);
    }
    let vs: Vec<f64> = values
        .iter()
        .filter(|v| plottable(**v, a.log))
        .map(|v| to_axis(a, *v))
        .collect();
    let lo = vs.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = vs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if a.log {
        let pad = ((hi - lo) * 0.08).max(0.15);
        (lo - pad, hi + pad)
    } else if !a.from_zero {
        let pad = ((hi - lo) * 0.1)
            .max(hi.abs().max(lo.abs()) * 0.02)
            .max(1e-12);
        (lo - pad, hi + pad)
    } else {
        // Linear quantities here are non-negative: start at zero so bar-like
        // comparisons are honest.
        let lo = lo.min(0.0);
        let pad = ((hi - lo) * 0.08).max(if hi == 0.0 { 1.0 } else { hi.abs() * 0.05 });
        (lo, hi + pad)
    }
}

fn tick_label(a: &Axis, v: f64) -> String {
    if !a.categories.is_empty() {
        let i = v.round();
        let n = a.categories.len() as f64;
        if (v - i).abs() > 1e-6 || i < 0.0 || i >= n {
            return String::new();
        }
        return a.categories[(n - 1.0 - i) as usize].clone();
    }
    if !a.ticks.is_empty() {
        let i = v.round();
        if (v - i).abs() > 1e-6 || i < 0.0 || i >= a.ticks.len() as f64 {
            return String::new();
        }
        return a.ticks[i as usize].clone();
    }
    if a.log {
        log_tick(v)
    } else if v == 0.0 {
        "0".into()
    } else {
        sig3(v)
    }
}

/// Most tick labels to ask for: one per category; on a log axis about one
/// per decade, so ticks land on decades where the span allows.
fn label_count(a: &Axis, lo: f64, hi: f64) -> usize {
    if !a.categories.is_empty() {
        a.categories.len() + 1
    } else if !a.ticks.is_empty() {
        // Short commit hashes: about a dozen fit side by side.
        a.ticks.len().clamp(2, 12)
    } else if a.log {
        ((hi - lo).ceil() as usize + 1).clamp(3, 10)
    } else {
        8
    }
}

/// Joins `parts` with `sep` into as few lines as fit `width_px` (a part
/// wider than that alone gets a line of its own).
fn greedy<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    parts: &[&str],
    sep: &str,
    style: &TextStyle,
    width_px: u32,
) -> Result<Vec<String>, String> {
    let mut lines: Vec<String> = vec![];
    let mut cur = String::new();
    for part in parts {
        let candidate = if cur.is_empty() {
            part.to_string()
        } else {
            format!("{cur}{sep}{part}")
        };
        let fits = area.estimate_text_size(&candidate, style).map_err(err)?.0 <= width_px;
        if fits || cur.is_empty() {
            cur = candidate;
        } else {
            lines.push(std::mem::take(&mut cur));
            cur = part.to_string();
        }
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    Ok(lines)
}

/// Splits the source label at " · " into lines that fit `width_px`; a
/// piece still too wide (a long sentence) is broken between words.
fn wrap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle,
    width_px: u32,
) -> Result<Vec<String>, String> {
    let parts: Vec<&str> = text.split(" · ").collect();
    let mut lines = vec![];
    for line in greedy(area, &parts, " · ", style, width_px)? {
        if area.estimate_text_size(&line, style).map_err(err)?.0 <= width_px {
            lines.push(line);
        } else {
            let words: Vec<&str> = line.split(' ').collect();
            lines.extend(greedy(area, &words, " ", style, width_px)?);
        }
    }
    Ok(lines)
}

pub fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, chart: &Chart) -> DrawResult {
    root.fill(&WHITE).map_err(err)?;
    let (w, h) = root.dim_in_pixel();
    let footer_style = (FAMILY, 13).into_font().color(&RGBColor(70, 70, 70));
    let footer_lines = wrap(root, &chart.source, &footer_style, w.saturating_sub(20))?;
    let footer_h = 18 * footer_lines.len() as u32 + 8;
    let (body, footer) = root.split_vertically(h.saturating_sub(footer_h));
    for (i, line) in footer_lines.iter().enumerate() {
        footer
            .draw_text(line, &footer_style, (10, 4 + 18 * i as i32))
            .map_err(err)?;
    }

    let legend_font: TextStyle = (FAMILY, 14).into_font().into();
    let legend_w = legend_names(chart)
        .iter()
        .map(|n| root.estimate_text_size(n, &legend_font).map(|d| d.0))
        .collect::<Result<Vec<u32>, _>>()
        .map_err(err)?
        .into_iter()
        .max()
        .map(|tw| (tw + 44).min(w / 3))
        .unwrap_or(0);
    let (plot, legend) = body.split_horizontally(w - legend_w);

    let tick_font: TextStyle = (FAMILY, 13).into_font().into();
    let y_label_w = if chart.y.categories.is_empty() {
        70
    } else {
        chart
            .y
            .categories
            .iter()
            .map(|c| root.estimate_text_size(c, &tick_font).map(|d| d.0))
            .collect::<Result<Vec<u32>, _>>()
            .map_err(err)?
            .into_iter()
            .max()
            .unwrap_or(0)
            .min(w / 3)
            + 16
    };

    let mut xs = vec![];
    let mut ys = vec![];
    for s in &chart.series {
        for p in &s.points {
            xs.push(p.x);
            ys.push(p.y);
            if let Some((lo, hi)) = p.x_err {
                xs.extend([lo, hi]);
            }
            if let Some((lo, hi)) = p.y_err {
                ys.extend([lo, hi]);
            }
        }
    }
    for b in &chart.bands {
        for &(x, lo, hi) in &b.points {
            xs.push(x);
            ys.extend([lo, hi]);
        }
    }
    let (x0, x1) = range(&chart.x, &xs);
    let (y0, y1) = range(&chart.y, &ys);

    let mut cc = ChartBuilder::on(&plot)
        .caption(&chart.title, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(52)
        .y_label_area_size(y_label_w + 30)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(err)?;
    let xfmt = |v: &f64| tick_label(&chart.x, *v);
    let yfmt = |v: &f64| tick_label(&chart.y, *v);
    cc.configure_mesh()
        .x_desc(&chart.x.label)
        .y_desc(&chart.y.label)
        .x_labels(label_count(&chart.x, x0, x1))
        .y_labels(label_count(&chart.y, y0, y1))
        .x_label_formatter(&xfmt)
        .y_label_formatter(&yfmt)
        .label_style(tick_font.clone())
        .axis_desc_style((FAMILY, 15))
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(err)?;

    let on_x = |v: f64| plottable(v, chart.x.log).then(|| to_axis(&chart.x, v));
    let on_y = |v: f64| plottable(v, chart.y.log).then(|| to_axis(&chart.y, v));
    for b in &chart.bands {
        let pts: Vec<(f64, f64, f64)> = b
            .points
            .iter()
            .filter_map(|&(x, lo, hi)| Some((on_x(x)?, on_y(lo)?, on_y(hi)?)))
            .collect();
        let outline: Vec<(f64, f64)> = pts
            .iter()
            .map(|p| (p.0, p.2))
            .chain(pts.iter().rev().map(|p| (p.0, p.1)))
            .collect();
        if outline.len() >= 3 {
            let fill = color(b.color).mix(0.2).filled();
            cc.draw_series(std::iter::once(Polygon::new(outline, fill)))
                .map_err(err)?;
        }
    }
    for s in &chart.series {
        let c = color(s.color);
        let whisker = ShapeStyle::from(&c).stroke_width(2);
        for p in &s.points {
            let (Some(x), Some(y)) = (on_x(p.x), on_y(p.y)) else {
                continue;
            };
            if let Some((Some(lo), Some(hi))) = p.x_err.map(|(l, h)| (on_x(l), on_x(h))) {
                let cap = (y1 - y0) * 0.012;
                cc.draw_series([
                    PathElement::new(vec![(lo, y), (hi, y)], whisker),
                    PathElement::new(vec![(lo, y - cap), (lo, y + cap)], whisker),
                    PathElement::new(vec![(hi, y - cap), (hi, y + cap)], whisker),
                ])
                .map_err(err)?;
            }
            if let Some((Some(lo), Some(hi))) = p.y_err.map(|(l, h)| (on_y(l), on_y(h))) {
                let cap = (x1 - x0) * 0.006;
                cc.draw_series([
                    PathElement::new(vec![(x, lo), (x, hi)], whisker),
                    PathElement::new(vec![(x - cap, lo), (x + cap, lo)], whisker),
                    PathElement::new(vec![(x - cap, hi), (x + cap, hi)], whisker),
                ])
                .map_err(err)?;
            }
        }
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter_map(|p| Some((on_x(p.x)?, on_y(p.y)?)))
            .collect();
        match s.line {
            Line::None => {}
            Line::Solid => {
                cc.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                    .map_err(err)?;
            }
            Line::Dashed => {
                cc.draw_series(DashedLineSeries::new(pts.clone(), 8, 5, c.stroke_width(2)))
                    .map_err(err)?;
            }
        }
        if let Some(m) = s.marker {
            for &p in &pts {
                with_marker!(m, p, c, |e| cc
                    .draw_series(std::iter::once(e))
                    .map(|_| ())
                    .map_err(err))?;
            }
        }
    }

    // Change points across the plot, labels staggered over three rows so
    // neighbours do not overprint.
    let mark_font = (FAMILY, 13).into_font();
    for (i, m) in chart.marks.iter().enumerate() {
        let Some(x) = on_x(m.x) else { continue };
        let c = color(m.color);
        cc.draw_series(DashedLineSeries::new(
            vec![(x, y0), (x, y1)],
            6,
            4,
            c.stroke_width(2),
        ))
        .map_err(err)?;
        let y = y1 - (y1 - y0) * (0.03 + 0.06 * (i % 3) as f64);
        // A few pixels right of the line, so the label's first glyph (a
        // sign) is not drawn over by the dashes.
        let label = EmptyElement::at((x, y))
            + Text::new(m.label.clone(), (5, 0), mark_font.clone().color(&c));
        cc.draw_series(std::iter::once(label)).map_err(err)?;
    }

    // Legend: one row per series, marker (or line sample) then its name;
    // then the bands (a swatch) and the change points (a dashed line).
    let row_h = 22;
    for (i, b) in chart.bands.iter().enumerate() {
        let y = 60 + (chart.series.len() + i) as i32 * row_h;
        let fill = color(b.color).mix(0.2).filled();
        legend
            .draw(&Rectangle::new([(4, y - 6), (28, y + 6)], fill))
            .map_err(err)?;
        legend
            .draw_text(&b.name, &legend_font, (34, y - 8))
            .map_err(err)?;
    }
    if let Some(m) = chart.marks.first() {
        let y = 60 + (chart.series.len() + chart.bands.len()) as i32 * row_h;
        legend
            .draw(&PathElement::new(
                vec![(16, y - 8), (16, y + 8)],
                color(m.color).stroke_width(2),
            ))
            .map_err(err)?;
        legend
            .draw_text(MARK_LEGEND, &legend_font, (34, y - 8))
            .map_err(err)?;
    }
    for (i, s) in chart.series.iter().enumerate() {
        let y = 60 + i as i32 * row_h;
        let c = color(s.color);
        if s.line != Line::None {
            legend
                .draw(&PathElement::new(vec![(4, y), (28, y)], c.stroke_width(2)))
                .map_err(err)?;
        }
        if let Some(m) = s.marker {
            with_marker!(m, (16, y), c, |e| legend.draw(&e).map_err(err))?;
        }
        legend
            .draw_text(&s.name, &legend_font, (34, y - 8))
            .map_err(err)?;
    }
    Ok(())
}
