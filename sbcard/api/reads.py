"""Whose records a caller reads: their own region's (the node that keeps the record).

Staff read the records their region's service keeps: persons in its registry, the cards
it issued with their history and accounts, applications issued by it or made at its
outlets. A counter or supervisor serving another region's resident at the counter
(跨省通办: an application, a loss reported there) may see that person's or card's record
masked, never revealed (``show_personal``); an auditor, and every other read of another
region's record (a card's history, an account's entries), is refused 403 ``scope.region``.
"""

from __future__ import annotations

from sbcard.api.calls import Call
from sbcard.domain.staff import COUNTER, SUPERVISOR

SERVE_ELSEWHERE = (COUNTER, SUPERVISOR)  # the roles that serve another region's resident at a counter


def require_read_scope(call: Call, node: str | None, *, reveal: bool = False, masked_elsewhere: bool = False) -> None:
    """Refuse (403 ``scope.region``) a read of a record ``node`` keeps, unless it is the caller's region's, or
    ``masked_elsewhere`` and the caller serves at a counter and it is not revealed."""
    if node is None or node == call.principal.node:
        return
    if masked_elsewhere and not reveal and call.principal.role in SERVE_ELSEWHERE:
        return
    call.require_scope(node=node)
