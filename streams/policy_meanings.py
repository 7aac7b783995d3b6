"""The meaning of every policy key, as docs/policy.md shows it (`streams.docgen` writes it
there next to each key's type, default and bounds, which it reads from the `Policy` model).
Prose kept apart from the code that renders it: a new policy key adds one line here, and
docgen refuses a key without one while tests/deploy/test_docs.py refuses one left stale.
"""

from __future__ import annotations

MEANINGS: dict[str, str] = {
    "policy_version": "Carried by every output and snapshot; change it with any value. A "
    "customer graded under another version is re-graded (cause `policy_change`) at its "
    "next event or due time. With `churn.model`, outputs carry it + `+` + the model's "
    "`model_version` (so a new model re-grades too).",
    "currency": "Money: the base currency of every threshold and the conversion rates.",
    "currency.base": "ISO 4217 code of the base currency; all money thresholds are in it.",
    "currency.rates": "Units of the base currency per 1 unit of another currency. An order "
    "in a currency not listed is a dead letter (`unknown_currency`). Static on purpose: a "
    "replay of old events gives the grades it gave then.",
    "events": "Late events and de-duplication.",
    "events.lateness_hours": "An event older than the customer's `as_of` minus this is "
    "refused (`too_late`); the bound that lets the state remember few event ids.",
    "events.dedup_max_ids": "Event ids remembered per customer for de-duplication; when "
    "full the oldest half is forgotten and the lateness floor rises past them.",
    "events.ahead_of_stream_days": "Under the event clock and in replay, an event dated "
    "more than this after its partition's stream time is refused (`from_the_future`) and "
    "moves no clock; the next event, if within this of it, is taken as time having "
    "jumped (docs/worker.md, 'Time').",
    "rfm": "Recency, frequency, monetary scores (1..n, higher is better).",
    "rfm.window_days": "Rolling window (UTC days) of frequency and monetary, and of the "
    "spend that tiers and value classes use.",
    "rfm.monetary_unit": "Size of one monetary unit in the base currency (the M bins count units).",
    "rfm.recency_max_days": "Upper bounds (inclusive, days since the last order) of the "
    "top recency scores, best first: within the first -> R4, the second -> R3...; older -> R1.",
    "rfm.frequency_min_orders": "Lower bounds of F2, F3, F4... (orders in the window); one "
    "order or more scores at least F1, none F0.",
    "rfm.monetary_min_units": "Lower bounds of M2, M3, M4... in units; any positive net "
    "spend scores at least M1, none M0.",
    "segments": "Named RFM segments: the first rule whose inclusive ranges all hold wins; "
    "the rules must cover every code (the check refuses a gap).",
    "segments[].name": "The segment name written to the snapshot.",
    "segments[].r": "Inclusive [low, high] recency score range; 0 = no order at all.",
    "segments[].f": "Inclusive [low, high] frequency score range; 0 = none in the window.",
    "segments[].m": "Inclusive [low, high] monetary score range; 0 = no net spend.",
    "tiers": "The loyalty ladder.",
    "tiers.downgrade_grace_days": "A lapse with time (spend leaving the window) downgrades "
    "only after this many days continuously below the held tier; a refund or cancellation "
    "that removes the qualifying spend downgrades at once.",
    "tiers.warning_days": "A tier-warnings event this many days before a downgrade by time "
    "takes effect, once per grace period (at the grace's start when the grace is shorter); "
    "0: no warnings.",
    "tiers.ladder": "The rungs, lowest first; the first is the floor (no conditions).",
    "tiers.ladder[].name": "Tier name written to outputs, snapshots and Redis tier sets.",
    "tiers.ladder[].min_spend": "Reached with at least this rolling net spend in the window.",
    "tiers.ladder[].min_orders": "Reached with at least this many orders in the window.",
    "tiers.ladder[].min_single_order": "Reached with one order of at least this amount in the "
    "window.",
    "lifecycle": "Lifecycle stages by time since the first and last order.",
    "lifecycle.new_days": "First order at most this many days ago -> `new`.",
    "lifecycle.silent_days": "No order for more than this many days -> `silent`.",
    "lifecycle.churned_days": "No order for more than this many days -> `churned`.",
    "lifecycle.reactivated_days": "An order after `silent`/`churned` -> `reactivated` for "
    "this many days.",
    "intent": "Intent grade A-E from interactions (two conditions, five indicators).",
    "intent.window_days": "Interactions count when they happened in this many last UTC days.",
    "intent.ability_min_spend": 'Condition "ability to pay" is A with at least this net '
    "spend in the RFM window and no open billing complaint.",
    "intent.satisfied_max_open_severity": 'Condition "satisfaction" is A when no open '
    "complaint is more severe than this (`none`: any open complaint spoils it) and the "
    "latest survey is not poor.",
    "intent.repeat_visit_days": "Indicator repeat visits: distinct days with a page view, "
    "app open, site or store visit.",
    "intent.min_inbound_calls": "Indicator inbound calls: at least this many.",
    "intent.min_site_store_visits": "Indicator site/store visits: at least this many.",
    "intent.min_purchase_inquiries": "Indicator purchase-process inquiries (inquiry, "
    "purchase_inquiry): at least this many.",
    "intent.full_price_max_discount": "Indicator price tolerance: an order in the window "
    "with discount / (amount + discount) at most this share.",
    "value_class": "Value class A/B/C by rolling net spend in the RFM window.",
    "value_class.a_min_spend": "Class A from this spend.",
    "value_class.b_min_spend": "Class B from this spend; below it, C.",
    "churn": "Churn risk: a score in [0, 1] from weighted parts combined as a noisy-OR, "
    "1 - product of (1 - weight_i * component_i), bands, alerts.",
    "churn.alert_band": "Alerts (churn-risk topic) go out when the band rises to this band "
    "or above, and when it falls below it.",
    "churn.cooldown_hours": "After an alert the next waits this long; a change held back "
    "is sent when the cooldown ends.",
    "churn.weights": "Weights of the parts: each part alone gives at most its weight (they "
    "need not add up to 1).",
    "churn.weights.recency": "Weight of silence, the time since the last order.",
    "churn.weights.complaints": "Weight of open and recent complaints.",
    "churn.weights.surveys": "Weight of poor survey answers.",
    "churn.weights.engagement": "Weight of falling engagement.",
    "churn.bands": "Bands by score, lowest first; the first starts at 0.",
    "churn.bands[].name": "Band name (snapshots, alerts, Redis).",
    "churn.bands[].min_score": "The band starts at this score.",
    "churn.recency": "The silence component: (days + prior_days) / (days + prior_days + "
    "(half_days + prior_days) * orders^orders_exponent), days since the last order; it "
    "never reaches 1, so the longer-quiet customer always ranks higher.",
    "churn.recency.half_days": "Days of silence at which a one-order customer's component "
    "is one half.",
    "churn.recency.prior_days": "Days added to the silence: the risk of a customer who just "
    "ordered, higher with fewer orders.",
    "churn.recency.orders_exponent": "How much each past order lengthens the silence a "
    "customer is given (0: orders do not count).",
    "churn.complaints": "The complaints component: w^s / (w^s + half_weight^s), w = open "
    "weights + recent weights, s = steepness.",
    "churn.complaints.half_weight": "The summed weight at which the component is one half.",
    "churn.complaints.steepness": "How sharply it rises: higher, one mild complaint counts "
    "less and many severe ones more.",
    "churn.complaints.window_days": "A complaint opened in this many days is recent.",
    "churn.complaints.open_weights": "Weight of each open complaint by severity.",
    "churn.complaints.open_weights.low": "Open low-severity complaint.",
    "churn.complaints.open_weights.medium": "Open medium-severity complaint.",
    "churn.complaints.open_weights.high": "Open high-severity complaint.",
    "churn.complaints.recent_weights": "Weight of each recent complaint (resolved or not).",
    "churn.complaints.recent_weights.low": "Recent low-severity complaint.",
    "churn.complaints.recent_weights.medium": "Recent medium-severity complaint.",
    "churn.complaints.recent_weights.high": "Recent high-severity complaint.",
    "churn.surveys": "The surveys component: each metric's latest answer on its own, poor "
    "ones by the square of how far into the poor range (1 at NPS 0, CSAT 1, CES 7), combined "
    "as a noisy-OR.",
    "churn.surveys.max_age_days": "A metric's latest answer counts while at most this old.",
    "churn.surveys.nps_detractor_max": "NPS at most this is a detractor (poor).",
    "churn.surveys.csat_low_max": "CSAT at most this is poor.",
    "churn.surveys.ces_high_min": "CES at least this (high effort) is poor.",
    "churn.engagement": "The engagement component: (1 - recent / earlier half of the intent "
    "window)^2 when it fell.",
    "churn.model": "Optional: a fitted BG/NBD + Gamma-Gamma model (MODEL.json from `gradestream "
    "fit`) whose signal joins the score as a part of its own, weight * signal, and snapshots "
    "carry `churn.model` (docs/models.md). Outputs then carry `policy_version` + `+` + the "
    "model's `model_version`.",
    "churn.model.path": "MODEL.json, relative to the policy file's folder or absolute; read and "
    "validated with the policy (a bad file or another currency than `currency.base` is a "
    "policy error naming this key).",
    "churn.model.signal": "`p_no_order_90d`: P(no order in the next 90 days); `p_alive`: "
    "1 - P(alive) (blind for one-order customers, whose P(alive) is 1).",
    "churn.model.weight": "Weight of the model's signal: alone at full strength it gives "
    "this score.",
    "churn.engagement.min_baseline": "Judged only with at least this many interactions in "
    "the earlier half.",
    "limits": "Bounds on per-customer state whatever the history (docs/grading.md).",
    "limits.max_tracked_orders": "Orders remembered by id (for refunds and cancellations).",
    "limits.max_complaints": "Complaints remembered by id (open or recently resolved).",
}
