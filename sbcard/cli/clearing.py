"""Placeholder: being written (issue 7)."""

import click


@click.group("clearing")
def clearing() -> None:
    """(being written)"""


@click.group("settlement")
def settlement() -> None:
    """(being written)"""
