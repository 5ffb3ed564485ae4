"""Liveness: the process answers and its world opens."""

from __future__ import annotations

from fastapi import APIRouter, Request

from sbcard.api.calls import service_of

router = APIRouter(tags=["service"])


@router.get("/health", summary="The service is up and its world opens")
def health(request: Request) -> dict[str, object]:
    service = service_of(request)
    service.worlds.world()
    return {"status": "ok", "node": service.config.node, "serves": list(service.config.served)}
