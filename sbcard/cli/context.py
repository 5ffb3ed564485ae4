"""What every command shares: the world's home, the clock, JSON mode, error mapping."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import click

from sbcard.chip.reader import CardIOError, NoCard, ReaderError
from sbcard.chip.sw import CardStatus
from sbcard.clock import Clock, SystemClock
from sbcard.domain.errors import SbcardError

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


@attrs.define
class AppContext:
    home: Path
    json: bool = False
    clock: Clock = attrs.field(factory=SystemClock)


def default_home() -> Path:
    return Path(os.environ.get("SBCARD_HOME") or "./sbcard-world")


def fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Map the project's errors to one line on stderr and the exit codes of DESIGN.md."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SbcardError as exc:
            fail(str(exc), exc.exit_code)
        except NoCard as exc:
            fail(f"reader: {exc or 'no card in the reader'}", EXIT_REFUSED)
        except ReaderError as exc:
            fail(f"reader: {exc}", EXIT_INTERNAL)
        except CardIOError as exc:
            fail(f"card: {exc} (tap the card again)", EXIT_INTERNAL)
        except CardStatus as exc:
            fail(f"card refused: {exc}", EXIT_REFUSED)
        except OSError as exc:
            fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), EXIT_INTERNAL)

    return wrapper


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
