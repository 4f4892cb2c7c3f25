//! Byte sizes as people write them ("8GiB", "512 MiB", "16GB", "1048576"),
//! for `--mem-cap`, `--device-mem-cap` and profile files.

/// Parses a size. Binary suffixes (KiB, MiB, GiB, TiB) are powers of 1024,
/// decimal ones (KB, MB, GB, TB) powers of 1000, a bare number is bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty size; write e.g. 8GiB, 512MiB or 16GB".into());
    }
    let v: bytesize::ByteSize = t
        .parse()
        .map_err(|e| format!("'{s}' is not a size ({e}); write e.g. 8GiB, 512MiB or 16GB"))?;
    if v.as_u64() == 0 {
        return Err(format!("'{s}' is zero bytes; a cap must be positive"));
    }
    Ok(v.as_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_units() {
        assert_eq!(parse_bytes("8GiB"), Ok(8 << 30));
        assert_eq!(parse_bytes("8 GiB"), Ok(8 << 30));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("16GB"), Ok(16_000_000_000));
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert!(parse_bytes("eight").is_err());
        assert!(parse_bytes("8 parsecs").is_err());
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("").is_err());
    }
}
