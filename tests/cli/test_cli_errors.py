"""Every error is one line on stderr naming the field — click's usage errors as sbcard's own — or, with
``--json``, one JSON object ``{"error": {"code", "field", "message"}}``; never a traceback."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from world_template import home, template_home  # noqa: F401  (fixtures)

import sbcard.cli.ids as ids_cli
from sbcard.cli.main import cli as root

RED, YELLOW = "\x1b[31m", "\x1b[33m"

DEPOSIT = ("account", "deposit", "T00000018", "--operator", "tj-op", "--outlet", "TJ-120103-51")


def run(home, *args: str, color: bool = False, env: dict[str, str] | None = None):
    result = CliRunner().invoke(root, ["--home", str(home), *args], color=color, env=env)
    return result


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("nosuch",), "error: COMMAND: no such command 'nosuch'"),
        (("account", "deposit"), "error: CARD: required argument missing"),
        (("account", "deposit", "T00000018", "--amount", "1"), "error: --operator: required option missing"),
        (("card", "applications", "--status", "lost"), "error: --status: 'lost' is not one of"),
        (("outlet", "stock", "receive", "TJ-120103-01", "--operator", "x", "--count", "ten"),
         "error: --count: 'ten' is not a whole number"),
        (("account", "show", "T00000018", "--colour"), "error: --colour: no such option"),
        (("account", "show", "T00000018", "extra"), "error: unexpected extra argument (extra)"),
        (("--json",), "error: COMMAND: missing command"),
        (("subsidy", "reverse", "B1", "0"), "error: SEQ: 0 is out of range: at least 1"),
        (("subsidy", "reverse", "B1", "99999999999999999999"),
         "error: SEQ: 99999999999999999999 is out of range: at most 9,223,372,036,854,775,807"),
    ],
)
def test_click_usage_errors_are_one_line_naming_the_field_exit_2(home, args, line):
    result = run(home, *args)
    assert result.exit_code == 2, result.stderr
    if args == ("--json",):
        assert json.loads(result.stderr)["error"]["code"] == "usage.missing_command"
        return
    assert result.stderr.startswith(line) and result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "code", "field"),
    [
        (("--json", "account", "deposit", "T00000018", "--amount", "1"), "usage.missing_option", "--operator"),
        (("account", "deposit", "T00000018", "--amount", "1", "--json"), "usage.missing_option", "--operator"),
        (("--json", "card", "applications", "--status", "lost"), "usage.bad_choice", "--status"),
        (("--json", "subsidy", "reverse", "B", "99999999999999999999", "--operator", "o", "--reason", "r"),
         "usage.bad_value", "SEQ"),
        (("--json", "nosuch"), "usage.no_such_command", "COMMAND"),
        (("--json", "account", "show", "T00000018", "--colour"), "usage.no_such_option", "--colour"),
        (("--json", *DEPOSIT, "--amount", "1,000"), "amount.format", "--amount"),
        (("--json", *DEPOSIT, "--amount", "99999999999999999999"), "amount.too_large", "--amount"),
        ((*DEPOSIT, "--amount", "5", "--json"), "card.unknown", "CARD"),
    ],
)
def test_with_json_an_error_is_a_json_object_on_stderr(home, args, code, field):
    result = run(home, *args)
    assert result.exit_code == 2 and result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert set(error) == {"code", "field", "message"}
    assert (error["code"], error["field"]) == (code, field) and error["message"], error


def test_a_deposit_past_64_bits_is_refused_as_bad_input(home):
    result = run(home, *DEPOSIT, "--amount", "92233720368547758.08")
    assert result.exit_code == 2 and result.stderr.startswith("error: --amount: ") and result.stderr.count("\n") == 1


def _explode(*_args, **_kwargs):
    raise ZeroDivisionError("division by zero")


def test_an_unexpected_exception_is_one_line_naming_its_class_exit_3(home, monkeypatch):
    monkeypatch.setattr(ids_cli, "identify", _explode)
    result = run(home, "ids", "check", "120104")
    assert result.exit_code == 3 and result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr == ("error: ZeroDivisionError: division by zero (an internal error; set SBCARD_DEBUG=1 "
                             "to see the traceback)\n")
    result = run(home, "--json", "ids", "check", "120104")
    assert result.exit_code == 3
    assert json.loads(result.stderr)["error"]["code"] == "internal.ZeroDivisionError"


def test_sbcard_debug_lets_the_traceback_through(home, monkeypatch):
    monkeypatch.setattr(ids_cli, "identify", _explode)
    result = run(home, "ids", "check", "120104", env={"SBCARD_DEBUG": "1"})
    assert isinstance(result.exception, ZeroDivisionError)


@pytest.mark.parametrize(
    ("args", "exit_code", "colour"),
    [
        (("card", "applications", "--status", "lost"), 2, RED),
        (("account", "deposit", "T00000018", "--amount", "1", "--operator", "tj-op", "--outlet", "TJ-120103-51"),
         2, RED),
        (("card", "report-lost", "T00000018", "--operator", "nobody"), 2, RED),
    ],
)
def test_errors_are_red_on_a_terminal_and_plain_when_piped(home, args, exit_code, colour):
    on_terminal = run(home, *args, color=True)
    assert on_terminal.exit_code == exit_code
    assert on_terminal.stderr.startswith(colour + "error: ") and on_terminal.stderr.endswith("\x1b[0m\n")
    piped = run(home, *args, color=False)
    assert piped.stderr.startswith("error: ") and "\x1b[" not in piped.stderr


def test_refusals_are_yellow_on_a_terminal():
    from sbcard.cli.errors import EXIT_REFUSED, report

    runner = CliRunner()

    import click

    @click.command()
    def refuse() -> None:
        report("card T00000018 is reported lost", EXIT_REFUSED, as_json=False, field="CARD")

    assert runner.invoke(refuse, color=True).stderr == YELLOW + "error: CARD: card T00000018 is reported lost\x1b[0m\n"
    assert runner.invoke(refuse, color=False).stderr == "error: CARD: card T00000018 is reported lost\n"


def test_a_message_is_kept_to_one_line_whatever_was_typed(home):
    result = run(home, "card", "applications", "--status", "a\nb\x00c")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "\x00" not in result.stderr


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty value"), ("   ", "empty value"), ("188347080\x00", "control character U+0000"),
        ("18834\n7080", "control character U+000A"), ("\u202e080743881", "invisible formatting character U+202E"),
        ("188\u200b347080", "invisible formatting character U+200B"), ("188347080\udcff", "bytes that are not UTF-8"),
        ("1" * 1001, "1,001 characters, more than the 1,000"),
    ],
)
def test_a_value_that_cannot_have_been_meant_is_refused_before_any_rule(home, value, reason):
    result = run(home, "card", "show", value)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"error: CARD_OR_CITIZEN_ID: {reason}"), result.stderr


def test_a_file_that_is_no_card_in_the_reader_is_bad_input(home, tmp_path):
    junk = tmp_path / "junk.card"
    junk.write_bytes(bytes(range(256)) * 4)
    result = run(home, "reader", "read", "--reader", f"emulator:{junk}")
    assert result.exit_code == 2 and result.stderr.startswith("error: --reader: ") and "not a virtual card" in \
        result.stderr


def test_a_malformed_reader_spec_is_refused_before_the_venue_gate_is_installed(home):
    result = run(home, "venue", "enter", "--reader", "-1", "--venue", "BJ-MU-001")
    assert result.exit_code == 2 and result.stderr.startswith("error: --reader: ")
    assert not list((home / "terminals").iterdir())


def test_a_prompt_meeting_the_end_of_input_is_bad_input_not_aborted(home):
    result = CliRunner().invoke(root, ["--home", str(home), "card", "pin", "change", "T00000018"], input="")
    assert result.exit_code == 2
    assert result.stderr.endswith("error: stdin: no answer to a prompt (stdin closed or Ctrl-C): give the value as "
                                  "an option\n")


def test_a_group_typed_alone_still_shows_its_help(home):
    result = run(home, "card")
    assert result.exit_code == 2 and result.stderr.startswith("Usage: ") and "report-lost" in result.stderr


def test_a_file_that_is_no_card_at_a_venue_is_refused_before_the_gate_is_made(home, tmp_path):
    junk = tmp_path / "junk.card"
    junk.write_bytes(b"\x00" * 64)
    result = run(home, "venue", "enter", "--reader", f"emulator:{junk}", "--venue", "BJ-MU-001")
    assert result.exit_code == 2 and result.stderr.startswith("error: --reader: ")
    assert not list((home / "terminals").iterdir())


def test_a_name_too_long_for_a_file_is_bad_input(home):
    result = run(home, "transit", "log", "--terminal", "Ω" * 300)
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and "too long" in result.stderr
