//! One transformer definition for all three families: seeded synthetic
//! weights, the forward pass (training: whole sequence; inference: with a KV
//! cache), and conversion of weights to f16/bf16/q8_0/q4_0.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{D, DType, Device, Result, Tensor};
use rayon::prelude::*;

use super::config::{LayerDims, ModelConfig};
use super::ops::{
    Lin, causal_mask, rms_norm, rope, rope_interleaved, rope_tables, softmax, swiglu,
};
use super::params::{ParamSpec, Params, generate, param_specs};

/// RMSNorm epsilon of the synthetic models (`ModelConfig::norm_eps`).
pub const NORM_EPS: f64 = 1e-5;

/// How the weights are stored for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    Float(DType),
    Q8_0,
    Q4_0,
}

#[derive(Debug, Clone)]
pub enum Attn {
    Gqa {
        wq: Lin,
        wk: Lin,
        wv: Lin,
        wo: Lin,
        n_heads: usize,
        n_kv: usize,
    },
    /// Multi-head latent attention (DeepSeek-V2 §2.1.2–2.1.3).
    Mla {
        wq: Lin,
        /// x → compressed latent c_kv (kv_lora_rank)
        w_dkv: Lin,
        /// x → shared RoPE key (rope_dim)
        w_kr: Lin,
        kv_norm: Tensor,
        /// c_kv → per-head non-RoPE keys and values
        w_uk: Lin,
        w_uv: Lin,
        wo: Lin,
        n_heads: usize,
    },
}

#[derive(Debug, Clone)]
pub struct Expert {
    pub gate: Lin,
    pub up: Lin,
    pub down: Lin,
}

#[derive(Debug, Clone)]
pub enum Ffn {
    Dense(Expert),
    /// DeepSeekMoE: shared experts for every token plus top-k routed ones,
    /// weighted by the softmax router probability (no renormalisation, as in
    /// DeepSeek-V2-Lite).
    Moe {
        router: Lin,
        routed: Vec<Expert>,
        shared: Vec<Expert>,
        top_k: usize,
    },
}

#[derive(Debug, Clone)]
pub struct Layer {
    pub attn_norm: Tensor,
    pub attn: Attn,
    pub ffn_norm: Tensor,
    pub ffn: Ffn,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub cfg: ModelConfig,
    /// (vocab, d_model); also the LM head when tied.
    pub embed: Tensor,
    pub layers: Vec<Layer>,
    pub final_norm: Tensor,
    pub lm_head: Option<Lin>,
    /// Activation dtype.
    pub dtype: DType,
    pub device: Device,
}

/// Per-layer KV cache. GQA stores keys and values (B, H_kv, S, hd); MLA
/// stores only the normalised latent (B, S, r) and the RoPE key (B, S, rope).
#[derive(Debug, Clone)]
pub enum LayerCache {
    Empty,
    Kv { k: Tensor, v: Tensor },
    Latent { c_kv: Tensor, k_pe: Tensor },
}

#[derive(Debug, Clone)]
pub struct Cache {
    pub layers: Vec<LayerCache>,
    pub len: usize,
}

impl Cache {
    pub fn new(n_layers: usize) -> Cache {
        Cache {
            layers: vec![LayerCache::Empty; n_layers],
            len: 0,
        }
    }
}

pub(crate) fn lin(t: Tensor, format: WeightFormat) -> Result<Lin> {
    let q = match format {
        WeightFormat::Float(dt) => return Ok(Lin::Dense(super::zeroed::to_dtype(&t, dt)?)),
        WeightFormat::Q8_0 => GgmlDType::Q8_0,
        WeightFormat::Q4_0 => GgmlDType::Q4_0,
    };
    let t = t.to_dtype(DType::F32)?;
    let (rows, cols) = t.dims2()?;
    if q == GgmlDType::Q4_0 && t.device().is_cpu() && cols.is_multiple_of(super::q4::BLOCK) {
        let data: Vec<f32> = t.flatten_all()?.to_vec1()?;
        if let Some(m) = super::q4::Q4Matrix::quantize(&data, rows, cols) {
            return Ok(Lin::Q4(Arc::new(m)));
        }
    }
    if q == GgmlDType::Q8_0 && t.device().is_cpu() && cols.is_multiple_of(super::q4::BLOCK) {
        let data: Vec<f32> = t.flatten_all()?.to_vec1()?;
        if let Some(m) = super::q8::Q8Matrix::quantize(&data, rows, cols) {
            return Ok(Lin::Q8(Arc::new(m)));
        }
    }
    let parts = candle_core::utils::get_num_threads().min(rows / 32).max(1);
    let quantize = |t: &Tensor| -> Result<Arc<QMatMul>> {
        Ok(Arc::new(QMatMul::from_qtensor(QTensor::quantize(t, q)?)?))
    };
    if parts == 1 || rows * cols < super::ops::SPLIT_MIN_ELEMS || !t.device().is_cpu() {
        return Ok(Lin::Quant(quantize(&t)?));
    }
    // Row blocks of near-equal size; each quantizes exactly as the whole.
    // Each block is rebuilt from host data: `QTensor::quantize` reads the
    // whole storage and ignores a view's offset (quantizing a narrowed view
    // fails or repeats the first rows — caught by decode verification).
    let step = rows.div_ceil(parts);
    let block = |r: usize| -> Result<Tensor> {
        let n = step.min(rows - r);
        let data: Vec<f32> = t.narrow(0, r, n)?.flatten_all()?.to_vec1()?;
        Tensor::from_vec(data, (n, cols), t.device())
    };
    let blocks = (0..rows)
        .step_by(step)
        .map(|r| quantize(&block(r)?))
        .collect::<Result<Vec<_>>>()?;
    Ok(Lin::QuantRows(blocks))
}

/// Where a model's tensors come from: trainable parameters, or generated
/// on demand from the seed (for models too large to hold in f32).
pub trait TensorSource: Sync {
    fn get(&self, name: &str) -> Result<Tensor>;
    fn device(&self) -> &Device;
    /// A linear weight in `format`. By default from the f32 tensor; a source
    /// that already holds quantized weights (a GGUF file) hands them over
    /// as they are.
    fn lin(&self, name: &str, format: WeightFormat) -> Result<Lin> {
        lin(self.get(name)?, format)
    }
    /// Whether the model moves this source's large float weights into
    /// huge-page-backed buffers (`zeroed::rehomed`, a copy at load). A GGUF
    /// file's tensors come from candle's plain buffers and are streamed by
    /// decode; a training run's variables must stay as they are (their
    /// gradients reach them), and the seeded and cached sources make their
    /// float weights in advised buffers in the first place (`lin`'s
    /// `zeroed::to_dtype`, the cache's `zeroed::from_le_bytes`): a copy held
    /// beside its original raised their load peak past what the memory
    /// model predicts (+17 % on `dense-small`).
    fn rehome(&self) -> bool {
        false
    }
}

impl TensorSource for Params {
    fn get(&self, name: &str) -> Result<Tensor> {
        Ok(Params::get(self, name))
    }
    fn device(&self) -> &Device {
        self.vars[0].1.device()
    }
}

/// Generates each tensor in f32 when asked, from its own seeded stream.
pub struct Generated {
    seed: u64,
    device: Device,
    specs: std::collections::HashMap<String, ParamSpec>,
}

impl Generated {
    pub fn new(cfg: &ModelConfig, seed: u64, device: &Device) -> Generated {
        Generated {
            seed,
            device: device.clone(),
            specs: param_specs(cfg)
                .into_iter()
                .map(|s| (s.name.clone(), s))
                .collect(),
        }
    }
}

impl TensorSource for Generated {
    fn get(&self, name: &str) -> Result<Tensor> {
        let spec = self
            .specs
            .get(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("no parameter {name}")))?;
        generate(spec, self.seed, &self.device, DType::F32)
    }
    fn device(&self) -> &Device {
        &self.device
    }
}

fn act_dtype(format: WeightFormat) -> DType {
    match format {
        WeightFormat::Float(dt) => dt,
        _ => DType::F32,
    }
}

/// `lin` with a dense weight moved to huge pages (`zeroed::rehomed`)
/// where `src` asks for it.
fn rehomed_lin(src: &dyn TensorSource, lin: Lin) -> Result<Lin> {
    match lin {
        Lin::Dense(t) if src.rehome() => Ok(Lin::Dense(super::zeroed::rehomed(t)?)),
        l => Ok(l),
    }
}

/// Builds layer `l` from `src` in `format`.
fn build_layer(
    cfg: &ModelConfig,
    l: usize,
    format: WeightFormat,
    src: &dyn TensorSource,
) -> Result<Layer> {
    let act = act_dtype(format);
    let w = |n: &str| rehomed_lin(src, src.lin(n, format)?);
    let small = |n: &str| src.get(n)?.to_dtype(act);
    let expert = |n: &str| -> Result<Expert> {
        Ok(Expert {
            gate: w(&format!("{n}.gate"))?,
            up: w(&format!("{n}.up"))?,
            down: w(&format!("{n}.down"))?,
        })
    };
    let ld: LayerDims = cfg.layer(l);
    let pre = format!("layers.{l}");
    let attn = match cfg.mla {
        Some(_) => Attn::Mla {
            wq: w(&format!("{pre}.wq"))?,
            w_dkv: w(&format!("{pre}.w_dkv"))?,
            w_kr: w(&format!("{pre}.w_kr"))?,
            kv_norm: small(&format!("{pre}.kv_norm"))?,
            w_uk: w(&format!("{pre}.w_uk"))?,
            w_uv: w(&format!("{pre}.w_uv"))?,
            wo: w(&format!("{pre}.wo"))?,
            n_heads: ld.n_heads,
        },
        None => Attn::Gqa {
            wq: w(&format!("{pre}.wq"))?,
            wk: w(&format!("{pre}.wk"))?,
            wv: w(&format!("{pre}.wv"))?,
            wo: w(&format!("{pre}.wo"))?,
            n_heads: ld.n_heads,
            n_kv: ld.n_kv_heads,
        },
    };
    let ffn = match (ld.moe, cfg.moe) {
        (true, Some(m)) => Ffn::Moe {
            router: w(&format!("{pre}.router"))?,
            routed: (0..m.routed)
                .map(|e| expert(&format!("{pre}.routed.{e}")))
                .collect::<Result<_>>()?,
            shared: (0..m.shared)
                .map(|e| expert(&format!("{pre}.shared.{e}")))
                .collect::<Result<_>>()?,
            top_k: m.top_k,
        },
        _ => Ffn::Dense(expert(&format!("{pre}.ffn"))?),
    };
    Ok(Layer {
        attn_norm: small(&format!("{pre}.attn_norm"))?,
        attn,
        ffn_norm: small(&format!("{pre}.ffn_norm"))?,
        ffn,
    })
}

impl Model {
    /// Builds the model from parameters. Float formats keep the parameter
    /// tensors themselves (so training gradients reach the Vars); quantized
    /// formats quantize the linear weights (norms and embeddings stay f32).
    pub fn from_params(cfg: &ModelConfig, p: &Params, format: WeightFormat) -> Result<Model> {
        Model::from_source(cfg, p, format)
    }

    /// Builds the model tensor by tensor from the seed: peak memory is the
    /// model in `format` plus one f32 tensor.
    pub fn generated(
        cfg: &ModelConfig,
        seed: u64,
        device: &Device,
        format: WeightFormat,
    ) -> Result<Model> {
        Model::from_source(cfg, &Generated::new(cfg, seed, device), format)
    }

    pub fn from_source(
        cfg: &ModelConfig,
        src: &dyn TensorSource,
        format: WeightFormat,
    ) -> Result<Model> {
        let act = act_dtype(format);
        // Layers in parallel: reading, hashing, drawing or repacking one
        // layer's tensors is independent of the others (a 7B model loads
        // from the cache in half the time on two cores).
        let layers = (0..cfg.n_layers)
            .into_par_iter()
            .map(|l| build_layer(cfg, l, format, src))
            .collect::<Result<Vec<_>>>()?;
        Ok(Model {
            cfg: cfg.clone(),
            embed: match src.get("embed")?.to_dtype(act)? {
                e if src.rehome() => super::zeroed::rehomed(e)?,
                e => e,
            },
            layers,
            final_norm: src.get("final_norm")?.to_dtype(act)?,
            lm_head: if cfg.tied_embeddings {
                None
            } else {
                Some(rehomed_lin(src, src.lin("lm_head", format)?)?)
            },
            dtype: act,
            device: src.device().clone(),
        })
    }

    /// Logits of the f32 model for `tokens` (one sequence) at positions
    /// `from..`, holding one layer in memory at a time: the reference for
    /// shapes whose f32 weights do not fit (a 7B model needs 27 GB).
    pub fn streamed_reference_logits(
        cfg: &ModelConfig,
        seed: u64,
        tokens: &[u32],
        from: usize,
    ) -> Result<Vec<Vec<f32>>> {
        let src = Generated::new(cfg, seed, &Device::Cpu);
        let ahead = DrawnAhead {
            src: &src,
            ready: std::sync::Mutex::new(std::collections::HashMap::new()),
        };
        streamed_logits(cfg, &ahead, tokens, from, &|l| ahead.draw(l))
    }

    /// As `streamed_reference_logits`, from any CPU tensor source (a GGUF
    /// file: its tensors dequantized to f32 one layer at a time).
    pub fn streamed_reference_logits_from(
        cfg: &ModelConfig,
        src: &dyn TensorSource,
        tokens: &[u32],
        from: usize,
    ) -> Result<Vec<Vec<f32>>> {
        streamed_logits(cfg, src, tokens, from, &|_| Ok(()))
    }

    /// One transformer block: x + attn(norm(x)), then + ffn(norm(·)).
    fn apply_layer(
        &self,
        layer: &Layer,
        x: &Tensor,
        offset: usize,
        mask: &Tensor,
        cache: Option<&mut LayerCache>,
    ) -> Result<Tensor> {
        let eps = self.cfg.norm_eps;
        let h = rms_norm(x, &layer.attn_norm, eps)?;
        let x = x.add(&self.attention(&layer.attn, &h, offset, mask, cache)?)?;
        let h = rms_norm(&x, &layer.ffn_norm, eps)?;
        x.add(&self.feed_forward(&layer.ffn, &h)?)
    }

    /// tokens (B, T) u32 → logits (B, T, vocab). With a cache, the tokens
    /// continue the cached sequence and the cache is extended.
    pub fn forward(&self, tokens: &Tensor, cache: Option<&mut Cache>) -> Result<Tensor> {
        self.head(&self.hidden(tokens, cache)?)
    }

    /// As `forward`, the logits of the last position only, (B, 1, vocab):
    /// all that generation reads, without the LM head over the whole prompt
    /// (on the 1.1B shape a 128-token prompt's head is ~6% of its FLOPs).
    pub fn forward_last(&self, tokens: &Tensor, cache: Option<&mut Cache>) -> Result<Tensor> {
        let x = self.hidden(tokens, cache)?;
        let t = x.dim(1)?;
        self.head(&x.narrow(1, t - 1, 1)?)
    }

    /// The final norm and the LM head: (B, T, C) → (B, T, vocab).
    fn head(&self, x: &Tensor) -> Result<Tensor> {
        let x = rms_norm(x, &self.final_norm, self.cfg.norm_eps)?;
        match &self.lm_head {
            Some(head) => head.forward(&x),
            None => x.broadcast_matmul(&self.embed.t()?),
        }
    }

    /// The residual stream after the last layer, (B, T, C).
    fn hidden(&self, tokens: &Tensor, mut cache: Option<&mut Cache>) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        let offset = cache.as_ref().map(|c| c.len).unwrap_or(0);
        let mut x = self
            .embed
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((b, t, self.cfg.d_model))?; // (B, T, C)
        let mask = causal_mask(t, offset + t, self.dtype, &self.device)?;
        for (l, layer) in self.layers.iter().enumerate() {
            let lc = cache.as_mut().map(|c| &mut c.layers[l]);
            x = self.apply_layer(layer, &x, offset, &mask, lc)?;
        }
        if let Some(c) = cache {
            c.len += t;
        }
        Ok(x)
    }

    fn attention(
        &self,
        attn: &Attn,
        x: &Tensor, // (B, T, C)
        offset: usize,
        mask: &Tensor, // (T, S)
        cache: Option<&mut LayerCache>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        match attn {
            Attn::Gqa {
                wq,
                wk,
                wv,
                wo,
                n_heads,
                n_kv,
            } => {
                let hd = self.cfg.head_dim;
                let (cos, sin) =
                    rope_tables(hd, self.cfg.rope_theta, offset, t, self.dtype, &self.device)?;
                let heads = |y: Tensor, n: usize| y.reshape((b, t, n, hd))?.transpose(1, 2); // (B, n, T, hd)
                let rot = if self.cfg.rope_interleaved {
                    rope_interleaved
                } else {
                    rope
                };
                let q = rot(&heads(wq.forward(x)?, *n_heads)?, &cos, &sin)?;
                let mut k = rot(&heads(wk.forward(x)?, *n_kv)?, &cos, &sin)?;
                let mut v = heads(wv.forward(x)?, *n_kv)?;
                if let Some(c) = cache {
                    if let LayerCache::Kv { k: pk, v: pv } = c {
                        k = Tensor::cat(&[&*pk, &k], 2)?;
                        v = Tensor::cat(&[&*pv, &v], 2)?;
                    }
                    *c = LayerCache::Kv {
                        k: k.clone(),
                        v: v.clone(),
                    };
                }
                // GQA: each KV head serves n_heads / n_kv query heads.
                let rep = n_heads / n_kv;
                let expand = |y: Tensor| -> Result<Tensor> {
                    if rep == 1 {
                        return Ok(y);
                    }
                    let (b, nk, s, hd) = y.dims4()?;
                    y.unsqueeze(2)?
                        .broadcast_as((b, nk, rep, s, hd))?
                        .reshape((b, nk * rep, s, hd))
                };
                let (k, v) = (expand(k)?, expand(v)?);
                let scale = 1.0 / (hd as f64).sqrt();
                let scores = (q.contiguous()?.matmul(&k.t()?.contiguous()?)? * scale)?
                    .broadcast_add(mask)?;
                let out = softmax(&scores)?.matmul(&v.contiguous()?)?; // (B, H, T, hd)
                wo.forward(&out.transpose(1, 2)?.reshape((b, t, n_heads * hd))?)
            }
            Attn::Mla {
                wq,
                w_dkv,
                w_kr,
                kv_norm,
                w_uk,
                w_uv,
                wo,
                n_heads,
            } => {
                let m = self.cfg.mla.expect("MLA config");
                let h = *n_heads;
                let (cos, sin) = rope_tables(
                    m.rope_dim,
                    self.cfg.rope_theta,
                    offset,
                    t,
                    self.dtype,
                    &self.device,
                )?;
                let q = wq
                    .forward(x)?
                    .reshape((b, t, h, m.nope_dim + m.rope_dim))?
                    .transpose(1, 2)?;
                let q_nope = q.narrow(D::Minus1, 0, m.nope_dim)?;
                let q_pe = rope(
                    &q.narrow(D::Minus1, m.nope_dim, m.rope_dim)?.contiguous()?,
                    &cos,
                    &sin,
                )?;
                let mut c_kv = rms_norm(&w_dkv.forward(x)?, kv_norm, self.cfg.norm_eps)?; // (B, T, r)
                let k_pe_new = w_kr
                    .forward(x)?
                    .reshape((b, t, 1, m.rope_dim))?
                    .transpose(1, 2)?;
                let mut k_pe = rope(&k_pe_new.contiguous()?, &cos, &sin)?.squeeze(1)?; // (B, T, rope)
                if let Some(c) = cache {
                    if let LayerCache::Latent { c_kv: pc, k_pe: pk } = c {
                        c_kv = Tensor::cat(&[&*pc, &c_kv], 1)?;
                        k_pe = Tensor::cat(&[&*pk, &k_pe], 1)?;
                    }
                    *c = LayerCache::Latent {
                        c_kv: c_kv.clone(),
                        k_pe: k_pe.clone(),
                    };
                }
                let s = c_kv.dim(1)?;
                // Up-project the cached latent to per-head keys and values.
                let k_nope = w_uk
                    .forward(&c_kv)?
                    .reshape((b, s, h, m.nope_dim))?
                    .transpose(1, 2)?;
                let v = w_uv
                    .forward(&c_kv)?
                    .reshape((b, s, h, m.v_dim))?
                    .transpose(1, 2)?;
                let k_pe = k_pe.unsqueeze(1)?.broadcast_as((b, h, s, m.rope_dim))?;
                let k = Tensor::cat(&[&k_nope, &k_pe], D::Minus1)?;
                let qf = Tensor::cat(&[&q_nope, &q_pe], D::Minus1)?;
                let scale = 1.0 / ((m.nope_dim + m.rope_dim) as f64).sqrt();
                let scores = (qf.contiguous()?.matmul(&k.t()?.contiguous()?)? * scale)?
                    .broadcast_add(mask)?;
                let out = softmax(&scores)?.matmul(&v.contiguous()?)?; // (B, H, T, v)
                wo.forward(&out.transpose(1, 2)?.reshape((b, t, h * m.v_dim))?)
            }
        }
    }

    fn feed_forward(&self, ffn: &Ffn, x: &Tensor) -> Result<Tensor> {
        match ffn {
            Ffn::Dense(e) => swiglu(x, &e.gate, &e.up, &e.down),
            Ffn::Moe {
                router,
                routed,
                shared,
                top_k,
            } => {
                let (b, t, c) = x.dims3()?;
                let xs = x.reshape((b * t, c))?; // (N, C)
                let mut out = Tensor::zeros((b * t, c), x.dtype(), x.device())?;
                for e in shared {
                    out = out.add(&swiglu(&xs, &e.gate, &e.up, &e.down)?)?;
                }
                let rt = if x.dtype() == DType::F64 {
                    DType::F64
                } else {
                    DType::F32
                };
                let probs = softmax(&router.forward(&xs)?.to_dtype(rt)?)?; // (N, E)
                // Routing is a discrete choice: made on the host, then each
                // expert runs on exactly its tokens (analytic FLOPs hold).
                let p_host: Vec<Vec<f64>> = probs.to_dtype(DType::F64)?.to_vec2()?;
                let mut tokens_of: Vec<Vec<u32>> = vec![vec![]; routed.len()];
                for (n, row) in p_host.iter().enumerate() {
                    let mut idx: Vec<usize> = (0..row.len()).collect();
                    idx.sort_by(|a, b| row[*b].total_cmp(&row[*a]).then(a.cmp(b)));
                    for &e in idx.iter().take(*top_k) {
                        tokens_of[e].push(n as u32);
                    }
                }
                for (e, expert) in routed.iter().enumerate() {
                    if tokens_of[e].is_empty() {
                        continue;
                    }
                    let ids = Tensor::new(tokens_of[e].as_slice(), x.device())?;
                    let xe = xs.index_select(&ids, 0)?;
                    let ye = swiglu(&xe, &expert.gate, &expert.up, &expert.down)?;
                    let gate = probs
                        .index_select(&ids, 0)?
                        .narrow(1, e, 1)?
                        .to_dtype(x.dtype())?; // (n_e, 1)
                    out = out.index_add(&ids, &ye.broadcast_mul(&gate)?, 0)?;
                }
                out.reshape((b, t, c))
            }
        }
    }
}

/// The streamed f32 forward of `streamed_reference_logits_from`;
/// `before_layer(l)` runs before layer `l` is built (to draw it ahead).
fn streamed_logits(
    cfg: &ModelConfig,
    src: &dyn TensorSource,
    tokens: &[u32],
    from: usize,
    before_layer: &dyn Fn(usize) -> Result<()>,
) -> Result<Vec<Vec<f32>>> {
    let dev = src.device().clone();
    let fmt = WeightFormat::Float(DType::F32);
    let t = tokens.len();
    let shell = Model {
        cfg: cfg.clone(),
        embed: src.get("embed")?,
        layers: vec![],
        final_norm: src.get("final_norm")?,
        lm_head: None,
        dtype: DType::F32,
        device: dev.clone(),
    };
    let ids = Tensor::from_vec(tokens.to_vec(), t, &dev)?;
    let mut x = shell.embed.index_select(&ids, 0)?.unsqueeze(0)?; // (1, T, C)
    let mask = causal_mask(t, t, DType::F32, &dev)?;
    for l in 0..cfg.n_layers {
        before_layer(l)?;
        let layer = build_layer(cfg, l, fmt, src)?;
        x = shell.apply_layer(&layer, &x, 0, &mask, None)?;
    }
    let x = rms_norm(
        &x.narrow(1, from, t - from)?,
        &shell.final_norm,
        cfg.norm_eps,
    )?;
    let logits = if cfg.tied_embeddings {
        x.broadcast_matmul(&shell.embed.t()?)?
    } else {
        src.lin("lm_head", fmt)?.forward(&x)?
    };
    logits.squeeze(0)?.to_vec2()
}

/// `Generated` with one layer's tensors drawn ahead, in parallel: the
/// reference of a 7B model otherwise spends most of its time drawing
/// weights one tensor after another on one core. Same streams, same values.
struct DrawnAhead<'a> {
    src: &'a Generated,
    ready: std::sync::Mutex<std::collections::HashMap<String, Tensor>>,
}

impl DrawnAhead<'_> {
    fn draw(&self, l: usize) -> Result<()> {
        use rayon::prelude::*;
        let prefix = format!("layers.{l}.");
        let specs: Vec<&ParamSpec> = self
            .src
            .specs
            .values()
            .filter(|s| s.name.starts_with(&prefix))
            .collect();
        let drawn = specs
            .par_iter()
            .map(|s| -> Result<(String, Tensor)> {
                Ok((
                    s.name.clone(),
                    generate(s, self.src.seed, &self.src.device, DType::F32)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        *self.ready.lock().expect("lock") = drawn.into_iter().collect();
        Ok(())
    }
}

impl TensorSource for DrawnAhead<'_> {
    fn get(&self, name: &str) -> Result<Tensor> {
        match self.ready.lock().expect("lock").remove(name) {
            Some(t) => Ok(t),
            None => self.src.get(name),
        }
    }
    fn device(&self) -> &Device {
        &self.src.device
    }
}

#[cfg(test)]
mod tests;
