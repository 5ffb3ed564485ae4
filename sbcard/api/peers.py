"""The nodes' processes reaching each other over HTTP (``sbcard serve --node NODE --peer N=URL``).

``HttpLink`` is the HTTP implementation of the services' port between nodes
(``sbcard.services.exchange.peers.NodeLink``): an outbox message is POSTed to the receiving
node's ``/api/v1/exchange/messages``, a question to its ``/api/v1/exchange/questions``, an
act (the hub's clearing, started at a region) to its ``/api/v1/exchange/acts``, a
routed exchange (``sbcard.services.exchange.routed``: a transit upload's records for their
issuer, a medical claim for the insured region) to ``/api/v1/exchange/routed`` — of the hub,
and from the hub's process of the answering region.
``Courier`` delivers the process's pending messages every ``interval`` seconds in a thread
of its own, so a message left pending while its receiver was down goes once it is up.

**Answers that are not 200.** The receiver's own refusal (a 4xx other than 401, 408, 421 and
429) is raised as ``PeerRefused`` with its status, code, field and message — a kind of
``PeerUnavailable``, so a caller that waits keeps waiting, while an API route passes the
refusal on as it is. Anything else is ``PeerUnavailable`` (503): ``in_doubt`` when the request
went out and no answer came back (the receiver may have applied it, or may still).

**Node-to-node authentication.** Every request between nodes is signed with HMAC-SHA256
under a key derived, per direction, from the secret of the pair of nodes
(``<home>/exchange/<a>-<b>.key``, ``sbcard.store.world.exchange_keys``), which only the two
ends' servers hold: a process loads the pairs it is an end of (``PairKeys``), so a region
cannot sign as the hub to another region. The signature covers the method, the path, the
sending and receiving nodes, a timestamp and the body's SHA-256; the receiver looks the key
up by the signed sender and refuses (401) a sender whose pair it does not hold, a request
without a valid signature or with a timestamp more than ``MAX_SKEW`` seconds from its own
wall clock. A replay within that
window changes nothing: a message is applied once (its idempotency key, the receiver's
message log), a question only reads, the one act is done once per date, and a routed
exchange is recorded once at the hub by its key (its region keeps each once besides). A
direct kind (a purse load's step) has no key of its own: what a repeated step leaves is the
load protocol's to settle at the issuer (``docs/api/nodes.md``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from sbcard.domain.errors import SbcardError
from sbcard.services.exchange.peers import ExchangeInDoubt, PeerRefused, PeerUnavailable
from sbcard.store.world import HUB, NODES, NodeElsewhere

API = "/api/v1"
MESSAGES = f"{API}/exchange/messages"
QUESTIONS = f"{API}/exchange/questions"
ACTS = f"{API}/exchange/acts"
ACT_TIMEOUT = 300.0  # an act (the day's clearing) asks the other nodes in turn: longer than one question
# A message whose applying may wait for the receiver's write lock behind a long job (a subsidy pay, a large
# upload) gets longer than the default: a region's clearing part answered late is a part in doubt.
MESSAGE_TIMEOUTS = {"clearing.part": 60.0}
# A peer's 4xx that is not a refusal of the request itself: a signature or clock refused (401), the node not
# served there (421), too busy or too slow (408, 429) — a node out of reach for now, as a 5xx is.
NOT_REFUSALS = (401, 408, 421, 429)
ROUTED = f"{API}/exchange/routed"
# A routed exchange's hops, each upstream one waiting longer than the one below it (``docs/api/nodes.md``): the
# hub waits ``routed.HUB_LOCK_WAIT`` (2 s) for its lock and ``ANSWER_TIMEOUT`` for the answering region; the
# asking region waits ``ROUTE_TIMEOUT`` for the hub; a point of sale waits longer for its region (60 s).
ANSWER_TIMEOUT = 6.0
ROUTE_TIMEOUT = 10.0
IN_DOUBT = "exchange.in_doubt"
NODE_HEADER = "X-Sbcard-Node"  # the sending node
TO_HEADER = "X-Sbcard-To"  # the receiving node
DATE_HEADER = "X-Sbcard-Date"  # seconds since the epoch, the sender's wall clock
SIGNATURE_HEADER = "X-Sbcard-Signature"  # hex HMAC-SHA256
MAX_SKEW = 300
SCHEME = "sbcard-node-v1"

log = logging.getLogger("sbcard.api.peers")


class PairKeys:
    """The node-to-node secrets one process holds: one per pair of nodes it is an end of, by the sorted pair."""

    def __init__(self, secrets: Mapping[tuple[str, str], bytes]) -> None:
        self._secrets = {_pair(*pair): secret for pair, secret in secrets.items()}

    def secret(self, a: str, b: str) -> bytes | None:
        """The pair's secret, or None when this process is not given it (not an end of the pair)."""
        return self._secrets.get(_pair(a, b))

    def pairs(self) -> list[tuple[str, str]]:
        return sorted(self._secrets)


def _pair(a: str, b: str) -> tuple[str, str]:
    first, second = sorted((a, b))
    return first, second


def _secret_of(keys: PairKeys | bytes, from_node: str, to_node: str) -> bytes | None:
    """``keys``: a process's pairs, or one pair's secret itself (a test, a tool that signs as one node)."""
    return keys.secret(from_node, to_node) if isinstance(keys, PairKeys) else keys


def pair_key(secret: bytes, from_node: str, to_node: str) -> bytes:
    """The key one node signs its requests to another with: derived from their pair's secret, per direction."""
    return hmac.new(secret, f"{SCHEME} {from_node}->{to_node}".encode(), hashlib.sha256).digest()


def signature(secret: bytes, *, method: str, path: str, from_node: str, to_node: str, date: str,
              body: bytes) -> str:
    text = "\n".join((SCHEME, method.upper(), path, from_node, to_node, date, hashlib.sha256(body).hexdigest()))
    return hmac.new(pair_key(secret, from_node, to_node), text.encode(), hashlib.sha256).hexdigest()


def signed_headers(keys: PairKeys | bytes, *, method: str, path: str, from_node: str, to_node: str,
                   body: bytes, now: float | None = None) -> dict[str, str]:
    secret = _secret_of(keys, from_node, to_node)
    if secret is None:  # the service checks at its start that it holds the pair of each --peer
        raise SbcardError("node.no_key", f"this process holds no key for the pair {'-'.join(_pair(from_node, to_node))}"
                          f" (docs/api/nodes.md)")
    date = str(int(time.time() if now is None else now))
    return {NODE_HEADER: from_node, TO_HEADER: to_node, DATE_HEADER: date, "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(secret, method=method, path=path, from_node=from_node, to_node=to_node,
                                        date=date, body=body)}


def verify(keys: PairKeys | bytes, *, method: str, path: str, headers: Mapping[str, str], body: bytes,
           now: float | None = None) -> tuple[str, str] | str:
    """(from_node, to_node) of a validly signed request, else the reason it is refused (a str). The key is the
    signed pair's: a sender whose pair this process does not hold is refused, whatever it signed with."""
    from_node, to_node = headers.get(NODE_HEADER, ""), headers.get(TO_HEADER, "")
    date, given = headers.get(DATE_HEADER, ""), headers.get(SIGNATURE_HEADER, "")
    if not (from_node and to_node and date and given):
        return f"a node's request carries {NODE_HEADER}, {TO_HEADER}, {DATE_HEADER} and {SIGNATURE_HEADER}"
    if from_node not in NODES or to_node not in NODES or from_node == to_node:
        return "not a request between two nodes of the world"
    if not date.isdigit() or abs(int(date) - (time.time() if now is None else now)) > MAX_SKEW:
        return f"{DATE_HEADER} is more than {MAX_SKEW} s from this node's clock"
    secret = _secret_of(keys, from_node, to_node)
    if secret is None:
        return (f"this node holds no key for the pair {'-'.join(_pair(from_node, to_node))}: only the two ends of a "
                "pair hold its key")
    expected = signature(secret, method=method, path=path, from_node=from_node, to_node=to_node, date=date,
                         body=body)
    if not hmac.compare_digest(expected, given.strip().lower()):
        return "the signature does not match (another pair's key, or the request was changed)"
    return from_node, to_node


class HttpLink:
    """The node ``node``'s link to the other nodes' processes (``peers``: node → base URL)."""

    def __init__(self, node: str, peers: Mapping[str, str], secret: PairKeys | bytes, *, held: tuple[str, ...] = (),
                 timeout: float = 10.0, connect_timeout: float = 2.0) -> None:
        self.node = node
        self.peers = dict(peers)
        self.held = held or (node,)
        self._secret = secret
        self._connect_timeout = connect_timeout
        self._client = httpx.Client(timeout=httpx.Timeout(timeout, connect=connect_timeout))

    def deliver(self, from_node: str, message: Mapping[str, Any]) -> dict[str, Any]:
        to_node = message["to_node"]
        answer = self._post(to_node, MESSAGES, {"from_node": from_node, "message": dict(message)},
                            from_node=from_node, timeout=MESSAGE_TIMEOUTS.get(message["kind"]))
        log.info("message %s (%s) delivered to %s: %s", message["idempotency_key"], message["kind"], to_node,
                 "applied" if answer.get("applied") else "applied before")
        return answer

    def ask(self, node: str, question: str, params: Mapping[str, Any]) -> Any:
        return self._post(node, QUESTIONS, {"question": question, "params": dict(params)})["answer"]

    def act(self, node: str, act: str, params: Mapping[str, Any]) -> Any:
        return self._post(node, ACTS, {"act": act, "params": dict(params)}, timeout=ACT_TIMEOUT)["answer"]

    def route(self, node: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """A routed exchange (``sbcard.services.exchange.routed``) to ``node``'s process: the hub, or, from the
        hub's process, the answering region's. Its reply (``{"answer", "before"}`` or ``{"refused"}``).

        Not reached (no connection, or an error answer): ``PeerUnavailable``, nothing done there. Reached but
        no answer in time, or a broken one, or the hub's 504 ``exchange.in_doubt``: ``ExchangeInDoubt`` — it
        may have been done. The hub waits for a region less long (``ANSWER_TIMEOUT``) than a region waits for
        the hub (``ROUTE_TIMEOUT``), so the hub's own verdict reaches the asker first."""
        base = self.peers.get(node)
        if base is None:
            raise NodeElsewhere(node, self.held)
        body = json.dumps(dict(request), ensure_ascii=False, sort_keys=True).encode()
        headers = signed_headers(self._secret, method="POST", path=ROUTED, from_node=self.node, to_node=node,
                                 body=body)
        wait = ANSWER_TIMEOUT if self.node == HUB else ROUTE_TIMEOUT
        try:
            response = self._client.post(base + ROUTED, content=body, headers=headers,
                                         timeout=httpx.Timeout(wait, connect=self._connect_timeout))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol) as exc:
            raise PeerUnavailable(node, f"{type(exc).__name__} at {base}") from None
        except httpx.HTTPError as exc:  # sent, and the answer did not come back
            log.warning("no answer from %s to a routed %s (%s): in doubt", node, request.get("kind"),
                        type(exc).__name__)
            raise ExchangeInDoubt(node, f"{type(exc).__name__} after {wait:g} s at {base}") from None
        try:
            reply = response.json()
        except ValueError:
            reply = None
        error = reply.get("error") if isinstance(reply, dict) else None
        if response.status_code == 200 and isinstance(reply, dict) and error is None:
            return reply
        if isinstance(error, dict) and error.get("code") == IN_DOUBT:
            raise ExchangeInDoubt(node, str(error.get("message", "")))
        if response.status_code >= 500 and response.status_code != 503:  # failed midway, perhaps after the work
            raise ExchangeInDoubt(node, f"HTTP {response.status_code}")
        why = (f"HTTP {response.status_code} {error.get('code')}: {error.get('message')}" if isinstance(error, dict)
               else f"HTTP {response.status_code}")
        log.warning("node %s answered %s to a routed %s", node, why, request.get("kind"))
        raise PeerUnavailable(node, why)

    def _post(self, to_node: str, path: str, payload: Mapping[str, Any], *, from_node: str | None = None,
              timeout: float | None = None) -> Any:
        base = self.peers.get(to_node)
        if base is None:
            raise NodeElsewhere(to_node, self.held)  # no --peer for it: this process cannot reach it at all
        sender = from_node or self.node
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
        headers = signed_headers(self._secret, method="POST", path=path, from_node=sender, to_node=to_node,
                                 body=body)
        try:
            extra = {} if timeout is None else {"timeout": httpx.Timeout(timeout, connect=self._connect_timeout)}
            response = self._client.post(base + path, content=body, headers=headers, **extra)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:  # it never got there
            raise PeerUnavailable(to_node, f"{type(exc).__name__} at {base}") from None
        except httpx.HTTPError as exc:  # sent, and no answer: the receiver may have applied it, or still may
            raise PeerUnavailable(to_node, f"{type(exc).__name__} at {base}", in_doubt=True) from None
        if response.status_code != 200:
            error: Any = None
            try:
                error = response.json()["error"]
                why = f"HTTP {response.status_code} {error['code']}: {error['message']}"
            except (ValueError, KeyError, TypeError):
                why = f"HTTP {response.status_code}"
            if 400 <= response.status_code < 500 and response.status_code not in NOT_REFUSALS and why != (
                    f"HTTP {response.status_code}"):
                log.warning("node %s refused %s %s: %s", to_node, sender, path, why)
                raise PeerRefused(to_node, response.status_code, str(error["code"]), str(error["message"]),
                                  error.get("field"))
            log.warning("node %s answered %s to %s %s", to_node, why, sender, path)
            raise PeerUnavailable(to_node, why)
        try:
            return response.json()
        except ValueError:
            raise PeerUnavailable(to_node, "an answer that is not JSON") from None

    def close(self) -> None:
        self._client.close()


class Courier:
    """Delivers the pending messages every ``interval`` seconds in a thread, until ``stop``.

    ``deliver`` is one round (it takes the process's write lock and its thread's world);
    an error is logged and the next round tries again: the messages stay pending meanwhile.
    """

    def __init__(self, deliver: Callable[[], int], interval: float) -> None:
        self._deliver = deliver
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sbcard-courier", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                delivered = self._deliver()
            except Exception as exc:  # noqa: BLE001 - a round that failed is tried again at the next
                log.warning("delivering pending messages failed: %s: %s", type(exc).__name__, exc)
                continue
            if delivered:
                log.info("delivered %d pending message(s)", delivered)

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
