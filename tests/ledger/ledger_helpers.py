"""A registered person with an issued card, written straight into a region's tables."""

from __future__ import annotations

from sbcard.domain.citizen_id import compute_check_char
from sbcard.services.people.registry import add_person

AT = "2025-03-01T09:30:00+08:00"
REGION_OF = {"bj": "110105", "tj": "120103", "he": "130102"}


def citizen_id(region: str = "120103", born: str = "19900101", seq: int = 123) -> str:
    first17 = f"{region}{born}{seq:03d}"
    return first17 + compute_check_char(first17)


def card_holder(db, node: str, clock, *, card_number: str = "T00000018", seq: int = 123, status: str = "active"):
    """(citizen_id, card_number) of a new person with one card of `status`."""
    region = REGION_OF[node]
    cid = citizen_id(region, "19900101", seq)
    add_person(db, citizen_id=cid, name="张三", region=region, insurance="employee", now=clock.now())
    insert_card(db, card_number=card_number, citizen=cid, status=status)
    return cid, card_number


def insert_card(db, *, card_number: str, citizen: str, status: str = "active") -> None:
    db["applications"].insert({"id": f"A-{card_number}", "citizen_id": citizen, "outlet": "X",
                               "outlet_region": "120103", "channel": "instant", "kind": "first", "status": "issued",
                               "operator": "op", "card_number": card_number, "created_at": AT, "updated_at": AT})
    db["cards"].insert({"card_number": card_number, "card_id_code": card_number.ljust(32, "0"), "citizen_id": citizen,
                        "application_id": f"A-{card_number}", "chip_serial": card_number,
                        "app_serial": card_number.ljust(20, "0"), "status": status,
                        "loss_kind": "formal" if status == "lost" else None,
                        "issue_date": "2025-03-01", "expiry_date": "2035-03-01", "outlet": "X",
                        "created_at": AT, "updated_at": AT})
