"""The small world the in-process benchmarks share: cards issued through the CLI in three regions.

``build_world(home, cards, ...)``: a seeded world whose ``cards`` people (spread over the
three regions' ``REGIONS`` districts) each applied, were issued a card on a blank of the
counter outlet's stock and activated it, all through ``sbcard`` commands as staff would
run them; optionally with cash paid into their accounts at the bank outlet.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from click.testing import CliRunner  # noqa: E402

from sbcard.clock import BEIJING, FixedClock  # noqa: E402
from sbcard.domain.citizen_id import compute_check_char  # noqa: E402
from sbcard.services.outlets import operators, stock
from sbcard.services.people import registry  # noqa: E402
from sbcard.store.world import init_world, open_world  # noqa: E402
from terminals.emulator.blank import create_blank  # noqa: E402

PIN = "147258"
START = dt.datetime(2025, 3, 3, 8, 0, tzinfo=BEIJING)
# node → (district, counter outlet, bank outlet)
REGIONS = {"bj": ("110105", "BJ-110105-01", "BJ-110105-02"), "tj": ("120103", "TJ-120103-01", "TJ-120103-02"),
           "he": ("130102", "HE-130102-01", "HE-130108-01")}


def build_world(home: Path, cards: int, *, insurance: Callable[[int], str] = lambda _i: "resident",
                deposit_yuan: str | None = None) -> list[dict[str, Any]]:
    """The people with their cards (``node``, ``citizen_id``, ``insurance``, ``path``, ``card_number``)."""
    init_world(home, FixedClock(START), rng_seed=2025)
    people: list[dict[str, Any]] = []
    with open_world(home) as world:
        for node, (district, outlet, _) in REGIONS.items():
            db = world.region(node)
            operators.add_operator(db, code=f"{node.upper()}-BENCH", name="王芳", role="counter", region=district,
                                   now=START)
            mine = [i for i in range(cards) if list(REGIONS)[i % 3] == node]
            for i in mine:
                first17 = f"{district}1980{i // 28 % 12 + 1:02d}{i % 28 + 1:02d}{i % 1000:03d}"
                citizen_id = first17 + compute_check_char(first17)
                kind = insurance(i)
                registry.add_person(db, citizen_id=citizen_id, name=f"测试{i}", region=district, insurance=kind,
                                    now=START)
                people.append({"node": node, "citizen_id": citizen_id, "insurance": kind})
            made = stock.receive_stock(db, outlet=outlet, count=len(mine), operator=f"{node.upper()}-BENCH",
                                       now=START, cards_dir=world.paths.cards_dir, make_blank=create_blank)
            blanks = iter(made["paths"])
            for p in people:
                if p["node"] == node and "path" not in p:
                    p["path"] = Path(next(blanks))
    runner = CliRunner()
    for p in people:
        _, outlet, bank = REGIONS[p["node"]]
        staff = f"{p['node'].upper()}-BENCH"
        applied = run_cli(runner, home, "card", "apply", "--citizen-id", p["citizen_id"], "--outlet", outlet,
                          "--operator", staff)
        issued = run_cli(runner, home, "card", "issue", applied["application_id"], "--reader",
                         f"emulator:{p['path']}", "--operator", staff)
        p["card_number"] = issued["card_number"]
        run_cli(runner, home, "card", "activate", p["card_number"], "--pin", PIN, "--operator", staff)
        if deposit_yuan is not None:
            run_cli(runner, home, "account", "deposit", p["card_number"], "--amount", deposit_yuan, "--operator",
                    staff, "--outlet", bank)
    return people


def run_cli(runner: CliRunner, home: Path, *args: str) -> dict[str, Any]:
    """``sbcard --home HOME … --json`` in process: its JSON, or the benchmark stops with the command's error."""
    from sbcard.cli.main import cli

    result = runner.invoke(cli, ["--home", str(home), *args, "--json"], catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(f"sbcard {' '.join(args)} failed: {result.stderr.strip()}")
    return json.loads(result.stdout)
