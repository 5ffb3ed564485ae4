"""Anti-tearing: a command's persistent writes land together or not at all.

A handler stages each change with ``write(container, key, value)`` — one persistent
write, e.g. the purse record, one log record, the prove — and ``commit()`` applies the
staged writes to the card's image and saves it (one more persistent write, the commit
record of a real card's journal). Until the commit nothing is visible, so a command
that fails half-way (a status word raised after a ``write``) leaves the card as it was:
``discard()`` drops what was staged.

Fault injection counts persistent writes since power-on. Cutting power:

- at a journal write: the staged changes are lost; the image is exactly the old one;
- at the commit write: the image is saved with every change (the card finished its
  commit), but the terminal gets no response.

Either way ``CardTorn`` is raised and the card is out of the field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from terminals.emulator.image import CardState

_MISSING = object()


class CardTorn(Exception):
    """Power was cut during a command: no response; the card left the reader."""


class Journal:
    def __init__(self, state: CardState, save: Callable[[CardState], None], tear_at_write: int | None = None) -> None:
        self._state = state
        self._save = save
        self._tear_at = tear_at_write
        self._staged: list[tuple[Any, Any, Any]] = []
        self.writes = 0  # persistent writes since power-on

    def power_on(self) -> None:
        self._staged.clear()
        self.writes = 0

    @property
    def pending(self) -> bool:
        return bool(self._staged)

    def write(self, container: Any, key: Any, value: Any) -> None:
        """Stage ``container[key] = value`` (a dict) or ``container.key = value`` (a record)."""
        if self._count():
            self._staged.clear()
            raise CardTorn(f"power cut at persistent write {self.writes} (journal): the command's changes are lost")
        self._staged.append((container, key, value))

    def commit(self) -> None:
        """Apply the staged writes and save the image; a no-op when nothing is staged."""
        if not self._staged:
            return
        torn = self._count()
        undo = [_apply(container, key, value) for container, key, value in self._staged]
        self._staged.clear()
        try:
            self._save(self._state)
        except BaseException:
            for container, key, old in reversed(undo):
                _apply(container, key, old)
            raise
        if torn:
            raise CardTorn(f"power cut at persistent write {self.writes} (commit): the changes are kept, no response")

    def discard(self) -> None:
        self._staged.clear()

    def _count(self) -> bool:
        """Count one persistent write; True if the power is cut at this one."""
        self.writes += 1
        return self.writes == self._tear_at


def _apply(container: Any, key: Any, value: Any) -> tuple[Any, Any, Any]:
    """Set one value and return the write that undoes it."""
    if isinstance(container, dict):
        old = container.get(key, _MISSING)
        if value is _MISSING:
            del container[key]
        else:
            container[key] = value
    else:
        old = getattr(container, key)
        setattr(container, key, value)
    return container, key, old
