"""``sbcard operator …``."""

from __future__ import annotations

import click


@click.group()
def operator() -> None:
    """Staff operators: who may act at a counter or in finance."""
