"""An upload batch as the terminal's PSAM MACs it and the operator's host checks it.

A terminal sends its offline log to its operator's host in batches. The host believes a
batch only if it left the terminal's PSAM as it is: the terminal gives the PSAM the
batch's digest, the PSAM answers BATCH MAC under its upload key, and the host
recomputes the MAC from the operator region's upload master and the terminal number.

- **Canonical record.** ``record_line`` writes one record's fields (``RECORD_FIELDS``, then
  its details in the log's order) as one line of Python literals (``repr``: strings quoted
  and escaped, so no content can pass for a field boundary), the values as the one record
  type holds them (``sbcard.chip.purse_record.PurseRecord.batch_line``): the terminal and
  the host get the same bytes from the same record, and a reordering is a change like any
  other. (``repr``, one C call per part, rather than sorted JSON: a
  fraction of the cost per record.)
- **Digest.** ``batch_digest``: SM3 of the lines in the batch's order (32 bytes). One hash
  over the batch, and one MAC: a 300,000-record night costs one line per record.
- **MAC.** ``batch_mac_input(terminal_no, count, digest)`` is what the PSAM MACs:
  terminal number (6) ‖ record count (4) ‖ digest (32); ``cbc_mac`` under the terminal's
  upload key, 8 bytes (``MAC_LEN``). The key: ``upload_key`` = ``diversify(UMK master,
  terminal number)``, as a card's keys are diversified by its serial.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sbcard.chip.crypto import Algorithm, cbc_mac, diversify, sm3

MAC_LEN = 8
DIGEST_LEN = 32
TERMINAL_NO_LEN = 6
INPUT_LEN = TERMINAL_NO_LEN + 4 + DIGEST_LEN  # what BATCH MAC takes: 42 bytes
MAX_RECORDS = 0xFFFFFFFF

# The fields a record is believed by, in the line's order (``sbcard.chip.purse_record.PurseRecord``'s names).
RECORD_FIELDS = ("app_serial", "txn_type", "counter", "terminal_no", "terminal_serial", "amount_fen",
                 "balance_before_fen", "date_time", "tac", "issuer_id", "issuer_node", "card_number", "terminal",
                 "operator", "blacklist_version", "status")


def record_line(values: tuple[Any, ...], details: Mapping[str, Any] | None) -> str:
    """One record's canonical line: ``values`` (a tuple in ``RECORD_FIELDS`` order), then the details."""
    if not details:
        return f"{values!r}\n"
    if type(details) is not dict:  # another mapping's repr is not a dict's
        details = dict(details)
    return f"{values!r}{details!r}\n"


def batch_digest(lines: Iterable[str]) -> bytes:
    """SM3 over the batch's canonical lines, in the batch's order."""
    return sm3("".join(lines).encode())


def batch_mac_input(terminal_no: bytes, count: int, digest: bytes) -> bytes:
    if len(terminal_no) != TERMINAL_NO_LEN:
        raise ValueError(f"a terminal number has {TERMINAL_NO_LEN} bytes")
    if len(digest) != DIGEST_LEN:
        raise ValueError(f"a batch digest has {DIGEST_LEN} bytes")
    if not 0 <= count <= MAX_RECORDS:
        raise ValueError(f"a batch of {count} records")
    return bytes(terminal_no) + count.to_bytes(4, "big") + bytes(digest)


def upload_key(alg: Algorithm, master: bytes, terminal_no: bytes) -> bytes:
    """The terminal's upload key, diversified from its operator region's upload master (UMK)."""
    return diversify(alg, master, terminal_no)


def batch_mac(alg: Algorithm, key: bytes, data: bytes) -> bytes:
    """The MAC of ``batch_mac_input`` under a terminal's upload key (what BATCH MAC answers)."""
    return cbc_mac(alg, key, data, MAC_LEN)
