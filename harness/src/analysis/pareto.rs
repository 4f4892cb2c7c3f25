//! Pareto frontier of (throughput, error) points: the points no other point
//! beats on both axes. Reports draw it; this computes it.

/// Indices of the non-dominated points, ordered by rising throughput.
/// A point is dominated when another has throughput ≥ and error ≤, with at
/// least one strict. Higher throughput and lower error are better; points
/// with a non-finite coordinate take no part.
pub fn frontier(points: &[(f64, f64)]) -> Vec<usize> {
    let ok = |i: usize| points[i].0.is_finite() && points[i].1.is_finite();
    let mut idx: Vec<usize> = (0..points.len()).filter(|&i| ok(i)).collect();
    // Best throughput first; ties broken by lower error, so the sweep keeps
    // only the best of equal-throughput points.
    idx.sort_by(|&a, &b| {
        points[b]
            .0
            .total_cmp(&points[a].0)
            .then(points[a].1.total_cmp(&points[b].1))
    });
    let mut front = Vec::new();
    let mut best_error = f64::INFINITY;
    for i in idx {
        if points[i].1 < best_error {
            best_error = points[i].1;
            front.push(i);
        }
    }
    front.reverse();
    front
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_non_dominated_points_in_throughput_order() {
        // (throughput, error)
        let p = [
            (10.0, 1e-3),
            (20.0, 1e-2),
            (15.0, 5e-2),
            (5.0, 1e-4),
            (20.0, 2e-2),
        ];
        assert_eq!(frontier(&p), vec![3, 0, 1]);
    }

    #[test]
    fn ignores_non_finite_points() {
        let p = [(f64::NAN, 0.0), (1.0, 1.0), (2.0, f64::INFINITY)];
        assert_eq!(frontier(&p), vec![1]);
        assert!(frontier(&[]).is_empty());
    }
}
