"""``sbcard clearing run`` killed for real (SIGKILL) at every commit point, before and after it, in a
child process; then run again: the day is cleared exactly once — the same lines, ledgers, settlement
and files as an uninterrupted run, no line twice, no purchase lost — and a third run changes nothing.

The children are ``tests/clearing/kill_at_commit.py`` (the ``sbcard`` command with a kill hook at the
N-th database commit, ``SBCARD_TEST_KILL_AT_COMMIT``), as ``subsidy pay``'s campaign kills its children
at its commit points. The world: purchases of a Beijing and a Tianjin card in the Beijing
metro, Tianjin's uploaded while Tianjin was out of reach (so the run routes them first), one forged.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import pytest
from clearing_helpers import NIGHT, loaded, set_link, taps  # noqa: F401
from purse_world import NOW, clock, purse_template, purse_world  # noqa: F401

from sbcard.store.db import open_db
from sbcard.store.world import NODES, REGION_NODES, WorldPaths

CHILD = Path(__file__).with_name("kill_at_commit.py")
ROOT = Path(__file__).resolve().parents[2]
DATE = NOW.date().isoformat()


@pytest.fixture
def base(loaded, tmp_path) -> Path:  # noqa: F811
    """The world before the day's clearing (a copy each case starts from)."""
    forged = attrs.evolve(taps(loaded, "liu", [900], first_serial=9)[0], tac="00000000")
    records = (taps(loaded, "chen", [500, 600]) + taps(loaded, "liu", [300, 400], first_serial=3) + [forged]
               + taps(loaded, "chen", [250], first_serial=5, start=NOW + dt.timedelta(hours=3)))
    set_link(loaded, "tj", up=False)
    assert loaded.upload(records, now=NOW).awaiting == 3  # Tianjin's card's: they wait for their issuer
    set_link(loaded, "tj", up=True)
    keep = tmp_path / "base"
    shutil.copytree(loaded.home, keep)
    return keep


def clearing_run(home: Path, kill: str | None = None, count: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SBCARD_")}
    env["SBCARD_TEST_NOW"] = NIGHT.isoformat()
    if kill:
        env["SBCARD_TEST_KILL_AT_COMMIT"] = kill
    if count:
        env["SBCARD_TEST_COUNT_COMMITS"] = str(count)
    return subprocess.run([sys.executable, str(CHILD), "--home", str(home), "clearing", "run", "--date", DATE,
                           "--json"], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)


def fresh(base: Path, tmp_path: Path, name: str) -> Path:
    home = tmp_path / name
    shutil.copytree(base, home)
    return home


def rows(db, sql: str) -> list[tuple]:
    return [tuple(r) for r in db.execute(sql).fetchall()]


def state(home: Path) -> dict[str, Any]:
    """What a clearing leaves, without the times it was done at."""
    out: dict[str, Any] = {}
    line = "day, kind, payer_node, payee_node, party, count, amount_fen, flagged, refunds"
    for node in NODES:
        db = open_db(WorldPaths(home).db(node))
        try:
            if node in REGION_NODES:
                out[node] = {
                    "ledger": rows(db, "SELECT txn_id, account_no, amount_fen, kind FROM ledger_entries "
                                       "ORDER BY txn_id, account_no, amount_fen"),
                    "lines": rows(db, f"SELECT {line}, txn_id, sent_at IS NOT NULL FROM clearing_lines "
                                      "ORDER BY rowid"),
                    "purchases": rows(db, "SELECT app_serial, counter, terminal_serial, status, clearing_day "
                                          "FROM purse_purchases ORDER BY app_serial, counter, terminal_serial"),
                    "records": rows(db, "SELECT app_serial, counter, terminal_serial, status FROM transit_records "
                                        "ORDER BY app_serial, counter, terminal_serial"),
                    "runs": rows(db, "SELECT day, summary FROM clearing_runs ORDER BY day"),
                    "inbox": rows(db, "SELECT idempotency_key, result FROM inbox ORDER BY idempotency_key"),
                }
            else:
                out[node] = {
                    "lines": rows(db, f"SELECT {line}, delivered_at IS NOT NULL FROM clearing_lines ORDER BY rowid"),
                    "messages": rows(db, "SELECT idempotency_key, kind, payload, result FROM messages "
                                         "ORDER BY idempotency_key"),
                    "settlements": rows(db, "SELECT day, matrix, net, parties FROM settlements"),
                }
        finally:
            db.close()
    folder = home / "settlement" / DATE
    out["files"] = {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.is_dir() \
        else {}
    return out


def assert_balanced(home: Path) -> None:
    """After any kill: every region's ledger sums to zero, transaction by transaction."""
    for node in REGION_NODES:
        db = open_db(WorldPaths(home).db(node))
        try:
            assert db.execute("SELECT coalesce(sum(amount_fen), 0) FROM ledger_entries").fetchone()[0] == 0, node
            assert rows(db, "SELECT txn_id FROM ledger_entries GROUP BY txn_id HAVING sum(amount_fen) != 0") == []
        finally:
            db.close()


def answer(result: subprocess.CompletedProcess) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)
    done.pop("message")
    return done


def test_clearing_run_killed_at_every_commit_point_then_run_again_clears_the_day_exactly_once(base, tmp_path):
    reference_home = fresh(base, tmp_path, "reference")
    count = tmp_path / "commits"
    reference = answer(clearing_run(reference_home, count=count))
    commits = int(count.read_text())
    assert commits >= 8  # routing, the regions, lines to the hub and back, a delivery, the settlement
    assert reference["routed"] == {"bj": {"tj": 3}}
    expected = state(reference_home)
    assert sum(line[6] for line in expected["hub"]["lines"]) == 500 + 600 + 300 + 400 + 250  # no forged fen
    again = clearing_run(reference_home)
    assert answer(again)["changed"] is False

    for n in range(1, commits + 1):
        for moment in ("before", "after"):
            home = fresh(base, tmp_path, f"{moment}-{n}")
            killed = clearing_run(home, kill=f"{moment}:{n}")
            assert killed.returncode == -signal.SIGKILL, (moment, n, killed.stderr)
            assert_balanced(home)
            done = answer(clearing_run(home))
            if (moment, n) != ("after", commits):  # killed after its last commit: the day was recorded
                assert done["changed"] is True, (moment, n)
            assert done["settlement"] == reference["settlement"], (moment, n)
            assert state(home) == expected, (moment, n)
            shutil.rmtree(home)  # (a third run changes nothing: shown on the reference above)
