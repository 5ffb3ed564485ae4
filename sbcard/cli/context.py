"""What every command shares: the world's home, the clock, JSON mode, error mapping."""

from __future__ import annotations

import errno
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import attrs
import click

from sbcard.chip.reader import CardIOError, NoCard, NotACard, ReaderError
from sbcard.chip.sw import CardStatus
from sbcard.cli.errors import EXIT_INTERNAL, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, report
from sbcard.clock import Clock, SystemClock
from sbcard.domain.errors import SbcardError

__all__ = ["EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE", "EXIT_INTERNAL", "AppContext", "fail", "handle_errors"]


@attrs.define
class AppContext:
    home: Path
    json: bool = False
    clock: Clock = attrs.field(factory=SystemClock)


def default_home() -> Path:
    return Path(os.environ.get("SBCARD_HOME") or "./sbcard-world")


def fail(message: str, code: int, *, error_code: str | None = None, field: str | None = None) -> NoReturn:
    """One line on stderr (a JSON object under ``--json``) and exit ``code``; see ``sbcard.cli.errors``."""
    report(message, code, as_json=_json_mode(), code=error_code, field=field)
    sys.exit(code)


def _json_mode() -> bool:
    ctx = click.get_current_context(silent=True)
    app = ctx.find_object(AppContext) if ctx is not None else None
    return bool(app and app.json)


# A path the user typed that is not what it should be is their input, not our I/O failing.
_BAD_PATH = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Map the project's errors to one line on stderr and the exit codes of DESIGN.md."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SbcardError as exc:
            fail(exc.message, exc.exit_code, error_code=exc.code, field=exc.field)
        except NoCard as exc:
            fail(f"{exc or 'no card in the reader'}", EXIT_REFUSED, error_code="reader.no_card", field="reader")
        except NotACard as exc:
            fail(str(exc), EXIT_USAGE, error_code="reader.not_a_card", field="--reader")
        except ReaderError as exc:
            fail(str(exc), EXIT_INTERNAL, error_code="reader.error", field="reader")
        except CardIOError as exc:
            fail(f"{exc} (tap the card again)", EXIT_INTERNAL, error_code="card.io", field="card")
        except CardStatus as exc:
            fail(f"refused: {exc}", EXIT_REFUSED, error_code="card.refused", field="card")
        except _BAD_PATH as exc:
            fail(f"{exc.strerror or exc}", EXIT_USAGE, error_code="path." + _path_code(exc),
                 field=str(exc.filename) if exc.filename else None)
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:  # a name typed too long for a file of the world
                fail(f"{exc.strerror}", EXIT_USAGE, error_code="path.too_long", field=None)
            fail(f"{exc.strerror or exc}", EXIT_INTERNAL, error_code="io.error",
                 field=str(exc.filename) if exc.filename else None)

    return wrapper


def _path_code(exc: OSError) -> str:
    return {FileNotFoundError: "not_found", IsADirectoryError: "is_a_directory", NotADirectoryError: "not_a_directory",
            PermissionError: "permission", FileExistsError: "exists"}.get(type(exc), "error")


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--json`` on a data command; the global ``sbcard --json`` works as well."""

    def callback(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        if value:
            ctx.find_object(AppContext).json = True
        return value

    return click.option(
        "--json", "json_flag", is_flag=True, expose_value=False, callback=callback, help="Print JSON with stable keys."
    )(fn)


pass_app = click.make_pass_decorator(AppContext)


def with_app(fn: Callable[..., Any]) -> Callable[..., Any]:
    """What a data command wears: ``--json``, the ``AppContext`` as first argument, errors mapped to exit codes.

    The same as ``@json_option @pass_app @handle_errors``, in that order.
    """
    return json_option(pass_app(handle_errors(fn)))
