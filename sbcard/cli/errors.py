"""How every error reaches a person or a script: one line on stderr, or one JSON object under ``--json``.

sbcard's own errors (``SbcardError``) and click's usage errors (a missing option, a bad
choice, a command that does not exist) look the same: ``error: <field>: <reason>``, exit
2 for bad input. Anything unexpected is one line naming the exception's class, exit 3:
a traceback helps nobody at a counter. ``SBCARD_DEBUG=1`` lets the traceback through for
developers. Errors are red and refusals yellow when stderr is a terminal; click leaves
the colour out when it is piped or captured.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

try:
    from click.exceptions import NoArgsIsHelpError
except ImportError:  # click < 8.2 printed the help itself
    class NoArgsIsHelpError(click.UsageError):  # type: ignore[no-redef]
        pass

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT

DEBUG_ENV = "SBCARD_DEBUG"

# the code an error carries when it has no code of its own, by exit code
_CODE_OF_EXIT = {EXIT_REFUSED: "refused", EXIT_USAGE: "usage.invalid", EXIT_INTERNAL: "internal.error"}


def debugging() -> bool:
    """``SBCARD_DEBUG`` set to anything but empty or 0: unexpected errors show their traceback."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def report(message: str, exit_code: int, *, as_json: bool, code: str | None = None,
           field: str | None = None) -> None:
    """Write one error to stderr: ``error: [field: ]message`` (coloured on a terminal) or a JSON object."""
    message = _one_line(message)
    if as_json:
        error = {"code": code or _CODE_OF_EXIT.get(exit_code, "internal.error"), "field": field, "message": message}
        click.echo(json.dumps({"error": error}, ensure_ascii=False), err=True, color=False)
        return
    line = f"error: {field}: {message}" if field else f"error: {message}"
    click.secho(line, err=True, fg="yellow" if exit_code == EXIT_REFUSED else "red")


def _one_line(text: str) -> str:
    """Messages may quote what was typed: keep them to one printable line whatever it held."""
    text = " ".join(str(text).splitlines()) or "(no message)"
    text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def wants_json(args: Sequence[str]) -> bool:
    """``--json`` anywhere among the words before ``--`` (global or per command).

    Used when click refuses the command line itself, before any option was processed.
    """
    for word in args:
        if word == "--":
            return False
        if word == "--json":
            return True
    return False


# ----------------------------------------------------------------------------- click's usage errors


def describe_click_error(exc: click.ClickException) -> tuple[str, str | None, str]:
    """(code, field, reason) of one of click's errors, from its class and attributes."""
    if isinstance(exc, click.MissingParameter):
        param = exc.param
        kind = exc.param_type or (param.param_type_name if param else "parameter")
        field = _param_field(exc.ctx, param) if param else None
        if kind == "argument":
            return "usage.missing_argument", field, "required argument missing"
        return f"usage.missing_{kind}", field, f"required {kind} missing"
    if isinstance(exc, click.BadParameter):
        field = _param_field(exc.ctx, exc.param) if exc.param else exc.param_hint
        if isinstance(field, (list, tuple)):
            field = " / ".join(field)
        kind = getattr(exc.param, "type", None)
        kind = getattr(kind, "inner", kind)  # behind sbcard.cli.params.Checked
        code = "usage.bad_choice" if isinstance(kind, click.Choice) else "usage.bad_value"
        return getattr(exc, "sbcard_code", None) or code, field, exc.message
    if isinstance(exc, click.NoSuchOption):
        reason = "no such option"
        if exc.possibilities:
            reason += f" (did you mean {', '.join(sorted(exc.possibilities))}?)"
        return "usage.no_such_option", exc.option_name, reason
    if isinstance(exc, click.BadOptionUsage):
        return "usage.bad_option", exc.option_name, exc.message
    if isinstance(exc, click.BadArgumentUsage):
        return "usage.bad_argument", None, exc.message
    if isinstance(exc, click.UsageError):
        if exc.message.startswith("No such command"):
            return "usage.no_such_command", "COMMAND", exc.message.rstrip(".").replace("No such command", "no such command")
        if isinstance(exc, NoArgsIsHelpError) or exc.message.startswith("Missing command"):
            return "usage.missing_command", "COMMAND", "missing command"
        if exc.message.startswith("Got unexpected extra argument"):
            return "usage.extra_argument", None, "unexpected extra argument" + exc.message.partition("argument")[2]
        return "usage.invalid", None, exc.message
    if isinstance(exc, click.FileError):
        return "file.unreadable", exc.ui_filename, exc.message
    return "usage.invalid", None, exc.format_message()


def _param_field(ctx: click.Context | None, param: click.Parameter) -> str:
    """How the user names a parameter: its longest option (``--amount``) or its metavar (``CARD``)."""
    if isinstance(param, click.Option) and param.opts:
        return max(param.opts, key=len)
    if ctx is not None:
        return param.make_metavar(ctx) if _takes_ctx(param) else param.make_metavar()  # type: ignore[call-arg]
    return (param.name or "ARGUMENT").upper()


def _takes_ctx(param: click.Parameter) -> bool:
    import inspect

    return "ctx" in inspect.signature(param.make_metavar).parameters


def _hint(exc: click.ClickException) -> str:
    ctx = getattr(exc, "ctx", None)
    if ctx is None or not isinstance(exc, click.UsageError):
        return ""
    return f" (see '{ctx.command_path} --help')"


class SbcardGroup(click.Group):
    """The root group: every way a command can end becomes one line (or JSON) on stderr and an exit code."""

    _checked = False

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        words = list(sys.argv[1:] if args is None else args)
        as_json = wants_json(words)
        if not self._checked:
            from sbcard.cli.params import check_all_text

            check_all_text(self)  # every command's text, wherever it was added: see sbcard.cli.params
            self._checked = True
        try:
            result = super().main(words, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            if isinstance(exc, NoArgsIsHelpError) and not as_json:
                exc.show()  # a group typed alone: its help is the answer (on stderr, exit 2, as click does)
                sys.exit(EXIT_USAGE)
            code, field, reason = describe_click_error(exc)
            exit_code = EXIT_USAGE if isinstance(exc, (click.UsageError, click.FileError)) else exc.exit_code
            report(reason + ("" if as_json else _hint(exc)), exit_code, as_json=as_json, code=code, field=field)
            sys.exit(exit_code)
        except click.Abort as exc:
            if isinstance(exc.__cause__, KeyboardInterrupt):
                report("interrupted", EXIT_INTERRUPTED, as_json=as_json, code="interrupted")
                sys.exit(EXIT_INTERRUPTED)
            # click.prompt met the end of stdin (or Ctrl-C) before an answer: a value that was not given
            report("no answer to a prompt (stdin closed or Ctrl-C): give the value as an option", EXIT_USAGE,
                   as_json=as_json, code="usage.no_input", field="stdin")
            sys.exit(EXIT_USAGE)
        except BrokenPipeError:
            sys.exit(EXIT_REFUSED)  # the reader of our output went away: nothing left to tell
        except Exception as exc:  # noqa: BLE001 — the last line of defence against a traceback
            if debugging():
                raise
            internal(exc, as_json=as_json)
        sys.exit(result if isinstance(result, int) else EXIT_OK)


def internal(exc: BaseException, *, as_json: bool) -> NoReturn:
    """An error nobody foresaw: its class and message on one line, exit 3; the traceback under ``SBCARD_DEBUG=1``."""
    name = type(exc).__name__
    report(f"{name}: {exc} (an internal error; set {DEBUG_ENV}=1 to see the traceback)", EXIT_INTERNAL,
           as_json=as_json, code=f"internal.{name}", field=None)
    sys.exit(EXIT_INTERNAL)
