"""The port between nodes: how a node that holds only its own database reaches the others.

A world opened whole (the CLI, the simulator, ``sbcard serve --node all``) holds every
node's database, and everything here runs in process, as it always has. A world opened for
one node (``sbcard serve --node bj``) holds only that node's database; its ``link`` — a
``NodeLink`` the entry point provides (``sbcard.api.peers.HttpLink``: HTTP between the
nodes' processes) — carries two things to the other nodes:

- **messages** of the outbox (``deliver``): the receiver applies one with the outbox's own
  idempotency (its message log), so a message carried twice is applied once;
- **questions** (``ask``): the few lookups of another node's records the main flows need,
  named in ``QUESTIONS`` and answered by the node that holds the records, in its process,
  with the same functions an in-process caller uses.

A node that cannot be reached raises ``PeerUnavailable``: a message stays pending and is
carried later; a question's act is refused for now (503). A world that holds neither the
node nor a link raises ``NodeElsewhere`` (421): the act needs a node it cannot reach.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import sqlite_utils

from sbcard.domain.errors import InvalidInput, SbcardError
from sbcard.services.exchange import concession_list, directory, links
from sbcard.services.outlets.operators import get_operator
from sbcard.services.people.registry import get_person
from sbcard.store.repositories.exchange import HubExchanges
from sbcard.store.repositories.subsidies import SubsidiesRepository
from sbcard.store.repositories.transit import CardNumbers, PurseLoads
from sbcard.store.world import HUB, NODES, REGION_NODES, NodeElsewhere, World

REGION = "region"


class PeerUnavailable(SbcardError):
    """Another node's process could not be reached (down, or answering with an error)."""

    def __init__(self, node: str, why: str, *, in_doubt: bool = False) -> None:
        super().__init__("node.unavailable", f"node {node} cannot be reached now ({why}); try again later", "node")
        self.node = node
        # True when the request went out and no answer came back (a read timeout, a dropped connection): the
        # receiver may have applied it, or may still apply it. False when it never got there, or it answered.
        self.in_doubt = in_doubt


class PeerRefused(PeerUnavailable):
    """Another node's process answered and refused the request (its 4xx: ``code``, ``field``, ``message``).

    Not a node out of reach: sending it again gets the same refusal, so a caller that can tell (the clearing,
    a route answering staff) reports it as it is. It is a ``PeerUnavailable`` so that a caller that only knows
    "wait and try again" (a pending message, a transit chunk) keeps doing what it did — logged as refused.
    """

    def __init__(self, node: str, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(node, f"HTTP {status} {code}: {message}")
        self.status = status
        self.code, self.message, self.field = code, message, field
        self.args = (message,)


class ExchangeInDoubt(PeerUnavailable):
    """A request reached another node's process but its answer did not come back (read timeout, broken reply,
    or the hub answering that the exchange is in progress or was left unanswered): whether it was done is
    not known. Not "unavailable": the caller must not act as if nothing happened (a point of sale must not
    settle the claim offline under a new claim id); the same exchange asked again, by its key, finds out.
    A subclass of ``PeerUnavailable`` so that what only retries later (a courier's round) keeps doing so."""

    def __init__(self, node: str, why: str) -> None:
        SbcardError.__init__(self, "exchange.in_doubt", f"node {node} did not answer in time ({why}): the "
                             "exchange may have been done; it is settled by asking again under the same key "
                             "(the same claim id), never as a new one", "node")
        self.node = node


class NodeLink(Protocol):
    """How a world that holds one node reaches the others (implemented by an entry point)."""

    def deliver(self, from_node: str, message: Mapping[str, Any]) -> dict[str, Any]:
        """Hand an outbox message to its receiver (``message["to_node"]``); its answer, or PeerUnavailable."""
        ...

    def ask(self, node: str, question: str, params: Mapping[str, Any]) -> Any:
        """``question`` answered by ``node`` (one of ``QUESTIONS``), or PeerUnavailable."""
        ...

    def act(self, node: str, act: str, params: Mapping[str, Any]) -> Any:
        """``act`` run by ``node``'s process (one of ``ACTS``); its answer, or PeerUnavailable."""
        ...

    def route(self, node: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """A routed exchange (``services.exchange.routed``) handed to ``node``: the hub, or from the hub the
        answering region; its reply, or PeerUnavailable."""
        ...


def _cards_by_number(db: sqlite_utils.Database, card_number: str) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM cards WHERE card_number = ?", [card_number]))
    return rows[0] if rows else None


CONCESSION_KINDS = ("elderly_free_ride", "student")


def _lists(db: sqlite_utils.Database, version: int | None = None) -> dict[str, Any]:
    """The hub's lists as a terminal copies them: the latest version (or ``version``, an earlier one), and the
    cards on each list at that version."""
    latest = directory.blacklist_version(db)
    if version is None:
        version = latest
    elif not 0 <= version <= latest:
        raise InvalidInput("blacklist.version", f"no blacklist version {version} (the latest is {latest})", "since")
    row = db.execute("SELECT published_at FROM blacklist_versions WHERE version = ?", [version]).fetchone()
    revoked: list[list[str]] = []
    if db["concession_revocations"].exists():
        revoked = sorted([card, kind] for kind in CONCESSION_KINDS
                         for card in concession_list.revoked_cards(db, kind, version))
    return {"version": version, "published_at": row[0] if row else None,
            "blacklist": sorted(directory.blacklisted_cards(db, version)), "revoked_concessions": revoked}


def _cards_of_person(db: sqlite_utils.Database, citizen_id: str) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM cards WHERE citizen_id = ?", [citizen_id]))


def _valid_cards_of(db: sqlite_utils.Database, citizen_ids: list[str]) -> dict[str, str]:
    """The directory's valid card of each of ``citizen_ids`` that holds one (citizen ID → card number)."""
    found = {}
    for citizen_id in citizen_ids:
        entry = directory.valid_card_of(db, citizen_id)
        if entry is not None:
            found[citizen_id] = entry["card_number"]
    return found


def _blacklist_window(db: sqlite_utils.Database, cards: list[str]) -> dict[str, Any]:
    """What the blacklist window of an upload needs of the hub (``transit.host.BlacklistWindow``): every
    version's publication time, and the listed history of ``cards``."""
    hub = HubExchanges(db)
    wanted = set(cards)
    return {"published": [list(row) for row in hub.blacklist_published()],
            "history": [list(row) for row in hub.blacklist_history() if row[0] in wanted]}


def _purse_card(card: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a load of another region's card needs of it: that the issuer has it, its number and status — not
    the holder's citizen id, the card's id code or its file (the issuer itself checks the card in each step)."""
    if card is None:
        return None
    return {key: card[key] for key in ("card_number", "app_serial", "status")}


def _card_status(db: sqlite_utils.Database, card_number: str) -> dict[str, Any] | None:
    """What a terminal asks of a card (``GET /api/v1/host/cards/{card_number}``): its directory status and
    issuer, whether it is listed, and the list's version — one read of the hub, so one request per node."""
    entry = directory.card_entry(db, card_number)
    if entry is None:
        return None
    return {"card_number": card_number, "status": entry["status"], "issuing_region": entry["issuing_region"],
            "blacklisted": directory.is_blacklisted(db, card_number),
            "blacklist_version": directory.blacklist_version(db)}


Answer = Callable[..., Any]


# question → (the side that answers it: the hub or a region, the answer from its database)
QUESTIONS: dict[str, tuple[str, Answer]] = {
    "directory.card_entry": (HUB, lambda db, card_number: directory.card_entry(db, card_number)),
    "directory.valid_card_of": (HUB, lambda db, citizen_id: directory.valid_card_of(db, citizen_id)),
    "directory.blacklist_version": (HUB, lambda db: directory.blacklist_version(db)),
    "directory.lists": (HUB, _lists),
    "directory.is_blacklisted": (HUB, lambda db, card_number: directory.is_blacklisted(db, card_number)),
    "directory.card_status": (HUB, _card_status),
    "concessions.revocations": (HUB, lambda db, card_number: concession_list.revocation_of(db, card_number)),
    "registry.person": (REGION, lambda db, citizen_id: get_person(db, citizen_id)),
    "operators.operator": (REGION, lambda db, code: get_operator(db, code)),
    "cards.card": (REGION, _cards_by_number),
    "cards.of_person": (REGION, _cards_of_person),
    "directory.valid_cards_of": (HUB, _valid_cards_of),
    "subsidies.registered": (REGION, lambda db, cids: SubsidiesRepository(db).registered(cids)),
    "subsidies.directory_cards_of": (HUB, lambda db, cids: SubsidiesRepository(db).directory_cards_of(cids)),
    # the exchanges routed through the hub (``services.exchange.routed``): transit uploads, medical claims
    "links.up": (HUB, lambda db, region: links.is_up(db, region)),
    "directory.blacklist_window": (HUB, _blacklist_window),
    "cards.numbers": (REGION, lambda db, app_serials: CardNumbers(db).of(app_serials)),
    "node.alive": (REGION, lambda db: True),
    # a purse load of another region's card (``services.transit.purse_host``): its issuer's card and pending loads
    "purse.card": (REGION, lambda db, app_serial: _purse_card(PurseLoads(db).card(app_serial))),
    "purse.pending": (REGION, lambda db, app_serial: PurseLoads(db).pending(app_serial)),
}


# act → (the node's side that runs it, the act on its world: (world, now, **params) → answer). An act is
# started by another node's process and run by this one over the world it holds, reaching the others
# through its own link: the hub's clearing of a day (``clearing.run``), which finance staff signed in at a
# region start. Registered by the service whose act it is (``register_act``).
ACTS: dict[str, tuple[str, Callable[..., Any]]] = {}


def register(question: str, side: str, answer: Answer) -> None:
    """Add a question answered by ``side`` (the hub or a region): for a service that this module may not
    import (it imports this one), such as the clearing's; registered when that service is imported."""
    QUESTIONS[question] = (side, answer)


def register_act(act: str, side: str, run: Callable[..., Any]) -> None:
    """Add an act run by ``side``'s process (see ``ACTS``)."""
    ACTS[act] = (side, run)


def check_act(node: str, act: str) -> Callable[..., Any]:
    """The function of ``act`` run by ``node``; ValueError for an act the node does not run."""
    if act not in ACTS:
        raise ValueError(f"unknown act {act!r} (known: {', '.join(ACTS)})")
    side, run = ACTS[act]
    if node not in NODES or (side == HUB) != (node == HUB):
        raise ValueError(f"{act!r} is run by {'the hub' if side == HUB else 'a region'}, not {node!r}")
    return run


def perform(world: World, node: str, act: str, params: Mapping[str, Any], now: Any) -> Any:
    """``act`` run by ``node``: in process when the world holds it, else by its process over the link."""
    run = check_act(node, act)
    if world.holds(node):
        return run(world, now, **params)
    if world.link is None:
        raise NodeElsewhere(node, world.nodes)
    return world.link.act(node, act, params)


def database_of(world: World, node: str) -> sqlite_utils.Database:
    return world.hub() if node == HUB else world.region(node)


def check_question(node: str, question: str) -> Answer:
    """The answer function for ``question`` put to ``node``; ValueError for a question the node does not answer."""
    if question not in QUESTIONS:
        raise ValueError(f"unknown question {question!r} (known: {', '.join(QUESTIONS)})")
    side, answer = QUESTIONS[question]
    if node not in NODES or (side == HUB) != (node == HUB):
        raise ValueError(f"{question!r} is answered by {'the hub' if side == HUB else 'a region'}, not {node!r}")
    return answer


def answer(world: World, node: str, question: str, params: Mapping[str, Any]) -> Any:
    """``question`` answered from ``node``'s database, which this world holds (the receiving side)."""
    return check_question(node, question)(database_of(world, node), **params)


def ask(world: World, node: str, question: str, **params: Any) -> Any:
    """``question`` answered by ``node``: in process when the world holds it, else over its link.

    NodeElsewhere when the world holds neither the node nor a link; PeerUnavailable when the
    link cannot reach it now.
    """
    check_question(node, question)
    if world.holds(node):
        return answer(world, node, question, params)
    link = world.link
    if link is None:
        raise NodeElsewhere(node, world.nodes)
    return link.ask(node, question, params)


def regions_to_search(world: World, first: str | None = None) -> list[str]:
    """The regions a national search asks, ``first`` (and the regions this world holds) before the rest."""
    order = sorted(REGION_NODES, key=lambda node: (node != first, not world.holds(node)))
    return order
