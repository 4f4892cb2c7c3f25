//! Where the wgpu model's parameters live on the engine: the f32 arena and
//! the quantized arena, each in `param_specs` order, seeded and uploaded as
//! the CPU model's, and the RoPE tables.

use std::collections::HashMap;

use candle_core::{DType as CDType, Device};

use crate::backend::wgpu::engine::{Builder, Engine, F, Ix};
use crate::backend::wgpu::quant::{QFmt, QMat, pack_words, quantize};
use crate::error::{Result, cerr};
use crate::models::ModelConfig;
use crate::models::params::{ParamSpec, generate, param_specs};

/// Every parameter as one contiguous range in `param_specs` order, so that
/// AdamW is one dispatch and the routed experts of a layer sit at a fixed
/// stride (gate, up, down per expert). Gradients and moments use the same
/// layout in ranges of their own.
pub struct Weights {
    pub all: F,
    pub specs: Vec<(ParamSpec, F)>,
    index: HashMap<String, usize>,
}

impl Weights {
    pub fn layout(b: &mut Builder, cfg: &ModelConfig) -> Weights {
        Weights::layout_of(b, param_specs(cfg))
    }

    /// The layout of `specs` only (a quantized model's f32 parameters).
    pub(super) fn layout_of(b: &mut Builder, specs: Vec<ParamSpec>) -> Weights {
        let total: usize = specs
            .iter()
            .map(|s| s.shape.iter().product::<usize>())
            .sum();
        Weights::place(b.f(total), specs)
    }

    /// A second range with the same layout (gradients, moments).
    pub fn like(&self, b: &mut Builder) -> Weights {
        Weights::place(
            b.f(self.all.len as usize),
            self.specs.iter().map(|(s, _)| s.clone()).collect(),
        )
    }

    fn place(all: F, specs: Vec<ParamSpec>) -> Weights {
        let mut off = 0;
        let mut out = vec![];
        let mut index = HashMap::new();
        for s in specs {
            let n: usize = s.shape.iter().product();
            index.insert(s.name.clone(), out.len());
            out.push((s, all.at(off, n)));
            off += n;
        }
        Weights {
            all,
            specs: out,
            index,
        }
    }

    pub fn get(&self, name: &str) -> F {
        let i = self
            .index
            .get(name)
            .unwrap_or_else(|| panic!("parameter {name} missing from the layout"));
        self.specs[*i].1
    }

    /// Uploads the seeded weights (the CPU model's exact values).
    pub fn upload(&self, e: &Engine, seed: u64) -> Result<()> {
        let backend: crate::Backend = crate::Backend::Cpu;
        for (spec, view) in &self.specs {
            let data: Vec<f32> = generate(spec, seed, &Device::Cpu, CDType::F32)
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1())
                .map_err(cerr(&backend, "generate weights"))?;
            e.write_f(*view, &data);
        }
        Ok(())
    }
}

/// Whether a quantized model stores this parameter quantized: every linear
/// weight (2-D) but the embedding, as the CPU model's `WeightFormat::Q*`
/// does (norms and the embedding, and with it a tied LM head, stay f32).
pub fn is_quantized(spec: &ParamSpec) -> bool {
    spec.shape.len() == 2 && spec.name != "embed"
}

/// The quantized linear weights, one contiguous range of the u32 arena in
/// `param_specs` order, so the routed experts of a layer sit at a fixed
/// stride of words (gate, up, down per expert), as in `Weights`.
pub struct QWeights {
    pub fmt: QFmt,
    pub all: Ix,
    specs: Vec<(ParamSpec, QMat)>,
    index: HashMap<String, usize>,
}

impl QWeights {
    pub(super) fn layout(b: &mut Builder, fmt: QFmt, specs: Vec<ParamSpec>) -> QWeights {
        let words = |s: &ParamSpec| fmt.words(s.shape[0], s.shape[1]);
        let all = b.u(specs.iter().map(words).sum());
        let (mut off, mut out, mut index) = (0, vec![], HashMap::new());
        for s in specs {
            let n = words(&s);
            let m = QMat {
                fmt,
                w: all.at(off, n),
                rows: s.shape[0],
                cols: s.shape[1],
            };
            index.insert(s.name.clone(), out.len());
            out.push((s, m));
            off += n;
        }
        QWeights {
            fmt,
            all,
            specs: out,
            index,
        }
    }

    pub fn get(&self, name: &str) -> Option<QMat> {
        self.index.get(name).map(|i| self.specs[*i].1)
    }

    /// The seeded f32 weights quantized on the host (candle, ggml's
    /// rounding) and uploaded as ggml blocks.
    pub fn upload(&self, e: &Engine, seed: u64) -> Result<()> {
        let backend: crate::Backend = crate::Backend::Cpu;
        for (spec, m) in &self.specs {
            let bytes = generate(spec, seed, &Device::Cpu, CDType::F32)
                .and_then(|t| quantize(&t, self.fmt))
                .map_err(cerr(&backend, "quantize weights"))?;
            e.write_u(m.w, &pack_words(&bytes));
        }
        Ok(())
    }
}

/// (cos, sin) tables, (positions, dim/2) each, computed as the CPU model's
/// `rope_tables` (f64, then rounded to f32).
pub struct RopeTables {
    pub cos: F,
    pub sin: F,
    host: (Vec<f32>, Vec<f32>),
}

impl RopeTables {
    pub fn new(b: &mut Builder, dim: usize, theta: f64, positions: usize) -> RopeTables {
        let half = dim / 2;
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in 0..positions {
            for i in 0..half {
                let freq = 1.0 / theta.powf(2.0 * i as f64 / dim as f64);
                let a = p as f64 * freq;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        RopeTables {
            cos: b.f(cos.len()),
            sin: b.f(sin.len()),
            host: (cos, sin),
        }
    }

    pub fn upload(&self, e: &Engine) {
        e.write_f(self.cos, &self.host.0);
        e.write_f(self.sin, &self.host.1);
    }

    pub(super) fn pair(&self) -> (F, F) {
        (self.cos, self.sin)
    }
}
