//! Held grades and their transitions (`streams/core/stepping.py`'s `settle` and its
//! parts): tier grace, lifecycle stage, churn alerts and cooldown; `roll` through due
//! times and `regrade` under a new policy.

use crate::churn::{add_engagement, band_of, churn_core, score_of, with_engagement, ChurnCore};
use crate::due::next_due_c;
use crate::folding::prune;
use crate::measures::{lifecycle, qualifying_tier};
use crate::policy::Policy;
use crate::state::State;

/// Why a re-grade happens; it decides how a tier may fall.
pub const EVENT: i64 = 0;
pub const TIME: i64 = 1;
pub const POLICY: i64 = 2;

pub const LIFECYCLE_STAGES: [&str; 6] = [
    "prospect",
    "new",
    "active",
    "reactivated",
    "silent",
    "churned",
];

/// One held grade that changed: `extra` is the direction (tier) or alert (churn).
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub kind: &'static str,
    pub previous: String,
    pub current: String,
    pub extra: &'static str,
    pub score: f64,
}

/// Upgrades apply at once; a fall waits out the grace unless `at_once` (refund, policy).
pub fn settle_tier(
    s: &mut State,
    t: i64,
    c: &Policy,
    how: i64,
    at_once: bool,
) -> Option<Transition> {
    let q = qualifying_tier(s, c);
    let held_name = if s.tier.is_empty() {
        c.tier_names[0].clone()
    } else {
        s.tier.clone()
    };
    // -1 in the Python core: a tier of another policy's ladder ranks below every rung.
    let held = c.tier_rank(&held_name).map_or(-1, |r| r as i64);
    let mut new = q as i64;
    if new >= held || at_once || how == POLICY {
        s.below_since = None;
    } else {
        let since = *s.below_since.get_or_insert(t);
        if t - since >= c.grace_s {
            s.below_since = None;
        } else {
            new = held;
        }
    }
    let new_name = c.tier_names[new as usize].clone();
    s.tier = new_name.clone();
    if new_name == held_name {
        return None;
    }
    let extra = if new > held { "up" } else { "down" };
    Some(Transition {
        kind: "tier_changed",
        previous: held_name,
        current: new_name,
        extra,
        score: 0.0,
    })
}

pub fn settle_stage(s: &mut State, t: i64, c: &Policy) -> Option<Transition> {
    let st = lifecycle(s, t, c);
    if st == s.stage {
        return None;
    }
    let prev = std::mem::replace(&mut s.stage, st);
    Some(Transition {
        kind: "lifecycle_changed",
        previous: LIFECYCLE_STAGES[prev as usize].into(),
        current: LIFECYCLE_STAGES[st as usize].into(),
        extra: "",
        score: 0.0,
    })
}

/// `due.engagement_sensitive` (here until due.py is ported): could the engagement term alone move the band now?
pub fn engagement_sensitive(k: &ChurnCore, c: &Policy) -> bool {
    if c.w_engagement <= 0.0 {
        return false;
    }
    let low = score_of(k.recency, k.base, c);
    let high = score_of(k.recency, add_engagement(k.base, 1.0, c), c);
    c.band_mins
        .iter()
        .any(|&floor| low < floor && floor <= high)
}

/// Alert when the band reaches the alert level or drops below it, at most once a cooldown.
pub fn settle_churn(
    s: &mut State,
    t: i64,
    c: &Policy,
    parts: Option<ChurnCore>,
) -> (Option<Transition>, ChurnCore) {
    let p = parts.unwrap_or_else(|| {
        let p = churn_core(s, t, c, false);
        if engagement_sensitive(&p, c) {
            with_engagement(&p, s, t, c)
        } else {
            p
        }
    });
    let band = band_of(score_of(p.recency, p.others, c), c);
    let name = c.band_names[band].clone();
    s.band = name.clone();
    let wants = band >= c.alert_band;
    if wants == s.alerted {
        return (None, p);
    }
    if s.last_alert.is_some_and(|last| t - last < c.cooldown_s) {
        return (None, p);
    }
    let prev = if s.alert_band.is_empty() {
        c.band_names[0].clone()
    } else {
        s.alert_band.clone()
    };
    s.alerted = wants;
    s.alert_band = name.clone();
    s.last_alert = Some(t);
    let exact = churn_core(s, t, c, true); // the score the alert shows includes engagement
    let score = score_of(exact.recency, exact.others, c);
    let extra = if wants { "raised" } else { "cleared" };
    (
        Some(Transition {
            kind: "churn_risk_changed",
            previous: prev,
            current: name,
            extra,
            score,
        }),
        p,
    )
}

/// Re-grade the held parts at `t`; the transitions and the churn parts used.
#[allow(clippy::too_many_arguments)]
pub fn settle(
    s: &mut State,
    t: i64,
    c: &Policy,
    how: i64,
    orders: bool,
    churn: bool,
    at_once: bool,
    parts: Option<ChurnCore>,
) -> (Vec<Transition>, Option<ChurnCore>) {
    let mut out = Vec::new();
    let mut parts = parts;
    if orders || how != EVENT {
        out.extend(settle_tier(s, t, c, how, at_once));
    }
    if churn || how != EVENT {
        let (tr, p) = settle_churn(s, t, c, parts);
        parts = Some(p);
        out.extend(tr);
    }
    if orders || how != EVENT {
        out.extend(settle_stage(s, t, c));
    }
    (out, parts)
}

/// A step of `roll` that changed something: its time, its transitions, and the state as of
/// that time (the output events quote the grade of their own time).
pub type Step = (i64, Vec<Transition>, Box<State>);

/// Re-grade at every due time <= `now` in turn; true if at least one was processed
/// (`stepping.roll`: as_of ends at the last due time processed, never at `now`).
/// The steps that changed something are pushed to `steps`.
pub fn roll(s: &mut State, now: i64, c: &Policy, steps: &mut Vec<Step>) -> bool {
    let mut due = match s.due {
        Some(due) if due <= now => due,
        _ => return false,
    };
    let mut next = Some(due);
    if s.exact_due != Some((s.seq, s.as_of, Some(due))) {
        next = next_due_c(s, c, None);
    }
    let mut stepped = false;
    while let Some(d) = next.filter(|&d| d <= now) {
        due = d;
        s.as_of = due; // due times are always after as_of
        prune(s, c);
        let (tr, parts) = settle(s, due, c, TIME, true, true, false, None);
        next = next_due_c(s, c, parts.as_ref());
        s.due = next;
        stepped = true;
        if !tr.is_empty() {
            steps.push((due, tr, Box::new(s.clone())));
        }
    }
    s.due = next;
    s.exact_due = Some((s.seq, s.as_of, next));
    stepped
}

/// Re-grade under a new policy at max(as_of, now): every held grade moves at once.
pub fn regrade(s: &mut State, now: i64, c: &Policy) -> Vec<Transition> {
    if now > s.as_of {
        s.as_of = now;
    }
    prune(s, c);
    s.policy_version.clone_from(&c.version);
    s.seq += 1;
    if !s.band.is_empty() && !c.band_names.contains(&s.band) {
        s.band.clear();
    }
    let (out, _) = settle(s, s.as_of, c, POLICY, true, true, false, None);
    s.due = next_due_c(s, c, None);
    s.exact_due = Some((s.seq, s.as_of, s.due));
    out
}
