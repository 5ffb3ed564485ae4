"""The fields errors name, as an API client knows them.

The use cases name the command line's options and arguments in their errors (``--date``,
``BATCH``, ``CLAIM_ID``); over HTTP the same field is the body's, query's or path's
parameter (``date``, ``batch``, ``claim_id``). ``api_fields`` renames them on the way out of a route.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from sbcard.domain.errors import SbcardError

F = TypeVar("F", bound=Callable[..., Any])


def api_field(field: str | None) -> str | None:
    """``--date`` → ``date``, ``CLAIM_ID`` → ``claim_id``; other names as they are."""
    if not field:
        return field
    if field.startswith("--") or field.isupper():
        return field.lstrip("-").lower().replace("-", "_")
    return field


def renamed(exc: SbcardError) -> SbcardError:
    exc.field = api_field(exc.field)
    return exc


def api_fields(fn: F) -> F:
    """A route whose use cases' errors name the API's fields (the route's signature unchanged for FastAPI)."""

    @functools.wraps(fn)
    def route(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SbcardError as exc:
            renamed(exc)
            raise

    return route  # type: ignore[return-value]
