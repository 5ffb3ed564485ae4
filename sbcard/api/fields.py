"""The use cases name the command line's options in their errors (``--citizen-id``, ``CARD``);
over HTTP an error names the field of the body, query or path the caller sent instead.

``body_fields`` wraps a route's call of a use case and renames the field of any error it
raises: first by the route's own names, then ``--some-option`` → ``some_option``, and the
CLI's positional arguments by the names the routes give them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sbcard.api.errors import ApiError
from sbcard.domain.errors import SbcardError

# The CLI's positional arguments, as the routes name them.
POSITIONAL: dict[str, str] = {
    "CARD": "card_number",
    "CARD_OR_CITIZEN_ID": "card_or_citizen_id",
    "CITIZEN_ID": "citizen_id",
    "APPLICATION_ID": "application_id",
    "CODE": "code",
    "CHIP_SERIAL": "chip_serial",
}


def body_field(field: str | None, names: dict[str, str] | None = None) -> str | None:
    if field is None:
        return None
    if names and field in names:
        return names[field]
    if field in POSITIONAL:
        return POSITIONAL[field]
    if field.startswith("--"):
        return field[2:].replace("-", "_")
    return field


@contextmanager
def body_fields(**names: str) -> Iterator[None]:
    """Errors raised in the block name the request's fields; ``names``: option → field (``pin="new_pin"``
    renames ``--pin``; a keyword names the option without its dashes, positional ones by their CLI name)."""
    mapping = {(key if key.isupper() else "--" + key.replace("_", "-")): value for key, value in names.items()}
    try:
        yield
    except ApiError:
        raise
    except SbcardError as error:
        error.field = body_field(error.field, mapping)
        raise
