//! The model cache: a loaded model is the generated one, bit for bit; a
//! missing, damaged, truncated or foreign entry is rebuilt, and says why.

use super::*;

fn key(shape: &str, format: WeightFmt) -> CacheKey {
    CacheKey {
        cfg: crate::models::shape(shape).unwrap(),
        seed: 7,
        format,
        workload_version: 1,
    }
}

/// Logits of one sequence, as raw bits.
fn logits_bits(m: &Model) -> Vec<u32> {
    let tokens = Tensor::new(&[[3u32, 1, 4, 1, 5, 9, 2, 6]], &Device::Cpu).unwrap();
    m.forward(&tokens, None)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

/// The writer's chunked draw-and-store gives the bytes `QTensor::quantize`
/// makes of the whole f32 tensor, in every stored form, across chunks.
#[test]
fn drawn_tensors_are_the_quantized_generated_tensors() {
    use super::super::params::{InitKind, generate};
    let spec = ParamSpec {
        name: "layers.0.ffn.down".into(),
        // 2.5 store chunks: two whole tasks and a ragged one.
        shape: vec![5 * STORE_CHUNK / 2 / 96, 96],
        init: InitKind::Uniform(0.05),
    };
    let whole = generate(&spec, 11, &Device::Cpu, DType::F32).unwrap();
    for dt in [
        GgmlDType::F32,
        GgmlDType::F16,
        GgmlDType::BF16,
        GgmlDType::Q8_0,
        GgmlDType::Q4_0,
    ] {
        let want = QTensor::quantize(&whole, dt).unwrap();
        let got = drawn(&spec, 11, dt).unwrap();
        assert_eq!(got.shape().dims(), want.shape().dims(), "{dt:?}");
        assert!(
            got.data().unwrap() == want.data().unwrap(),
            "{dt:?}: bytes differ"
        );
    }
}

#[test]
fn a_cached_model_is_the_generated_model_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    for shape in ["dense-tiny", "moe-mla-tiny", "openelm-tiny"] {
        for f in [
            WeightFmt::F32,
            WeightFmt::F16,
            WeightFmt::Bf16,
            WeightFmt::Q8_0,
            WeightFmt::Q4_0,
        ] {
            let k = key(shape, f);
            let generated = Model::generated(
                &k.cfg,
                k.seed,
                &Device::Cpu,
                crate::models::gguf::weight_format(f),
            )
            .unwrap();
            let (built, w) = load_or_build(&k, dir.path(), &Device::Cpu).unwrap();
            assert_eq!(w.cache, "built", "{shape} {f:?}: {w:?}");
            let (hit, w2) = load_or_build(&k, dir.path(), &Device::Cpu).unwrap();
            assert_eq!(w2.cache, "hit", "{shape} {f:?}: {w2:?}");
            assert_eq!(w.sha256, w2.sha256);
            let want = logits_bits(&generated);
            assert_eq!(logits_bits(&built), want, "{shape} {f:?}");
            assert_eq!(logits_bits(&hit), want, "{shape} {f:?}");
        }
    }
    // One entry per key, each with its manifest; no partial file left.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 30, "{names:?}");
    assert!(names.iter().all(|n| !n.contains("partial")), "{names:?}");
}

/// The offset of the first tensor's data: a byte there is weights.
fn data_offset(path: &Path) -> u64 {
    let mut r = BufReader::new(File::open(path).unwrap());
    Content::read(&mut r).unwrap().tensor_data_offset
}

#[test]
fn a_damaged_entry_is_rebuilt_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("dense-tiny", WeightFmt::Q4_0);
    let (_, first) = load_or_build(&k, dir.path(), &Device::Cpu).unwrap();
    let path = k.weights_path(dir.path());
    // One flipped bit in the weights.
    let mut bytes = std::fs::read(&path).unwrap();
    let at = data_offset(&path) as usize + 5;
    bytes[at] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let (_, w) = load_or_build(&k, dir.path(), &Device::Cpu).unwrap();
    assert_eq!(w.cache, "rebuilt", "{w:?}");
    assert!(w.detail.contains("manifest says"), "{}", w.detail);
    assert_eq!(
        w.sha256, first.sha256,
        "rebuilt from the seed: the same weights"
    );
    // Truncated.
    let len = std::fs::metadata(&path).unwrap().len();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let (_, w) = load_or_build(&k, dir.path(), &Device::Cpu).unwrap();
    assert_eq!(w.cache, "rebuilt", "{w:?}");
    assert_eq!(w.sha256, first.sha256);
    // A manifest whose weights hash was edited.
    let m = k.manifest_path(dir.path());
    let text = std::fs::read_to_string(&m).unwrap();
    let sha = first.sha256.clone().unwrap();
    std::fs::write(&m, text.replace(&sha, &"0".repeat(64))).unwrap();
    let (_, w) = load_or_build(&k, dir.path(), &Device::Cpu).unwrap();
    assert_eq!(w.cache, "rebuilt", "{w:?}");
    assert!(w.detail.contains("weights hash"), "{}", w.detail);
    // No manifest: not cached.
    std::fs::remove_file(&m).unwrap();
    let (_, w) = load_or_build(&k, dir.path(), &Device::Cpu).unwrap();
    assert_eq!(w.cache, "built", "{w:?}");
    assert_eq!(w.sha256, first.sha256);
}

#[test]
fn an_entry_of_another_key_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("dense-tiny", WeightFmt::Q8_0);
    load_or_build(&k, dir.path(), &Device::Cpu).unwrap();
    // The files of seed 7 under seed 8's names: hashes match, metadata not.
    let other = CacheKey {
        seed: 8,
        ..k.clone()
    };
    std::fs::copy(k.weights_path(dir.path()), other.weights_path(dir.path())).unwrap();
    std::fs::copy(k.manifest_path(dir.path()), other.manifest_path(dir.path())).unwrap();
    let (_, w) = load_or_build(&other, dir.path(), &Device::Cpu).unwrap();
    assert_eq!(w.cache, "rebuilt", "{w:?}");
    assert!(w.detail.contains("capbench.seed"), "{}", w.detail);
}

#[test]
fn a_folder_that_cannot_be_written_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, "x").unwrap();
    let k = key("dense-tiny", WeightFmt::F32);
    let e = load_or_build(&k, &file, &Device::Cpu).err().unwrap();
    assert!(e.contains("not-a-folder"), "{e}");
}
