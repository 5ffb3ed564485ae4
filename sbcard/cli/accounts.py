"""``sbcard account …``."""

from __future__ import annotations

import click


@click.group()
def account() -> None:
    """The card's financial account (金融账户): deposits, withdrawals, entries."""
