"""Between the nodes: messages and questions from another node's process, and what staff see of the hub.

``POST /exchange/messages``, ``POST /exchange/questions``, ``POST /exchange/acts`` and
``POST /exchange/routed`` are called by the other nodes' processes only
(``sbcard.api.peers.HttpLink``), signed with the world's node-to-node secret (401
otherwise); ``docs/api/nodes.md`` describes the scheme. The ``GET`` routes are for
signed-in staff: the hub's lists and a card's directory entry as this node sees them (over
HTTP from a region's own process), and this node's messages still waiting for their receiver.
"""

from __future__ import annotations

import inspect
import json
import threading
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from sbcard.api import peers as wire
from sbcard.api.auth import require_node_served, staff_call
from sbcard.api.calls import Call, service_of
from sbcard.api.errors import ApiError
from sbcard.domain.masking import mask_citizen_id
from sbcard.services.cards import card_view  # noqa: F401 - registers its question (cards.issuer_facts)
from sbcard.services.clearing import purse_records  # noqa: F401 - registers the clearing's questions and acts
from sbcard.services.exchange import outbox, peers, routed
from sbcard.services.medical import routing as _medical_routing  # noqa: F401 - registers the medical exchanges
from sbcard.services.transit import host as _transit_host  # noqa: F401 - registers the transit exchange
from sbcard.services.transit import purse_host as _purse_host  # noqa: F401 - registers a purse load's steps
from sbcard.store.world import HUB

router = APIRouter(prefix="/exchange", tags=["between the nodes"])

_MAX_BODY = 4 * 1024 * 1024


class WireMessage(BaseModel):
    idempotency_key: str = Field(max_length=200)
    to_node: str
    kind: str
    payload: str = Field(description="The message's payload: the JSON text its sender wrote.")
    created_at: str


class Delivery(BaseModel):
    from_node: str
    message: WireMessage


class Question(BaseModel):
    question: str = Field(description=" | ".join(peers.QUESTIONS))
    params: dict[str, Any] = Field(default_factory=dict)


async def _signed(request: Request) -> tuple[str, str, bytes]:
    """(from_node, to_node, body) of a request another node signed; 401 otherwise, 421 when the receiver is not here."""
    body = await request.body()
    if len(body) > _MAX_BODY:
        raise ApiError(413, "request.too_large", f"a node's request is at most {_MAX_BODY} bytes")
    service = service_of(request)
    checked = wire.verify(service.worlds.keys, method=request.method, path=request.url.path,
                          headers=request.headers, body=body)
    if isinstance(checked, str):
        raise ApiError(401, "node.unauthenticated", checked, wire.SIGNATURE_HEADER,
                       headers={"WWW-Authenticate": wire.SCHEME})
    from_node, to_node = checked
    request.state.caller = f"node:{from_node}"
    require_node_served(request, to_node)
    return from_node, to_node, body


def _parse(model: type[BaseModel], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValueError as exc:
        raise ApiError(422, "request.invalid", f"not a node's request: {type(exc).__name__}") from None


@router.post("/messages", summary="Apply a message of another node's outbox, once (node-signed)")
async def receive_message(request: Request) -> dict[str, Any]:
    from_node, to_node, body = await _signed(request)
    delivery = _parse(Delivery, body)
    if delivery.from_node != from_node or delivery.message.to_node != to_node:
        raise ApiError(422, "message.misaddressed", "the message's sender and receiver are not the signed ones",
                       "message")
    service = service_of(request)

    def apply() -> dict[str, Any]:
        with service.worlds.writing() as world:
            try:
                return outbox.receive(world, from_node, delivery.message.model_dump(), service.config.clock.now())
            except ValueError as exc:
                raise ApiError(422, "message.invalid", str(exc), "message") from None

    return await run_in_threadpool(apply)


@router.post("/questions", summary="Answer another node's question from this node's records (node-signed)")
async def answer_question(request: Request) -> dict[str, Any]:
    _from_node, to_node, body = await _signed(request)
    question = _parse(Question, body)
    service = service_of(request)

    def answer() -> dict[str, Any]:
        world = service.worlds.world()
        try:
            return {"node": to_node, "question": question.question,
                    "answer": peers.answer(world, to_node, question.question, question.params)}
        except (ValueError, TypeError) as exc:
            raise ApiError(422, "question.invalid", str(exc), "question") from None

    return json.loads(json.dumps(await run_in_threadpool(answer), default=str))


class Act(BaseModel):
    act: str = Field(description=" | ".join(peers.ACTS))
    params: dict[str, Any] = Field(default_factory=dict)


# One act at a time in this process. An act runs without the process's write lock: it waits on
# the other nodes' processes (the clearing asks each region, and sends each its messages), which
# may be delivering to this one under their own write lock at that moment (their courier); with
# this lock held both would wait for each other until the requests' timeout. Its own writes are
# each a transaction of their own (SQLite serialises them with the messages applied meanwhile).
_ACTING = threading.Lock()


@router.post("/acts", summary="Run an act another node's process asked for, over this node's records (node-signed)")
async def run_act(request: Request) -> dict[str, Any]:
    _from_node, to_node, body = await _signed(request)
    act = _parse(Act, body)
    service = service_of(request)
    try:
        run = peers.check_act(to_node, act.act)
    except ValueError as exc:
        raise ApiError(422, "act.invalid", str(exc), "act") from None

    try:
        inspect.signature(run).bind(None, None, **act.params)
    except TypeError as exc:
        raise ApiError(422, "act.invalid", f"{act.act}: {exc}", "params") from None

    def perform() -> dict[str, Any]:
        with _ACTING:
            answer = run(service.worlds.world(), service.config.clock.now(), **act.params)
            return {"node": to_node, "act": act.act, "answer": answer}

    return json.loads(json.dumps(await run_in_threadpool(perform), default=str))


class Routed(BaseModel):
    kind: str = Field(description=" | ".join(sorted(routed.KINDS)))
    key: str = Field(max_length=300)
    from_node: str
    to_node: str
    payload: Any = None
    record: str = ""
    now: str


@router.post("/routed", summary="A routed exchange: recorded at the hub, answered by a region (node-signed)")
async def routed_exchange(request: Request) -> dict[str, Any]:
    from_node, to_node, body = await _signed(request)
    asked = _parse(Routed, body)
    service = service_of(request)

    def hold_hub() -> Any:  # the hub's lock for each of its short transactions, waited for a bounded time
        return service.worlds.write_lock(HUB, wait=routed.HUB_LOCK_WAIT)

    def run() -> dict[str, Any]:
        try:
            # Nothing of this process is held while another process is asked. At the hub, only its short
            # transactions take its write lock (``routed.at_hub``: claim the key, then record the answer); a
            # region answers without its write lock: the process that asked may be this very one (a Beijing
            # card's records uploaded at Beijing go through the hub and back), waiting for the answer with its
            # lock held. The use case's own transaction (BEGIN IMMEDIATE) serialises it with the others.
            return routed.run_received(service.worlds.world(), to_node, from_node, asked.model_dump(),
                                       now=service.config.clock.now(), hold=hold_hub)
        except (ValueError, TypeError, KeyError) as exc:
            raise ApiError(422, "routed.invalid", str(exc), "kind") from None

    return await run_in_threadpool(run)


@router.get("/lists", summary="The hub's blacklist and revoked concessions, as this node sees them")
def lists(call: Call = Depends(staff_call())) -> dict[str, Any]:
    return {"from": HUB, **call.read(lambda world: peers.ask(world, HUB, "directory.lists"))}


@router.get("/directory/{card_number}", summary="A card's entry in the hub's directory, as this node sees it")
def directory_entry(card_number: str, call: Call = Depends(staff_call())) -> dict[str, Any]:
    number = "".join(card_number.split()).upper()
    entry = call.read(lambda world: peers.ask(world, HUB, "directory.card_entry", card_number=number))
    if entry is None:
        raise ApiError(404, "card.unknown", f"the hub's directory has no card {number}", "card_number")
    return {**entry, "citizen_id": mask_citizen_id(entry["citizen_id"])}


@router.get("/outbox", summary="This region's messages still waiting for their receiver")
def pending_messages(call: Call = Depends(staff_call())) -> dict[str, Any]:
    rows = call.read(lambda world: outbox.pending(world.region(call.principal.node)))
    return {"node": call.principal.node, "pending": [
        {key: row[key] for key in ("idempotency_key", "to_node", "kind", "created_at")} for row in rows]}
