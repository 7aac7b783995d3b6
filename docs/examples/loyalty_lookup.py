"""Loyalty at checkout: look a customer's grade up over HTTP and pick a perk.

    python docs/examples/loyalty_lookup.py --url http://localhost:6066 cust-000042

GET /customers/{id} on any worker answers with the customer's current grade (the worker
forwards the request to the one that owns the customer); 404 means gradestream has never
seen the customer. A checkout must not wait on it for long: short timeout, and a
default perk when the service does not answer in time.
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
    print(json.dumps({"customer_id": args.customer_id, "tier": tier, "perk": perk(grade)}))


if __name__ == "__main__":
    main()
