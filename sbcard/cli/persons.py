"""``sbcard person …``."""

from __future__ import annotations

import click


@click.group()
def person() -> None:
    """People in a region's registry: add, import, show."""
