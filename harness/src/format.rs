//! How numbers and sizes are written for people, in one place: tables,
//! reports, plots, case ids and messages all print a figure the same way.

/// Three significant digits, without exponent for everyday magnitudes.
pub fn sig3(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else if a >= 0.001 {
        format!("{x:.3}")
    } else {
        format!("{x:.2e}")
    }
}

/// Joules with an SI prefix and three significant digits: `3.75 mJ`.
pub fn joules(j: f64) -> String {
    let a = j.abs();
    let (scale, unit) = if a >= 1.0 || a == 0.0 || !a.is_finite() {
        (1.0, "J")
    } else if a >= 1e-3 {
        (1e3, "mJ")
    } else if a >= 1e-6 {
        (1e6, "µJ")
    } else {
        (1e9, "nJ")
    };
    format!("{} {unit}", sig3(j * scale))
}

/// A size for people: binary units with three significant figures.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else if v.fract() == 0.0 || v >= 100.0 {
        format!("{v:.0} {}", UNITS[u])
    } else if v >= 10.0 {
        format!("{v:.1} {}", UNITS[u])
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// The short form used in case ids: `8GiB`, `1.5GiB`, `300MiB`, `1000B`.
pub fn compact_bytes(b: u64) -> String {
    human_bytes(b).replace(' ', "")
}

/// A parameter count: `1.24 B`, `350.0 M`, `12 k`.
pub fn human_count(n: f64) -> String {
    if n >= 1e9 {
        format!("{:.2} B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} M", n / 1e6)
    } else {
        format!("{:.0} k", n / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joules_picks_a_prefix() {
        assert_eq!(joules(0.00375), "3.75 mJ");
        assert_eq!(joules(2.5), "2.50 J");
        assert_eq!(joules(4.2e-5), "42.0 µJ");
    }

    #[test]
    fn sig3_keeps_three_digits() {
        assert_eq!(sig3(1234.5), "1234");
        assert_eq!(sig3(12.345), "12.3");
        assert_eq!(sig3(1.2345), "1.23");
        assert_eq!(sig3(0.012345), "0.012");
        assert_eq!(sig3(0.00012345), "1.23e-4");
        assert_eq!(sig3(0.0), "0");
    }

    #[test]
    fn sizes_in_binary_units() {
        assert_eq!(human_bytes(8 << 30), "8 GiB");
        assert_eq!(compact_bytes(3 << 29), "1.50GiB");
        assert_eq!(compact_bytes(300 << 20), "300MiB");
        assert_eq!(human_bytes(1000), "1000 B");
        assert_eq!(human_count(1.5e9), "1.50 B");
    }
}
