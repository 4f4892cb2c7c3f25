//! `WorkloadSpec`: the versioned identity of a workload instance, parsed from
//! its name (e.g. `kernel/gemm-f32-256`). Its FLOPs, bytes and memory need
//! are computed under `cost/`.

use serde::{Deserialize, Serialize};

use crate::error::{Result, WorkloadError};

mod limits;
mod params;

pub use crate::formats::{DType, WeightFmt};
pub use params::{DecodeParams, GemmParams, QualityParams, TrainParams, Typed};

/// A rung of the wgpu GEMM ladder, named by a `kernel/gemm-…-<rung>` suffix
/// so a GPU run shows what each step of kernel work gains. Without a suffix
/// a backend runs its best GEMM (wgpu: `blocked`; cpu, cuda, metal:
/// candle's matmul); the rungs are wgpu kernels only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GemmVariant {
    /// One thread per output, operands straight from memory.
    Naive,
    /// 16×16 tiles staged through workgroup memory.
    Tiled,
    /// 64×64 tiles, 4×4 outputs a thread held in registers.
    Blocked,
}

impl GemmVariant {
    pub const ALL: [GemmVariant; 3] =
        [GemmVariant::Naive, GemmVariant::Tiled, GemmVariant::Blocked];

    pub fn parse(s: &str) -> Option<GemmVariant> {
        GemmVariant::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GemmVariant::Naive => "naive",
            GemmVariant::Tiled => "tiled",
            GemmVariant::Blocked => "blocked",
        }
    }
}

/// Deliberate failures, so the harness's isolation can be tested on the real
/// binary: each one is how a real case dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum FaultMode {
    Panic,
    Abort,
    Hang,
    Oom,
    Wrong,
    /// Succeeds, after sleeping this long in prepare (for resume tests).
    Slow {
        ms: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Params {
    /// C(m,n) = A(m,k) · B(k,n), row-major.
    Gemm {
        m: usize,
        n: usize,
        k: usize,
        dtype: DType,
        /// A named rung of the wgpu GEMM ladder; `None`: the backend's best.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variant: Option<GemmVariant>,
    },
    Fault {
        fault: FaultMode,
    },
    /// STREAM triad a = b + s·c over `elems` f32 per array.
    Stream {
        elems: usize,
    },
    /// A read-only pass: the sum of `bytes` of f32 (decode's access pattern).
    Read {
        bytes: usize,
    },
    /// Causal attention over `seq` positions (8 heads × 64 dims, f32).
    Attention {
        seq: usize,
    },
    /// One training step (forward, loss, backward, AdamW) on (batch, seq).
    Train {
        model: String,
        dtype: DType,
        batch: usize,
        seq: usize,
    },
    /// A fresh model trained `steps` steps on fresh batches, then evaluated
    /// on held-out data against the corpus's entropy floor.
    TrainQuality {
        model: String,
        dtype: DType,
        steps: usize,
        batch: usize,
        seq: usize,
    },
    /// `prompt` tokens prefilled after `depth` cached ones, then `gen_tokens`
    /// tokens generated greedily (gen_tokens = 0: the prefill workload).
    Decode {
        model: String,
        format: WeightFmt,
        prompt: usize,
        gen_tokens: usize,
        batch: usize,
        depth: usize,
    },
}

/// A workload instance: name + version + parameters. Two results are
/// comparable only when name and version match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSpec {
    /// Canonical instance name, e.g. `kernel/gemm-f32-256`.
    pub name: String,
    /// `kernel` or `fault` (training and decode come with the model families).
    pub kind: String,
    /// Bumped whenever the computation behind the name changes.
    pub version: u32,
    pub seed: u64,
    pub params: Params,
}

pub const GEMM_VERSION: u32 = 1;
pub const STREAM_VERSION: u32 = 1;
pub const READ_VERSION: u32 = 1;
pub const ATTENTION_VERSION: u32 = 1;
pub const TRAIN_VERSION: u32 = 1;
/// `train-step/<model>/bf16`: 2 — on the CPU the GQA families run on
/// capbench's executor, bf16 weight products (bf16 operands, f32 sums) with
/// norms, attention, softmax and AdamW in f32, no longer candle's all-bf16
/// graph. f32 steps are unchanged and keep `TRAIN_VERSION`.
pub const TRAIN_BF16_VERSION: u32 = 2;
/// 2: one sequence of a dense GQA model decodes on the CPU through the
/// fused f32 step (`models::fused`): f16/bf16 activations stay in f32.
/// 3: its prompt runs through the fused prefill too (f32 activations, q8_0
/// activation rows for q4_0/q8_0 weights), no longer candle's forward.
pub const DECODE_VERSION: u32 = 3;
pub const QUALITY_VERSION: u32 = 1;
/// Held-out sequences a train-quality run's eval loss is measured on.
pub const EVAL_SEQUENCES: usize = 16;
pub const FAULT_VERSION: u32 = 1;
pub const DEFAULT_SEED: u64 = 0x5eed_cab0;
pub use limits::{MAX_BATCH, MAX_DIM, MAX_STEPS, MAX_STREAM_ELEMS};

/// The model name of decode/prefill workloads on a user's GGUF file
/// (`decode/gguf/<format as stored>`, the file given by `--model`).
pub const GGUF_MODEL: &str = "gguf";

impl WorkloadSpec {
    /// Parses an instance name. Accepted forms:
    /// `kernel/gemm-<f32|f16|bf16>-<N>` (square) or `-<M>x<N>x<K>`, each
    /// optionally `-<naive|tiled|blocked>` (a wgpu GEMM ladder rung), and
    /// `fault/<panic|abort|hang|oom|wrong|slow-<ms>>`.
    pub fn parse(name: &str) -> Result<WorkloadSpec> {
        let spec = Self::parse_shape(name)?;
        spec.check_sizes()?;
        Ok(spec)
    }

    fn parse_shape(name: &str) -> Result<WorkloadSpec> {
        let unknown = |hint: &str| WorkloadError::UnknownName {
            what: "workload",
            name: name.to_string(),
            hint: hint.to_string(),
        };
        if let Some(rest) = name.strip_prefix("kernel/gemm-") {
            let hint = "expected kernel/gemm-<f32|f16|bf16>-<N> or -<M>x<N>x<K>, optionally -<naive|tiled|blocked> (a wgpu GEMM ladder rung), e.g. kernel/gemm-f32-256 or kernel/gemm-f32-256-tiled";
            let (dt, dims) = rest.split_once('-').ok_or_else(|| unknown(hint))?;
            let (dims, variant) = match dims.split_once('-') {
                None => (dims, None),
                Some((d, v)) => (d, Some(GemmVariant::parse(v).ok_or_else(|| unknown(hint))?)),
            };
            let dtype = DType::parse(dt).ok_or_else(|| unknown(hint))?;
            let nums: Vec<usize> = dims
                .split('x')
                .map(|d| d.parse::<usize>().ok().filter(|v| *v > 0))
                .collect::<Option<_>>()
                .ok_or_else(|| unknown(hint))?;
            let (m, n, k) = match nums.as_slice() {
                [s] => (*s, *s, *s),
                [m, n, k] => (*m, *n, *k),
                _ => return Err(unknown(hint)),
            };
            let mut spec = Self::gemm(m, n, k, dtype);
            if let Some(v) = variant {
                spec.name = format!("{}-{}", spec.name, v.as_str());
                spec.params = Params::Gemm {
                    m,
                    n,
                    k,
                    dtype,
                    variant: Some(v),
                };
            }
            return Ok(spec);
        }
        // Kernels sized by one count: prefix, hint, version, parameters.
        let counted = [
            (
                "kernel/stream-",
                "expected kernel/stream-<N> elements per array, e.g. kernel/stream-4M",
                STREAM_VERSION,
                (|elems| Params::Stream { elems }) as fn(usize) -> Params,
            ),
            (
                "kernel/read-",
                "expected kernel/read-<N> bytes, a multiple of 64, e.g. kernel/read-128M",
                READ_VERSION,
                |bytes| Params::Read { bytes },
            ),
            (
                "kernel/attention-",
                "expected kernel/attention-<T> positions, e.g. kernel/attention-512",
                ATTENTION_VERSION,
                |seq| Params::Attention { seq },
            ),
        ];
        for (prefix, hint, version, params) in counted {
            if let Some(rest) = name.strip_prefix(prefix) {
                let count = parse_count(rest).ok_or_else(|| unknown(hint))?;
                return Ok(Self::named(name, "kernel", version, params(count)));
            }
        }
        if let Some(rest) = name.strip_prefix("train-step/") {
            let hint =
                "expected train-step/<model>/<f32|bf16>[/b<B>t<T>], e.g. train-step/dense-tiny/f32";
            let (model, dtype, (db, dt_), o) = train_parts(rest, &['b', 't'], hint, &unknown)?;
            return Ok(WorkloadSpec {
                name: name.to_string(),
                kind: "train".into(),
                version: if dtype == DType::Bf16 {
                    TRAIN_BF16_VERSION
                } else {
                    TRAIN_VERSION
                },
                seed: DEFAULT_SEED,
                params: Params::Train {
                    model: model.into(),
                    dtype,
                    batch: o[0].unwrap_or(db),
                    seq: o[1].unwrap_or(dt_),
                },
            });
        }
        if let Some(rest) = name.strip_prefix("train-quality/") {
            let hint = "expected train-quality/<model>/<f32|bf16>[/s<STEPS>b<B>t<T>], e.g. train-quality/dense-tiny/f32";
            let (model, dtype, (db, dt_), o) = train_parts(rest, &['s', 'b', 't'], hint, &unknown)?;
            let steps = o[0].unwrap_or(300);
            if steps == 0 {
                return Err(unknown(hint));
            }
            return Ok(WorkloadSpec {
                name: name.to_string(),
                kind: "train-quality".into(),
                version: QUALITY_VERSION,
                seed: DEFAULT_SEED,
                params: Params::TrainQuality {
                    model: model.into(),
                    dtype,
                    steps,
                    batch: o[1].unwrap_or(db),
                    seq: o[2].unwrap_or(dt_),
                },
            });
        }
        for (prefix, kind) in [("decode/", "decode"), ("prefill/", "prefill")] {
            let Some(rest) = name.strip_prefix(prefix) else {
                continue;
            };
            let hint = "expected decode/<model>/<f32|f16|bf16|q8_0|q4_0>[/p<P>g<G>b<B>d<D>] (prefill/… without g), e.g. decode/dense-tiny/q8_0, or decode/gguf/<format> with --model FILE.gguf";
            let (model, f, opts) = model_parts(rest).ok_or_else(|| unknown(hint))?;
            let tiny = if model == GGUF_MODEL {
                false
            } else {
                let cfg = crate::models::shape(model).ok_or_else(|| unknown(&model_hint()))?;
                cfg.name.ends_with("-tiny")
            };
            let format = WeightFmt::parse(f).ok_or_else(|| unknown(hint))?;
            let keys: &[char] = if kind == "decode" {
                &['p', 'g', 'b', 'd']
            } else {
                &['p', 'b', 'd']
            };
            let o = parse_opts(opts, keys).ok_or_else(|| unknown(hint))?;
            let (dp, dg) = if tiny { (16, 16) } else { (64, 32) };
            let (prompt, gen_tokens, batch, depth) = if kind == "decode" {
                (
                    o[0].unwrap_or(dp),
                    o[1].unwrap_or(dg),
                    o[2].unwrap_or(1),
                    o[3].unwrap_or(0),
                )
            } else {
                (o[0].unwrap_or(dp), 0, o[1].unwrap_or(1), o[2].unwrap_or(0))
            };
            if prompt == 0 || batch == 0 || (kind == "decode" && gen_tokens == 0) {
                return Err(unknown(hint));
            }
            return Ok(WorkloadSpec {
                name: name.to_string(),
                kind: kind.into(),
                version: DECODE_VERSION,
                seed: DEFAULT_SEED,
                params: Params::Decode {
                    model: model.into(),
                    format,
                    prompt,
                    gen_tokens,
                    batch,
                    depth,
                },
            });
        }
        if let Some(rest) = name.strip_prefix("fault/") {
            let fault = match rest {
                "panic" => FaultMode::Panic,
                "abort" => FaultMode::Abort,
                "hang" => FaultMode::Hang,
                "oom" => FaultMode::Oom,
                "wrong" => FaultMode::Wrong,
                other => {
                    let ms = other
                        .strip_prefix("slow-")
                        .and_then(|v| v.strip_suffix("ms"))
                        .and_then(|v| v.parse::<u64>().ok())
                        .ok_or_else(|| {
                            unknown("expected fault/panic|abort|hang|oom|wrong|slow-<N>ms")
                        })?;
                    FaultMode::Slow { ms }
                }
            };
            return Ok(Self::named(
                name,
                "fault",
                FAULT_VERSION,
                Params::Fault { fault },
            ));
        }
        Err(unknown(
            "see `capbench list workloads` for the names and forms accepted",
        ))
    }

    fn named(name: &str, kind: &str, version: u32, params: Params) -> WorkloadSpec {
        WorkloadSpec {
            name: name.to_string(),
            kind: kind.into(),
            version,
            seed: DEFAULT_SEED,
            params,
        }
    }

    pub fn gemm(m: usize, n: usize, k: usize, dtype: DType) -> WorkloadSpec {
        let dims = if m == n && n == k {
            format!("{m}")
        } else {
            format!("{m}x{n}x{k}")
        };
        WorkloadSpec {
            name: format!("kernel/gemm-{}-{dims}", dtype.as_str()),
            kind: "kernel".into(),
            version: GEMM_VERSION,
            seed: DEFAULT_SEED,
            params: Params::Gemm {
                m,
                n,
                k,
                dtype,
                variant: None,
            },
        }
    }
}

/// `model/format[/options]` → its three parts (options may be empty).
fn model_parts(rest: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [m, f] => Some((m, f, "")),
        [m, f, o] => Some((m, f, o)),
        _ => None,
    }
}

/// `4M` → 4·2²⁰, `512K` → 512·2¹⁰, `1000` → 1000.
fn parse_count(s: &str) -> Option<usize> {
    let (num, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1 << 10),
        'M' => (&s[..s.len() - 1], 1 << 20),
        'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    // checked: `17179869184G` is 2^64 and must not wrap to 0 elements.
    num.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .and_then(|n| n.checked_mul(mult))
}

/// `p128g64b2` with keys ['p','g','b','d'] → [Some(128), Some(64), Some(2), None].
fn parse_opts(s: &str, keys: &[char]) -> Option<Vec<Option<usize>>> {
    let mut out = vec![None; keys.len()];
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        let i = keys.iter().position(|k| *k == c)?;
        let digits: String = rest[1..]
            .chars()
            .take_while(|d| d.is_ascii_digit())
            .collect();
        if digits.is_empty() || out[i].is_some() {
            return None;
        }
        out[i] = Some(digits.parse().ok()?);
        rest = &rest[1 + digits.len()..];
    }
    Some(out)
}

/// (model, dtype, default (batch, seq), options) of a training name.
type TrainParts<'a> = (&'a str, DType, (usize, usize), Vec<Option<usize>>);

/// What train-step and train-quality names share: the model, its dtype
/// (f32 or bf16), the model's default (batch, seq) and the options `keys`;
/// a malformed part is an error with the kind's `hint`.
fn train_parts<'a>(
    rest: &'a str,
    keys: &[char],
    hint: &str,
    unknown: &dyn Fn(&str) -> WorkloadError,
) -> Result<TrainParts<'a>> {
    let (model, dt, opts) = model_parts(rest).ok_or_else(|| unknown(hint))?;
    let cfg = crate::models::shape(model).ok_or_else(|| unknown(&model_hint()))?;
    let dtype = DType::parse(dt)
        .filter(|d| *d != DType::F16)
        .ok_or_else(|| unknown(hint))?;
    let defaults = default_train_shape(&cfg.name);
    let o = parse_opts(opts, keys).ok_or_else(|| unknown(hint))?;
    Ok((model, dtype, defaults, o))
}

fn default_train_shape(model: &str) -> (usize, usize) {
    if model.ends_with("-tiny") {
        (4, 32)
    } else if model.ends_with("-small") {
        (4, 128)
    } else {
        (1, 128)
    }
}

fn model_hint() -> String {
    let names: Vec<String> = crate::models::shapes()
        .into_iter()
        .map(|s| s.name)
        .collect();
    format!(
        "unknown model; known: {} (and gguf for decode/prefill with --model FILE.gguf)",
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_model_workloads_with_defaults_and_options() {
        let t = WorkloadSpec::parse("train-step/dense-tiny/f32").unwrap();
        assert_eq!(t.kind, "train");
        assert!(matches!(
            t.params,
            Params::Train {
                batch: 4,
                seq: 32,
                ..
            }
        ));
        // (format, prompt, gen_tokens, batch, depth) of a decode or prefill.
        let decode = |name: &str| match WorkloadSpec::parse(name).unwrap().params {
            Params::Decode {
                format,
                prompt,
                gen_tokens,
                batch,
                depth,
                ..
            } => (format, prompt, gen_tokens, batch, depth),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(
            decode("decode/llama-2-7b/q4_0/p128g64b2d512"),
            (WeightFmt::Q4_0, 128, 64, 2, 512)
        );
        let (format, prompt, gen_tokens, ..) = decode("decode/gguf/q4_0/g8");
        assert_eq!((format, prompt, gen_tokens), (WeightFmt::Q4_0, 64, 8));
        let (_, prompt, gen_tokens, ..) = decode("prefill/openelm-tiny/bf16");
        assert_eq!((prompt, gen_tokens), (16, 0));
        let s = WorkloadSpec::parse("kernel/stream-4M").unwrap();
        assert_eq!(s.params, Params::Stream { elems: 4 << 20 });
        let s = WorkloadSpec::parse("kernel/read-128M").unwrap();
        assert_eq!(s.params, Params::Read { bytes: 128 << 20 });
        assert_eq!(s.bytes_per_iter(), (128u64 << 20) as f64);
        // The sum runs over whole 16-lane blocks of f32.
        assert!(WorkloadSpec::parse("kernel/read-100").is_err());
        for bad in [
            "train-step/dense-huge/f32",
            "train-step/dense-tiny/f16",
            "decode/dense-tiny/q3",
            "decode/dense-tiny/f32/x1",
            "prefill/dense-tiny/f32/g4",
            "kernel/stream-0",
        ] {
            assert!(WorkloadSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_square_and_rectangular_gemm() {
        let s = WorkloadSpec::parse("kernel/gemm-f32-256").unwrap();
        assert_eq!(
            s.params,
            Params::Gemm {
                m: 256,
                n: 256,
                k: 256,
                dtype: DType::F32,
                variant: None,
            }
        );
        assert_eq!(s.flops_per_iter(), 2.0 * 256f64.powi(3));
        let r = WorkloadSpec::parse("kernel/gemm-bf16-64x128x32").unwrap();
        assert_eq!(
            r.params,
            Params::Gemm {
                m: 64,
                n: 128,
                k: 32,
                dtype: DType::Bf16,
                variant: None,
            }
        );
        assert_eq!(r.name, "kernel/gemm-bf16-64x128x32");
        let t = WorkloadSpec::parse("kernel/gemm-f32-256-tiled").unwrap();
        assert_eq!(
            t.params,
            Params::Gemm {
                m: 256,
                n: 256,
                k: 256,
                dtype: DType::F32,
                variant: Some(GemmVariant::Tiled),
            }
        );
        // A rung is the same computation: same work, same version.
        assert_eq!(t.flops_per_iter(), s.flops_per_iter());
        assert_eq!(t.version, s.version);
        assert_eq!(
            r.bytes_per_iter(),
            ((64 * 32 + 32 * 128 + 64 * 128) * 2) as f64
        );
    }

    #[test]
    fn canonical_name_round_trips() {
        for n in [
            "kernel/gemm-f16-512",
            "kernel/gemm-f32-1x2x3",
            "kernel/gemm-f32-512-naive",
            "kernel/gemm-f32-64x32x16-blocked",
            "fault/slow-250ms",
        ] {
            assert_eq!(WorkloadSpec::parse(n).unwrap().name, n);
        }
    }

    #[test]
    fn rejects_bad_names_with_a_hint() {
        for bad in [
            "kernel/gemm-f64-256",
            "kernel/gemm-f32-0",
            "kernel/gemm-f32-2x3",
            "kernel/gemm-f32-256-fast",
            "kernel/gemm-f32-256-",
            "gemm",
            "fault/slow-x",
        ] {
            let e = WorkloadSpec::parse(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }
}
