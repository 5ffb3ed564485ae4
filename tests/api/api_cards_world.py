"""What the card tests of the API share: people, blanks and a whole issuance, all done over HTTP."""

from __future__ import annotations

import uuid

import httpx

API = "/api/v1"
OUTLET = "BJ-110105-01"  # BJ-C1's outlet (conftest.STAFF)
OTHER_OUTLET = "BJ-110101-01"
BANK = "BJ-110105-02"  # a bank-branch outlet (社银合作) of the same district
TJ_OUTLET = "TJ-120103-01"
PIN = "258036"


def citizen_id(first17: str) -> str:
    """An 18-digit citizen ID with its ISO 7064 MOD 11-2 check character."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights)) % 11]


LIU = citizen_id("11010519850615123")  # 刘建国, a Beijing employee
CHEN = citizen_id("11010519900302452")  # 陈晓梅
ZHAO = citizen_id("11010519721108261")  # 赵志强
TJ_WANG = citizen_id("12010319800512341")  # a Tianjin resident


def key() -> dict[str, str]:
    """A fresh Idempotency-Key header."""
    return {"Idempotency-Key": uuid.uuid4().hex}


def ok(answer: httpx.Response, status: int = 200) -> dict:
    assert answer.status_code == status, answer.text
    return answer.json()


def refused(answer: httpx.Response, status: int, code: str | None = None, field: str | None = None) -> dict:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    if code is not None:
        assert error["code"] == code, error
    if field is not None:
        assert error["field"] == field, error
    return error


def register(client: httpx.Client, cid: str, name: str, region: str = "110105", **extra) -> dict:  # type: ignore[no-untyped-def]
    body = {"citizen_id": cid, "name": name, "region": region, "insurance": "employee", **extra}
    return ok(client.post(f"{API}/persons", json=body), 201)


def receive(client: httpx.Client, outlet: str = OUTLET, count: int = 3) -> dict:
    return ok(client.post(f"{API}/outlets/{outlet}/stock/receive", json={"count": count}, headers=key()), 201)


def apply(client: httpx.Client, cid: str, **extra) -> dict:  # type: ignore[no-untyped-def]
    return ok(client.post(f"{API}/applications", json={"citizen_id": cid, **extra}, headers=key()), 201)


def issue(client: httpx.Client, application_id: str, **body) -> dict:  # type: ignore[no-untyped-def]
    return ok(client.post(f"{API}/applications/{application_id}/issue", json=body or None, headers=key()), 201)


def activate(client: httpx.Client, card_number: str, pin: str = PIN) -> dict:
    return ok(client.post(f"{API}/cards/{card_number}/activate", json={"pin": pin}, headers=key()))


def active_card(client: httpx.Client, cid: str, name: str, **where: str) -> str:
    """Register, apply (at ``outlet``, default the clerk's), issue on the next blank of that stock and activate."""
    register(client, cid, name)
    card = issue(client, apply(client, cid, **where)["application_id"])["card_number"]
    activate(client, card)
    return card
