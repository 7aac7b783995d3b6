//! The policy values the native code reads: a part of `streams.core.compiled.
//! CompiledPolicy`, the same names, taken from it (`lib.rs`), never parsed here: the
//! policy file is read and validated once, by the Python side.

use std::collections::HashMap;

#[derive(Clone, Debug, Default)]
pub struct Policy {
    pub version: String,
    // orders: the rates to the base currency, and what a full-price order may be discounted
    pub rates: HashMap<String, f64>,
    pub full_price_max_discount: f64,
    // windows and caps
    pub window_days: i64,
    pub intent_days: i64,
    pub complaint_days: i64,
    pub max_orders: usize,
    pub max_complaints: usize,
    pub lateness_s: i64,
    pub dedup_max: usize,
    // RFM, segments, tiers, value classes
    pub r_max_days: Vec<i64>,
    pub f_min: Vec<i64>,
    pub m_min_cents: Vec<f64>,
    /// (name, r0, r1, f0, f1, m0, m1)
    pub segments: Vec<(String, i64, i64, i64, i64, i64, i64)>,
    /// (spend, orders, single order) per rung, None where the rung has no such condition.
    pub tier_rules: Vec<(Option<i64>, Option<i64>, Option<i64>)>,
    pub value_a_cents: i64,
    pub value_b_cents: i64,
    // lifecycle
    pub new_s: i64,
    pub silent_s: i64,
    pub churned_s: i64,
    pub reactivated_s: i64,
    // intent
    pub ability_min_cents: i64,
    pub satisfied_max_severity: i64,
    pub repeat_visit_days: i64,
    pub min_calls: i64,
    pub min_site_store: i64,
    pub min_purchase_inquiries: i64,
    // surveys
    pub survey_age_s: i64,
    pub nps_detractor_max: i64,
    pub csat_low_max: i64,
    pub ces_high_min: i64,
    // churn (without a model: `has_model` policies are not ported yet)
    pub has_model: bool,
    pub cadence_min_days: f64,
    pub cadence_default_days: f64,
    pub overdue_start: f64,
    pub overdue_full: f64,
    pub open_weights: [f64; 3],
    pub recent_weights: [f64; 3],
    pub w_recency: f64,
    pub w_complaints: f64,
    pub w_surveys: f64,
    pub w_engagement: f64,
    pub intent_half_days: i64,
    pub engagement_min_baseline: i64,
    pub band_mins: Vec<f64>,
    pub band_names: Vec<String>,
    pub alert_band: usize,
    pub cooldown_s: i64,
    // held grades
    pub tier_names: Vec<String>,
    pub grace_s: i64,
}

impl Policy {
    /// A tier's rung by name; None for a tier of another policy's ladder.
    pub fn tier_rank(&self, name: &str) -> Option<usize> {
        self.tier_names.iter().position(|n| n == name)
    }
}
