"""``sbcard transit …``: fares, concessions, loads, taps, uploads (一卡通乘)."""

from __future__ import annotations

import click


@click.group()
def transit() -> None:
    """Transit: fare quotes, concessions, purse loads, validator taps and uploads."""
