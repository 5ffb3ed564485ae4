"""``--operator`` on a staff act: required, and never blank.

An act a member of staff does (registering a person, running an import, paying a
subsidy batch, taking out the list of a batch's unpaid rows) is recorded with who did
it; without ``--operator`` it used to be recorded as "system" silently. Missing or blank,
it is a usage error (exit 2) naming ``--operator``, before anything is opened.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def _not_blank(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("the operator is empty or blank: give the code of the member of staff doing it")
    return value.strip() if value is not None else None


def staff_operator_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The required ``--operator CODE`` of a staff act (who is recorded as doing it)."""
    return click.option("--operator", required=True, metavar="CODE", callback=_not_blank, help=help)
