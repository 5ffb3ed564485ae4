"""terminals.apps.uploads: the terminal's side of an upload and of a lists sync, through its ports."""

from __future__ import annotations

import datetime as dt

import attrs
import pytest
from test_terminal_state import CONFIG, KEYS, _record

from sbcard.chip.crypto import Algorithm
from sbcard.clock import BEIJING
from terminals.apps import uploads
from terminals.apps.terminal_state import TerminalState

NOW = dt.datetime(2025, 3, 1, 22, 0, tzinfo=BEIJING)


@attrs.frozen
class Answer:
    batch: str
    sent: int
    accepted: int
    duplicates: int = 0
    rejected: int = 0
    flagged: int = 0
    awaiting: int = 0


@attrs.frozen
class Key:
    algorithm: Algorithm
    key: bytes


@attrs.frozen
class Lists:
    version: int
    published_at: str | None
    cards: frozenset[str]
    revoked_concessions: frozenset[tuple[str, str]]


class FakeHost:
    """Both ports, recording what the terminal sent."""

    def __init__(self) -> None:
        self.uploads: list[tuple[str, list, str]] = []
        self.synced_to: list[tuple[str, int]] = []
        self.current = Lists(5, "2025-03-01T20:00:00+08:00", frozenset({"B00000019"}),
                             frozenset({("T00000027", "student")}))

    def upload_key(self, terminal_id: str) -> Key:
        return Key(Algorithm.SM4, bytes(range(16)))

    def upload(self, terminal_id, records, *, mac, now):
        self.uploads.append((terminal_id, list(records), mac))
        return Answer(f"BJ-UP-{len(self.uploads):010d}", len(records), len(records))

    def lists(self) -> Lists:
        return self.current

    def synced(self, terminal_id, *, version, now) -> None:
        self.synced_to.append((terminal_id, version))


@pytest.fixture
def state(tmp_path):
    with TerminalState.create(tmp_path / "t", CONFIG, KEYS) as s:  # made before upload keys: the host gives it
        yield s


def test_the_unsent_records_go_as_one_batch_then_are_marked_sent(state):
    host = FakeHost()
    with state.transaction():
        for counter in range(3):
            state.append_record(_record(counter))
    sent = uploads.upload_unsent(state, host, "bj-subway-0007", now=NOW)
    [(terminal, records, mac)] = host.uploads
    assert terminal == "bj-subway-0007" and [r.counter for r in records] == [0, 1, 2] and len(mac) == 16
    assert state.upload_key() is not None  # loaded once, from the host
    assert mac == state.sign_batch(records)
    assert state.unsent_count() == 0
    assert state.uploads()[0] == {"batch": "BJ-UP-0000000001", "first_seq": 1, "last_seq": 3, "count": 3,
                                  "at": NOW.isoformat(), "result": sent.result}
    again = uploads.upload_unsent(state, host, "bj-subway-0007", now=NOW)  # nothing new: sent empty, not marked
    assert again.records == [] and len(state.uploads()) == 1


def test_a_batch_sent_but_not_marked_goes_again(state):
    host = FakeHost()
    with state.transaction():
        state.append_record(_record(0))
    uploads.send(state, host, "bj-subway-0007", state.unsent(), now=NOW)  # the terminal died before marking
    sent = uploads.upload_unsent(state, host, "bj-subway-0007", now=NOW)
    assert [len(u[1]) for u in host.uploads] == [1, 1] and host.uploads[0][2] == host.uploads[1][2]
    assert sent.answer.batch == "BJ-UP-0000000002" and state.unsent_count() == 0


def test_the_lists_are_installed_and_the_version_reported(state):
    host = FakeHost()
    synced = uploads.sync_lists(state, host, "bj-subway-0007", now=NOW)
    assert synced is not None and (synced.previous_version, synced.lists.version) == (0, 5)
    assert state.blacklist_version == 5 and state.blacklisted("B00000019")
    assert state.concession_revoked("T00000027", "student") and state.synced_at == NOW.isoformat()
    assert host.synced_to == [("bj-subway-0007", 5)]
    assert uploads.sync_lists(state, host, "bj-subway-0007", now=NOW, if_changed=True) is None  # already held
    assert host.synced_to == [("bj-subway-0007", 5)]
