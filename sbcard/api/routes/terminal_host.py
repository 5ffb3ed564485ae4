"""The host API for terminals: ``/api/v1/host/…``, every request signed by the terminal (docs/api/terminals.md).

The same adapter as a terminal in process reaches (``sbcard.services.transit.terminal_host.
TerminalHost``): the hub's lists and the terminal's register, the operator's host taking
an upload (the PSAM's batch MAC checked by ``host.upload`` as in process), the upload key
for a PSAM made before upload keys (wrapped under the terminal's credential), and the
hub directory's view of a card. The terminal is the one the MAC names, never one a body
or a path names.

Each route answers the kinds of terminal that need it (``_only``; any other: 403
``terminal.kind``): the lists, the upload key and uploads the terminals that debit cards
offline and write purse records (transit validators, venue gates); a card's status those
and the medical points of sale; the medical routes POSes only, the purse routes kiosks only
(``routes.kiosk_host``). A kiosk's credential reaches nothing else (docs/api/terminals.md).
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from sbcard.api.calls import Call
from sbcard.api.errors import ApiError
from sbcard.api.terminal_auth import terminal_call, terminal_of
from sbcard.chip import terminal_auth
from sbcard.chip.purse_record import HOST_FIELDS, STATUSES, PurseRecord
from sbcard.domain.errors import RuleRefused
from sbcard.domain.medical_claim import ClaimRequest
from sbcard.services.exchange import peers
from sbcard.services.medical import pos
from sbcard.services.medical.routing import PosHost
from sbcard.services.outlets.staff import Forbidden
from sbcard.services.terminals import credentials, kiosk, register
from sbcard.store.world import HUB
from sbcard.services.transit.terminal_host import TerminalHost

router = APIRouter(prefix="/host", tags=["host API for terminals"])

MAX_BATCH = 100_000
# An online claim's ``at`` is the POS's clock at the sale: it decides the claim's policy year (its deductible,
# its ceilings), so the host takes it only this close to its own clock (docs/api/terminals.md).
MAX_CLAIM_SKEW_SECONDS = 600


class Synced(BaseModel):
    version: int = Field(ge=0, description="The blacklist version the terminal now holds.")


class UploadedRecord(BaseModel):
    values: list[Any] = Field(description="The believed fields, in the batch line's order: "
                                          + ", ".join(HOST_FIELDS))
    details: dict[str, Any] | None = Field(default=None, description="The terminal's own fields and the application's "
                                                                    "(as ``PurseRecord.details``), in their order.")


class Upload(BaseModel):
    mac: str = Field(min_length=16, max_length=16, description="The PSAM's BATCH MAC over the records, in this order.")
    records: list[UploadedRecord] = Field(max_length=MAX_BATCH)


_HEX = frozenset("0123456789ABCDEFabcdef")


def _digits(n: int):
    return lambda v: type(v) is str and len(v) == n and v.isascii() and v.isdigit()


def _hex(n: int):
    return lambda v: type(v) is str and len(v) == n and set(v) <= _HEX


def _int(low: int, high: int):
    return lambda v: type(v) is int and low <= v <= high  # strict: no bool, no float, no string of digits


def _text(most: int):
    return lambda v: type(v) is str and 0 < len(v) <= most


def _optional(check):
    return lambda v: v is None or check(v)


# What each field of an uploaded record may be (``PurseRecord``): checked before the host's use case, so a
# record the PSAM MACed but the host cannot hold is 422 naming the field, never a failure of the database.
_VALUE_RULES = {
    "app_serial": (_digits(20), "20 digits"),
    "txn_type": (lambda v: type(v) is int and v in (0x06, 0x09), "6 (EP purchase) or 9 (compound purchase)"),
    "counter": (_int(0, 0xFFFF), "an integer 0 to 65535"),
    "terminal_no": (_hex(12), "12 hex digits"),
    "terminal_serial": (_int(0, 0xFFFFFFFF), "an integer 0 to 4294967295"),
    "amount_fen": (_int(0, 0xFFFFFFFF), "an integer of fen, 0 to 4294967295"),
    "balance_before_fen": (_int(0, 0xFFFFFFFF), "an integer of fen, 0 to 4294967295"),
    "date_time": (_digits(14), "14 digits YYYYMMDDhhmmss"),
    "tac": (_optional(_hex(8)), "8 hex digits or null"),
    "issuer_id": (_optional(_hex(16)), "16 hex digits or null"),
    "issuer_node": (_optional(_text(8)), "a node name or null"),
    "card_number": (_optional(lambda v: type(v) is str and 0 < len(v) <= 20 and v.isascii() and v.isalnum()),
                    "up to 20 letters and digits or null"),
    "terminal": (_optional(_text(64)), "a terminal id or null"),
    "operator": (_optional(_text(64)), "an operator code or null"),
    "blacklist_version": (_optional(_int(0, 2**53)), "a version number or null"),
    "status": (lambda v: v in STATUSES, " or ".join(STATUSES)),
}
_DETAIL_RULES = {
    "issuer_region": (_optional(_digits(6)), "6 digits or null"),
    "at": (_optional(_text(40)), "an ISO 8601 time or null"),
    "mac2": (_optional(_hex(8)), "8 hex digits or null"),
    "recovered": (_optional(lambda v: v in ("prove", "log")), "prove, log or null"),
    "kind": (_optional(_text(16)), "a kind of tap or null"),
}
assert tuple(_VALUE_RULES) == HOST_FIELDS


def _records(uploaded: list[UploadedRecord]) -> list[PurseRecord]:
    """The records of an upload, each field checked (422 ``upload.record_invalid`` naming the first wrong one)."""
    records = []
    for i, record in enumerate(uploaded):
        if len(record.values) != len(HOST_FIELDS):
            raise ApiError(422, "upload.record_invalid", f"record {i} has {len(record.values)} values, not "
                           f"{len(HOST_FIELDS)} ({', '.join(HOST_FIELDS)})", f"records[{i}].values")
        for name, value in zip(HOST_FIELDS, record.values):
            ok, wanted = _VALUE_RULES[name]
            if not ok(value):
                raise ApiError(422, "upload.record_invalid", f"record {i}: {name} is {wanted}",
                               f"records[{i}].{name}")
        for name, (ok, wanted) in _DETAIL_RULES.items():
            if record.details and not ok(record.details.get(name)):
                raise ApiError(422, "upload.record_invalid", f"record {i}: details.{name} is {wanted}",
                               f"records[{i}].details.{name}")
        try:
            records.append(PurseRecord.from_host(record.values, record.details))
        except (TypeError, ValueError):
            raise ApiError(422, "upload.record_invalid", f"record {i} is not in the host's form",
                           f"records[{i}]") from None
    return records


VALIDATOR, POS, KIOSK = "validator or gate", "medical point of sale", "load kiosk"
OFFLINE_DEBITS = (VALIDATOR,)  # they debit cards offline: blacklist copy, purse records, upload key
CARD_STATUS = (VALIDATOR, POS)  # they check a card before a debit or a claim


def kind_of(terminal: dict[str, Any]) -> str:
    """A registered terminal's kind: a kiosk (its operator an outlet), a POS (a hospital), else a validator or gate."""
    if kiosk.outlet_of(terminal) is not None:
        return KIOSK
    if pos.hospital_of(terminal) is not None:
        return POS
    return VALIDATOR


def _only(call: Call, kinds: tuple[str, ...], what: str) -> dict[str, Any]:
    """The calling terminal's row, if its kind may call this route (403 ``terminal.kind`` naming why not)."""
    terminal = terminal_of(call)
    kind = kind_of(terminal)
    if kind not in kinds:
        raise Forbidden("terminal.kind", f"terminal {terminal['id']} is a {kind}: {what} serves a "
                        f"{' or a '.join(kinds)} only", "terminal")
    return terminal


def _lists_view(copy: register.BlacklistCopy) -> dict[str, Any]:
    return {"version": copy.version, "published_at": copy.published_at, "cards": sorted(copy.cards),
            "revoked_concessions": [list(pair) for pair in sorted(copy.revoked_concessions)]}


@router.get("/lists", summary="The hub's blacklist and revoked concessions (with the changes since a version)")
def lists(since: int | None = Query(default=None, ge=0, description="The version the terminal holds."),
          call: Call = Depends(terminal_call)):
    terminal = _only(call, OFFLINE_DEBITS, "the offline blacklist copy")

    def read(world):
        latest = register.blacklist_copy(world)
        out = {"terminal": terminal["id"], **_lists_view(latest), "since": since, "changed": True,
               "added": None, "removed": None, "concessions_revoked_since": None}
        if since is not None:
            held = register.blacklist_copy(world, since)
            out.update(changed=held.version != latest.version or held.cards != latest.cards
                       or held.revoked_concessions != latest.revoked_concessions,
                       added=sorted(latest.cards - held.cards), removed=sorted(held.cards - latest.cards),
                       concessions_revoked_since=[list(p) for p in
                                                  sorted(latest.revoked_concessions - held.revoked_concessions)])
        return out

    return call.read(read)


@router.post("/synced", summary="Report the blacklist version the terminal now holds")
def synced(body: Synced, call: Call = Depends(terminal_call)):
    terminal_id = _only(call, OFFLINE_DEBITS, "the offline blacklist copy")["id"]

    # the hub's latest version, asked before the write (over HTTP at a region's own process, not under this
    # process's write lock); it only grows. Judged inside the write, after the Idempotency-Key's own checks.
    latest = call.read(lambda world: peers.ask(world, HUB, "directory.blacklist_version"))

    def do(world):
        if body.version > latest:
            raise ApiError(422, "blacklist.version", f"no blacklist version {body.version} (the latest is {latest})",
                           "version")
        row = register.record_sync(world, terminal_id, version=body.version, now=call.now)
        return {"terminal": terminal_id, "blacklist_version": row["blacklist_version"], "synced_at": row["synced_at"]}

    return call.write(do, payload=body, idempotent=False)


@router.get("/upload-key", summary="The upload key for a PSAM made before upload keys, wrapped (until its first upload)")
def upload_key(call: Call = Depends(terminal_call)):
    terminal = _only(call, OFFLINE_DEBITS, "the upload key (for purse records)")

    def do(world):
        key = register.upload_key(world, terminal["id"])
        if register.has_uploaded(world, terminal["id"]):
            raise RuleRefused("terminal.upload_key_held", f"terminal {terminal['id']} already uploaded a batch its "
                              "PSAM MACed: it holds its upload key, which is not handed out again", "terminal")
        credential = credentials.credential(world, terminal["id"])
        wrapped, check = terminal_auth.wrap_upload_key(credential, terminal["id"], key.algorithm.value, key.key)
        register.record_upload_key_served(world, terminal["id"], now=call.now)
        return {"terminal": terminal["id"], "algorithm": key.algorithm.value, "wrapped_key": wrapped, "check": check,
                "wrapping": "SM4-ECB and HMAC-SM3 under keys derived from the terminal's host credential "
                            "(docs/api/terminals.md)"}

    return call.write(do, idempotent=False)


# Uploads run one at a time, the others waiting their turn without a worker thread: 200 terminals
# uploading at closing time must not take every worker thread of the server (the clerks' requests would
# wait for one), nor line up at their region's write lock ahead of its clerks (a clerk waits for one
# upload at most). More at once does not go faster (their work shares one interpreter) and was measured
# slower for everyone (benchmarks/README.md, serve_load): their long transactions on the hub and the
# issuers queued at the same gates as the clerks' short ones, past the busy timeout for some.
UPLOADS_AT_ONCE = 1


def _upload_slots(request: Request) -> anyio.CapacityLimiter:
    """The app's limiter of uploads, made in its event loop at the first upload."""
    slots = getattr(request.app.state, "upload_slots", None)
    if slots is None:
        slots = request.app.state.upload_slots = anyio.CapacityLimiter(UPLOADS_AT_ONCE)
    return slots


@router.post("/uploads", summary="Upload a batch of offline records (the PSAM's batch MAC is checked)")
async def upload(body: Upload, request: Request, call: Call = Depends(terminal_call)):
    terminal_id = _only(call, OFFLINE_DEBITS, "an upload of purse records")["id"]

    def run() -> Any:
        if not _hex(16)(body.mac):
            raise ApiError(422, "upload.mac_invalid", "the batch's MAC is 16 hex digits (the PSAM's BATCH MAC)", "mac")
        records = _records(body.records)

        def do(world):
            return TerminalHost(world).upload(terminal_id, records, mac=body.mac, now=call.now).to_dict()

        return call.write(do, payload=body, idempotent=False)

    return await anyio.to_thread.run_sync(run, limiter=_upload_slots(request))


@router.get("/cards/{card_number}", summary="A card's status in the hub's directory, and whether it is listed")
def card_status(card_number: str, call: Call = Depends(terminal_call)):
    _only(call, CARD_STATUS, "a card's status")

    # the hub's directory: in process, or asked of the hub's process at a region's own
    status = call.read(lambda world: peers.ask(world, HUB, "directory.card_status", card_number=card_number))
    if status is None:
        raise ApiError(404, "card.unknown", f"no card {card_number!r} in the directory", "card_number")
    return status


# ----------------------------------------------------------------------------- a hospital's POS


class MedicalClaim(BaseModel):
    """A claim as the point of sale sends it (``ClaimRequest.to_json``)."""

    claim_id: str = Field(max_length=40)
    hospital: str = Field(max_length=16)
    card_number: str = Field(max_length=20)
    card_id_code: str = Field(max_length=64)
    citizen_id: str = Field(max_length=18)
    insured_region: str = Field(max_length=6)
    insurance_type: str = Field(max_length=16)
    retired: bool
    lines: list[tuple[str, int, int]] = Field(min_length=1, max_length=500,
                                              description="[item code, quantity, unit price in fen]")
    at: str = Field(description="ISO 8601 with its offset, at the point of sale")
    registered: bool = False
    referral_or_emergency: bool = False
    use_account: bool = False
    self_pay: str = "cash"
    mode: str = "online"
    offline_self_fen: int | None = None
    visit: str = ""
    episode: str = "outpatient"


def _pos_hospital(call: Call):
    terminal = terminal_of(call)
    hospital = pos.hospital_of(terminal)
    if hospital is None:
        raise Forbidden("terminal.not_pos", f"terminal {terminal['id']} is not a hospital's point of sale",
                        "terminal")
    return hospital


@router.post("/medical/claims", status_code=201, summary="A new claim id from the POS's hospital's region")
def new_claim(call: Call = Depends(terminal_call)):
    hospital = _pos_hospital(call)

    def do(world):
        claim_id, serial = PosHost(world, now=call.now).new_claim(hospital)
        return {"claim_id": claim_id, "serial": serial, "hospital": hospital.code}

    return call.write(do, idempotent=False, status=201)


@router.post("/medical/settle", summary="Settle a claim online with the insured region (Idempotency-Key required)")
def settle_claim(body: MedicalClaim, call: Call = Depends(terminal_call)):
    hospital = _pos_hospital(call)
    if body.hospital.upper() != hospital.code:
        raise Forbidden("medical.hospital", f"this point of sale is {hospital.code}'s, not {body.hospital}'s",
                        "hospital")
    if body.mode != "online":
        raise ApiError(422, "medical.mode", "the host API settles online claims (offline ones are queued by the POS)",
                       "mode")
    try:
        request = ClaimRequest.from_json(body.model_dump())
    except (TypeError, ValueError) as e:
        raise ApiError(422, "medical.claim_invalid", f"not a claim: {e}", None) from None

    skew = (request.at - call.now).total_seconds()
    if abs(skew) > MAX_CLAIM_SKEW_SECONDS:
        raise ApiError(422, "medical.claim_time", f"an online claim happens now: its time is {abs(int(skew))} s "
                       f"{'ahead of' if skew > 0 else 'behind'} the host's clock (at most {MAX_CLAIM_SKEW_SECONDS} s "
                       "either way; a claim of another time is settled offline and reconciled)", "at")

    def do(world):
        host = PosHost(world, now=call.now)
        if not host.issued(hospital, request.claim_id):
            raise Forbidden("medical.claim_id", f"claim {request.claim_id} is not one this hospital's region issued "
                            f"to {hospital.code} (POST /api/v1/host/medical/claims)", "claim_id")
        return host.settle(hospital, request)

    return call.write(do, payload=body)
