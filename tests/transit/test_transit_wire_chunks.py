"""Records sent over HTTP go in chunks bounded by bytes as well as by count: a node's request is at most 4 MiB,
and a record's ``details`` (the terminal's ``extra``) has no fixed size — a chunk of 5,000 large records was a
413 every time it was sent, so those records never reached their issuer."""

from __future__ import annotations

import json

from sbcard.chip.purse_record import PurseRecord
from sbcard.services.transit import host


def _record(i: int, extra_bytes: int = 0) -> PurseRecord:
    return PurseRecord(app_serial=f"{i:020d}", txn_type=6, counter=i, terminal_no="0000000000A1", terminal_serial=i,
                       amount_fen=300, balance_before_fen=10000, date_time="20250301080000", tac="AABBCCDD",
                       extra={"note": "x" * extra_bytes} if extra_bytes else None)


def _wire_bytes(chunk) -> int:
    return len(json.dumps(host._records_to_wire({"records": chunk, "operators": {}}), ensure_ascii=False).encode())


def test_large_records_make_smaller_chunks_each_under_the_bound_in_order_and_the_same_every_time():
    group = [_record(i, extra_bytes=2000) for i in range(5000)]  # ~10 MB: one count-sized chunk was over 4 MiB
    chunks = host._wire_chunks(group)
    assert len(chunks) > 1
    assert [r for chunk in chunks for r in chunk] == group
    assert all(_wire_bytes(chunk) <= host.WIRE_BYTES + 1024 for chunk in chunks)
    assert max(_wire_bytes(chunk) for chunk in chunks) < 4 * 1024 * 1024
    assert [len(c) for c in host._wire_chunks(group)] == [len(c) for c in chunks]  # a retry's keys are the same


def test_small_records_still_go_by_the_count():
    group = [_record(i) for i in range(12_001)]
    assert [len(c) for c in host._wire_chunks(group)] == [host.WIRE_CHUNK, host.WIRE_CHUNK, 2001]
    assert host._wire_chunks([]) == []
