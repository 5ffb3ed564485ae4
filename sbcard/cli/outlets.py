"""``sbcard outlet …``."""

from __future__ import annotations

import click


@click.group()
def outlet() -> None:
    """Service outlets and their blank card stock."""
