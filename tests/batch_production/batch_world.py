"""The Tianjin people and staff of the batch production tests, and the batch they make."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sbcard.clock import BEIJING
from sbcard.services.cards import batch_production
from sbcard.store.world import open_world

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=BEIJING)
OUTLET = "TJ-120103-01"
CLERK = "TJ-C1"
OPERATORS = {CLERK: ("李娜", "counter", "120103", "tj")}

ZHANG = "120103198001011237"
PEOPLE: dict[str, dict[str, Any]] = {
    "zhang": {"citizen_id": ZHANG, "name": "张三", "region": "120103", "insurance": "employee"},
    "mother": {"citizen_id": "120103198505052243", "name": "陈静", "region": "120103", "insurance": "employee"},
    "old": {"citizen_id": "120104195203041234", "name": "欧阳建国", "region": "120104", "insurance": "employee",
            "retired": True},
    "child": {"citizen_id": "12010320150601004X", "name": "张小明", "region": "120103", "insurance": "resident",
              "guardian_id": ZHANG, "guardian_relation": "父亲"},
}
STRANGER = "110105199003072346"  # registered in Beijing, not in Tianjin


def request(who: str, pin: str = "147258", guardian: str | None = None) -> batch_production.Request:
    return batch_production.Request(PEOPLE[who]["citizen_id"], pin, guardian)


def produce(home: Path, requests: list[batch_production.Request], **options: Any) -> batch_production.BatchResult:
    """Run one batch at Tianjin's outlet through the factory machine (or ``produce_card``)."""
    from terminals.apps.factory import produce_card

    with open_world(home) as world:
        return batch_production.produce(world, outlet=OUTLET, requests=requests, operator=CLERK, now=NOW,
                                        cards_dir=world.paths.cards_dir,
                                        produce_card=options.pop("produce_card", produce_card), **options)
