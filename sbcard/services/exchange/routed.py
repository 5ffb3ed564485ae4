"""Exchanges routed through the hub: one region asks, the hub records, another region answers.

Two flows need another region's answer there and then, through the hub: a transit upload's
records checked by each card's issuer (``sbcard.services.transit.host``, kind
``transit.clear``) and a medical claim settled (or refunded) by the holder's insured region
(``sbcard.services.medical.routing``, ``medical.settle``/``medical.refund``). Both are one
**routed exchange** (``exchange``): the hub looks for the exchange's idempotency key in its
``messages``; if it is there with its answer, the recorded answer is given back and the
answering region does nothing; else the hub claims the key (a row with no answer yet,
committed), asks the answering region with nothing of its own held — the region runs the
kind's use case (``Kind.apply``, in a unit of work of its own database) — and records its
answer under the key in a second short transaction. The same exchange asked meanwhile is
told it is in progress (``ExchangeInDoubt``); a key left claimed without an answer (the
answer lost, the hub's process stopped) is asked of the region again next time, which keeps
each exchange once (a claim id, a record's verdict) and answers the same. A rule's refusal
is not recorded (the claim is let go): nothing happened, the asker is told why.

Where it runs:

- a world that holds the hub and the answering region (the CLI, the simulator, ``--node
  all``) does it all in process, as it always has;
- a process that holds one region (``sbcard serve --node bj``) hands the exchange to its
  link (``NodeLink.route``: ``POST /api/v1/exchange/routed`` on the hub's process, signed);
  the hub's process runs ``at_hub`` and reaches the answering region over its own link
  (``POST /api/v1/exchange/routed`` on that region's process, signed by the hub), whose
  process runs ``answer``. So the hub's process needs a ``--peer`` for each region.

A node that cannot be reached raises ``PeerUnavailable``: nothing was done there (the hub's
claim of the key is let go; a hub busy writing past ``HUB_LOCK_WAIT`` refuses before it
claims anything). A node that took the request but whose answer did not come back (a read
timeout, the hub's own "in progress") raises ``ExchangeInDoubt`` (504 ``exchange.in_doubt``
over HTTP): it may have been done, and it is settled only by asking the same exchange again
under its key. The hops' timeouts grow upstream (``sbcard.api.peers``: the hub waits for a
region less long than a region waits for the hub), so the innermost verdict comes back
first. The transit upload keeps its records awaiting either way; the point of sale settles
offline only when nothing was done, and a claim in doubt is kept at the hospital's region
for ``reconcile`` (``sbcard.services.medical.routing``).

The answering node uses its own clock for the use case (and the hub for its record), never
the ``now`` a request carries; the hub keeps, for a kind with ``Kind.record``, what it
computes from the payload it forwards rather than the asker's ``record``.

The kinds are registered by the capability that owns them (``register``, at its import),
since this package sits below transit and medical; the payload crosses the wire as
``Kind.to_wire`` makes it and comes back to Python with ``Kind.from_wire``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import attrs

from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused, SbcardError
from sbcard.services.exchange import links
from sbcard.services.exchange.peers import ExchangeInDoubt, PeerUnavailable, ask
from sbcard.store.repositories.exchange import HubExchanges
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import HUB, REGION_NODES, NodeElsewhere, World


log = logging.getLogger("sbcard.exchange.routed")


def _same(value: Any) -> Any:
    return value


@attrs.frozen
class Kind:
    """A routed exchange's kind: what the answering region does, and how its payload crosses the wire.

    ``apply(uow, payload, from_node, now)`` runs the use case in a unit of work over the
    answering region. ``same_request``: a recorded answer is given back only to the same
    asker with the same recorded payload (a medical claim id is settled once, for the
    request that used it first); otherwise refused with it: (code, message, field), the
    message's ``{id}`` the key after its kind.

    ``direct``: not through the hub — asked of the answering region's process straight and
    recorded nowhere but there (``call``; a purse load's steps, whose protocol recovers a lost
    answer from the card itself). Its ``apply`` takes the answering region's ``World`` (which
    holds it) instead of a unit of work.

    ``record``: what the hub keeps of the payload, computed by the hub itself from the payload it
    forwards (a request's ``record`` is not trusted for such a kind: ``same_request`` compares it).
    ``answerer_asks``: the answering region may also sign the request to the hub (a refund, asked at
    the insured region on the hospital's claim); otherwise only the asking region may.
    """

    apply: Callable[[Any, Any, str, dt.datetime], Any]
    to_wire: Callable[[Any], Any] = _same
    from_wire: Callable[[Any], Any] = _same
    same_request: tuple[str, str, str] | None = None
    direct: bool = False
    record: Callable[[Any], str] | None = None
    answerer_asks: bool = False


KINDS: dict[str, Kind] = {}


def register(name: str, kind: Kind) -> None:
    """Make ``name`` a routed exchange (called by the capability that owns it, at import)."""
    KINDS[name] = kind


def kind_of(name: str) -> Kind:
    if name not in KINDS:
        raise ValueError(f"unknown routed exchange {name!r} (known: {', '.join(sorted(KINDS))})")
    return KINDS[name]


# ----------------------------------------------------------------------------- reachability


def link_up(world: World, node: str) -> bool:
    """Whether the hub's link to ``node`` is up (``links``), asked of the hub's process when it is elsewhere.

    A hub out of reach counts as a link down: nothing routed through it can go now.
    """
    if world.holds(HUB):
        return links.is_up(world.hub(), node)
    try:
        return bool(ask(world, HUB, "links.up", region=node))
    except PeerUnavailable:
        return False


def answering(world: World, node: str) -> bool:
    """Whether ``node``'s link is up and, when its database is elsewhere, its process answers now.

    In process this is the link alone (as before). A process that serves one node asks the
    hub for the link, then the node's process itself (``node.alive``): a region whose
    process is down cannot settle a claim, whatever its link says.
    """
    if not link_up(world, node):
        return False
    if world.holds(node) or world.holds(HUB):
        return True
    try:
        return bool(ask(world, node, "node.alive"))
    except (PeerUnavailable, NodeElsewhere):
        return False


# ----------------------------------------------------------------------------- the exchange


def exchange(world: World, kind: str, key: str, *, from_node: str, to_node: str, payload: Any, record: str,
             now: dt.datetime) -> tuple[dict[str, Any], bool]:
    """(answer, True if recorded before) of one exchange asked by ``from_node`` and answered by ``to_node``.

    ``record`` is what the hub keeps as the message's payload (a digest for a large one).
    In process when the world holds the hub; else through the world's link to the hub's
    process (``PeerUnavailable`` when it, or the answering region, cannot be reached).
    """
    spec = kind_of(kind)
    if spec.direct:
        raise ValueError(f"{kind!r} is asked of its region straight (``call``)")
    if world.holds(HUB):
        return at_hub(world, kind, key, from_node=from_node, to_node=to_node, payload=payload, record=record,
                      now=now)
    if world.link is None:
        raise NodeElsewhere(HUB, world.nodes)
    reply = world.link.route(HUB, wire_request(kind, key, from_node=from_node, to_node=to_node,
                                               payload=spec.to_wire(payload), record=record, now=now))
    return unwrap(reply)


# How long the hub's process waits for its write lock before an exchange (``HUB_LOCK_WAIT``): shorter than the
# asker's timeout (``sbcard.api.peers.ROUTE_TIMEOUT``), so a hub busy writing refuses (503, nothing done) instead
# of starting an exchange the asker has already given up on.
HUB_LOCK_WAIT = 2.0

_IN_FLIGHT: set[str] = set()  # keys this process is asking the answering region for now
_FLIGHT = threading.Lock()


def at_hub(world: World, kind: str, key: str, *, from_node: str, to_node: str, payload: Any, record: str,
           now: dt.datetime, hold: Callable[[], AbstractContextManager[Any]] = nullcontext
           ) -> tuple[dict[str, Any], bool]:
    """The hub's side: the recorded answer, or the answering region's (in process or over the link), recorded.

    In two short transactions of the hub, none held while the region is asked: the key is claimed (a
    ``messages`` row with no result yet) and committed; the region is asked with nothing held; its answer
    is recorded. A request for a key being asked in this process meanwhile is told it is in progress
    (``ExchangeInDoubt``); a key left claimed with no answer (the region's answer lost, or this process
    stopped) is asked of the region again — it keeps each exchange once (a claim id, a record's verdict)
    and answers the same (a region out of reach then is ``ExchangeInDoubt`` still, the key kept
    claimed: the earlier try may have been done there). ``hold`` wraps each transaction (the hub's
    process: its write lock, waited for at most ``HUB_LOCK_WAIT`` s; a busy error then, before
    anything is done).
    """
    spec = kind_of(kind)
    if spec.direct:
        raise ValueError(f"{kind!r} is asked of its region straight, not through the hub")
    if to_node not in REGION_NODES or from_node not in REGION_NODES:
        raise ValueError(f"a routed exchange goes between two regions, not {from_node!r} → {to_node!r}")
    with _FLIGHT:
        if key in _IN_FLIGHT:
            raise ExchangeInDoubt(HUB, f"exchange {key} is being asked of {to_node} now")
        _IN_FLIGHT.add(key)
    try:
        with hold(), UnitOfWork(world.hub()) as hub:
            exchanges = hub.get(HubExchanges)
            recorded = exchanges.recorded(key)
            if recorded is not None:
                if spec.same_request and (recorded["from_node"] != from_node or recorded["payload"] != record):
                    code, message, field = spec.same_request
                    raise RuleRefused(code, message.format(id=key.split("/", 1)[-1]), field)
                if recorded["result"] is not None:
                    return json.loads(recorded["result"]), True
            else:
                exchanges.record({"idempotency_key": key, "kind": kind, "from_node": from_node, "to_node": to_node,
                                  "received_at": now.isoformat(), "payload": record, "result": None})
                hub.finish()
            claimed_now = recorded is None
        try:
            answer_ = answer(world, kind, to_node, from_node=from_node, payload=payload, now=now)
        except ExchangeInDoubt:
            raise  # the region may have done it: the key stays claimed, asked again next time
        except (PeerUnavailable, NodeElsewhere) as unreached:
            if not claimed_now:  # an earlier try may have been done there: still in doubt, not "nothing done"
                raise ExchangeInDoubt(to_node, f"asked before with no answer recorded, not reached now: "
                                               f"{unreached.message}") from None
            _unclaim(world, key, hold)  # not reached: nothing happened there
            raise
        except SbcardError:
            _unclaim(world, key, hold)  # refused by a rule: nothing happened there (this time)
            raise
        result = json.dumps(answer_, ensure_ascii=False, separators=(",", ":"), default=str)
        try:
            with hold(), UnitOfWork(world.hub()) as hub:
                hub.get(HubExchanges).answered(key, result)
                hub.finish()
        except sqlite3.OperationalError as busy:  # the answer stands: the key, still claimed, is asked again later
            log.warning("the answer of %s is not recorded at the hub (%s): asked again on its next try", key, busy)
        return json.loads(result), False
    finally:
        with _FLIGHT:
            _IN_FLIGHT.discard(key)


def _unclaim(world: World, key: str, hold: Callable[[], AbstractContextManager[Any]]) -> None:
    try:
        with hold(), UnitOfWork(world.hub()) as hub:
            hub.get(HubExchanges).unclaim(key)
            hub.finish()
    except sqlite3.OperationalError as busy:  # left claimed: the next try asks the region again, harmlessly
        log.warning("exchange %s is left claimed at the hub (%s)", key, busy)


def answer(world: World, kind: str, to_node: str, *, from_node: str, payload: Any,
           now: dt.datetime) -> dict[str, Any]:
    """The answering region's side: its use case, in process when the world holds it, else over the link."""
    spec = kind_of(kind)
    if world.holds(to_node):
        return spec.apply(UnitOfWork(world.region(to_node)), payload, from_node, now)
    if world.link is None:
        raise NodeElsewhere(to_node, world.nodes)
    reply = world.link.route(to_node, wire_request(kind, "", from_node=from_node, to_node=to_node,
                                                   payload=spec.to_wire(payload), record="", now=now))
    return unwrap(reply)[0]


def call(world: World, kind: str, *, from_node: str, to_node: str, payload: Any, now: dt.datetime) -> Any:
    """A direct kind's use case run by ``to_node`` for ``from_node``: in process when the world holds it, else
    over the link to its process (``PeerUnavailable`` when it cannot be reached now)."""
    spec = kind_of(kind)
    if not spec.direct:
        raise ValueError(f"{kind!r} goes through the hub (``exchange``)")
    if world.holds(to_node):
        return spec.apply(world, payload, from_node, now)
    if world.link is None:
        raise NodeElsewhere(to_node, world.nodes)
    reply = world.link.route(to_node, wire_request(kind, "", from_node=from_node, to_node=to_node,
                                                   payload=spec.to_wire(payload), record="", now=now))
    return unwrap(reply)[0]


# ----------------------------------------------------------------------------- on the wire


def wire_request(kind: str, key: str, *, from_node: str, to_node: str, payload: Any, record: str,
                 now: dt.datetime) -> dict[str, Any]:
    return {"kind": kind, "key": key, "from_node": from_node, "to_node": to_node, "payload": payload,
            "record": record, "now": now.isoformat()}


_REFUSALS: dict[str, type[SbcardError]] = {"RuleRefused": RuleRefused, "NotFound": NotFound,
                                           "InvalidInput": InvalidInput}


def reply_of(run: Callable[[], tuple[dict[str, Any], bool]]) -> dict[str, Any]:
    """What a node's process answers a routed request: ``{"answer", "before"}``, or ``{"refused": …}`` when a
    rule refused it (carried back to the asker as the same refusal). Other errors propagate (503, 421…)."""
    try:
        result, before = run()
    except (PeerUnavailable, NodeElsewhere):
        raise
    except SbcardError as refused:
        kind = next((name for name, cls in _REFUSALS.items() if isinstance(refused, cls)), "RuleRefused")
        return {"refused": {"type": kind, "code": refused.code, "message": refused.message, "field": refused.field}}
    return json.loads(json.dumps({"answer": result, "before": before}, ensure_ascii=False, default=str))


def unwrap(reply: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """(answer, before) of a routed reply; a refusal raised again as the refusal it was."""
    refused = reply.get("refused")
    if refused:
        raise _REFUSALS.get(refused.get("type"), RuleRefused)(refused["code"], refused["message"],
                                                              refused.get("field"))
    return reply["answer"], bool(reply.get("before"))


def run_received(world: World, here: str, signed_from: str, request: Mapping[str, Any], *, now: dt.datetime,
                 hold: Callable[[], AbstractContextManager[Any]] = nullcontext) -> dict[str, Any]:
    """A routed request another node's process sent to ``here`` (the receiving side of a link).

    At the hub: the signed sender must be the asker (or, for a kind that allows it — a refund —
    the answering region, which asks on the hospital's claim). At a region: only the hub forwards,
    except a direct kind, asked by a region for itself. ValueError for a request that is not one.

    ``now`` is this node's own clock: the request's ``now`` (the asker's) is not trusted. ``hold``
    wraps the hub's transactions (``at_hub``).
    """
    name, from_node, to_node = request.get("kind"), request.get("from_node"), request.get("to_node")
    spec = kind_of(str(name))
    payload = spec.from_wire(request.get("payload"))
    if here == HUB:
        if signed_from != from_node and not (spec.answerer_asks and signed_from == to_node):
            raise ValueError(f"a routed exchange {name} between {from_node!r} and {to_node!r} came from "
                             f"{signed_from!r}")
        record = spec.record(request.get("payload")) if spec.record else str(request.get("record", ""))
        return reply_of(lambda: at_hub(world, str(name), str(request["key"]), from_node=str(from_node),
                                       to_node=str(to_node), payload=payload, record=record, now=now, hold=hold))
    if spec.direct:  # asked straight by another region's process, for itself
        if signed_from != from_node or to_node != here or from_node not in REGION_NODES:
            raise ValueError("a region answers another region's own request, addressed to it")
        return reply_of(lambda: (call(world, str(name), from_node=str(from_node), to_node=here, payload=payload,
                                      now=now), False))
    if signed_from != HUB or to_node != here or from_node not in REGION_NODES:
        raise ValueError("a region answers a routed exchange the hub forwards to it, and only that")
    return reply_of(lambda: (answer(world, str(name), here, from_node=str(from_node), payload=payload, now=now),
                             False))
