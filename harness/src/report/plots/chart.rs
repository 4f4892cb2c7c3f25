//! A chart as plain data: axes, series of points with optional error bars,
//! reference lines. Each figure builder fills one; `draw` renders any of
//! them, so every figure shares axes, palette, legend and source footer.

/// Okabe & Ito (2008), "Color Universal Design": distinguishable with every
/// common form of colour blindness. Black last: it reads as "reference".
pub const PALETTE: [(u8, u8, u8); 8] = [
    (0, 114, 178),   // blue
    (230, 159, 0),   // orange
    (0, 158, 115),   // bluish green
    (213, 94, 0),    // vermillion
    (204, 121, 167), // reddish purple
    (86, 180, 233),  // sky blue
    (240, 228, 66),  // yellow
    (0, 0, 0),       // black
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Circle,
    /// Hollow: modelled, projected or otherwise not measured.
    HollowCircle,
    Square,
    Triangle,
    HollowTriangle,
    Cross,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    /// (low, high) of a 95% CI along x or y, drawn as whiskers.
    pub x_err: Option<(f64, f64)>,
    pub y_err: Option<(f64, f64)>,
}

impl Point {
    pub fn at(x: f64, y: f64) -> Point {
        Point {
            x,
            y,
            x_err: None,
            y_err: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    None,
    Solid,
    Dashed,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// Index into `PALETTE`.
    pub color: usize,
    pub marker: Option<Marker>,
    pub line: Line,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone)]
pub struct Axis {
    /// With the unit, e.g. "throughput (GFLOP/s)".
    pub label: String,
    pub log: bool,
    /// Categorical axis: value i is labelled `categories[i]`.
    pub categories: Vec<String>,
    /// Ordinal axis, left to right or bottom up: integer i is labelled
    /// `ticks[i]` (commits of a trend).
    pub ticks: Vec<String>,
    /// A linear axis starts at zero (honest for bar-like comparisons); a
    /// trend zooms to its data instead.
    pub from_zero: bool,
}

impl Axis {
    pub fn linear(label: impl Into<String>) -> Axis {
        Axis {
            label: label.into(),
            log: false,
            categories: vec![],
            ticks: vec![],
            from_zero: true,
        }
    }
    pub fn ordinal(label: impl Into<String>, ticks: Vec<String>) -> Axis {
        Axis {
            ticks,
            ..Axis::linear(label)
        }
    }
    /// A linear axis fitted to the data rather than starting at zero.
    pub fn zoomed(label: impl Into<String>) -> Axis {
        Axis {
            from_zero: false,
            ..Axis::linear(label)
        }
    }
    pub fn log(label: impl Into<String>) -> Axis {
        Axis {
            log: true,
            ..Axis::linear(label)
        }
    }
    pub fn categories(label: impl Into<String>, categories: Vec<String>) -> Axis {
        Axis {
            categories,
            ..Axis::linear(label)
        }
    }
}

/// A shaded band between `low` and `high` over x (a CI over commits).
#[derive(Debug, Clone)]
pub struct Band {
    pub name: String,
    /// Index into `PALETTE`.
    pub color: usize,
    /// (x, low, high), in x order.
    pub points: Vec<(f64, f64, f64)>,
}

/// A vertical marker across the plot at `x`, labelled at the top (a change
/// point).
#[derive(Debug, Clone)]
pub struct Mark {
    pub x: f64,
    pub label: String,
    /// Index into `PALETTE`.
    pub color: usize,
}

#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    /// Printed under the plot: where the data came from.
    pub source: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
    /// Drawn under the series.
    pub bands: Vec<Band>,
    pub marks: Vec<Mark>,
}

impl Chart {
    /// Names of the series that appear in the legend.
    pub fn series_names(&self) -> Vec<String> {
        let bands = self.bands.iter().map(|b| b.name.clone());
        self.series
            .iter()
            .map(|s| s.name.clone())
            .chain(bands)
            .collect()
    }
}

/// Whether a value can sit on an axis (log axes need it positive).
pub fn plottable(v: f64, log: bool) -> bool {
    v.is_finite() && (!log || v > 0.0)
}

/// Picks a log axis when the data span more than `ratio` between the
/// smallest and largest positive value.
pub fn wants_log(values: impl Iterator<Item = f64>, ratio: f64) -> bool {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    hi > 0.0 && lo.is_finite() && hi / lo > ratio
}
