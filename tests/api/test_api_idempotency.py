"""What an Idempotency-Key promises: the first answer, refusals included; nothing to learn from the database."""

from __future__ import annotations

import hashlib
import hmac

from api_cards_world import API, BANK, LIU, PIN, active_card, key, ok, refused

from sbcard.store.world import open_world


def _open_card(clerk) -> str:  # type: ignore[no-untyped-def]
    ok(clerk.post(f"{API}/outlets/BJ-110105-01/stock/receive", json={"count": 1}, headers=key()), 201)
    return active_card(clerk, LIU, "刘建国", outlet="BJ-110105-01")


def test_a_refused_withdrawal_retried_later_stays_refused(signed_in):
    clerk = signed_in("BJ-C2")
    card = _open_card(clerk)
    retry = key()
    first = refused(clerk.post(f"{API}/accounts/{card}/withdraw", json={"amount_fen": 1_000, "outlet": BANK},
                               headers=retry), 409)
    ok(clerk.post(f"{API}/accounts/{card}/deposit", json={"amount_fen": 5_000, "outlet": BANK}, headers=key()))
    again = clerk.post(f"{API}/accounts/{card}/withdraw", json={"amount_fen": 1_000, "outlet": BANK}, headers=retry)
    assert again.status_code == 409 and again.json()["error"] == first
    assert again.headers["Idempotent-Replayed"] == "true"
    assert ok(clerk.get(f"{API}/accounts/{card}"))["balance_fen"] == 5_000  # the late "yes" never happened


def test_the_pin_cannot_be_found_again_from_the_kept_request(live_server, signed_in):
    clerk = signed_in("BJ-C2")
    _open_card(clerk)  # activated with PIN over POST /cards/{n}/activate, with a key
    with open_world(live_server.home) as world:
        rows = list(world.region("bj").query(
            "SELECT key, request_hash FROM idempotency_keys WHERE caller = 'staff:BJ-C2'"))
    hashes = {row["request_hash"] for row in rows}
    assert hashes
    # guessing the PIN with a plain digest of the body finds nothing: the digests are keyed
    for guess in ("000000", PIN, "123456"):
        body = f'{{"pin":"{guess}"}}'.encode()
        digest = hashlib.sha256(body).hexdigest()
        for path_hash in hashes:
            assert not any(hmac.compare_digest(path_hash, hashlib.sha256(f"{m}\n{digest}".encode()).hexdigest())
                           for m in ("", "POST"))
    key_file = (live_server.home / "service.key").stat()
    assert oct(key_file.st_mode & 0o777) == "0o600"
