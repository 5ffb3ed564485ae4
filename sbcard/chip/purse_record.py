"""One purchase on a card's purse, as a terminal logs it and an operator's host receives it.

``PurseRecord`` is the one terminal→host record: the validator (and a venue's gate, on the
same ``PurseTerminal``) makes it at the end of a purchase, the terminal's offline log keeps
it, the upload carries it, and the hosts (``sbcard.services.transit.host``) read it. Its
fields, by who believes them:

- **what the host believes** (``HOST_FIELDS``, in the upload batch's canonical line, see
  ``sbcard.chip.upload_batch``): the card's application serial, the transaction type,
  the card's offline counter, the terminal's number and serial, amount, balance before,
  the date-time sent to the card, the TAC, the card's issuer, card number, terminal,
  operator, the terminal's blacklist version at the tap, and the terminal's status;
- **the terminal's own** (``TERMINAL_FIELDS``): the issuer's region code, the tap's time,
  the card's MAC2, how a torn purchase was recovered, and the kind of tap;
- ``extra``: what the terminal application adds (the fare's rule and provenance, stations,
  a venue's visit…), a JSON object, kept as the application wrote it.

**The log's JSON form** (``to_log`` / ``from_log``): one JSON object, one key per field
under the field's name, then ``extra``'s keys, and ``seq`` (the record's place in the
terminal's log) first when it has one — what ``TerminalState.records()`` and ``sbcard
transit log --json`` give. One encoding per field: ``txn_type`` a number (6, 9), hex
fields (``terminal_no``, ``tac``, ``mac2``, ``issuer_id``) upper case, ``date_time`` the 14
digits YYYYMMDDhhmmss sent to the card, ``at`` ISO 8601 with its offset, money in fen.
The terminal's database stores the same form: a column per field (``LOG_COLUMNS``) and
``extra`` as JSON with sorted keys (``log_row`` / ``from_log_row``), so the logs on disk
written before this type are read as they are. A dict in any other form (``txn_type`` as hex
digits, numbers as strings, lower-case hex) is refused, not guessed at.

**The host's view** (``details``): the terminal's own fields and ``extra``, without the
empty ones, in the log's order — what the upload batch's line carries after the believed
fields and what the host keeps beside them (``transit_records.details``).
``from_host(values, details)`` rebuilds a record from that view (a host's table).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from sbcard.chip import upload_batch

HOST_FIELDS = upload_batch.RECORD_FIELDS  # the believed fields, in the batch line's order
TERMINAL_FIELDS = ("issuer_region", "at", "mac2", "recovered", "kind")  # in the log's column order
# The terminal log's columns (``records`` of terminal.db), in their order; ``extra`` is the ``details`` column.
LOG_COLUMNS = ("app_serial", "txn_type", "counter", "card_number", "issuer_id", "issuer_region", "issuer_node",
               "amount_fen", "balance_before_fen", "terminal", "operator", "terminal_no", "terminal_serial",
               "date_time", "at", "tac", "mac2", "status", "recovered", "kind", "blacklist_version")
STATUSES = ("ok", "mac2_failed")  # the terminal's: the card's MAC2 verified, or not
_FIELDS = frozenset(LOG_COLUMNS) | {"seq"}  # a log object's keys that are not ``extra``'s
_HEX2 = [f"{i:02X}" for i in range(256)]
_EXTRA_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True)  # ``extra`` as the log's column holds it


@attrs.frozen(slots=True)
class PurseRecord:
    """One purchase from a terminal's offline log (the module doc says who believes which field)."""

    app_serial: str  # 20 digits
    txn_type: int  # 0x06 EP purchase, 0x09 compound (capp) purchase
    counter: int  # the card's offline counter for this purchase (INITIALIZE's)
    terminal_no: str  # 12 hex digits
    terminal_serial: int
    amount_fen: int
    balance_before_fen: int
    date_time: str  # 14 digits YYYYMMDDhhmmss: the BCD date-time sent to the card
    tac: str | None  # 8 hex digits; None if the terminal never got one
    issuer_id: str | None = None  # 16 hex digits: BCD region code ‖ 0000000000 (EF 0015)
    issuer_node: str | None = None
    card_number: str | None = None
    terminal: str | None = None
    operator: str | None = None
    blacklist_version: int | None = None  # the terminal's list at the tap
    status: str = "ok"  # the terminal's: ok | mac2_failed
    # --- the terminal's own
    issuer_region: str | None = None  # the issuer id's region code (6 digits)
    at: str | None = None  # the tap's time, ISO 8601 with its offset
    mac2: str | None = None  # 8 hex digits, the card's answer the PSAM checked
    recovered: str | None = None  # prove | log: completed after a tear
    kind: str | None = None  # ride | entry | exit
    extra: Mapping[str, Any] | None = None  # the application's: fare rule, stations, a venue's visit…
    seq: int | None = attrs.field(default=None, eq=False)  # its place in the terminal's log, once logged
    key: tuple[str, str, int, str, int] = attrs.field(init=False, eq=False, repr=False)
    """(app serial, type as 2 hex digits, counter, terminal no, terminal serial): the record's identity."""

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.txn_type <= 0xFF:
            raise ValueError(f"transaction type {self.txn_type!r} is not one byte")
        object.__setattr__(self, "key", (self.app_serial, _HEX2[self.txn_type], self.counter, self.terminal_no,
                                         self.terminal_serial))

    @functools.cached_property
    def details(self) -> Mapping[str, Any] | None:
        """The host's view of what is not believed: the terminal's own fields and ``extra``, none empty
        (worked out when first asked: a tap that only logs the record never needs it)."""
        details = {name: value for name, value in zip(TERMINAL_FIELDS, (self.issuer_region, self.at, self.mac2,
                                                                        self.recovered, self.kind))
                   if value is not None}
        if self.extra:
            for name, value in self.extra.items():
                if value is not None:
                    details[name] = value
        return details or None

    # --- the log's JSON form --------------------------------------------------------------

    @classmethod
    def from_log(cls, record: Mapping[str, Any]) -> PurseRecord:
        """From the log's JSON form (``to_log``; ``TerminalState.records()``): the keys named as the
        fields, the others ``extra``. ``ValueError`` for a field not in its one encoding."""
        txn_type = record["txn_type"]
        if type(txn_type) is not int:
            raise ValueError(f"txn_type {txn_type!r}: a number in the log's form (hex digits are the old "
                             "form, which is refused)")
        extra = {k: v for k, v in record.items() if k not in _FIELDS}
        get = record.get
        # positionally, in the fields' order (a tap makes one: keywords cost more)
        return cls(record["app_serial"], txn_type, record["counter"], record["terminal_no"], record["terminal_serial"],
                   record["amount_fen"], record["balance_before_fen"], record["date_time"], get("tac") or None,
                   get("issuer_id"), get("issuer_node"), get("card_number"), get("terminal"), get("operator"),
                   get("blacklist_version"), get("status") or "ok", get("issuer_region"), get("at"), get("mac2"),
                   get("recovered"), get("kind"), extra or None, get("seq"))

    def to_log(self) -> dict[str, Any]:
        """The log's JSON form: ``seq`` (if logged), every column under its name, then ``extra``."""
        out: dict[str, Any] = {} if self.seq is None else {"seq": self.seq}
        out.update(zip(LOG_COLUMNS, self.log_row()[:-1]))
        if self.extra:
            out.update(self.extra)
        return out

    def log_row(self) -> tuple[Any, ...]:
        """The terminal database's row: ``LOG_COLUMNS``' values, then ``extra`` as JSON (sorted keys)."""
        return (self.app_serial, self.txn_type, self.counter, self.card_number, self.issuer_id, self.issuer_region,
                self.issuer_node, self.amount_fen, self.balance_before_fen, self.terminal, self.operator,
                self.terminal_no, self.terminal_serial, self.date_time, self.at, self.tac, self.mac2, self.status,
                self.recovered, self.kind, self.blacklist_version, _EXTRA_JSON.encode(_as_dict(self.extra)))

    @classmethod
    def from_log_row(cls, seq: int, row: Sequence[Any], extra: str | None) -> PurseRecord:
        """From the terminal database's row (``log_row``'s columns) at ``seq``."""
        (app_serial, txn_type, counter, card_number, issuer_id, issuer_region, issuer_node, amount_fen,
         balance_before_fen, terminal, operator, terminal_no, terminal_serial, date_time, at, tac, mac2, status,
         recovered, kind, blacklist_version) = row
        return cls(app_serial, txn_type, counter, terminal_no, terminal_serial, amount_fen, balance_before_fen,
                   date_time, tac or None, issuer_id, issuer_node, card_number, terminal, operator, blacklist_version,
                   status or "ok", issuer_region, at, mac2, recovered, kind, (json.loads(extra) if extra else None)
                   or None, seq)

    # --- the host's view ------------------------------------------------------------------

    def host_values(self) -> tuple[Any, ...]:
        """The believed fields' values, in ``HOST_FIELDS`` order."""
        return (self.app_serial, self.txn_type, self.counter, self.terminal_no, self.terminal_serial, self.amount_fen,
                self.balance_before_fen, self.date_time, self.tac, self.issuer_id, self.issuer_node, self.card_number,
                self.terminal, self.operator, self.blacklist_version, self.status)

    @classmethod
    def from_host(cls, values: Sequence[Any], details: Mapping[str, Any] | None) -> PurseRecord:
        """From the believed fields' values (``HOST_FIELDS`` order) and the host's ``details``."""
        rest = dict(details or {})
        own = [rest.pop(name, None) for name in TERMINAL_FIELDS]
        return cls(*values, *own, rest or None)

    def batch_line(self) -> str:
        """The record's canonical line in an upload batch's digest (``sbcard.chip.upload_batch``)."""
        return upload_batch.record_line(self.host_values(), self.details)


def _as_dict(extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """``extra`` as the JSON encoder takes it (a dict; most already are)."""
    return extra if type(extra) is dict else dict(extra or {})


def batch_digest(records: Sequence[PurseRecord]) -> bytes:
    """The digest a terminal's PSAM MACs for these records, in this order (``upload_batch.batch_digest``)."""
    return upload_batch.batch_digest(r.batch_line() for r in records)
