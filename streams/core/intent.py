"""Purchase intent at a time ``t``: the two conditions (ability to pay, satisfaction),
the five indicators and the A-E grade they give (product.md §2; docs/grading.md). The
survey tests live here as part of satisfaction; the churn score reuses them
(`survey_is_poor`), so both read a survey answer the same way.
"""

from __future__ import annotations

from typing import NamedTuple

from streams.core.compiled import DAY, CompiledPolicy
from streams.core.folding import is_open
from streams.core.state import (
    C_BILLING,
    C_SEVERITY,
    I_CALL,
    I_FULL_PRICE,
    I_INQUIRY,
    I_SITE_STORE,
    I_VISIT,
    CustomerState,
)


def survey_answers(s: CustomerState) -> tuple[int | float, int | float, int | float]:
    """The latest (NPS, CSAT, CES) answers, each on its own (-1: never answered)."""
    sv = s.survey
    if sv is None:
        return -1, -1, -1
    return sv[1], sv[3], sv[5]


def poor_survey(s: CustomerState, t: int, c: CompiledPolicy) -> tuple[bool, bool, bool]:
    """(NPS detractor, low CSAT, high effort): each metric's latest answer, if recent
    enough, judged on its own (an answer without that metric leaves it as it was)."""
    sv = s.survey
    if sv is None:
        return False, False, False
    age = c.survey_age_s
    nps, csat, ces = sv[1], sv[3], sv[5]
    return (
        0 <= nps <= c.nps_detractor_max and t - sv[0] <= age,
        0 < csat <= c.csat_low_max and t - sv[2] <= age,
        ces >= c.ces_high_min and t - sv[4] <= age,
    )


def survey_is_poor(s: CustomerState, t: int, c: CompiledPolicy) -> bool:
    """``any(poor_survey(s, t, c))`` without the generic any() call over a boxed tuple (a
    per-event cost): mypyc returns the three flags unboxed.

    >>> from streams.core.policy import load_policy
    >>> from streams.core.state import new_state
    >>> s, c = new_state("c-1"), load_policy().compiled
    >>> s.survey = [0, 9, 0, 4, 0, 7]  # a promoter, satisfied, but a hard effort
    >>> survey_is_poor(s, 0, c), any(poor_survey(s, 0, c)), survey_is_poor(s, 10**9, c)
    (True, True, False)
    """
    detractor, low_csat, high_effort = poor_survey(s, t, c)
    return detractor or low_csat or high_effort


def survey_component(s: CustomerState, t: int, c: CompiledPolicy) -> float:
    """How poor the latest answers are, in [0, 1]: each poor metric by the square of how
    far into its poor range it is (NPS 0, CSAT 1 and CES 7 are the worst: 1; the mildest
    poor answer counts little), combined as a noisy-OR, so a further poor metric raises it.

    >>> from streams.core.policy import load_policy
    >>> from streams.core.state import new_state
    >>> s, c = new_state("c-1"), load_policy().compiled
    >>> s.survey = [0, 6, 0, -1, 0, -1]  # the mildest detractor
    >>> round(survey_component(s, 0, c), 4)
    0.0204
    >>> s.survey = [0, 0, 0, 1, 0, -1]  # NPS 0 and CSAT 1
    >>> survey_component(s, 0, c)
    1.0
    """
    detractor, low_csat, high_effort = poor_survey(s, t, c)
    if not (detractor or low_csat or high_effort):
        return 0.0
    sv = s.survey
    assert sv is not None
    good = 1.0
    if detractor:
        worst = c.nps_detractor_max + 1
        b = (worst - sv[1]) / worst
        good *= 1.0 - b * b
    if low_csat:
        b = (c.csat_low_max + 1 - sv[3]) / c.csat_low_max
        good *= 1.0 - b * b
    if high_effort:
        b = (sv[5] - c.ces_high_min + 1) / (8 - c.ces_high_min)
        good *= 1.0 - b * b
    return 1.0 - good


class Intent(NamedTuple):
    grade: str
    ability: bool
    satisfaction: bool
    indicators: tuple[bool, bool, bool, bool, bool]


def intent_conditions(s: CustomerState, t: int, c: CompiledPolicy) -> tuple[bool, bool]:
    """(ability to pay, satisfaction) at ``t``."""
    billing_open = worst_open = -1
    for r in s.complaints.values():
        if is_open(r):
            worst_open = max(worst_open, r[C_SEVERITY])
            if r[C_BILLING]:
                billing_open = 1
    ability = max(0, s.win_cents) >= c.ability_min_cents and billing_open < 0
    satisfaction = worst_open <= c.satisfied_max_severity and not survey_is_poor(s, t, c)
    return ability, satisfaction


def intent(s: CustomerState, t: int, c: CompiledPolicy) -> Intent:
    """Two conditions and five indicators -> A..E (product.md §2; docs/grading.md)."""
    ability, satisfaction = intent_conditions(s, t, c)
    lo = t // DAY - c.intent_days
    visit_days = calls = site_store = inquiries = full_price = 0
    for day, b in s.idays.items():
        if day <= lo:
            continue
        if b[I_VISIT] or b[I_SITE_STORE]:
            visit_days += 1
        calls += b[I_CALL]
        site_store += b[I_SITE_STORE]
        inquiries += b[I_INQUIRY]
        full_price += b[I_FULL_PRICE]
    ind = (
        visit_days >= c.repeat_visit_days,
        calls >= c.min_calls,
        site_store >= c.min_site_store,
        inquiries >= c.min_purchase_inquiries,
        full_price >= 1,
    )
    return Intent(intent_grade(ability, satisfaction, sum(ind)), ability, satisfaction, ind)


def intent_grade(ability: bool, satisfaction: bool, indicators_a: int) -> str:
    """The A-E matrix.

    >>> [intent_grade(True, True, n) for n in range(6)]
    ['C', 'C', 'C', 'B', 'B', 'A']
    >>> [intent_grade(True, False, n) for n in (4, 5)], intent_grade(False, False, 5)
    (['D', 'C'], 'E')
    """
    if ability and satisfaction:
        return "A" if indicators_a >= 5 else "B" if indicators_a >= 3 else "C"
    if ability or satisfaction:
        return "C" if indicators_a >= 5 else "D"
    return "E"
