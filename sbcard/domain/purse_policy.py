"""What the issuer does with evidence against a card's purse: the policy, as data and pure rules.

See ``docs/protections/credited-reversals-and-flags.md``. Two kinds of evidence:

- **A reversed load the card credited after all** (a restored or cloned card image): the
  money is taken back from the account the reversal paid (a correction entry); what the
  account cannot pay blocks the card.
- **Flags on the card's cleared purchases** (``transit_host``'s issuer check) and counter
  gaps that stay open: an altered balance blocks the card at once; counter anomalies (a
  counter used again, ``counter_back``; a counter skipped and not filled within
  ``GAP_GRACE_DAYS``) block it once they reach ``COUNTER_ANOMALY_LIMIT``.

A record's other flags (``mac2_failed``: the terminal's trouble; ``blacklisted``: the card is
listed already; ``reversed_load_credited``: corrected in money) count for nothing here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

BLOCK_AT_ONCE: frozenset[str] = frozenset({"balance_altered"})
COUNTER_ANOMALIES: frozenset[str] = frozenset({"counter_back"})
COUNTER_ANOMALY_LIMIT = 3  # counter anomalies (repeats + overdue gaps) that block a card
GAP_GRACE_DAYS = 7  # a skipped counter's record may come late (a terminal down): this long before it counts
EVIDENCE_KEPT = 20  # records named in a block's evidence (the count is always whole)

RULE_BALANCE = "balance_altered"
RULE_COUNTERS = "counter_anomalies"
RULE_CREDITED = "credited_reversal"
RULES = (RULE_BALANCE, RULE_COUNTERS, RULE_CREDITED)


def anomaly_flags(flags: Iterable[Mapping[str, Any]]) -> list[str]:
    """The flags of a record that the block policy counts, once each, in order."""
    out: list[str] = []
    for f in flags:
        name = str(f.get("flag"))
        if (name in BLOCK_AT_ONCE or name in COUNTER_ANOMALIES) and name not in out:
            out.append(name)
    return out


def overdue_gaps(missing: Sequence[int], cleared: Mapping[int, str], day: dt.date) -> list[int]:
    """The skipped counters whose record is overdue on clearing ``day``.

    ``cleared`` maps the card's cleared counters above the gap to their date-times
    (``YYYYMMDDhhmmss``); a missing counter is overdue when the first cleared counter above
    it was tapped more than ``GAP_GRACE_DAYS`` before ``day``.
    """
    limit = (day - dt.timedelta(days=GAP_GRACE_DAYS)).strftime("%Y%m%d")
    above = sorted(cleared)
    out = []
    for c in missing:
        later = next((k for k in above if k > c), None)
        if later is not None and cleared[later][:8] < limit:
            out.append(c)
    return out


def block_rule(flag_counts: Mapping[str, int], overdue: int) -> str | None:
    """The rule that blocks a card with these anomaly flag counts (over all its cleared purchases)
    and this many overdue gaps, or None: the card goes on."""
    if any(flag_counts.get(f, 0) for f in BLOCK_AT_ONCE):
        return RULE_BALANCE
    if sum(flag_counts.get(f, 0) for f in COUNTER_ANOMALIES) + overdue >= COUNTER_ANOMALY_LIMIT:
        return RULE_COUNTERS
    return None


def must_block_for_shortfall(short_fen: int) -> bool:
    """A credited reversal the account could not pay back in full blocks the card."""
    return short_fen > 0
