"""``sbcard terminal …``: transit validators and other terminals, their PSAM and lists."""

from __future__ import annotations

import click


@click.group()
def terminal() -> None:
    """Terminals: add, list, sync (blacklist version and keys from the hub)."""
