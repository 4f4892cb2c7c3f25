//! Every parameter of the synthetic models: names, shapes and initialisation
//! (`param_specs`), and their seeded values, drawn one tensor at a time.

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::config::ModelConfig;

/// Named f32 parameters as created by `init` (training keeps them as Vars).
pub struct Params {
    pub vars: Vec<(String, Var)>,
}

impl Params {
    pub fn get(&self, name: &str) -> Tensor {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("parameter {name} missing"))
            .1
            .as_tensor()
            .clone()
    }
}

/// How a parameter is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InitKind {
    /// Uniform on ±√3·std: variance std², cheaper to draw than a normal.
    Uniform(f64),
    Ones,
}

/// One parameter: name, shape, initialisation.
#[derive(Debug, Clone)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: InitKind,
}

/// Every parameter of a model, in a fixed order. Seeded synthetic weights:
/// uniform with variance 1/fan_in (activations stay O(1) through every
/// layer), output projections further scaled by 1/√(2·n_layers) as in GPT-2,
/// norms at 1, embeddings with variance 1/d so that tied or untied logits
/// start with unit scale (initial loss ≈ ln V).
pub fn param_specs(cfg: &ModelConfig) -> Vec<ParamSpec> {
    let mut v = Vec::new();
    let d = cfg.d_model;
    let resid = 1.0 / (2.0 * cfg.n_layers as f64).sqrt();
    let std = |fan_in: usize| 1.0 / (fan_in as f64).sqrt();
    let mut w = |name: String, out: usize, inp: usize, s: f64| {
        v.push(ParamSpec {
            name,
            shape: vec![out, inp],
            init: InitKind::Uniform(s),
        })
    };
    w("embed".into(), cfg.vocab, d, std(d));
    // Norm weights are collected apart: `w` holds `v` mutably.
    let mut norms: Vec<ParamSpec> = Vec::new();
    for l in 0..cfg.n_layers {
        let ld = cfg.layer(l);
        let p = format!("layers.{l}");
        let mut ones = |name: String, len: usize| {
            norms.push(ParamSpec {
                name,
                shape: vec![len],
                init: InitKind::Ones,
            })
        };
        ones(format!("{p}.attn_norm"), d);
        match cfg.mla {
            Some(m) => {
                let h = ld.n_heads;
                let r = m.kv_lora_rank;
                w(format!("{p}.wq"), h * (m.nope_dim + m.rope_dim), d, std(d));
                w(format!("{p}.w_dkv"), r, d, std(d));
                w(format!("{p}.w_kr"), m.rope_dim, d, std(d));
                ones(format!("{p}.kv_norm"), r);
                w(format!("{p}.w_uk"), h * m.nope_dim, r, std(r));
                w(format!("{p}.w_uv"), h * m.v_dim, r, std(r));
                w(format!("{p}.wo"), d, h * m.v_dim, std(h * m.v_dim) * resid);
            }
            None => {
                let hd = cfg.head_dim;
                w(format!("{p}.wq"), ld.n_heads * hd, d, std(d));
                w(format!("{p}.wk"), ld.n_kv_heads * hd, d, std(d));
                w(format!("{p}.wv"), ld.n_kv_heads * hd, d, std(d));
                w(
                    format!("{p}.wo"),
                    d,
                    ld.n_heads * hd,
                    std(ld.n_heads * hd) * resid,
                );
            }
        }
        ones(format!("{p}.ffn_norm"), d);
        let mut expert = |name: String, width: usize| {
            w(format!("{name}.gate"), width, d, std(d));
            w(format!("{name}.up"), width, d, std(d));
            w(format!("{name}.down"), d, width, std(width) * resid);
        };
        match (ld.moe, cfg.moe) {
            (true, Some(m)) => {
                for e in 0..m.shared {
                    expert(format!("{p}.shared.{e}"), m.expert_ffn);
                }
                for e in 0..m.routed {
                    expert(format!("{p}.routed.{e}"), m.expert_ffn);
                }
                w(format!("{p}.router"), m.routed, d, std(d));
            }
            _ => expert(format!("{p}.ffn"), ld.ffn),
        }
    }
    v.extend(norms);
    v.push(ParamSpec {
        name: "final_norm".into(),
        shape: vec![d],
        init: InitKind::Ones,
    });
    if !cfg.tied_embeddings {
        v.push(ParamSpec {
            name: "lm_head".into(),
            shape: vec![cfg.vocab, d],
            init: InitKind::Uniform(std(d)),
        });
    }
    v
}

/// Each parameter has its own seeded stream (FNV-1a of its name mixed with
/// the model seed), so any subset — one layer — can be generated alone, and
/// a model too large for memory in f32 can still be built tensor by tensor.
fn tensor_seed(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Elements per parallel task of `generate` (1 MiB of f32: a task's
/// draws stay in L2, and a 7B layer's largest matrix splits into 172).
const DRAW_CHUNK: usize = 1 << 18;

/// Generates one parameter's values (drawn in f32, then cast), in parallel
/// chunks of the tensor's one stream: the values do not depend on the
/// chunking or the thread count (`draw_into`).
pub fn generate(spec: &ParamSpec, seed: u64, dev: &Device, dtype: DType) -> Result<Tensor> {
    let n: usize = spec.shape.iter().product();
    let mut data = super::zeroed::zeroed_f32(n);
    data.par_chunks_mut(DRAW_CHUNK)
        .enumerate()
        .for_each(|(i, c)| draw_into(spec, seed, i * DRAW_CHUNK, c));
    Tensor::from_vec(data, spec.shape.as_slice(), dev)?.to_dtype(dtype)
}

/// Elements `start..start + out.len()` of a parameter (row-major), exactly
/// as drawing the whole tensor in order would give them: element i of a
/// uniform parameter is what `rng.random_range(-a..a)` returns as the i-th
/// draw of its stream — rand 0.9 takes one u32 word per f32 draw (23 bits
/// into [1, 2), minus 1, times the width, plus the low end; no rejection),
/// so the stream is entered at word i (`set_word_pos`) and read in bulk.
/// A test holds this to `random_range` draw by draw.
pub fn draw_into(spec: &ParamSpec, seed: u64, start: usize, out: &mut [f32]) {
    match spec.init {
        InitKind::Ones => out.fill(1.0),
        InitKind::Uniform(std) => {
            let mut rng = ChaCha8Rng::seed_from_u64(tensor_seed(seed, &spec.name));
            rng.set_word_pos(start as u128);
            let a = (3.0f64.sqrt() * std) as f32;
            let (low, scale) = (-a, a - -a);
            let mut words = [0u32; 1024];
            for c in out.chunks_mut(words.len()) {
                let w = &mut words[..c.len()];
                rng.fill(w);
                for (x, &u) in c.iter_mut().zip(w.iter()) {
                    let one_two = f32::from_bits((u >> 9) | 0x3f80_0000);
                    *x = (one_two - 1.0) * scale + low;
                }
            }
        }
    }
}

/// All parameters as trainable Vars.
pub fn init(cfg: &ModelConfig, seed: u64, dev: &Device, dtype: DType) -> Result<Params> {
    let vars = param_specs(cfg)
        .iter()
        .map(|s| {
            Ok((
                s.name.clone(),
                Var::from_tensor(&generate(s, seed, dev, dtype)?)?,
            ))
        })
        .collect::<Result<_>>()?;
    Ok(Params { vars })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The draws as `generate` made them before it was chunked: one
    /// `random_range` after another from the tensor's stream.
    fn in_order(spec: &ParamSpec, seed: u64) -> Vec<f32> {
        let n: usize = spec.shape.iter().product();
        let InitKind::Uniform(std) = spec.init else {
            return vec![1.0; n];
        };
        let mut rng = ChaCha8Rng::seed_from_u64(tensor_seed(seed, &spec.name));
        let a = (3.0f64.sqrt() * std) as f32;
        (0..n).map(|_| rng.random_range(-a..a)).collect()
    }

    fn spec(rows: usize, cols: usize, init: InitKind) -> ParamSpec {
        ParamSpec {
            name: "layers.3.ffn.up".into(),
            shape: vec![rows, cols],
            init,
        }
    }

    #[test]
    fn chunked_draws_are_the_draws_in_order() {
        // Crosses `DRAW_CHUNK` twice and ends on a ragged chunk; odd widths.
        for (std, seed) in [(0.02, 7u64), (1.0 / 3.0, 0x5eed), (1e-3, u64::MAX)] {
            let s = spec(2 * DRAW_CHUNK / 1000 + 3, 1000, InitKind::Uniform(std));
            let want = in_order(&s, seed);
            let got = generate(&s, seed, &Device::Cpu, DType::F32)
                .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
                .unwrap();
            assert_eq!(got.len(), want.len());
            let first_diff = got
                .iter()
                .zip(&want)
                .position(|(a, b)| a.to_bits() != b.to_bits());
            assert_eq!(first_diff, None, "std {std} seed {seed}");
            // Any window, entered mid-stream and mid-block of 16 words.
            for (start, len) in [(0, 1), (1, 15), (15, 1), (1023, 1026), (12_345, 4099)] {
                let mut out = vec![f32::NAN; len];
                draw_into(&s, seed, start, &mut out);
                assert_eq!(out, want[start..start + len], "window {start}+{len}");
            }
        }
        let ones = spec(3, 5, InitKind::Ones);
        let mut out = vec![0.0; 7];
        draw_into(&ones, 1, 4, &mut out);
        assert_eq!(out, vec![1.0; 7]);
    }
}
