//! The synthetic corpus: a seeded sparse Markov source whose entropy rate is
//! known exactly, so a trained model's quality is an absolute number:
//! excess loss = eval loss − entropy floor (nats/token).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Each token s is followed by (s + offset_j) mod V with probability p_j.
/// The transition matrix is doubly stochastic (every token has the same
/// incoming mass), so the stationary distribution is uniform and the entropy
/// rate is exactly H(p) = −Σ p_j ln p_j, whatever the offsets.
#[derive(Debug, Clone)]
pub struct MarkovCorpus {
    pub vocab: usize,
    pub offsets: Vec<usize>,
    /// Successor probabilities, Zipf-like: p_j ∝ 1/(j+1).
    pub probs: Vec<f64>,
    cumulative: Vec<f64>,
}

impl MarkovCorpus {
    /// `branching` distinct successors per token, offsets drawn from `seed`.
    pub fn new(vocab: usize, branching: usize, seed: u64) -> MarkovCorpus {
        assert!(branching >= 1 && branching < vocab, "1 ≤ branching < vocab");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut offsets = Vec::with_capacity(branching);
        while offsets.len() < branching {
            let o = rng.random_range(1..vocab);
            if !offsets.contains(&o) {
                offsets.push(o);
            }
        }
        let raw: Vec<f64> = (0..branching).map(|j| 1.0 / (j + 1) as f64).collect();
        let total: f64 = raw.iter().sum();
        let probs: Vec<f64> = raw.iter().map(|r| r / total).collect();
        let cumulative = probs
            .iter()
            .scan(0.0, |acc, p| {
                *acc += p;
                Some(*acc)
            })
            .collect();
        MarkovCorpus {
            vocab,
            offsets,
            probs,
            cumulative,
        }
    }

    /// The capbench default for a vocabulary: 4 successors per token.
    pub fn for_vocab(vocab: usize, seed: u64) -> MarkovCorpus {
        MarkovCorpus::new(vocab, 4.min(vocab - 1), seed)
    }

    /// Entropy rate in nats per token: the best loss any model can reach.
    pub fn entropy_rate_nats(&self) -> f64 {
        -self.probs.iter().map(|p| p * p.ln()).sum::<f64>()
    }

    /// A sequence of `len` tokens from the stationary start.
    pub fn sample(&self, len: usize, rng: &mut ChaCha8Rng) -> Vec<u32> {
        let mut out = Vec::with_capacity(len);
        let mut s = rng.random_range(0..self.vocab);
        for _ in 0..len {
            out.push(s as u32);
            let u: f64 = rng.random();
            let j = self
                .cumulative
                .iter()
                .position(|c| u < *c)
                .unwrap_or(self.probs.len() - 1);
            s = (s + self.offsets[j]) % self.vocab;
        }
        out
    }

    /// `batch` sequences of `seq + 1` tokens: inputs are the first `seq`,
    /// targets the last `seq` of each (row-major (batch, seq) each).
    pub fn batch(&self, batch: usize, seq: usize, rng: &mut ChaCha8Rng) -> (Vec<u32>, Vec<u32>) {
        let mut inputs = Vec::with_capacity(batch * seq);
        let mut targets = Vec::with_capacity(batch * seq);
        for _ in 0..batch {
            let s = self.sample(seq + 1, rng);
            inputs.extend_from_slice(&s[..seq]);
            targets.extend_from_slice(&s[1..]);
        }
        (inputs, targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_floor_matches_an_empirical_estimate() {
        let c = MarkovCorpus::for_vocab(64, 3);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let seq = c.sample(400_000, &mut rng);
        // Empirical conditional entropy H(X_{t+1} | X_t) from bigram counts.
        let v = c.vocab;
        let mut counts = vec![0f64; v * v];
        for w in seq.windows(2) {
            counts[w[0] as usize * v + w[1] as usize] += 1.0;
        }
        let n = (seq.len() - 1) as f64;
        let mut h = 0.0;
        for s in 0..v {
            let row = &counts[s * v..(s + 1) * v];
            let total: f64 = row.iter().sum();
            for &c in row.iter().filter(|c| **c > 0.0) {
                h -= c / n * (c / total).ln();
            }
        }
        let exact = c.entropy_rate_nats();
        // p = (12, 6, 4, 3)/25 → H = 1.24246 nats.
        assert!((exact - 1.24246).abs() < 1e-4, "{exact}");
        assert!((h - exact).abs() < 0.01, "empirical {h} vs exact {exact}");
    }

    #[test]
    fn batches_are_shifted_by_one_and_seeded() {
        let c = MarkovCorpus::for_vocab(32, 5);
        let (i1, t1) = c.batch(2, 8, &mut ChaCha8Rng::seed_from_u64(9));
        let (i2, _) = c.batch(2, 8, &mut ChaCha8Rng::seed_from_u64(9));
        assert_eq!(i1, i2);
        assert_eq!(&i1[1..8], &t1[..7]);
        assert!(i1.iter().chain(&t1).all(|t| (*t as usize) < 32));
    }
}
