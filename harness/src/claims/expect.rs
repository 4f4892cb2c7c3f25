//! One expectation of a claim, `tokens_per_s >= 10` or `fits = true`: a
//! metric name, a comparison and a number or boolean.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "=")]
    Eq,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Ge => ">=",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Lt => "<",
            Op::Eq => "=",
        }
    }

    /// Whether `v` satisfies `v <op> bound`.
    pub fn holds(self, v: f64, bound: f64) -> bool {
        match self {
            Op::Ge => v >= bound,
            Op::Gt => v > bound,
            Op::Le => v <= bound,
            Op::Lt => v < bound,
            Op::Eq => v == bound,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Number(f64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expectation {
    /// As written in the file.
    pub text: String,
    pub metric: String,
    pub op: Op,
    pub value: Value,
}

/// Metric names with a meaning of their own (the rest are looked up among
/// a case's metrics: `tokens_per_s`, `ttft_s_median`, …).
pub const SPECIAL: &[(&str, &str)] = &[
    (
        "fits",
        "bool: the workload runs within the profile's memory (needs memory caps)",
    ),
    (
        "kl_divergence",
        "mean KL divergence (nats) of the next-token distributions vs the f32 reference",
    ),
    (
        "excess_loss_nats",
        "held-out loss above the corpus's entropy floor (train-quality)",
    ),
    ("eval_loss_nats", "held-out loss (train-quality)"),
    (
        "top1_agreement",
        "fraction of positions whose top token matches the f32 reference",
    ),
    (
        "<throughput>_ratio",
        "throughput on `profile` ÷ throughput on `versus` (both projected)",
    ),
];

/// Parses `name op value`. Errors say what was expected.
pub fn parse(text: &str) -> Result<Expectation, String> {
    let t = text.trim();
    let ops = [
        (">=", Op::Ge),
        ("<=", Op::Le),
        ("==", Op::Eq),
        (">", Op::Gt),
        ("<", Op::Lt),
        ("=", Op::Eq),
    ];
    let (i, sym, op) = ops
        .iter()
        .filter_map(|(s, o)| t.find(s).map(|i| (i, *s, *o)))
        .min_by_key(|(i, s, _)| (*i, std::cmp::Reverse(s.len())))
        .ok_or_else(|| {
            format!("'{text}' has no comparison: write `metric >= number`, `metric <= number` or `fits = true`")
        })?;
    let metric = t[..i].trim();
    let rhs = t[i + sym.len()..].trim();
    if metric.is_empty()
        || !metric
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(format!(
            "'{text}': '{metric}' is not a metric name (letters, digits and _ only, e.g. tokens_per_s)"
        ));
    }
    if rhs.contains(['<', '>', '=']) {
        return Err(format!("'{text}': one comparison per expectation"));
    }
    let value = match rhs {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        n => Value::Number(
            n.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("'{text}': '{n}' is not a number (or true/false)"))?,
        ),
    };
    if metric == "fits" && (!matches!(value, Value::Bool(_)) || op != Op::Eq) {
        return Err(format!("'{text}': write `fits = true` or `fits = false`"));
    }
    if metric != "fits" && matches!(value, Value::Bool(_)) {
        return Err(format!(
            "'{text}': only `fits` takes true/false; {metric} needs a number"
        ));
    }
    Ok(Expectation {
        text: t.to_string(),
        metric: metric.to_string(),
        op,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_of_the_example_claims() {
        let e = parse("tokens_per_s >= 10").unwrap();
        assert_eq!((e.metric.as_str(), e.op), ("tokens_per_s", Op::Ge));
        assert_eq!(e.value, Value::Number(10.0));
        assert_eq!(parse("fits = true").unwrap().value, Value::Bool(true));
        assert_eq!(parse("kl_divergence<=0.01").unwrap().op, Op::Le);
        assert_eq!(parse("x == 2").unwrap().op, Op::Eq);
        assert_eq!(parse("x > 2e-3").unwrap().value, Value::Number(2e-3));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [
            "tokens_per_s",
            "tokens per s >= 1",
            ">= 3",
            "x >= ten",
            "x >= 1 <= 2",
            "fits >= 1",
            "tokens_per_s = true",
            "x >= inf",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ops_compare() {
        assert!(Op::Ge.holds(10.0, 10.0) && !Op::Gt.holds(10.0, 10.0));
        assert!(Op::Le.holds(0.01, 0.01) && !Op::Lt.holds(0.01, 0.01));
    }
}
