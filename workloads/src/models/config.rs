//! Model configurations: the three families, their `tiny`/`small` sizes and
//! named real shapes (sources cited per shape), per-layer dimensions, and
//! analytic parameter, FLOP and memory counts.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// llama-style: RMSNorm, RoPE, GQA, SwiGLU.
    Dense,
    /// DeepSeek-V2-style: multi-head latent attention + MoE FFN.
    MoeMla,
    /// OpenELM-style layer-wise scaling of heads and FFN width.
    Openelm,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Dense => "dense",
            Family::MoeMla => "moe-mla",
            Family::Openelm => "openelm",
        }
    }
}

/// MLA dimensions (DeepSeek-V2 §2.1): the KV cache holds only the latent
/// `c_kv` (kv_lora_rank) and the shared RoPE key (rope_dim) per token.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MlaDims {
    pub kv_lora_rank: usize,
    pub nope_dim: usize,
    pub rope_dim: usize,
    pub v_dim: usize,
}

/// MoE FFN: `shared` always-on experts plus `top_k` of `routed`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MoeDims {
    pub routed: usize,
    pub shared: usize,
    pub top_k: usize,
    /// Hidden width of each expert.
    pub expert_ffn: usize,
    /// Leading layers with a dense FFN instead of MoE.
    pub first_dense: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub name: String,
    pub family: Family,
    pub vocab: usize,
    pub d_model: usize,
    pub n_layers: usize,
    pub head_dim: usize,
    /// Query heads (dense, moe-mla); OpenELM derives per-layer counts.
    pub n_heads: usize,
    pub n_kv_heads: usize,
    /// Dense FFN hidden width (dense family, and MoE's first dense layers).
    pub ffn: usize,
    pub tied_embeddings: bool,
    pub rope_theta: f64,
    /// RoPE rotates pairs (2i, 2i+1) (llama.cpp / GGUF layout, whose Q and K
    /// rows are permuted by the converter) instead of (i, i + d/2) (the
    /// "rotate half" layout of the HF Llama code, used by the synthetic
    /// models). Set for models loaded from GGUF.
    #[serde(default)]
    pub rope_interleaved: bool,
    /// RMSNorm epsilon (1e-5 for the synthetic models; GGUF files say theirs).
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f64,
    pub max_context: usize,
    pub mla: Option<MlaDims>,
    pub moe: Option<MoeDims>,
    /// OpenELM: (min, max) multipliers interpolated linearly over layers.
    pub qkv_mult: Option<(f64, f64)>,
    pub ffn_mult: Option<(f64, f64)>,
    /// Where the real shape comes from (empty for synthetic sizes).
    pub source: String,
}

fn default_norm_eps() -> f64 {
    1e-5
}

/// Dimensions of one layer after layer-wise scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerDims {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub ffn: usize,
    /// MoE layer (routed experts) rather than a dense FFN.
    pub moe: bool,
}

fn make_divisible(v: f64, divisor: usize) -> usize {
    // OpenELM's `make_divisible` (apple/corenet): round to a multiple of
    // `divisor`, never below 90% of the value.
    let d = divisor as f64;
    let mut n = ((v + d / 2.0) / d).floor().max(1.0) * d;
    if n < 0.9 * v {
        n += d;
    }
    n as usize
}

impl ModelConfig {
    pub fn layer(&self, l: usize) -> LayerDims {
        match self.family {
            Family::Openelm => {
                let (q0, q1) = self.qkv_mult.unwrap_or((1.0, 1.0));
                let (f0, f1) = self.ffn_mult.unwrap_or((4.0, 4.0));
                let t = if self.n_layers > 1 {
                    l as f64 / (self.n_layers - 1) as f64
                } else {
                    0.0
                };
                let q = q0 + (q1 - q0) * t;
                let f = f0 + (f1 - f0) * t;
                // GQA with 4 query heads per KV head, as OpenELM configures.
                let heads =
                    make_divisible(q * self.d_model as f64, self.head_dim * 4) / self.head_dim;
                LayerDims {
                    n_heads: heads,
                    n_kv_heads: heads / 4,
                    ffn: make_divisible(f * self.d_model as f64, 256.min(self.d_model)),
                    moe: false,
                }
            }
            _ => LayerDims {
                n_heads: self.n_heads,
                n_kv_heads: self.n_kv_heads,
                ffn: self.ffn,
                moe: self.moe.is_some_and(|m| l >= m.first_dense),
            },
        }
    }

    /// Parameter count of one layer's attention.
    fn attn_params(&self, ld: &LayerDims) -> usize {
        let d = self.d_model;
        match self.mla {
            Some(m) => {
                let h = ld.n_heads;
                d * h * (m.nope_dim + m.rope_dim)        // W_q
                    + d * (m.kv_lora_rank + m.rope_dim)  // W_dkv, W_kr
                    + m.kv_lora_rank                     // latent norm
                    + m.kv_lora_rank * h * (m.nope_dim + m.v_dim) // W_uk, W_uv
                    + h * m.v_dim * d // W_o
            }
            None => {
                let hd = self.head_dim;
                d * ld.n_heads * hd * 2 + d * ld.n_kv_heads * hd * 2
            }
        }
    }

    fn ffn_params(&self, ld: &LayerDims) -> usize {
        let d = self.d_model;
        match (ld.moe, self.moe) {
            (true, Some(m)) => 3 * d * m.expert_ffn * (m.routed + m.shared) + d * m.routed,
            _ => 3 * d * ld.ffn,
        }
    }

    /// All parameters, embeddings included (once when tied).
    pub fn param_count(&self) -> usize {
        let d = self.d_model;
        let emb = self.vocab * d * if self.tied_embeddings { 1 } else { 2 };
        let layers: usize = (0..self.n_layers)
            .map(|l| {
                let ld = self.layer(l);
                self.attn_params(&ld) + self.ffn_params(&ld) + 2 * d
            })
            .sum();
        emb + layers + d
    }

    /// Parameters a token touches in a forward pass (MoE: shared + top-k
    /// experts only; the embedding lookup reads one row, the LM head all).
    pub fn active_param_count(&self) -> usize {
        let d = self.d_model;
        let layers: usize = (0..self.n_layers)
            .map(|l| {
                let ld = self.layer(l);
                let ffn = match (ld.moe, self.moe) {
                    (true, Some(m)) => 3 * d * m.expert_ffn * (m.top_k + m.shared) + d * m.routed,
                    _ => 3 * d * ld.ffn,
                };
                self.attn_params(&ld) + ffn + 2 * d
            })
            .sum();
        layers + self.vocab * d + d
    }

    /// Elements of KV cache one token adds, over all layers.
    pub fn kv_elems_per_token(&self) -> usize {
        (0..self.n_layers)
            .map(|l| match self.mla {
                // MLA caches the compressed latent and the shared RoPE key.
                Some(m) => m.kv_lora_rank + m.rope_dim,
                None => 2 * self.layer(l).n_kv_heads * self.head_dim,
            })
            .sum()
    }

    /// Forward FLOPs for one token at context position `ctx` (Kaplan et al.
    /// 2020 §2.1: 2·N_active plus attention 2·n_layer·ctx·d_attn·2).
    pub fn forward_flops_per_token(&self, ctx: usize) -> f64 {
        let attn: f64 = (0..self.n_layers)
            .map(|l| {
                let ld = self.layer(l);
                let qk = match self.mla {
                    Some(m) => m.nope_dim + m.rope_dim,
                    None => self.head_dim,
                };
                let v = self.mla.map(|m| m.v_dim).unwrap_or(self.head_dim);
                2.0 * ctx as f64 * ld.n_heads as f64 * (qk + v) as f64
            })
            .sum();
        2.0 * self.active_param_count() as f64 + attn
    }
}

fn base(name: &str, family: Family) -> ModelConfig {
    ModelConfig {
        name: name.into(),
        family,
        vocab: 256,
        d_model: 64,
        n_layers: 2,
        head_dim: 16,
        n_heads: 4,
        n_kv_heads: 2,
        ffn: 128,
        tied_embeddings: false,
        rope_theta: 10_000.0,
        rope_interleaved: false,
        norm_eps: default_norm_eps(),
        max_context: 256,
        mla: None,
        moe: None,
        qkv_mult: None,
        ffn_mult: None,
        source: String::new(),
    }
}

/// The small models' common dimensions (~25–50M parameters), over `base`.
fn small(name: &str, family: Family) -> ModelConfig {
    ModelConfig {
        vocab: 8192,
        d_model: 512,
        head_dim: 64,
        max_context: 1024,
        ..base(name, family)
    }
}

/// Every model shape capbench knows: synthetic `tiny`/`small` per family and
/// real shapes (seeded synthetic weights, real dimensions).
#[allow(clippy::vec_init_then_push)] // one push per shape reads better with its source comment
pub fn shapes() -> Vec<ModelConfig> {
    let mut v = vec![];
    // tiny: seconds on a 2-core CPU (tests, CI, the quick suite).
    v.push(ModelConfig {
        tied_embeddings: true,
        ..base("dense-tiny", Family::Dense)
    });
    v.push(ModelConfig {
        n_layers: 3,
        n_kv_heads: 4,
        mla: Some(MlaDims {
            kv_lora_rank: 32,
            nope_dim: 16,
            rope_dim: 8,
            v_dim: 16,
        }),
        moe: Some(MoeDims {
            routed: 4,
            shared: 1,
            top_k: 2,
            expert_ffn: 32,
            first_dense: 1,
        }),
        ..base("moe-mla-tiny", Family::MoeMla)
    });
    v.push(ModelConfig {
        n_layers: 3,
        qkv_mult: Some((0.5, 1.0)),
        ffn_mult: Some((0.5, 4.0)),
        ..base("openelm-tiny", Family::Openelm)
    });
    // small: ~25–50M parameters.
    v.push(ModelConfig {
        n_layers: 8,
        n_heads: 8,
        n_kv_heads: 4,
        ffn: 1408,
        ..small("dense-small", Family::Dense)
    });
    v.push(ModelConfig {
        n_layers: 8,
        n_heads: 8,
        n_kv_heads: 8,
        ffn: 1408,
        mla: Some(MlaDims {
            kv_lora_rank: 128,
            nope_dim: 64,
            rope_dim: 32,
            v_dim: 64,
        }),
        moe: Some(MoeDims {
            routed: 8,
            shared: 1,
            top_k: 2,
            expert_ffn: 320,
            first_dense: 1,
        }),
        ..small("moe-mla-small", Family::MoeMla)
    });
    v.push(ModelConfig {
        n_layers: 10,
        qkv_mult: Some((0.5, 1.0)),
        ffn_mult: Some((0.5, 4.0)),
        ..small("openelm-small", Family::Openelm)
    });
    // Real shapes. Llama 2 7B: meta-llama/Llama-2-7b-hf config.json.
    v.push(ModelConfig {
        vocab: 32_000,
        d_model: 4096,
        n_layers: 32,
        head_dim: 128,
        n_heads: 32,
        n_kv_heads: 32,
        ffn: 11_008,
        max_context: 4096,
        source: "meta-llama/Llama-2-7b-hf config.json".into(),
        ..base("llama-2-7b", Family::Dense)
    });
    // Llama 3.2 1B: meta-llama/Llama-3.2-1B config.json (tied embeddings,
    // rope_theta 500000; rope scaling not modelled).
    v.push(ModelConfig {
        vocab: 128_256,
        d_model: 2048,
        n_layers: 16,
        head_dim: 64,
        n_heads: 32,
        n_kv_heads: 8,
        ffn: 8192,
        tied_embeddings: true,
        rope_theta: 500_000.0,
        max_context: 131_072,
        source: "meta-llama/Llama-3.2-1B config.json".into(),
        ..base("llama-3.2-1b", Family::Dense)
    });
    // TinyLlama 1.1B: TinyLlama/TinyLlama-1.1B-Chat-v1.0 config.json (22
    // layers, hidden 2048, 32 heads, 4 KV heads, intermediate 5632, vocab
    // 32000, untied). The shape llama.cpp's CPU decode figures are often
    // quoted for, so capbench's decode can be set beside them.
    v.push(ModelConfig {
        vocab: 32_000,
        d_model: 2048,
        n_layers: 22,
        head_dim: 64,
        n_heads: 32,
        n_kv_heads: 4,
        ffn: 5632,
        max_context: 2048,
        source: "TinyLlama/TinyLlama-1.1B-Chat-v1.0 config.json".into(),
        ..base("tinyllama-1.1b", Family::Dense)
    });
    // OpenELM 270M / 1.1B: apple/corenet general_gpt.py configs (16/28 layers,
    // d_model 1280/2048, head_dim 64, GQA 4 groups, FFN 0.5→4.0, QKV 0.5→1.0;
    // shared input/output embeddings, vocab 32000).
    for (name, layers, d) in [("openelm-270m", 16, 1280), ("openelm-1.1b", 28, 2048)] {
        v.push(ModelConfig {
            vocab: 32_000,
            d_model: d,
            n_layers: layers,
            head_dim: 64,
            tied_embeddings: true,
            max_context: 2048,
            qkv_mult: Some((0.5, 1.0)),
            ffn_mult: Some((0.5, 4.0)),
            source: "apple/corenet corenet/modeling/models/language_modeling/general_gpt.py".into(),
            ..base(name, Family::Openelm)
        });
    }
    // DeepSeek-V2-Lite: config.json (27 layers, hidden 2048, 16 heads,
    // kv_lora_rank 512, qk_nope 128, qk_rope 64, v 128, 64 routed + 2 shared
    // experts, 6 per token, expert width 1408, first layer dense with
    // intermediate 10944, vocab 102400, no q compression).
    v.push(ModelConfig {
        vocab: 102_400,
        d_model: 2048,
        n_layers: 27,
        head_dim: 128,
        n_heads: 16,
        n_kv_heads: 16,
        ffn: 10_944,
        max_context: 32_768,
        mla: Some(MlaDims {
            kv_lora_rank: 512,
            nope_dim: 128,
            rope_dim: 64,
            v_dim: 128,
        }),
        moe: Some(MoeDims {
            routed: 64,
            shared: 2,
            top_k: 6,
            expert_ffn: 1408,
            first_dense: 1,
        }),
        source:
            "deepseek-ai/DeepSeek-V2-Lite config.json (via HF TechxGenus/DeepSeek-V2-Lite-Chat-AWQ)"
                .into(),
        ..base("deepseek-v2-lite", Family::MoeMla)
    });
    v
}

pub fn shape(name: &str) -> Option<ModelConfig> {
    shapes().into_iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_shapes_have_their_published_sizes() {
        // Published totals: Llama 2 7B 6.74e9, Llama 3.2 1B 1.24e9,
        // DeepSeek-V2-Lite 15.7e9 total / 2.4e9 active, OpenELM 270M / 1.1B.
        let p = |n: &str| shape(n).unwrap().param_count() as f64;
        assert!(
            (p("llama-2-7b") / 6.74e9 - 1.0).abs() < 0.01,
            "{}",
            p("llama-2-7b")
        );
        assert!(
            (p("llama-3.2-1b") / 1.236e9 - 1.0).abs() < 0.01,
            "{}",
            p("llama-3.2-1b")
        );
        // TinyLlama 1.1B: 1,100,048,384 parameters.
        assert!(
            (p("tinyllama-1.1b") / 1.100_048_384e9 - 1.0).abs() < 1e-6,
            "{}",
            p("tinyllama-1.1b")
        );
        assert!(
            (p("deepseek-v2-lite") / 15.7e9 - 1.0).abs() < 0.03,
            "{}",
            p("deepseek-v2-lite")
        );
        let active = shape("deepseek-v2-lite").unwrap().active_param_count() as f64;
        assert!((active / 2.4e9 - 1.0).abs() < 0.12, "{active}");
        assert!(
            (p("openelm-270m") / 0.27e9 - 1.0).abs() < 0.1,
            "{}",
            p("openelm-270m")
        );
        assert!(
            (p("openelm-1.1b") / 1.08e9 - 1.0).abs() < 0.1,
            "{}",
            p("openelm-1.1b")
        );
    }

    #[test]
    fn small_sizes_are_25_to_50m() {
        for f in ["dense", "moe-mla", "openelm"] {
            let n = shape(&format!("{f}-small")).unwrap().param_count();
            assert!((25_000_000..=50_000_000).contains(&n), "{f}: {n}");
        }
    }

    #[test]
    fn openelm_scales_heads_and_ffn_across_layers() {
        let c = shape("openelm-270m").unwrap();
        let (first, last) = (c.layer(0), c.layer(c.n_layers - 1));
        assert!(first.n_heads < last.n_heads && first.ffn < last.ffn);
        assert_eq!(first.n_heads % first.n_kv_heads, 0);
        // corenet's OpenELM-270M: 12 query heads in layer 0, 20 in the last.
        assert_eq!((first.n_heads, last.n_heads), (12, 20));
    }

    #[test]
    fn mla_caches_only_the_latent() {
        let c = shape("deepseek-v2-lite").unwrap();
        assert_eq!(c.kv_elems_per_token(), 27 * (512 + 64));
        let l = shape("llama-2-7b").unwrap();
        assert_eq!(l.kv_elems_per_token(), 32 * 2 * 32 * 128);
    }
}
