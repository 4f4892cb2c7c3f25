//! Byte sizes as people write them ("8GiB", "512 MiB", "16GB", "1048576"),
//! for `--mem-cap`, `--device-mem-cap` and profile files.

/// Parses a size. Binary suffixes (KiB, MiB, GiB, TiB, PiB, EiB; also K,
/// Ki, …) are powers of 1024, decimal ones (KB, MB, GB, TB, PB, EB) powers
/// of 1000, a bare number (or `B`) is bytes; units in any case. A size must
/// come to 1 to 2^64 − 1 bytes (fractions of a byte dropped): beyond that
/// it is refused, never capped.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    const EXAMPLE: &str = "write e.g. 8GiB, 512MiB or 16GB";
    let t = s.trim();
    if t.is_empty() {
        return Err(format!("empty size; {EXAMPLE}"));
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = (&t[..split], t[split..].trim());
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "t" | "ti" | "tib" => 1 << 40,
        "p" | "pi" | "pib" => 1 << 50,
        "e" | "ei" | "eib" => 1 << 60,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "pb" => 1_000_000_000_000_000,
        "eb" => 1_000_000_000_000_000_000,
        _ => {
            return Err(format!(
                "'{s}': unknown unit '{unit}'; {EXAMPLE} (B, KiB…EiB, KB…EB)"
            ));
        }
    };
    let bytes: u128 = match num.split_once('.') {
        None => num
            .parse::<u128>()
            .map_err(|_| format!("'{s}' does not start with a number; {EXAMPLE}"))?
            .saturating_mul(mult as u128),
        Some((int, frac)) => {
            if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
                return Err(format!("'{s}' does not start with a number; {EXAMPLE}"));
            }
            let v: f64 = num
                .parse()
                .map_err(|_| format!("'{s}' does not start with a number; {EXAMPLE}"))?;
            // Fractions of a byte are dropped, as the profiles' sizes
            // ("2730.67MiB") have always been read.
            let b = (v * mult as f64).trunc();
            if b < 1.0 {
                return Err(format!("'{s}' is less than one byte; {EXAMPLE}"));
            }
            if b >= u64::MAX as f64 {
                u128::MAX
            } else {
                b as u128
            }
        }
    };
    if bytes == 0 {
        return Err(format!("'{s}' is zero bytes; a cap must be positive"));
    }
    u64::try_from(bytes).map_err(|_| {
        format!("'{s}' is more than 2^64 − 1 bytes (16 EiB), the largest size capbench takes")
    })
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
        assert_eq!(parse_bytes("8 gib"), Ok(8 << 30));
        assert_eq!(parse_bytes("2K"), Ok(2048));
    }

    /// The messages the finding quoted: `0.1` and 2^64 said `couldn't
    /// parse "" into a known SI unit`, and `99999EiB` was silently capped.
    #[test]
    fn fractions_and_overflow_are_named() {
        let e = parse_bytes("0.1").unwrap_err();
        assert!(e.contains("less than one byte"), "{e}");
        assert_eq!(parse_bytes("2730.67MiB"), Ok(2863315025));
        for big in ["18446744073709551616", "99999EiB", "16EiB", "1e30"] {
            let e = parse_bytes(big).unwrap_err();
            assert!(!e.contains("SI unit"), "{e}");
            assert!(e.contains(big), "{e}");
        }
        assert!(parse_bytes("99999EiB").unwrap_err().contains("2^64"));
        assert_eq!(parse_bytes("18446744073709551615"), Ok(u64::MAX));
        assert!(
            parse_bytes("8 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
    }
}
