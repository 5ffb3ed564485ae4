"""The ASGI application: ``create_app(config)`` is what ``sbcard serve`` runs under uvicorn.

FastAPI was chosen over bare Starlette for what it adds on top of it: request bodies checked
by declared models (a wrong field is a 422 naming it before a use case runs), dependencies
for the sign-in and role checks, and the OpenAPI schema generated from the routes themselves
(``/api/openapi.json``, browsable at ``/api/docs``), so the documentation cannot drift from
what is served.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from sbcard.api import errors
from sbcard.api.calls import Service
from sbcard.api.config import ServiceConfig, Worlds, service_key
from sbcard.api.jobs import Jobs
from sbcard.api.limits import BodyLimit
from sbcard.api.terminal_auth import TerminalGate
from sbcard.api.peers import Courier
from sbcard.api.routes import (accounts, cards, clearing, exchange, health, jobs, medical, outlets, persons, purse,
                               session, staff, subsidies, terminal_host)
from sbcard.api.routes import kiosk_host
from sbcard.services.exchange import outbox
from sbcard.services.medical import claims as medical_claims, routing as medical_routing
from sbcard.services.transit import host as transit_host
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import REGION_NODES, World

API = "/api/v1"
log = logging.getLogger("sbcard.api.requests")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# A path may carry a citizen ID (18 characters) or a phone number: the request log masks them.
_PERSONAL_IN_PATH = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9A-Za-z])|(?<!\d)(1\d{2})\d{4}(\d{4})(?!\d)")

# The routers of /api/v1, in the order the schema lists them. Each capability's module adds itself here.
ROUTERS: list[APIRouter] = [health.router, session.router, staff.router, cards.router, persons.router,
                             accounts.router, purse.router, outlets.router, subsidies.router, jobs.router,
                             medical.router, clearing.router, terminal_host.router, exchange.router,
                             kiosk_host.router]


def masked_path(path: str) -> str:
    def mask(match: re.Match[str]) -> str:
        if match.group(1):
            return f"{match.group(1)}********{match.group(2)}"
        return f"{match.group(3)}****{match.group(4)}"

    return _PERSONAL_IN_PATH.sub(mask, path)


def deliver_round(worlds: Worlds) -> int:
    """One round of the courier of a process that serves one node: its pending messages, over HTTP; then the
    work that waited for another region through the hub (``route_waiting``).

    Without the process's write locks: the round waits on other processes (which may be asking this one
    meanwhile, with their own locks held: a region's request to the hub while the hub's courier delivers to
    it), and each of its local writes is one transaction of its own that checks what it changes (a message
    marked delivered once, records routed unless another routed them meanwhile, a queued claim marked once),
    queued at the database's write gate with the use cases' transactions."""
    world = worlds.world()
    now = worlds.config.clock.now()
    delivered = outbox.deliver_pending(world, now)
    route_waiting(world, now)
    return delivered


def route_waiting(world: World, now) -> None:
    """A region's uploaded records that waited for their issuer (``transit.host.route_awaiting``) and its
    hospitals' offline claims (``medical.routing.reconcile``), sent through the hub once it reaches them."""
    for node in REGION_NODES:
        if not world.holds(node):
            continue
        if transit_host.awaiting_count(world, node):
            transit_host.route_awaiting(world, node, now=now)
        if medical_claims.queued(UnitOfWork(world.region(node))):
            medical_routing.reconcile(world, now=now)


def create_app(config: ServiceConfig) -> FastAPI:
    worlds = Worlds(config)
    background = Jobs(worlds, config.clock)

    courier = None if config.whole else Courier(lambda: deliver_round(worlds), config.delivery_interval)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if courier is not None:
            courier.start()
        try:
            yield
        finally:
            if courier is not None:
                courier.stop()
            background.close()
            worlds.close()

    app = FastAPI(title="sbcard", version="1", summary="The Jing-Jin-Ji social security card service, simulated",
                  docs_url="/api/docs", redoc_url=None, openapi_url="/api/openapi.json", lifespan=lifespan)
    app.state.service = Service(config=config, worlds=worlds, secret=service_key(config.home))
    app.state.jobs = background
    errors.install(app)
    app.add_middleware(TerminalGate)  # inside BodyLimit: a large terminal body is let in only once this passed
    app.add_middleware(BodyLimit)

    @app.middleware("http")
    async def request_log(request: Request, call_next) -> Response:  # type: ignore[no-untyped-def]
        given = request.headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else secrets.token_hex(8)
        request.state.request_id = request_id
        request.state.caller = "-"
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:  # what no handler took: one JSON answer and one log line, never a traceback out
            if errors.is_busy(exc):
                response = errors.busy_response()
            else:
                log.error("%s failed: %s", request_id, type(exc).__name__, exc_info=exc)
                response = errors.unexpected_response(request_id)
        response.headers["X-Request-Id"] = request_id
        log.info("%s %s %s %d %.1fms caller=%s", request_id, request.method, masked_path(request.url.path),
                 response.status_code, (time.perf_counter() - started) * 1000, getattr(request.state, "caller", "-"))
        return response

    for router in ROUTERS:
        app.include_router(router, prefix=API)
    return app
