//! Verification of a training step on any backend: the CPU f64 reference
//! of the same weights and batch, and the step's gradients compared with
//! it parameter by parameter — every parameter must get a finite, non-zero
//! gradient (candle's fused ops silently give none), within the dtype's
//! tolerance of the reference.

use std::collections::HashSet;

use candle_core::{DType as CDType, Device, Tensor};

use crate::models::{ModelConfig, init};
use crate::verify::Verification;

/// Each parameter's f64 gradient by name (`None`: autograd gave none).
pub type NamedGrads = Vec<(String, Option<Vec<f64>>)>;

/// The reference step: the seeded weights in f64 on the CPU, forward,
/// cross-entropy and backward on `batch` ((B·T inputs, B·T targets)).
pub fn f64_reference(
    cfg: &ModelConfig,
    seed: u64,
    batch: &(Vec<u32>, Vec<u32>),
    (b, t): (usize, usize),
) -> candle_core::Result<(f64, NamedGrads)> {
    let cpu = Device::Cpu;
    let params = init(cfg, seed, &cpu, CDType::F64)?;
    let inputs = Tensor::from_vec(batch.0.clone(), (b, t), &cpu)?;
    let targets = Tensor::from_vec(batch.1.clone(), b * t, &cpu)?;
    let (loss, grads) =
        crate::kinds::train::loss_and_grads(cfg, &params, CDType::F64, &inputs, &targets)?;
    let mut out = vec![];
    for (name, var) in &params.vars {
        let g = match grads.get(var.as_tensor()) {
            Some(g) => Some(g.flatten_all()?.to_vec1::<f64>()?),
            None => None,
        };
        out.push((name.clone(), g));
    }
    Ok((loss, out))
}

/// The step's gradients against the reference's, one parameter at a time.
#[derive(Debug, Default)]
pub struct GradientCheck {
    names: Vec<String>,
    /// `name (why)`: no, non-finite or all-zero gradient.
    incomplete: Vec<String>,
    /// Parameters whose reference gradient is absent or all zero.
    ref_zero: HashSet<String>,
    max_abs: f64,
    elems: u64,
    non_finite: u64,
    /// (largest diff ÷ the reference's largest magnitude, its parameter)
    worst: (f64, String),
}

impl GradientCheck {
    /// Adds one parameter: the step's gradient (`None`: none was produced)
    /// and the reference's.
    pub fn add(&mut self, name: &str, grad: Option<&[f64]>, reference: Option<&[f64]>) {
        self.names.push(name.to_string());
        if reference.is_none_or(|r| r.iter().all(|x| *x == 0.0)) {
            self.ref_zero.insert(name.to_string());
        }
        let Some(g) = grad else {
            self.incomplete.push(format!("{name} (no gradient)"));
            return;
        };
        let nf = g.iter().filter(|x| !x.is_finite()).count() as u64;
        self.non_finite += nf;
        self.elems += g.len() as u64;
        if nf > 0 {
            self.incomplete
                .push(format!("{name} (non-finite gradient)"));
        } else if g.iter().all(|x| *x == 0.0) {
            self.incomplete.push(format!("{name} (zero gradient)"));
        }
        let Some(r) = reference else { return };
        let scale = r.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-30);
        let diff = g
            .iter()
            .zip(r)
            .fold(0.0f64, |m, (a, r)| m.max((a - r).abs()));
        self.max_abs = self.max_abs.max(diff);
        if diff / scale > self.worst.0 {
            self.worst = (diff / scale, name.to_string());
        }
    }

    /// The verdict: passed when every gradient is complete (unrouted MoE
    /// experts excused, see `split_unrouted`), finite, within `tol` of the
    /// reference (scaled by its largest magnitude), and the loss within
    /// `loss_tol` (relative).
    pub fn verification(
        self,
        loss: f64,
        ref_loss: f64,
        (tol, loss_tol): (f64, f64),
        reference: &str,
    ) -> Verification {
        let n = self.names.len();
        let (missing, unrouted) = split_unrouted(self.incomplete, &self.names, |name| {
            self.ref_zero.contains(name)
        });
        let loss_rel = (loss - ref_loss).abs() / ref_loss.abs().max(1e-30);
        let worst = self.worst;
        Verification {
            passed: missing.is_empty()
                && self.non_finite == 0
                && worst.0 <= tol
                && loss_rel <= loss_tol,
            reference: reference.into(),
            elements_checked: self.elems,
            max_abs_diff: self.max_abs,
            max_rel_diff: loss_rel,
            scaled_max_diff: worst.0,
            tolerance: tol,
            nan_or_inf: self.non_finite,
            mean_kl: None,
            top1_agreement: None,
            note: format!(
                "loss {loss:.6} vs reference {ref_loss:.6} (rel {loss_rel:.1e}, tolerance {loss_tol:.0e}); worst gradient {} (scaled diff {:.1e}); {} of {n} parameters have finite non-zero gradients{}{}",
                worst.1,
                worst.0,
                n - missing.len() - unrouted.len(),
                if missing.is_empty() {
                    String::new()
                } else {
                    format!(": missing {}", missing.join(", "))
                },
                if unrouted.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; no token was routed to {} in this batch (none in the reference either): no gradient expected",
                        unrouted.join(", ")
                    )
                }
            ),
        }
    }
}

/// Splits the incomplete gradients (`name (why)`) into (failures, unrouted
/// experts). A routed MoE expert that no token of the batch was routed to
/// has no gradient by the math, not by a missing backward: it is excused
/// when the reference agrees (`ref_zero(name)`: its reference gradient is
/// absent or zero) and another expert of its layer did get a gradient — a
/// broken backward would leave every expert without one.
pub fn split_unrouted(
    incomplete: Vec<String>,
    names: &[String],
    ref_zero: impl Fn(&str) -> bool,
) -> (Vec<String>, Vec<String>) {
    let name_of = |m: &str| m.split(" (").next().unwrap_or(m).to_string();
    let missing_names: Vec<String> = incomplete.iter().map(|m| name_of(m)).collect();
    let mut bad = vec![];
    let mut unrouted = vec![];
    for (m, name) in incomplete.into_iter().zip(&missing_names) {
        let excused = match name.split_once(".routed.") {
            Some((layer, _)) if !m.ends_with("(non-finite gradient)") => {
                let layer = format!("{layer}.routed.");
                let another_has_one = names
                    .iter()
                    .any(|n| n.starts_with(layer.as_str()) && !missing_names.contains(n));
                another_has_one && ref_zero(name)
            }
            _ => false,
        };
        if excused {
            unrouted.push(name.clone());
        } else {
            bad.push(m);
        }
    }
    (bad, unrouted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    #[test]
    fn an_unrouted_expert_is_excused_only_beside_a_routed_one() {
        let names: Vec<String> = [
            "layers.1.routed.0.up",
            "layers.1.routed.1.up",
            "layers.2.routed.0.up",
            "layers.2.routed.1.up",
            "layers.1.attn.q",
        ]
        .iter()
        .map(|n| n.to_string())
        .collect();
        let missing = vec![
            "layers.1.routed.0.up (no gradient)".to_string(),
            "layers.2.routed.0.up (no gradient)".to_string(),
            "layers.2.routed.1.up (zero gradient)".to_string(),
            "layers.1.attn.q (no gradient)".to_string(),
        ];
        let (bad, unrouted) = split_unrouted(missing.clone(), &names, |_| true);
        // Layer 1: expert 1 got a gradient, so expert 0 was just unrouted.
        // Layer 2: no expert got one — a broken backward, not routing.
        assert_eq!(unrouted, vec!["layers.1.routed.0.up"]);
        assert_eq!(bad, missing[1..].to_vec());
        // The reference disagrees (it has a gradient): a failure.
        let (bad, unrouted) = split_unrouted(missing.clone(), &names, |_| false);
        assert!(unrouted.is_empty());
        assert_eq!(bad, missing);
    }

    #[test]
    fn an_unused_parameter_is_reported_missing() {
        let dev = Device::Cpu;
        let used = Var::new(&[1.0f32, 2.0], &dev).unwrap();
        let unused = Var::new(&[3.0f32], &dev).unwrap();
        let zero = Var::new(&[-1.0f32], &dev).unwrap();
        // loss = Σ used² + relu(zero): relu is flat at −1, so `zero`'s
        // gradient exists but is 0.
        let loss = used
            .as_tensor()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .add(&zero.as_tensor().relu().unwrap().sum_all().unwrap())
            .unwrap();
        let grads = loss.backward().unwrap();
        let mut check = GradientCheck::default();
        for (name, var) in [("used", &used), ("unused", &unused), ("zero", &zero)] {
            let g: Option<Vec<f64>> = grads
                .get(var.as_tensor())
                .map(|g| g.to_dtype(CDType::F64).unwrap().to_vec1().unwrap());
            // A reference with gradients everywhere: nothing is excused.
            check.add(
                name,
                g.as_deref(),
                Some(&[1.0, 1.0][..g.as_ref().map_or(1, Vec::len)]),
            );
        }
        assert_eq!(
            check.incomplete,
            vec!["unused (no gradient)", "zero (zero gradient)"]
        );
        let v = check.verification(1.0, 1.0, (1e-3, 1e-5), "test");
        assert!(!v.passed);
        assert!(v.note.contains("1 of 3 parameters"), "{}", v.note);
    }
}
