"""What the services answer with (``--json``): a row's columns, under their own names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def columns(row: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """``{name: row[name]}`` for each of ``names``, in their order (the answers' keys are stable)."""
    return {name: row[name] for name in names}
