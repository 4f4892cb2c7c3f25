//! Change points of a series by E-Divisive means (Matteson & James 2014,
//! "A Nonparametric Approach for Multiple Change Point Analysis of
//! Multivariate Data", JASA 109(505):334–345), as Apache Otava (formerly
//! DataStax Hunter; Fleming et al., ICPE 2023) and MongoDB's CI (Daly et
//! al., ICPE 2020) use it: bisect where the energy distance between the two
//! sides is largest, keep the split if a permutation test says it is
//! significant, repeat inside the pieces. Pure and seeded.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// The detector's parameters (defaults: those documented in docs/history.md).
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Exponent on distances, in (0, 2); 1 as Matteson & James recommend.
    pub alpha_exp: f64,
    /// Permutations per significance test.
    pub permutations: usize,
    /// Significance level: a split is kept when its p-value is below it.
    pub significance: f64,
    /// Fewest points on each side of a split.
    pub min_size: usize,
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            alpha_exp: 1.0,
            permutations: 199,
            significance: 0.03,
            min_size: 3,
            seed: 0xED1_5A7E,
        }
    }
}

/// A detected split: the first index of the new segment and its p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Split {
    pub index: usize,
    pub p_value: f64,
}

/// 2-D prefix sums of the distance matrix: any block sum in O(1).
struct Prefix {
    n: usize,
    p: Vec<f64>,
}

impl Prefix {
    fn new(xs: &[f64], a: f64) -> Prefix {
        let n = xs.len();
        let mut p = vec![0.0; (n + 1) * (n + 1)];
        for i in 0..n {
            for j in 0..n {
                let d = (xs[i] - xs[j]).abs().powf(a);
                p[(i + 1) * (n + 1) + j + 1] =
                    d + p[i * (n + 1) + j + 1] + p[(i + 1) * (n + 1) + j] - p[i * (n + 1) + j];
            }
        }
        Prefix { n, p }
    }

    /// Σ d(i, j) over i in [r0, r1), j in [c0, c1).
    fn block(&self, r0: usize, r1: usize, c0: usize, c1: usize) -> f64 {
        let w = self.n + 1;
        self.p[r1 * w + c1] - self.p[r0 * w + c1] - self.p[r1 * w + c0] + self.p[r0 * w + c0]
    }
}

/// The scaled energy statistic Q̂(τ, κ) of Matteson & James (eq. 6): X =
/// [s, τ), Y = [τ, κ); within sums over unordered pairs.
fn q_hat(pre: &Prefix, s: usize, tau: usize, kappa: usize) -> f64 {
    let (m, n) = ((tau - s) as f64, (kappa - tau) as f64);
    let between = pre.block(s, tau, tau, kappa);
    // The full block counts each unordered pair twice and the zero diagonal.
    let within_x = pre.block(s, tau, s, tau) / 2.0;
    let within_y = pre.block(tau, kappa, tau, kappa) / 2.0;
    let e = 2.0 * between / (m * n)
        - within_x / (m * (m - 1.0) / 2.0)
        - within_y / (n * (n - 1.0) / 2.0);
    m * n / (m + n) * e
}

/// The best split of `xs` over τ and κ (κ: where the second sample ends),
/// with its statistic. `None` when the series is too short to split.
fn best_split(xs: &[f64], p: &Params) -> Option<(usize, f64)> {
    let n = xs.len();
    let k = p.min_size.max(2);
    if n < 2 * k {
        return None;
    }
    let pre = Prefix::new(xs, p.alpha_exp);
    let mut best: Option<(usize, f64)> = None;
    for tau in k..=n - k {
        for kappa in tau + k..=n {
            let q = q_hat(&pre, 0, tau, kappa);
            if best.is_none_or(|(_, b)| q > b) {
                best = Some((tau, q));
            }
        }
    }
    best
}

/// Significance of the best split of `xs` by permutation (Matteson &
/// James §3.2): the share of shuffles whose best statistic reaches the
/// observed one, counting the observed order itself.
fn permutation_p(xs: &[f64], observed: f64, p: &Params, rng: &mut ChaCha8Rng) -> f64 {
    let mut v = xs.to_vec();
    let mut reached = 1usize;
    for _ in 0..p.permutations {
        v.shuffle(rng);
        if best_split(&v, p).is_some_and(|(_, q)| q >= observed) {
            reached += 1;
        }
    }
    reached as f64 / (p.permutations + 1) as f64
}

/// All significant change points of `xs`, in index order: hierarchical
/// bisection, each step testing the segment with the largest statistic.
pub fn detect(xs: &[f64], p: &Params) -> Vec<Split> {
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let mut segments = vec![(0usize, xs.len())];
    let mut found: Vec<Split> = vec![];
    loop {
        let best = segments
            .iter()
            .enumerate()
            .filter_map(|(i, &(s, e))| best_split(&xs[s..e], p).map(|(t, q)| (i, s + t, q)))
            .max_by(|a, b| a.2.total_cmp(&b.2));
        let Some((seg, tau, q)) = best else { break };
        let (s, e) = segments[seg];
        let pv = permutation_p(&xs[s..e], q, p, &mut rng);
        if pv >= p.significance {
            break;
        }
        found.push(Split {
            index: tau,
            p_value: pv,
        });
        segments.splice(seg..=seg, [(s, tau), (tau, e)]);
    }
    found.sort_by_key(|s| s.index);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise in [-1, 1] (a fixed LCG, so the test is exact).
    fn noise(n: usize, seed: u64) -> Vec<f64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn energy_statistic_matches_a_hand_computation() {
        // X = {0, 1}, Y = {3, 5}: between mean 3.5, within X 1, within Y 2;
        // E = 2·3.5 − 1 − 2 = 4, Q = (2·2/4)·4 = 4.
        let pre = Prefix::new(&[0.0, 1.0, 3.0, 5.0], 1.0);
        assert!((q_hat(&pre, 0, 2, 4) - 4.0).abs() < 1e-12);
    }

    #[test]
    fn finds_known_steps_and_nothing_in_noise() {
        let p = Params::default();
        let mut xs: Vec<f64> = noise(40, 1).iter().map(|e| 100.0 + e).collect();
        for x in &mut xs[15..] {
            *x -= 10.0;
        }
        for x in &mut xs[30..] {
            *x += 20.0;
        }
        let found: Vec<usize> = detect(&xs, &p).iter().map(|s| s.index).collect();
        assert_eq!(found, vec![15, 30]);
        assert!(detect(&xs, &p).iter().all(|s| s.p_value < 0.01));
        let flat: Vec<f64> = noise(30, 7).iter().map(|e| 100.0 + e).collect();
        assert!(detect(&flat, &p).is_empty());
        // A step three points before the end is found there.
        let mut late: Vec<f64> = noise(20, 3).iter().map(|e| 100.0 + e).collect();
        for x in &mut late[17..] {
            *x -= 10.0;
        }
        let found: Vec<usize> = detect(&late, &p).iter().map(|s| s.index).collect();
        assert_eq!(found, vec![17]);
        assert!(detect(&[1.0, 2.0, 3.0], &p).is_empty());
    }
}
