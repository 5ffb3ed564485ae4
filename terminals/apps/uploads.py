"""A terminal's side of its online moments: its log to the operator's host, the hub's lists into it.

Written once, for every entry point that drives terminals (``sbcard transit upload``,
``sbcard terminal sync`` and ``terminal add``, the simulator's night):

- **Upload** (``upload_unsent`` = ``send`` + ``mark_sent``): the records not yet sent
  (``TerminalState.unsent()``: ``PurseRecord`` values, the one record type), MACed as one
  batch by the terminal's PSAM (a PSAM made before upload keys is given its key by the host
  first, once), to the operator's host; then the terminal records them sent, with the
  host's counts. The two steps are public for a caller that must stand between them (the
  simulator's fault "crashed before marking them sent": the same records go again).
- **Lists** (``sync_lists`` = fetch + ``install_lists`` + report): the hub's blacklist
  and the concessions it revoked, copied into the terminal (which refuses and blocks a
  listed card offline), and the version the terminal now holds reported to its region's
  register. ``install_lists`` alone is what a terminal being made gets (``terminal add``:
  the register writes its version with the terminal's row).

The terminal reaches the hosts only through ports (``.importlinter``: ``terminals`` imports
the rules and the chip, never the store or the services): ``TransitHostPort`` and
``ListsPort`` below, which the hosts' adapter implements
(``sbcard.services.transit.terminal_host.TerminalHost``, over a world). The composition —
which state, which adapter — is the entry point's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any, Protocol

import attrs

from sbcard.chip.purse_record import PurseRecord
from terminals.apps.terminal_state import TerminalState
from terminals.psam import psam_upload_key

RESULT_KEYS = ("sent", "accepted", "duplicates", "rejected", "flagged", "awaiting")  # kept with the upload


# ----------------------------------------------------------------------------- ports


class UploadAnswer(Protocol):
    """What the operator's host answers an upload (``sbcard.services.transit.host.UploadResult``)."""

    batch: str
    sent: int
    accepted: int
    duplicates: int
    rejected: int
    flagged: int
    awaiting: int

    def to_dict(self) -> dict[str, Any]:
        """The answer with its records' verdicts, as ``sbcard transit upload --json`` prints it."""
        ...


class UploadKeyValue(Protocol):
    """An upload key as the host hands it over (``algorithm``, ``key``)."""

    algorithm: Any
    key: bytes


class TransitHostPort(Protocol):
    """The operator's host, as a terminal uploading its log reaches it."""

    def upload_key(self, terminal_id: str) -> UploadKeyValue:
        """The terminal's upload key, for a PSAM made before upload keys (loaded once)."""
        ...

    def upload(self, terminal_id: str, records: Sequence[PurseRecord], *, mac: str,
               now: dt.datetime) -> UploadAnswer:
        """Take the terminal's records (``mac``: its PSAM's over them, in this order)."""
        ...


class Lists(Protocol):
    """The hub's lists as a terminal copies them (``sbcard.services.terminals.register.BlacklistCopy``)."""

    version: int
    published_at: str | None
    cards: Collection[str]
    revoked_concessions: Collection[tuple[str, str]]


class ListsPort(Protocol):
    """The hub and the terminal's register, as a terminal syncing its lists reaches them."""

    def lists(self) -> Lists:
        """The hub's blacklist and revoked concessions as of its latest version."""
        ...

    def synced(self, terminal_id: str, *, version: int, now: dt.datetime) -> None:
        """The terminal now holds ``version`` (its register row notes it)."""
        ...


# ----------------------------------------------------------------------------- uploads


@attrs.frozen
class Sent:
    """A batch the host took: the records, in order, and its answer."""

    records: Sequence[PurseRecord]
    answer: UploadAnswer

    @property
    def result(self) -> dict[str, int]:
        """The host's counts, as the terminal keeps them with the upload."""
        return {k: getattr(self.answer, k) for k in RESULT_KEYS}


def send(state: TerminalState, host: TransitHostPort, terminal_id: str, records: Sequence[PurseRecord], *,
         now: dt.datetime) -> Sent:
    """``records`` of the terminal's log (``state.unsent()``) to the host as one batch, MACed by its PSAM.

    ``terminal_id``: the terminal as the host knows the one sending (the caller's, as a
    connection's would be), never what the terminal's files say of themselves: a log copied
    from another terminal is then refused whole, its MAC not this terminal's.
    """
    if state.upload_key() is None:  # a PSAM made before upload keys gets its key first (once)
        state.load_upload_key(psam_upload_key(host.upload_key(terminal_id)))
    mac = state.sign_batch(records)  # the PSAM's MAC over the batch: the host believes no less
    return Sent(records, host.upload(terminal_id, records, mac=mac, now=now))


def mark_sent(state: TerminalState, sent: Sent, *, now: dt.datetime) -> None:
    """Record in the terminal that the batch's records went to the host (nothing for an empty batch)."""
    records = sent.records
    if records:
        state.mark_uploaded(sent.answer.batch, records[0].seq, records[-1].seq, len(records), now.isoformat(),
                            sent.result)


def upload_unsent(state: TerminalState, host: TransitHostPort, terminal_id: str, *, now: dt.datetime) -> Sent:
    """The terminal's unsent records to the host, then marked sent (``sbcard transit upload``).

    An empty log is sent too: the host records the (empty) upload and answers it.
    """
    sent = send(state, host, terminal_id, state.unsent(), now=now)
    mark_sent(state, sent, now=now)
    return sent


# ----------------------------------------------------------------------------- lists


@attrs.frozen
class Synced:
    """A terminal's lists before and after a sync."""

    previous_version: int
    lists: Lists


def install_lists(state: TerminalState, lists: Lists, *, synced_at: str) -> int:
    """Copy the hub's ``lists`` into the terminal; returns the version it held before."""
    return state.replace_blacklist(lists.version, lists.cards, published_at=lists.published_at, synced_at=synced_at,
                                   revoked_concessions=lists.revoked_concessions)


def sync_lists(state: TerminalState, hub: ListsPort, terminal_id: str, *, now: dt.datetime,
               lists: Lists | None = None, if_changed: bool = False) -> Synced | None:
    """The hub's lists into the terminal, and the version it now holds reported (``sbcard terminal sync``).

    ``terminal_id``: the terminal as its register knows it (as for ``send``). ``lists``:
    already fetched (one fetch for many terminals); ``if_changed``: a terminal that already
    holds that version is left as it is (None).
    """
    lists = hub.lists() if lists is None else lists
    if if_changed and state.blacklist_version == lists.version:
        return None
    previous = install_lists(state, lists, synced_at=now.isoformat())
    hub.synced(terminal_id, version=lists.version, now=now)
    return Synced(previous, lists)
