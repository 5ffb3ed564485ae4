"""Fault points of the software card: where the simulator cuts its power.

``tear=N`` cuts power at the N-th persistent write since power-on, journal writes and
commit writes alike (docs/card-profile.md, "Anti-tearing and faults"). The simulator
draws N from its seeded source, so a torn run replays exactly.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

_OPTIONS = ("tear",)


def _positive_or_none(_instance: object, attribute: attrs.Attribute, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"fault option {attribute.name}: must be a positive write number, got {value!r}")


@attrs.frozen
class Faults:
    """Faults injected into one power-on session of a card; the default injects none."""

    tear_at_write: int | None = attrs.field(default=None, validator=_positive_or_none)

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Faults:
        """From options such as ``{"tear": "3"}`` (a URL query or a CLI flag).

        Unknown options and values that are not positive integers raise ``ValueError``
        naming the option, so a typo never silently runs a fault-free test.
        """
        unknown = sorted(set(query) - set(_OPTIONS))
        if unknown:
            raise ValueError(f"unknown fault option {unknown[0]!r} (known: {', '.join(_OPTIONS)})")
        tear = query.get("tear")
        if tear is None:
            return cls()
        text = tear.strip()
        if not text.isascii() or not text.isdigit() or int(text) < 1:
            raise ValueError(f"fault option 'tear': must be a positive write number, got {tear!r}")
        return cls(tear_at_write=int(text))
