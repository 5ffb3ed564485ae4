"""Valid citizen IDs to order, and rows read back for assertions."""

from __future__ import annotations

from sbcard.domain.citizen_id import compute_check_char


def citizen_id(region: str = "120103", born: str = "19900101", seq: int = 123) -> str:
    """A valid 18-character citizen ID (odd `seq` = a man, even = a woman)."""
    first17 = f"{region}{born}{seq:03d}"
    return first17 + compute_check_char(first17)


def rows(db, table: str) -> list[dict]:
    return list(db[table].rows)
