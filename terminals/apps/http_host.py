"""The hosts over HTTP: ``TransitHostPort`` and ``ListsPort`` of ``terminals.apps.uploads`` on the host API.

``HttpHost(url, terminal_id, credential, clock=...)`` is the terminal's side of
``/api/v1/host/…`` (docs/api/terminals.md): every request signed with the terminal's host
credential (``sbcard.chip.terminal_auth``: HMAC-SM3 over the method, path as sent, query,
terminal id, timestamp, nonce, the body's SM3 and the Idempotency-Key), the records of an upload sent in the
host's form (their believed values and details, ``PurseRecord.host_values`` / ``details``)
with the PSAM's batch MAC, so the host checks the batch as it does in process. It fits
the ports by shape, as ``sbcard.services.transit.terminal_host.TerminalHost`` does over a
world: ``uploads.upload_unsent(state, HttpHost(...), terminal_id, now=now)``.

**Trust.** The terminal authenticates itself (the MAC); the host's answers carry no MAC of
their own, so the terminal believes them on the strength of the connection: ``https`` (the
service's certificate) for any host, plain ``http`` only to a service on the same machine
(loopback), which ``HttpHost`` enforces. What the terminal takes from an answer is bounded
anyway: an upload's records stay in its log until marked sent, the lists are the hub's
public ones, and the upload key comes wrapped under the credential.

``HttpLoadHost`` (the same, for a load kiosk) is the loader's ``LoadHost`` port
(``terminals.apps.loader``) on ``/api/v1/host/purse/…``: ``loader.load(reader,
HttpLoadHost(...), amount, terminal_no, pin=PIN)`` runs against a live service exactly as
it does in process.

A refusal of the host (any answer other than 2xx) is raised as ``HostRefused`` with the
host's error code, field, message and HTTP status; a host out of reach as ``HostUnreachable``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

import attrs
import httpx

from sbcard.chip import terminal_auth
from sbcard.chip.crypto import Algorithm
from sbcard.chip.purse_record import PurseRecord
from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused, SbcardError
from sbcard.domain.purse_load import CardLoadEvidence, LoadGrant, LoadRequest, PendingLoad

API = "/api/v1/host"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class HostRefused(SbcardError):
    """The host answered with an error (``status``: its HTTP status)."""

    exit_code = 1

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(code, message, field)
        self.status = status


class HostUnreachable(SbcardError):
    """The host could not be reached (connection refused, timed out)."""

    exit_code = 1


_KINDS: dict[int, type[SbcardError]] = {404: NotFound, 409: RuleRefused, 422: InvalidInput}
_RETRIED = 1  # a request with an Idempotency-Key is sent once more when its answer was lost


@attrs.frozen
class HttpUploadAnswer:
    """The host's answer to an upload (``UploadAnswer``), as it sent it."""

    data: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.data[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


@attrs.frozen
class HttpLists:
    """The hub's lists as the host sent them (``Lists``)."""

    version: int
    published_at: str | None
    cards: frozenset[str]
    revoked_concessions: frozenset[tuple[str, str]]


@attrs.frozen
class HttpUploadKey:
    algorithm: Algorithm
    key: bytes = attrs.field(repr=False)


class HttpHost:
    """The operator's host and the hub's lists, reached over the host API as terminal ``terminal_id``."""

    def __init__(self, url: str, terminal_id: str, credential: bytes, *, clock: Callable[[], dt.datetime],
                 client: httpx.Client | None = None, timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidInput("host.url", f"{url!r} is not an http(s) URL of the service", "--host")
        if parts.scheme == "http" and not _loopback(parts.hostname or ""):
            # the host's answers are not MACed: over the network only TLS tells the terminal it is its host
            raise InvalidInput("host.url", f"{url!r}: plain http is for a service on this machine only "
                               "(localhost, 127.0.0.0/8, ::1); another host is reached over https", "--host")
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.prefix = parts.path.rstrip("/")
        self.terminal_id = terminal_id
        self._credential = credential
        self._clock = clock
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=timeout)

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def __enter__(self) -> HttpHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- one signed request
    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                idempotency_key: str | None = None) -> Any:
        """Send one signed request to ``/api/v1/host`` + ``path``; the answer's JSON, or ``HostRefused``."""
        full_path = f"{self.prefix}{API}{path}"
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None})
        content = b"" if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        url = httpx.URL(f"{self.base}{full_path}" + (f"?{query}" if query else ""))
        # signed as it goes on the wire: the path percent-encoded by httpx, the query as sent
        wire_path = url.raw_path.decode("ascii").split("?", 1)[0]
        headers = terminal_auth.sign(self._credential, self.terminal_id, method, wire_path, url.query.decode("ascii"),
                                     content, now=self._clock(), idempotency_key=idempotency_key or "")
        if body is not None:
            headers["Content-Type"] = "application/json"
        if idempotency_key:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        try:
            response = self._client.request(method, url, content=content or None, headers=headers)
        except httpx.HTTPError as e:
            raise HostUnreachable("host.unreachable", f"the host at {self.base} did not answer: {e}", "--host") \
                from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success:
            return data
        error = (data or {}).get("error") if isinstance(data, dict) else None
        if not isinstance(error, dict):
            raise HostRefused(response.status_code, f"http.{response.status_code}",
                              f"the host answered {response.status_code}: {response.text[:200]}")
        kind = _KINDS.get(response.status_code)
        if kind is not None:
            raise kind(error.get("code") or "host.refused", error.get("message") or "", error.get("field"))
        raise HostRefused(response.status_code, error.get("code") or "host.refused", error.get("message") or "",
                          error.get("field"))

    # --- TransitHostPort
    def upload_key(self, terminal_id: str) -> HttpUploadKey:
        self._same(terminal_id)
        data = self.request("GET", "/upload-key")
        try:
            key = terminal_auth.unwrap_upload_key(self._credential, self.terminal_id, data["algorithm"],
                                                  data["wrapped_key"], data["check"])
        except (KeyError, TypeError, ValueError):
            raise HostRefused(200, "host.upload_key_forged", "the upload key's check does not verify under this "
                              "terminal's credential: not taken", "--host") from None
        return HttpUploadKey(Algorithm(data["algorithm"]), key)

    def upload(self, terminal_id: str, records: Sequence[PurseRecord], *, mac: str, now: dt.datetime,
               idempotency_key: str | None = None) -> HttpUploadAnswer:
        self._same(terminal_id)
        if idempotency_key is None and records:  # a retry of the same batch gets the host's first answer
            idempotency_key = f"batch-{mac}-{len(records)}-{records[0].terminal_serial}"
        body = {"mac": mac, "records": [{"values": list(r.host_values()), "details": _plain(r.details)}
                                        for r in records]}
        return HttpUploadAnswer(self.request("POST", "/uploads", body=body, idempotency_key=idempotency_key))

    # --- ListsPort
    def lists(self, since: int | None = None) -> HttpLists:
        data = self.request("GET", "/lists", params={"since": since})
        return HttpLists(version=data["version"], published_at=data["published_at"], cards=frozenset(data["cards"]),
                         revoked_concessions=frozenset((c, k) for c, k in data["revoked_concessions"]))

    def synced(self, terminal_id: str, *, version: int, now: dt.datetime) -> None:
        self._same(terminal_id)
        self.request("POST", "/synced", body={"version": version})

    # --- more of the host API
    def card_status(self, card_number: str) -> dict[str, Any]:
        return self.request("GET", f"/cards/{card_number}")

    def _same(self, terminal_id: str) -> None:
        if terminal_id != self.terminal_id:
            raise InvalidInput("terminal.mismatch", f"this connection is terminal {self.terminal_id}'s, "
                               f"not {terminal_id}'s", "terminal")


class HttpLoadHost(HttpHost):
    """The card's issuer as a load kiosk reaches it over the host API (``LoadHost`` of ``terminals.apps.loader``).

    ``begin`` and ``confirm`` carry an Idempotency-Key made from what they send (``begin``:
    the card's serial, online counter and MAC1, which no other INITIALIZE FOR LOAD repeats;
    ``confirm``: the load's TAC), and are sent once more with the same key if the answer was
    lost: the host then answers the first answer again (the same MAC2), never a second
    debit. ``settle`` carries none: it is idempotent by itself (it settles pending loads only),
    and the card can show the very same evidence again for another torn load later (the same
    counter, the same balance), which a kept answer would leave pending. ``corrections``: what
    the host's ``begin`` took back (as ``PurseHost.corrections``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.corrections: list[Any] = []

    def _post(self, path: str, body: dict[str, Any], key: str | None) -> Any:
        for attempt in range(_RETRIED + 1):
            try:
                return self.request("POST", path, body=body, idempotency_key=key)
            except HostUnreachable:
                if attempt == _RETRIED:
                    raise
        raise AssertionError("unreachable")

    def pending_loads(self, app_serial: str) -> list[PendingLoad]:
        data = self.request("GET", "/purse/pending", params={"app_serial": app_serial})
        return [PendingLoad(**p) for p in data["pending"]]

    def settle(self, evidence: CardLoadEvidence) -> list[Any]:
        body = {"app_serial": evidence.app_serial, "balance_fen": evidence.balance_fen,
                "online_counter": evidence.online_counter,
                "proves": [{"online_counter": c, "tac": t.hex().upper()} for c, t in sorted(evidence.proves.items())],
                "logged": [{"counter": e.counter, "amount_fen": e.amount_fen, "terminal_no": e.terminal_no,
                            "date_time": e.date_time} for e in evidence.logged]}
        proof = evidence.counter_proof
        if proof is not None:  # the MAC1 that proves the counter: without it the host reverses nothing
            body["counter_proof"] = {
                "amount_fen": proof.amount_fen, "terminal_no": proof.terminal_no, "balance_fen": proof.balance_fen,
                "online_counter": proof.online_counter, "key_version": proof.key_version,
                "algorithm_id": proof.algorithm_id, "random": proof.random.hex().upper(),
                "mac1": proof.mac1.hex().upper()}
        return self._post("/purse/settle", body, None)["settled"]

    def begin_load(self, request: LoadRequest) -> LoadGrant:
        body = {"app_serial": request.app_serial, "amount_fen": request.amount_fen, "terminal_no": request.terminal_no,
                "balance_fen": request.balance_fen, "online_counter": request.online_counter,
                "key_version": request.key_version, "algorithm_id": request.algorithm_id,
                "random": request.random.hex().upper(), "mac1": request.mac1.hex().upper(),
                "pin_verified": request.pin_verified}
        key = f"begin-{request.app_serial}-{request.online_counter}-{request.mac1.hex().upper()}"
        data = self._post("/purse/begin", body, key)
        self.corrections.extend(data.get("corrections") or [])
        try:
            return LoadGrant(load_id=data["load_id"], card_number=data["card_number"],
                             mac2=bytes.fromhex(data["mac2"]), date_time=data["date_time"],
                             account_balance_fen=data["account_balance_fen"])
        except (KeyError, TypeError, ValueError):
            raise HostRefused(200, "host.answer_invalid", "the host's answer to begin is not a load grant",
                              "--host") from None

    def confirm_load(self, app_serial: str, online_counter: int, tac: bytes) -> Any:
        body = {"app_serial": app_serial, "online_counter": online_counter, "tac": tac.hex().upper()}
        return self._post("/purse/confirm", body, f"confirm-{app_serial}-{online_counter}-{tac.hex().upper()}")


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _plain(details: Any) -> dict[str, Any] | None:
    """A record's details as a plain dict, in their order (what JSON carries and the host's line repr's)."""
    return None if details is None else dict(details)
