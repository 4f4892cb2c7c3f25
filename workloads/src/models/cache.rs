//! The synthetic-model cache: a model is drawn from its seed once, stored as
//! a GGUF file of its weights in the form they run in, beside a manifest of
//! SHA-256 hashes, and every later worker process builds the same model from
//! that file — each tensor checked against the manifest as it is read, so a
//! stale or damaged entry is rebuilt, never trusted.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, GgmlType, QMatMul, QStorage, QTensor, QuantizedType};
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::config::ModelConfig;
use super::model::{Model, TensorSource, WeightFormat, lin};
use super::ops::Lin;
use super::params::{ParamSpec, draw_into, param_specs};
use crate::api::WeightsRecord;
use crate::formats::WeightFmt;

/// Bumped whenever the file layout or the stored form of a tensor changes,
/// so an entry written by another capbench is rebuilt rather than misread.
pub const CACHE_FORMAT: u32 = 1;

/// What identifies a cached model: its shape, weight format, seed and the
/// version of the workload that draws it.
#[derive(Debug, Clone)]
pub struct CacheKey {
    pub cfg: ModelConfig,
    pub seed: u64,
    pub format: WeightFmt,
    pub workload_version: u32,
}

impl CacheKey {
    /// `<shape>.<format>.seed<seed>.v<version>.c<cache format>`.
    pub fn stem(&self) -> String {
        format!(
            "{}.{}.seed{}.v{}.c{CACHE_FORMAT}",
            self.cfg.name,
            self.format.as_str(),
            self.seed,
            self.workload_version
        )
    }

    pub fn weights_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.gguf", self.stem()))
    }

    pub fn manifest_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.sha256", self.stem()))
    }

    /// The metadata the file carries, checked on every load.
    fn metadata(&self) -> Vec<(String, Value)> {
        vec![
            (
                "general.architecture".into(),
                Value::String("capbench-cache".into()),
            ),
            ("capbench.cache_format".into(), Value::U32(CACHE_FORMAT)),
            (
                "capbench.shape".into(),
                Value::String(self.cfg.name.clone()),
            ),
            (
                "capbench.weight_format".into(),
                Value::String(self.format.as_str().into()),
            ),
            ("capbench.seed".into(), Value::U64(self.seed)),
            (
                "capbench.workload_version".into(),
                Value::U32(self.workload_version),
            ),
        ]
    }
}

/// How a parameter is stored: as `Model::from_source` would turn its f32
/// values into what runs — linear weights in the run's format (q4_0 and
/// q8_0 only where rows are whole 32-element blocks), the embedding and
/// the norms in f32 (the model converts them to its activation type).
fn stored_dtype(spec: &ParamSpec, format: WeightFmt) -> GgmlDType {
    let linear = spec.shape.len() == 2 && spec.name != "embed";
    let whole_blocks = spec.shape.last().is_some_and(|c| c % 32 == 0);
    match format {
        _ if !linear => GgmlDType::F32,
        WeightFmt::F32 => GgmlDType::F32,
        WeightFmt::F16 => GgmlDType::F16,
        WeightFmt::Bf16 => GgmlDType::BF16,
        WeightFmt::Q8_0 if whole_blocks => GgmlDType::Q8_0,
        WeightFmt::Q4_0 if whole_blocks => GgmlDType::Q4_0,
        _ => GgmlDType::F32,
    }
}

fn dtype_name(d: GgmlDType) -> String {
    format!("{d:?}").to_lowercase()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One manifest line: a tensor's name, stored type, shape and the SHA-256
/// of its bytes.
fn manifest_line(name: &str, dtype: GgmlDType, dims: &[usize], sha: &str) -> String {
    let dims: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("{name} {} {} {sha}\n", dtype_name(dtype), dims.join("x"))
}

/// The weights hash: SHA-256 of the manifest's tensor lines, in parameter
/// order. It names the weights, not the file (alignment, metadata).
fn weights_sha256(lines: &[String]) -> String {
    let mut h = Sha256::new();
    for l in lines {
        h.update(l.as_bytes());
    }
    hex(&h.finalize())
}

/// Elements per parallel task of `drawn_as` (a task draws 512 KiB of f32
/// into a buffer of its own and stores them at once).
const STORE_CHUNK: usize = 1 << 17;

/// A parameter drawn from its seed and stored as `dtype`: what
/// `QTensor::quantize` makes of `generate`'s f32 tensor, without the f32
/// tensor — each task draws its blocks' elements (`draw_into`) and stores
/// them, and a block is stored from its own 32 (or 1) values alone, so the
/// bytes are the same (a test compares the two).
fn drawn(spec: &ParamSpec, seed: u64, dtype: GgmlDType) -> candle_core::Result<QTensor> {
    use candle_core::quantized::k_quants::{BlockQ4_0, BlockQ8_0};
    let storage: Box<dyn QuantizedType> = match dtype {
        GgmlDType::F32 => Box::new(drawn_as::<f32>(spec, seed)),
        GgmlDType::F16 => Box::new(drawn_as::<half::f16>(spec, seed)),
        GgmlDType::BF16 => Box::new(drawn_as::<half::bf16>(spec, seed)),
        GgmlDType::Q8_0 => Box::new(drawn_as::<BlockQ8_0>(spec, seed)),
        GgmlDType::Q4_0 => Box::new(drawn_as::<BlockQ4_0>(spec, seed)),
        other => candle_core::bail!("{}: no stored form {other:?}", spec.name),
    };
    QTensor::new(QStorage::Cpu(storage), spec.shape.as_slice())
}

fn drawn_as<T: GgmlType + Send + Sync>(spec: &ParamSpec, seed: u64) -> Vec<T> {
    let n: usize = spec.shape.iter().product();
    let mut blocks = super::zeroed::filled(n / T::BLCK_SIZE, T::zeros());
    let per = STORE_CHUNK / T::BLCK_SIZE;
    blocks
        .par_chunks_mut(per)
        .enumerate()
        .for_each_init(Vec::new, |xs, (i, out)| {
            xs.resize(out.len() * T::BLCK_SIZE, 0.0);
            draw_into(spec, seed, i * per * T::BLCK_SIZE, xs);
            T::from_float(xs, out);
        });
    blocks
}

const MANIFEST_HEAD: &str = "# capbench model cache manifest";

/// Writes the entry for `key` into `dir`: the weights drawn from
/// `weights_seed` (the key's own seed, except in tests of a wrong entry).
/// Tensors are drawn in parallel; each file goes to a temporary name first
/// and is renamed when complete.
pub(crate) fn write_entry(key: &CacheKey, weights_seed: u64, dir: &Path) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let specs = param_specs(&key.cfg);
    let tensors: Vec<(String, QTensor, String)> = specs
        .par_iter()
        .map(|s| -> candle_core::Result<(String, QTensor, String)> {
            let q = drawn(s, weights_seed, stored_dtype(s, key.format))?;
            let sha = hex(&Sha256::digest(q.data()?));
            Ok((s.name.clone(), q, sha))
        })
        .collect::<candle_core::Result<_>>()
        .map_err(|e| format!("drawing the weights: {e}"))?;
    let lines: Vec<String> = tensors
        .iter()
        .map(|(n, q, sha)| manifest_line(n, q.dtype(), q.shape().dims(), sha))
        .collect();
    let top = weights_sha256(&lines);
    let (data, manifest) = (key.weights_path(dir), key.manifest_path(dir));
    // A reader never pairs the old manifest with new data.
    let _ = std::fs::remove_file(&manifest);
    let tmp = |p: &Path| PathBuf::from(format!("{}.partial-{}", p.display(), std::process::id()));
    let write = |path: &Path, f: &dyn Fn(&mut BufWriter<File>) -> Result<(), String>| {
        let t = tmp(path);
        let done = File::create(&t)
            .map_err(|e| e.to_string())
            .and_then(|file| {
                let mut w = BufWriter::with_capacity(1 << 20, file);
                f(&mut w)?;
                w.flush().map_err(|e| e.to_string())
            })
            .and_then(|_| std::fs::rename(&t, path).map_err(|e| e.to_string()));
        if let Err(e) = done {
            let _ = std::fs::remove_file(&t);
            return Err(format!("cannot write {}: {e}", path.display()));
        }
        Ok(())
    };
    let md = key.metadata();
    write(&data, &|w| {
        let md: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, q, _)| (n.as_str(), q)).collect();
        gguf_file::write(w, &md, &ts).map_err(|e| e.to_string())
    })?;
    write(&manifest, &|w| {
        let mut text = format!("{MANIFEST_HEAD} ({})\nweights {top}\n", key.stem());
        text.extend(lines.iter().map(String::as_str));
        w.write_all(text.as_bytes()).map_err(|e| e.to_string())
    })?;
    Ok(top)
}

/// A manifest as read: the weights hash and each tensor's line.
struct Manifest {
    weights: String,
    lines: BTreeMap<String, String>,
}

fn read_manifest(path: &Path) -> Result<Manifest, String> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "not cached yet".to_string(),
        _ => format!("manifest {}: {e}", path.display()),
    })?;
    let mut weights = None;
    let mut lines = BTreeMap::new();
    for (n, l) in text.lines().enumerate() {
        if l.starts_with('#') {
            continue;
        }
        match l.split_once(' ') {
            Some(("weights", h)) => weights = Some(h.to_string()),
            Some((name, _)) if l.split(' ').count() == 4 => {
                lines.insert(name.to_string(), format!("{l}\n"));
            }
            _ => {
                return Err(format!(
                    "manifest {} line {}: malformed",
                    path.display(),
                    n + 1
                ));
            }
        }
    }
    Ok(Manifest {
        weights: weights.ok_or_else(|| format!("manifest {}: no weights hash", path.display()))?,
        lines,
    })
}

/// The cached file as a `TensorSource`: each tensor read, hashed and checked
/// against the manifest before the model gets it.
struct CachedSource {
    path: PathBuf,
    content: Content,
    reader: Mutex<BufReader<File>>,
    device: Device,
    manifest: Manifest,
    /// Lines of the tensors read and found as the manifest says.
    seen: Mutex<BTreeMap<String, String>>,
    /// The first mismatch, to tell a damaged entry from other errors.
    damage: Mutex<Option<String>>,
}

impl CachedSource {
    fn open(
        path: &Path,
        key: &CacheKey,
        manifest: Manifest,
        device: &Device,
    ) -> Result<Self, String> {
        let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut r = BufReader::with_capacity(1 << 20, file);
        let content = Content::read(&mut r).map_err(|e| {
            format!(
                "{}: header unreadable: {}",
                path.display(),
                crate::error::without_backtrace(&e)
            )
        })?;
        for (k, want) in key.metadata() {
            let got = content.metadata.get(&k);
            if got.map(|v| format!("{v:?}")) != Some(format!("{want:?}")) {
                return Err(format!(
                    "{}: metadata {k} is {got:?}, this entry needs {want:?}",
                    path.display()
                ));
            }
        }
        Ok(CachedSource {
            path: path.to_path_buf(),
            content,
            reader: Mutex::new(r),
            device: device.clone(),
            manifest,
            seen: Mutex::new(BTreeMap::new()),
            damage: Mutex::new(None),
        })
    }

    /// A tensor's stored type, shape and bytes, after its hash matched.
    fn read(&self, name: &str) -> candle_core::Result<(GgmlDType, Vec<usize>, Vec<u8>)> {
        let fail = |m: String| {
            let m = format!("{}: tensor {name}: {m}", self.path.display());
            self.damage.lock().expect("lock").get_or_insert(m.clone());
            candle_core::Error::Msg(m)
        };
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| fail("missing".into()))?;
        let dtype = info.ggml_dtype;
        let dims = info.shape.dims().to_vec();
        let elems: usize = dims.iter().product();
        let bytes = elems / dtype.block_size() * dtype.type_size();
        let mut data = super::zeroed::filled(bytes, 0u8);
        {
            let mut r = self.reader.lock().expect("reader lock");
            r.seek(SeekFrom::Start(
                self.content.tensor_data_offset + info.offset,
            ))
            .and_then(|_| r.read_exact(&mut data))
            .map_err(|e| fail(format!("cannot read {bytes} bytes: {e}")))?;
        }
        let line = manifest_line(name, dtype, &dims, &hex(&Sha256::digest(&data)));
        if self.manifest.lines.get(name) != Some(&line) {
            return Err(fail(format!(
                "read `{}`, the manifest says `{}`",
                line.trim_end(),
                self.manifest
                    .lines
                    .get(name)
                    .map_or("nothing", |l| l.trim_end())
            )));
        }
        self.seen
            .lock()
            .expect("lock")
            .insert(name.to_string(), line);
        Ok((dtype, dims, data))
    }
}

impl CachedSource {
    /// A float tensor from its stored bytes: on the CPU in a huge-page
    /// advised buffer (`zeroed::from_le_bytes`; candle's `from_raw_buffer`
    /// would copy them into a plain one), elsewhere straight to the device.
    fn raw(&self, data: &[u8], dtype: DType, dims: &[usize]) -> candle_core::Result<Tensor> {
        if self.device.is_cpu() {
            super::zeroed::from_le_bytes(data, dtype, dims)
        } else {
            Tensor::from_raw_buffer(data, dtype, dims, &self.device)
        }
    }
}

impl TensorSource for CachedSource {
    fn get(&self, name: &str) -> candle_core::Result<Tensor> {
        let (dtype, dims, data) = self.read(name)?;
        let t =
            candle_core::quantized::ggml_file::qtensor_from_ggml(dtype, &data, dims, &Device::Cpu)?
                .dequantize(&Device::Cpu)?;
        t.to_device(&self.device)
    }

    fn device(&self) -> &Device {
        &self.device
    }

    /// As `model::lin` builds it from the f32 values: the stored bytes are
    /// what it would have made of them.
    fn lin(&self, name: &str, format: WeightFormat) -> candle_core::Result<Lin> {
        let (dtype, dims, data) = self.read(name)?;
        let (rows, cols) = (dims[0], dims.get(1).copied().unwrap_or(1));
        let cpu = self.device.is_cpu();
        let wrong_size =
            || candle_core::Error::Msg(format!("{name}: stored data of the wrong size"));
        match (dtype, format) {
            (GgmlDType::Q4_0, WeightFormat::Q4_0) if cpu => {
                let m = super::q4::Q4Matrix::from_ggml_bytes(&data, rows, cols)
                    .ok_or_else(wrong_size)?;
                Ok(Lin::Q4(Arc::new(m)))
            }
            (GgmlDType::Q8_0, WeightFormat::Q8_0) if cpu => {
                let m = super::q8::Q8Matrix::from_ggml_bytes(&data, rows, cols)
                    .ok_or_else(wrong_size)?;
                Ok(Lin::Q8(Arc::new(m)))
            }
            (GgmlDType::Q4_0, WeightFormat::Q4_0) | (GgmlDType::Q8_0, WeightFormat::Q8_0) => {
                let q = candle_core::quantized::ggml_file::qtensor_from_ggml(
                    dtype,
                    &data,
                    dims,
                    &self.device,
                )?;
                Ok(Lin::Quant(Arc::new(QMatMul::from_qtensor(q)?)))
            }
            (GgmlDType::F16, WeightFormat::Float(DType::F16))
            | (GgmlDType::BF16, WeightFormat::Float(DType::BF16)) => {
                let dt = if dtype == GgmlDType::F16 {
                    DType::F16
                } else {
                    DType::BF16
                };
                Ok(Lin::Dense(self.raw(&data, dt, &dims)?))
            }
            (GgmlDType::F32, _) => lin(self.raw(&data, DType::F32, &dims)?, format),
            _ => Err(candle_core::Error::Msg(format!(
                "{name}: stored as {}, which a {format:?} model does not run",
                dtype_name(dtype)
            ))),
        }
    }
}

/// Builds the model from the entry of `key` in `dir`, every tensor checked;
/// the weights hash of what was read.
fn load(key: &CacheKey, dir: &Path, device: &Device) -> Result<(Model, String), String> {
    let manifest = read_manifest(&key.manifest_path(dir))?;
    let path = key.weights_path(dir);
    let src = CachedSource::open(&path, key, manifest, device)?;
    let fmt = super::gguf::weight_format(key.format);
    let model = Model::from_source(&key.cfg, &src, fmt).map_err(|e| {
        src.damage.lock().expect("lock").clone().unwrap_or_else(|| {
            format!(
                "{}: cannot build the model: {}",
                path.display(),
                crate::error::without_backtrace(&e)
            )
        })
    })?;
    // Every tensor the manifest lists was read, and nothing else.
    let seen = src.seen.into_inner().expect("lock");
    if seen.len() != src.manifest.lines.len() {
        return Err(format!(
            "{}: the model read {} tensors, the manifest lists {}",
            path.display(),
            seen.len(),
            src.manifest.lines.len()
        ));
    }
    let order: Vec<String> = param_specs(&key.cfg)
        .iter()
        .filter_map(|s| seen.get(&s.name).cloned())
        .collect();
    let top = weights_sha256(&order);
    if top != src.manifest.weights || order.len() != seen.len() {
        return Err(format!(
            "{}: weights hash {top}, the manifest says {}",
            path.display(),
            src.manifest.weights
        ));
    }
    Ok((model, top))
}

/// The model of `key` from the cache in `dir`: loaded when its entry is
/// there and whole; otherwise drawn from the seed, written to `dir`, and
/// loaded from what was written (so every process runs the same bytes).
/// `Err` only when the cache cannot be used at all (the folder cannot be
/// written); the caller then builds the model without it.
pub fn load_or_build(
    key: &CacheKey,
    dir: &Path,
    device: &Device,
) -> Result<(Model, WeightsRecord), String> {
    let file = key.weights_path(dir).display().to_string();
    let reason = match load(key, dir, device) {
        Ok((model, sha)) => {
            return Ok((model, WeightsRecord::hashed(sha, "hit", file)));
        }
        Err(why) => why,
    };
    write_entry(key, key.seed, dir)?;
    let (model, sha) = load(key, dir, device).map_err(|e| format!("after writing it: {e}"))?;
    let (cache, detail) = if reason == "not cached yet" {
        ("built", file)
    } else {
        (
            "rebuilt",
            format!("{file} (the entry was unusable: {reason})"),
        )
    };
    Ok((model, WeightsRecord::hashed(sha, cache, detail)))
}

pub mod export;

#[cfg(test)]
mod tests;
