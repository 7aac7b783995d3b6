//! `streams/core/engine.py`'s `apply` and `advance`: fold one event, let time pass, and
//! say which held grades changed when. The output events themselves (ids, snapshots,
//! reasons) are built by the Python core from the steps given here, with the state each
//! step carries: they are rare, and so stay written once.
//!
//! What `apply` refuses (too late, an unknown currency or type, a field it cannot read)
//! is only detected here: the caller asks the Python core why, on a copy of the state
//! (a refusal changes nothing), so that the reasons' texts are written once too.

use crate::churn::{churn_core, with_engagement, ChurnCore};
use crate::due::{
    band_due, churn_due, complaints_due, holds_due, indicator_reached, intent_grade_due, min_due,
    order_day_due, order_times_due,
};
use crate::folding::{
    fold_complaint, fold_interaction, fold_order, fold_survey, move_to, remember, PLACED,
};
use crate::measures::qualifying_tier;
use crate::policy::Policy;
use crate::state::{Num, State, DAY, I_CALL, I_INQUIRY, I_SITE_STORE, I_VISIT};
use crate::stepping::{engagement_sensitive, regrade, roll, settle, Transition, EVENT};

/// What an input event carries beyond its id and time, read and checked by the caller.
pub enum Input {
    Order {
        kind: i64,
        order_id: String,
        cents: i64,
        full_price: bool,
    },
    Interaction {
        slot: usize,
        /// (nps, csat, ces) of a survey response (-1: not answered).
        survey: Option<[Num; 3]>,
    },
    Complaint {
        kind: i64,
        complaint_id: String,
        severity: i64,
        billing: bool,
    },
    /// Something `apply` refuses, unless the event is a duplicate or too late first.
    Refused,
}

/// Why the held grades of a step changed: the output event's `cause.kind`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cause {
    Event,
    Inactivity,
    PolicyChange,
}

/// A re-grade that changed something: why, when, what, and the state as of then (its
/// output events quote the grade of their own time).
pub type Step = (Cause, i64, Vec<Transition>, Box<State>);

#[derive(Debug, PartialEq)]
pub enum Outcome {
    Applied,
    Duplicate,
    /// Refused, the state untouched: the Python core says why.
    Refused,
}

/// Fold one event into `s` (`engine.apply`, the event read and checked as it reads it).
pub fn apply(
    s: &mut State,
    event_id: &str,
    ts: i64,
    input: &Input,
    c: &Policy,
    steps: &mut Vec<Step>,
) -> Outcome {
    if s.seen.contains_key(event_id) {
        return Outcome::Duplicate;
    }
    let mut floor = s.as_of - c.lateness_s;
    if let Some(f) = s.dedup_floor {
        floor = floor.max(f);
    }
    if ts < floor || matches!(input, Input::Refused) {
        return Outcome::Refused;
    }
    adopt_policy(s, c, steps);
    if ts > s.as_of {
        if s.due.is_some_and(|due| due <= ts) {
            roll_steps(s, ts, c, steps);
        }
        move_to(s, ts);
    }
    remember(s, event_id, ts, c);
    s.seq += 1;
    let t = s.as_of;
    let mut due = s.due;
    // s.due stays a lower bound: the old one covers every part the event leaves alone.
    let trans = match *input {
        Input::Order {
            kind,
            ref order_id,
            cents,
            full_price,
        } => {
            // A refund, a cancellation or a re-placed order may take away the spend a tier
            // stood on: such a fall is at once. A new order can only raise it.
            let takes = kind != PLACED || s.orders.contains_key(order_id);
            let q_before = if takes { qualifying_tier(s, c) } else { 0 };
            fold_order(s, kind, order_id, ts, cents, full_price, c);
            let at_once = takes && qualifying_tier(s, c) < q_before;
            let (trans, parts) = settle(s, t, c, EVENT, true, true, at_once, None);
            due = min_due(due, order_times_due(s, c));
            let expiry = order_day_due(ts.div_euclid(DAY), c);
            due = min_due(due, (expiry > t).then_some(expiry));
            due = min_due(due, intent_grade_due(s, c));
            due = churn_after_event(s, c, parts, due);
            trans
        }
        Input::Interaction {
            slot,
            survey: Some([nps, csat, ces]),
        } => {
            fold_interaction(s, slot, ts, c);
            fold_survey(s, ts, nps, csat, ces);
            let (trans, parts) = settle(s, t, c, EVENT, false, true, false, None);
            due = min_due(due, complaints_due(s, c));
            due = min_due(due, intent_grade_due(s, c));
            due = churn_after_event(s, c, parts, due);
            trans
        }
        Input::Interaction { slot, survey: None } => {
            let day = fold_interaction(s, slot, ts, c);
            // An interaction moves churn only through engagement: when engagement cannot
            // move the band, the old due still covers churn.
            let light = churn_core(s, t, c, false);
            let trans = if engagement_sensitive(&light, c) {
                let parts = with_engagement(&light, s, t, c);
                let (trans, _) = settle(s, t, c, EVENT, false, true, false, Some(parts));
                due = min_due(due, holds_due(s, c));
                due = min_due(due, band_due(s, c, &parts, due));
                trans
            } else {
                Vec::new()
            };
            if let (true, Some(day)) = (
                matches!(slot, I_VISIT | I_SITE_STORE | I_CALL | I_INQUIRY),
                day,
            ) {
                // An indicator falls back when a day leaves the window: never before the
                // oldest day does; and only an indicator just brought to A moves the due.
                let oldest = s.idays.first().map_or(day, |d| d.0);
                let floor = (oldest + c.intent_days) * DAY;
                if due.is_none_or(|d| d > floor) && indicator_reached(s, slot, day, c) {
                    due = min_due(due, intent_grade_due(s, c));
                }
            }
            trans
        }
        Input::Complaint {
            kind,
            ref complaint_id,
            severity,
            billing,
        } => {
            fold_complaint(s, kind, complaint_id, ts, severity, billing, c);
            let (trans, parts) = settle(s, t, c, EVENT, false, true, false, None);
            due = min_due(due, complaints_due(s, c));
            due = min_due(due, intent_grade_due(s, c));
            due = churn_after_event(s, c, parts, due);
            trans
        }
        Input::Refused => unreachable!("refused above"),
    };
    s.due = due;
    if !trans.is_empty() {
        steps.push((Cause::Event, t, trans, Box::new(s.clone())));
    }
    Outcome::Applied
}

/// `engine._churn_due`: `due` lowered to the next band change by time and the end of any
/// hold, after an event re-graded churn at `s.as_of`.
fn churn_after_event(
    s: &State,
    c: &Policy,
    parts: Option<ChurnCore>,
    due: Option<i64>,
) -> Option<i64> {
    let due = min_due(due, holds_due(s, c));
    let parts = parts.unwrap_or_else(|| churn_core(s, s.as_of, c, true));
    if engagement_sensitive(&parts, c) {
        min_due(due, band_due(s, c, &parts, due))
    } else {
        min_due(due, churn_due(s, c, Some(&parts), due, true))
    }
}

/// Let time pass to `now` (`engine.advance`): re-grade at each due time <= now in turn.
pub fn advance(s: &mut State, now: i64, c: &Policy, steps: &mut Vec<Step>) {
    adopt_policy(s, c, steps);
    roll_steps(s, now, c, steps);
}

fn roll_steps(s: &mut State, now: i64, c: &Policy, steps: &mut Vec<Step>) {
    let mut rolled = Vec::new();
    roll(s, now, c, &mut rolled);
    steps.extend(
        rolled
            .into_iter()
            .map(|(t, trans, data)| (Cause::Inactivity, t, trans, data)),
    );
}

/// `engine._adopt_policy`: a new state takes the policy's version; a state graded under
/// another version is re-graded at once.
fn adopt_policy(s: &mut State, c: &Policy, steps: &mut Vec<Step>) {
    if s.policy_version == c.version {
        return;
    }
    if s.policy_version.is_empty() {
        s.policy_version.clone_from(&c.version);
        return;
    }
    let trans = regrade(s, s.as_of, c);
    if !trans.is_empty() {
        steps.push((Cause::PolicyChange, s.as_of, trans, Box::new(s.clone())));
    }
}
