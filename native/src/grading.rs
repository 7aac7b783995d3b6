//! The grade snapshot of a customer: a port of `streams/core/grading.py`'s
//! `build_snapshot` for a policy without a churn model. The snapshot is what the
//! customer-grades topic, Redis and the HTTP API carry, and what a tier_changed event
//! holds; `lib.rs` turns it into the very dict the Python core builds.

use crate::churn::{churn_reasons, churn_score, py_round};
use crate::measures::{intent, rfm, segment, value_class, Rfm};
use crate::policy::Policy;
use crate::state::State;
use crate::stepping::LIFECYCLE_STAGES;
use crate::timefmt::format_rfc3339;

/// The fields of `build_snapshot`'s dict; `rfm.cents` is shown as `monetary`.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot<'a> {
    pub customer_id: &'a str,
    pub as_of: String,
    pub seq: i64,
    pub policy_version: &'a str,
    pub rfm: Rfm,
    /// `round(cents / 100, 2)`.
    pub monetary: f64,
    pub segment: &'a str,
    pub tier: &'a str,
    pub lifecycle: &'static str,
    pub intent_grade: &'static str,
    pub value_class: &'static str,
    pub score: f64,
    pub band: &'a str,
    /// (code, message), empty when the score is 0.
    pub reasons: Vec<(&'static str, String)>,
}

impl Snapshot<'_> {
    /// The RFM code, "R{r}F{f}M{m}".
    pub fn code(&self) -> String {
        format!("R{}F{}M{}", self.rfm.r, self.rfm.f, self.rfm.m)
    }
}

/// The grade at `t` of a state settled at `t` (`t == s.as_of`), without a churn model.
/// None where the Python core must build it: a time outside the years 1000-9999 (it asks
/// strftime), or a stage or tier that indexes past the policy's names (Python's negative
/// indexes would still answer, or it raises; either way its answer is the reference).
pub fn snapshot<'a>(s: &'a State, t: i64, c: &'a Policy) -> Option<Snapshot<'a>> {
    let as_of = format_rfc3339(t)?;
    let lifecycle = *LIFECYCLE_STAGES.get(usize::try_from(s.stage).ok()?)?;
    let tier = if s.tier.is_empty() {
        c.tier_names.first()?
    } else {
        &s.tier
    };
    let r = rfm(s, t, c);
    let (score, band) = churn_score(s, t, c);
    Some(Snapshot {
        customer_id: &s.customer_id,
        as_of,
        seq: s.seq,
        policy_version: &c.version,
        rfm: r,
        monetary: py_round2(div100(r.cents)),
        segment: segment(r.r, r.f, r.m, c),
        tier,
        lifecycle,
        intent_grade: intent(s, t, c).grade,
        value_class: value_class(r.cents, c),
        score,
        band: c.band_names.get(band)?,
        reasons: if score > 0.0 {
            churn_reasons(s, t, c)
        } else {
            Vec::new()
        },
    })
}

/// `cents / 100` as the compiled Python core computes it. mypyc divides an int of its
/// short range (-2^62 <= x < 2^62) as `(double)x / 100.0`, which rounds twice beyond 2^53
/// cents; a larger int goes to CPython's division, correctly rounded. The interpreted core
/// rounds once throughout: the two differ for 2^53 < |cents| < 2^62, and this follows the
/// compiled one, which is the one installed beside the native core.
pub fn div100(cents: i64) -> f64 {
    if (-(1 << 62)..1 << 62).contains(&cents) {
        return cents as f64 / 100.0;
    }
    // The quotient scaled by 2^64 has over 100 bits, so a remainder only needs to show
    // as a sticky low bit for the u128 -> f64 conversion (ties to even) to round right.
    let n = u128::from(cents.unsigned_abs()) << 64;
    let q = (n / 100) | u128::from(n % 100 != 0);
    let x = q as f64 * f64::powi(2.0, -64);
    if cents < 0 {
        -x
    } else {
        x
    }
}

/// Python's `round(x, 2)` (`churn::py_round`).
pub fn py_round2(x: f64) -> f64 {
    py_round(x, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round2_as_python() {
        // round(x, 2) in CPython: exact binary ties go to even, near-ties by their value.
        assert_eq!(py_round2(0.125), 0.12);
        assert_eq!(py_round2(0.375), 0.38);
        assert_eq!(py_round2(2.675), 2.67); // 2.67499999... in binary
        assert_eq!(py_round2(1.005), 1.0);
        assert!(py_round2(-0.001).is_sign_negative());
        assert_eq!(py_round2(1e300), 1e300);
    }

    #[test]
    fn division_as_the_compiled_core() {
        // Interpreted Python: (2**53 + 1) / 100 == 90071992547409.94 and
        // 591064915700530116 / 100 == 5910649157005301.0; the compiled core (and here)
        // rounds the int to a double first. From 2^62 on, both round once.
        assert_eq!(div100(12345), 123.45);
        assert_eq!(div100((1 << 53) + 1), 90071992547409.92);
        assert_eq!(div100(591064915700530116), 5910649157005302.0);
        assert_eq!(div100(4611686018427387647), 4.611686018427387e16);
        assert_eq!(div100(4611686018427388400), 4.611686018427389e16);
        assert_ne!(4611686018427388400_i64 as f64 / 100.0, 4.611686018427389e16);
        assert_eq!(div100(7408596316092197599), 7.408596316092197e16);
        assert_eq!(div100(-(1 << 62) - 51), -4.611686018427388e16);
    }
}
