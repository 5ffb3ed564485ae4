"""The helpers every command's human output goes through (``sbcard.cli.output``): one money
format (the simulation report's), counts with separators, Beijing time to the second, region
names beside codes, and warnings and refusals that stand out on a terminal only."""

from __future__ import annotations

import datetime as dt

import click
import pytest
from click.testing import CliRunner

from sbcard.cli.output import alert, caution, fields, money, named_region, number, refusal, table, warn, when
from sbcard.clock import BEIJING
from sbcard.sim.report import yuan

UTC = dt.timezone.utc
ESC = "\x1b["


@pytest.mark.parametrize(("fen", "shown"), [
    (0, "¥0.00"),
    (5, "¥0.05"),
    (-5, "-¥0.05"),
    (1230, "¥12.30"),
    (99_999, "¥999.99"),
    (100_000, "¥1,000.00"),
    (-100_000, "-¥1,000.00"),
    (1_234_560, "¥12,345.60"),
    (123_456_789, "¥1,234,567.89"),
    (2**63 - 1, "¥92,233,720,368,547,758.07"),
    (None, "—"),
])
def test_money_is_the_reports_format(fen, shown):
    assert money(fen) == shown
    if fen is not None:
        assert money(fen) == yuan(fen)  # one format: the simulation report's


@pytest.mark.parametrize("bad", [12.3, True, "1230"])
def test_money_takes_only_int_fen(bad):
    with pytest.raises(TypeError):
        money(bad)


@pytest.mark.parametrize(("n", "shown"), [
    (0, "0"), (7, "7"), (999, "999"), (1000, "1,000"), (-1000, "-1,000"), (-999, "-999"),
    (1_234_567, "1,234,567"), (None, "—"),
])
def test_number_has_thousands_separators(n, shown):
    assert number(n) == shown


@pytest.mark.parametrize(("value", "shown"), [
    # aware, Beijing: microseconds dropped, no offset
    (dt.datetime(2025, 3, 1, 9, 30, 5, 987654, tzinfo=BEIJING), "2025-03-01 09:30:05"),
    # aware, UTC: converted; 16:30 UTC is half past midnight of the next day in Beijing
    (dt.datetime(2025, 3, 1, 16, 30, 0, tzinfo=UTC), "2025-03-02 00:30:00"),
    (dt.datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC), "2026-01-01 07:59:59"),
    # naive: the cards' and terminals' local time, Beijing already: shown as it is
    (dt.datetime(2025, 3, 1, 16, 30, 0, 1), "2025-03-01 16:30:00"),
    # ISO text as the services store it
    ("2025-03-01T09:30:00.123456+08:00", "2025-03-01 09:30:00"),
    ("2025-03-01T16:30:00+00:00", "2025-03-02 00:30:00"),
    ("2025-03-01T16:30:00Z", "2025-03-02 00:30:00"),
    ("2025-03-01T09:30:00", "2025-03-01 09:30:00"),
    ("2025-03-01 09:30", "2025-03-01 09:30:00"),
    # a date alone, or text that is not a time, is left alone
    ("2025-03-01", "2025-03-01"),
    (dt.date(2025, 3, 1), "2025-03-01"),
    ("soon", "soon"),
    ("not a time at all", "not a time at all"),
    (None, "—"),
    ("", "—"),
])
def test_when_is_beijing_time_to_the_second(value, shown):
    assert when(value) == shown


@pytest.mark.parametrize(("code", "shown"), [
    ("110105", "北京市朝阳区 (110105)"),
    ("110000", "北京市 (110000)"),
    ("120103", "天津市河西区 (120103)"),
    ("130102", "河北省石家庄市长安区 (130102)"),
    (" 120103 ", "天津市河西区 (120103)"),
    ("999999", "999999"),  # unknown: the code alone, never a guessed name
    ("110199", "110199"),
    ("12345", "12345"),
    (None, "—"),
    ("", "—"),
])
def test_named_region_puts_the_name_before_the_code(code, shown):
    assert named_region(code) == shown


# --------------------------------------------------------------------------- standing out


@click.command()
def _speaks() -> None:
    click.echo(table([("bj", alert("DOWN")), ("tj", "up")], ["node", "link"]))
    click.echo(caution("2 line(s) wait"))
    warn("TJ-120103-01 has 3 blanks left")
    refusal("refused: card blacklisted")


def _run(color: bool):
    return CliRunner().invoke(_speaks, [], color=color)


def test_on_a_terminal_warnings_and_refusals_are_coloured():
    result = _run(color=True)
    assert result.stderr == "\x1b[33mwarning: TJ-120103-01 has 3 blanks left\x1b[0m\n"
    assert "\x1b[31m\x1b[1mrefused: card blacklisted\x1b[0m" in result.stdout
    assert "\x1b[31m\x1b[1mDOWN\x1b[0m" in result.stdout and "\x1b[33m2 line(s) wait\x1b[0m" in result.stdout


def test_piped_nothing_is_coloured():
    result = _run(color=False)
    assert ESC not in result.stdout and ESC not in result.stderr
    assert result.stderr == "warning: TJ-120103-01 has 3 blanks left\n"
    assert result.stdout.splitlines() == ["node  link", "----  ----", "bj    DOWN", "tj    up", "2 line(s) wait",
                                          "refused: card blacklisted"]


def test_no_color_turns_colour_off_even_on_a_terminal(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    result = _run(color=True)
    assert ESC not in result.stdout and ESC not in result.stderr


def test_coloured_cells_keep_the_table_aligned():
    plain = table([("bj", "DOWN", "x"), ("tj", "up", "y")], ["node", "link", "note"])
    coloured = table([("bj", alert("DOWN"), "x"), ("tj", "up", "y")], ["node", "link", "note"])
    assert click.unstyle(coloured) == plain
    assert click.unstyle(fields([("link", alert("DOWN")), ("changed", "—")])) == fields([("link", "DOWN"),
                                                                                          ("changed", "—")])
