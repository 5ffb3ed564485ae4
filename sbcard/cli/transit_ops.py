"""Validator taps and the terminal's offline log.

Registered onto the ``transit`` group by ``register``.
"""

from __future__ import annotations

import click


def register(transit: click.Group) -> None:
    """Add this module's commands to the ``transit`` group."""
