"""Loyalty at checkout: look a customer's grade up over HTTP, pick a perk, and say how
close the next tier is and what keeps the current one.

    python docs/examples/loyalty_lookup.py --url http://localhost:6066 cust-000042

GET /customers/{id} on any worker answers with the customer's current grade (the worker
forwards the request to the one that owns the customer); 404 means gradestream has never
seen the customer. A checkout must not wait on it for long: short timeout, and a
default perk when the service does not answer in time.

The grade's `progress` says what the next tier up still needs and, for a tier held
above the floor, when it falls if nothing changes and what would keep it. Each figure
of `needs` is enough alone (a rung is reached by any of its conditions), for orders
placed before `before`; amounts are in the policy's base currency.
"""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.parse
import urllib.request

PERKS = {"gold": "free express shipping + 10% off", "silver": "5% off", "regular": "free gift wrap"}


def lookup(base_url: str, customer_id: str, timeout: float = 0.5) -> dict | None:
    """The grade snapshot, or None for a customer gradestream does not know."""
    url = f"{base_url.rstrip('/')}/customers/{urllib.parse.quote(customer_id, safe='')}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            return json.load(response)
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def perk(grade: dict | None) -> str:
    if grade is None:
        return "welcome offer"
    if grade["churn"]["band"] in ("high", "critical"):
        return "win-back voucher"
    return PERKS.get(grade["tier"], "none")


def needs_text(needs: dict) -> str:
    """'spend 120.00 more before 2024-03-03', or the alternatives the rung offers."""
    ways = []
    if needs["spend"] is not None:
        ways.append(f"spend {needs['spend']:,.2f} more")
    if needs["orders"] is not None:
        ways.append(f"place {needs['orders']} more order(s)")
    if needs["single_order"] is not None:
        ways.append(f"place one order of {needs['single_order']:,.2f}")
    text = " or ".join(ways)
    return text if needs["before"] is None else f"{text} before {needs['before'][:10]}"


def nudges(grade: dict | None) -> dict:
    """What a checkout page can show: the way up, and what keeps the tier held."""
    progress = (grade or {}).get("progress") or {}
    out = {}
    if progress.get("next"):
        up = progress["next"]
        out["next"] = f"{up['tier']}: {needs_text(up['needs'])}"
    if progress.get("held"):
        held = progress["held"]
        out["keep"] = f"{held['tier']}: {needs_text(held['needs'])}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("customer_id")
    parser.add_argument("--url", default="http://localhost:6066")
    parser.add_argument("--timeout", type=float, default=0.5)
    args = parser.parse_args()
    try:
        grade = lookup(args.url, args.customer_id, args.timeout)
    except (OSError, urllib.error.URLError) as error:  # timeout, refused, 5xx
        print(json.dumps({"customer_id": args.customer_id, "perk": "none", "error": str(error)}))
        return
    tier = grade["tier"] if grade else None
    answer = {"customer_id": args.customer_id, "tier": tier, "perk": perk(grade)}
    print(json.dumps(answer | nudges(grade)))


if __name__ == "__main__":
    main()
