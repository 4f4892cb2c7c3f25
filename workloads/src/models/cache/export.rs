//! The synthetic model as `capbench export-gguf` writes it (the GGUF file
//! llama.cpp reads), kept in the model cache beside the entry it mirrors:
//! exported once per run (or per `--model-cache` folder), checked by the
//! SHA-256 of the whole file on every later use, rebuilt when stale or
//! damaged, never trusted unchecked. Its hash is also what proves that every
//! process of a case ran the same bytes.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{CacheKey, hex};
use crate::api::WeightsRecord;

/// `<stem>.llama.gguf`: the cache's `<stem>.` prefix, so the run's cache
/// keeps it exactly as long as a case still needs that model.
pub fn path(key: &CacheKey, dir: &Path) -> PathBuf {
    dir.join(format!("{}.llama.gguf", key.stem()))
}

fn sum_path(key: &CacheKey, dir: &Path) -> PathBuf {
    dir.join(format!("{}.llama.sha256", key.stem()))
}

/// SHA-256 of a whole file, read in 8 MiB pieces.
fn file_sha256(path: &Path) -> Result<String, String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 8 << 20];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    Ok(hex(&h.finalize()))
}

/// Why the entry of `key` in `dir` cannot be used, or its hash.
fn check(key: &CacheKey, dir: &Path) -> Result<String, String> {
    let (file, sum) = (path(key, dir), sum_path(key, dir));
    let want = match std::fs::read_to_string(&sum) {
        Ok(t) => t.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("not cached yet".into());
        }
        Err(e) => return Err(format!("{}: {e}", sum.display())),
    };
    let got = file_sha256(&file)?;
    if got != want {
        return Err(format!(
            "{} hashes to {got}, {} says {want}",
            file.display(),
            sum.display()
        ));
    }
    Ok(got)
}

/// The exported GGUF of `key`'s model in `dir`, written if it is missing or
/// unusable, with the record of which (`hit`, `built`, `rebuilt`). `Err`
/// when the folder cannot be used: the caller exports a scratch file.
pub fn exported(key: &CacheKey, dir: &Path) -> Result<(PathBuf, WeightsRecord), String> {
    let file = path(key, dir);
    let shown = file.display().to_string();
    let reason = match check(key, dir) {
        Ok(sha) => return Ok((file, WeightsRecord::hashed(sha, "hit", shown))),
        Err(why) => why,
    };
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let sum = sum_path(key, dir);
    // A reader never pairs the old sum with new bytes.
    let _ = std::fs::remove_file(&sum);
    let tmp = |p: &Path| PathBuf::from(format!("{}.partial-{}", p.display(), std::process::id()));
    let written = (|| {
        crate::models::gguf::export(&key.cfg, key.seed, key.format, &tmp(&file))
            .map_err(|e| e.to_string())?;
        let sha = file_sha256(&tmp(&file))?;
        std::fs::rename(tmp(&file), &file).map_err(|e| e.to_string())?;
        std::fs::write(tmp(&sum), format!("{sha}\n")).map_err(|e| e.to_string())?;
        std::fs::rename(tmp(&sum), &sum).map_err(|e| e.to_string())?;
        Ok::<_, String>(sha)
    })();
    let sha = written.map_err(|e| {
        let _ = std::fs::remove_file(tmp(&file));
        let _ = std::fs::remove_file(tmp(&sum));
        format!("cannot write {shown}: {e}")
    })?;
    let record = if reason == "not cached yet" {
        WeightsRecord::hashed(sha, "built", shown)
    } else {
        WeightsRecord::hashed(
            sha,
            "rebuilt",
            format!("{shown} (the entry was unusable: {reason})"),
        )
    };
    Ok((file, record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::WeightFmt;

    fn key() -> CacheKey {
        CacheKey {
            cfg: crate::models::shape("dense-tiny").unwrap(),
            seed: 3,
            format: WeightFmt::Q8_0,
            workload_version: 1,
        }
    }

    /// Built once, then a hit with the same hash; the file is the
    /// exporter's bytes (`capbench export-gguf` writes them bit for bit).
    #[test]
    fn built_then_hit_with_the_exporters_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (p, first) = exported(&key(), dir.path()).unwrap();
        assert_eq!(first.cache, "built");
        let (p2, second) = exported(&key(), dir.path()).unwrap();
        assert_eq!((p2, second.cache.as_str()), (p.clone(), "hit"));
        assert_eq!(first.sha256, second.sha256);
        let direct = dir.path().join("direct.gguf");
        crate::models::gguf::export(&key().cfg, 3, WeightFmt::Q8_0, &direct).unwrap();
        assert_eq!(std::fs::read(&direct).unwrap(), std::fs::read(&p).unwrap());
        // Nothing else is left in the folder: no partial files.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        let stem = key().stem();
        assert!(
            names
                .iter()
                .all(|n| n.starts_with(&format!("{stem}.")) || n == "direct.gguf")
        );
    }

    /// A damaged file, or a missing sum, is rebuilt and says why.
    #[test]
    fn damaged_or_unsummed_entries_are_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let (p, first) = exported(&key(), dir.path()).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&p, &bytes).unwrap();
        let (_, again) = exported(&key(), dir.path()).unwrap();
        assert_eq!(again.cache, "rebuilt");
        assert!(again.detail.contains("hashes to"), "{}", again.detail);
        assert_eq!(again.sha256, first.sha256);
        std::fs::remove_file(sum_path(&key(), dir.path())).unwrap();
        let (_, third) = exported(&key(), dir.path()).unwrap();
        assert_eq!(
            (third.cache.as_str(), &third.sha256),
            ("built", &first.sha256)
        );
    }

    /// A folder that cannot be made is an error, not a panic.
    #[test]
    fn an_unusable_folder_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let err = exported(&key(), &blocker.join("models")).unwrap_err();
        assert!(err.contains("cannot create"), "{err}");
    }
}
