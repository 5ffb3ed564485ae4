"""The card's life after issuance: loss, unblock, replacement, cancellation, PIN.

Registered onto the ``card`` group by ``register``.
"""

from __future__ import annotations

import click


def register(card: click.Group) -> None:
    """Add this module's commands to the ``card`` group."""
