"""The message faults the simulator injects (``outbox.delivery_faults``): lost, then delivered; twice, applied once."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sbcard.clock import BEIJING, FixedClock
from sbcard.services.exchange import outbox
from sbcard.services.exchange import directory as hub_directory
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import init_world, open_world

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=BEIJING)


def _enqueue(world, n: int) -> None:
    with UnitOfWork(world.region("tj")) as uow:
        for i in range(n):
            outbox.enqueue(uow.db, to_node="hub", kind="blacklist.add", key=f"blacklist.add/T000000{i}X/1",
                           payload={"card_number": f"T000000{i}X", "reason": "test"}, now=NOW)
        uow.commit()


def test_lost_messages_wait_in_order_and_twice_is_once(tmp_path: Path) -> None:
    home = tmp_path / "world"
    init_world(home, FixedClock(NOW), rng_seed=1)
    with open_world(home) as world:
        _enqueue(world, 3)
        def lose_the_second(node: str, message) -> str:
            return "lose" if message["idempotency_key"].startswith("blacklist.add/T0000001") else "deliver"

        with outbox.delivery_faults(lose_the_second):
            assert outbox.deliver_pending(world, NOW) == 1  # the first; the second is lost, the third waits behind it
        assert [m["idempotency_key"] for m in outbox.pending(world.region("tj"))] == [
            "blacklist.add/T0000001X/1", "blacklist.add/T0000002X/1"]
        assert hub_directory.blacklist_version(world.hub()) == 1

        with outbox.delivery_faults(lambda node, message: "twice"):
            assert outbox.deliver_pending(world, NOW) == 2
        assert outbox.pending(world.region("tj")) == []
        assert hub_directory.blacklist_version(world.hub()) == 3  # each message published once
        keys = [r[0] for r in world.hub().execute("SELECT idempotency_key FROM messages ORDER BY idempotency_key")]
        assert keys == [f"blacklist.add/T000000{i}X/1" for i in range(3)]
        assert outbox.deliver_pending(world, NOW) == 0  # outside a simulation: the ordinary delivery
