"""docs/cli/ stays true to the command line (issue 17, item 6).

(a) Every command of ``sbcard`` (the click tree of ``sbcard.cli.main``) has a heading in
    docs/cli/ holding its exact path in backticks: ``### `sbcard card issue` ``, and each of
    its options is mentioned under that heading.
(b) The ``--json`` key lists there (the form is fixed in docs/cli/README.md) are those of the
    commands that take ``--json``, no more and no fewer; and for every command that can be run
    cheaply, the keys it prints in a small world equal the documented list. The world is made
    once for the module, through the command line alone, on a frozen clock; each command is
    run in the story below in an order that gives it something to print.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import pytest
from freezegun import freeze_time
from world_template import cli

from sbcard.cli.main import cli as sbcard_group
from sbcard.clock import BEIJING

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli"
NOW = datetime(2025, 3, 3, 9, 0, tzinfo=BEIJING)  # a Monday, 09:00 in Beijing
PIN = "135790"

# A heading naming a command: "## `sbcard card`" or "### `sbcard card issue`".
HEADING = re.compile(r"^#{1,6} .*?`(sbcard(?: [a-z][a-z-]*)*)`")
# "JSON keys: `a`, `b`" (one object) or "JSON items: `a`, `b`" (a list of such objects), with an
# optional variant in parentheses: "JSON keys (with --reader): …".
KEY_LINE = re.compile(r"^JSON (keys|items)(?: \(([^)]*)\))?: (.*)$")


# --------------------------------------------------------------------------- the command tree


def _commands(command: click.Command, path: tuple[str, ...]) -> Iterator[tuple[str, click.Command]]:
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _commands(sub, (*path, name))
    else:
        yield " ".join(path), command


COMMANDS = dict(_commands(sbcard_group, ("sbcard",)))
JSON_COMMANDS = {path for path, command in COMMANDS.items() if any("--json" in p.opts for p in command.params)}


# --------------------------------------------------------------------------- what docs/cli/ says


def _documented() -> tuple[set[str], dict[str, dict[str | None, tuple[str, list[str]]]]]:
    """(command paths in headings, {path: {variant: ("keys"|"items", [keys])}})."""
    headings: set[str] = set()
    lists: dict[str, dict[str | None, tuple[str, list[str]]]] = {}
    for page in sorted(DOCS.glob("*.md")):
        current: str | None = None
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("#"):  # a heading: a command's, or another that ends the last command's part
                heading = HEADING.match(line)
                current = heading.group(1) if heading else None
                if current:
                    headings.add(current)
                continue
            key_line = KEY_LINE.match(line)
            if not key_line:
                continue
            where = f"{page.name}:{number}"
            assert current in COMMANDS, f"{where}: a JSON line under no command's heading ({current!r})"
            shape, variant, rest = key_line.groups()
            keys = re.findall(r"`([^`]+)`", rest)
            assert keys, f"{where}: no keys in backticks"
            assert len(keys) == len(set(keys)), f"{where}: a key listed twice"
            variants = lists.setdefault(current, {})
            assert variant not in variants, f"{where}: {current} ({variant}) documented twice"
            variants[variant] = (shape, keys)
    return headings, lists


HEADINGS, KEY_LISTS = _documented()


def test_every_command_has_a_heading_in_docs_cli() -> None:
    missing = sorted(set(COMMANDS) - HEADINGS)
    assert not missing, f"commands with no heading in docs/cli/: {missing}"


def _sections() -> dict[str, str]:
    """Each command's part of docs/cli/: from its heading to the next heading."""
    out: dict[str, str] = {}
    for page in sorted(DOCS.glob("*.md")):
        current: str | None = None
        for line in page.read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                heading = HEADING.match(line)
                current = heading.group(1) if heading and heading.group(1) in COMMANDS else None
                continue
            if current:
                out[current] = out.get(current, "") + line + "\n"
    return out


def test_every_option_is_in_its_commands_part() -> None:
    sections = _sections()
    missing = sorted(f"{path} {opt}" for path, command in COMMANDS.items() for param in command.params
                     for opt in param.opts if opt.startswith("--") and opt not in ("--json", "--help")
                     and opt not in sections.get(path, ""))
    assert not missing, f"options not mentioned under their command's heading in docs/cli/: {missing}"


def test_headings_name_only_real_commands() -> None:
    groups = {" ".join(p.split()[:n]) for p in COMMANDS for n in range(1, len(p.split()))}
    unknown = sorted(HEADINGS - set(COMMANDS) - groups)
    assert not unknown, f"docs/cli/ headings naming no command or group: {unknown}"


def test_the_json_commands_documented_are_those_that_take_json() -> None:
    documented = set(KEY_LISTS)
    assert not sorted(JSON_COMMANDS - documented), f"--json commands without a key list: {sorted(JSON_COMMANDS - documented)}"
    assert not sorted(documented - JSON_COMMANDS), f"key lists for commands without --json: {sorted(documented - JSON_COMMANDS)}"


# --------------------------------------------------------------------------- a small world, through the CLI


def _citizen_id(first17: str) -> str:
    """An 18-digit citizen ID with its ISO 7064 MOD 11-2 check character."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights)) % 11]


LIU = _citizen_id("11010519850615123")  # a Beijing employee: the main card
CHEN = _citizen_id("11010519900302452")  # imported from a file: the card's life
GAO = _citizen_id("11010519400101301")  # 85: the generated 高龄津贴, a cancelled card
OUTLET, BANK = "BJ-110105-01", "BJ-110105-02"


class Story:
    """Runs commands in one world and keeps what each printed: {(path, variant): parsed JSON}."""

    def __init__(self, home: Path, tmp: Path) -> None:
        self.home, self.tmp = home, tmp
        self.printed: dict[tuple[str, str | None], Any] = {}

    def run(self, *args: str, variant: str | None = None, exits: tuple[int, ...] = (0,),
            input: str | None = None) -> Any:
        code, out, err, data = cli(self.home, *args, "--json", input=input)
        assert code in exits, f"sbcard {' '.join(args)}: exit {code}: {err}"
        assert data is not None, f"sbcard {' '.join(args)} printed no JSON: {out!r} {err!r}"
        path = " ".join(["sbcard", *args[:_depth(args)]])
        self.printed[(path, variant)] = data
        return data

    def file(self, name: str, text: str) -> str:
        path = self.tmp / name
        path.write_text(text, encoding="utf-8")
        return str(path)


def _depth(args: tuple[str, ...]) -> int:
    """How many of ``args`` name the command (its path below ``sbcard``)."""
    command: click.Command = sbcard_group
    depth = 0
    for word in args:
        if not isinstance(command, click.Group) or word not in command.commands:
            break
        command, depth = command.commands[word], depth + 1
    return depth


def _tell(story: Story) -> None:
    """One story, told in order: each command runs after what gives it something to print."""
    run, file = story.run, story.file
    run("init", "--seed", "7")
    # staff
    run("operator", "add", "BJ-C1", "--name", "王芳", "--role", "counter", "--region", "110105")
    run("operator", "add", "BJ-F1", "--name", "李明", "--role", "finance", "--region", "110105")
    run("operator", "add", "BJ-F2", "--name", "周强", "--role", "finance", "--region", "110105")
    run("operator", "list")
    run("staff", "add", "BJ-A1", "--name", "周敏", "--role", "admin", "--region", "110000", "--password-stdin",
        input="first-Pass-2025\n")
    run("staff", "add", "BJ-S1", "--name", "郑伟", "--role", "counter", "--region", "110105", "--outlet", OUTLET,
        "--password-stdin", input="first-Pass-2025\n")
    run("staff", "grant", "BJ-S1", "--role", "supervisor")
    run("staff", "lock", "BJ-S1")
    run("staff", "unlock", "BJ-S1")
    run("staff", "password", "BJ-S1", "--password-stdin", input="second-Pass-2025\n")
    run("staff", "list")
    # people
    run("person", "add", "--citizen-id", LIU, "--name", "刘洋", "--region", "110105", "--insurance", "employee",
        "--operator", "BJ-C1")
    run("person", "import", file("people.csv", f"citizen_id,name,insurance\n{CHEN},陈静,employee\n"
                                                f"{GAO},高德明,resident\n"),
        "--region", "110105", "--operator", "BJ-C1", "--errors", str(story.tmp / "people.errors.csv"))
    run("person", "show", LIU)
    run("person", "residence", GAO, "--residence", "hukou", "--operator", "BJ-C1")
    # outlets and blanks: six received, the last spoiled
    run("outlet", "list", "--region", "110105")
    received = run("outlet", "stock", "receive", OUTLET, "--count", "6", "--operator", "BJ-C1")
    blanks = [f"emulator:{path}" for path in received["paths"]]
    run("outlet", "stock", "spoil", OUTLET, received["chip_serials"][-1], "--operator", "BJ-C1",
        "--reason", "chip cracked")
    run("outlet", "stock", "show", OUTLET)
    run("card", "blank", "--out", str(story.tmp / "loose.card"))
    # the main card: applied for, issued, activated, money on it
    application = run("card", "apply", "--citizen-id", LIU, "--outlet", OUTLET, "--operator", "BJ-C1")["application_id"]
    run("card", "applications")
    run("card", "application-status", application)
    liu = run("card", "issue", application, "--reader", blanks[0], "--operator", "BJ-C1")["card_number"]
    run("card", "activate", liu, "--pin", PIN, "--operator", "BJ-C1")
    shown = run("card", "show", liu)
    run("card", "history", liu)
    run("account", "deposit", liu, "--amount", "500", "--operator", "BJ-C1", "--outlet", BANK)
    run("account", "withdraw", liu, "--amount", "10", "--operator", "BJ-C1", "--outlet", BANK)
    run("account", "show", liu)
    run("reader", "read", "--reader", blanks[0])
    run("reader", "list")
    # identifiers, one of each kind
    for value, kind in ((LIU, "a citizen ID"), (liu, "a card number"), (shown["card_id_code"], "a 卡识别码"),
                        ("110105850615123", "a 15-digit ID"), ("110105", "a region code"),
                        ("6217000010001234567", "a bank account"), ("hello", "unknown")):
        run("ids", "check", value, variant=kind, exits=(0, 2))
    # transit: a quote, a validator, a load, a tap, the log and its upload
    run("transit", "fare", "--operator", "bj-subway", "--km", "10")
    terminal = run("terminal", "add", "--operator", "bj-bus")["terminal"]
    run("terminal", "list")
    run("terminal", "sync", terminal)
    run("transit", "load", "--reader", blanks[0], "--amount", "50", "--operator", "BJ-C1", "--outlet", OUTLET)
    run("transit", "recover", "--reader", blanks[0], "--operator", "BJ-C1", "--outlet", OUTLET)
    run("transit", "tap", "--reader", blanks[0], "--terminal", terminal, "--km", "5")
    run("transit", "log", "--terminal", terminal)
    run("transit", "upload", "--terminal", terminal)
    run("terminal", "credential", terminal)
    run("terminal", "revoke", terminal, "--reason", "PSAM stolen")
    run("transit", "concession", "enable", liu, "--kind", "student", "--until", "2025-09-01", "--operator", "BJ-C1",
        "--outlet", OUTLET)
    run("transit", "concession", "show", liu)
    run("transit", "concession", "show", liu, "--reader", blanks[0], variant="with --reader")
    run("transit", "concession", "sync", liu, "--operator", "BJ-C1", "--outlet", OUTLET)
    # venues and a library
    run("venue", "list", "--region", "110000")
    run("venue", "show", "BJ-SC-001")
    run("venue", "gate", "add", "BJ-SC-001")
    run("venue", "gate", "list")
    run("venue", "enter", "--reader", blanks[0], "--venue", "BJ-SC-001")
    run("venue", "visits")
    run("library", "borrow", "--reader", blanks[0], "--library", "BJ-LB-001", "--item", "B0001")
    run("library", "loans")
    run("library", "return", "--reader", blanks[0], "--library", "BJ-LB-001", "--item", "B0001")
    run("library", "pay", "--reader", blanks[0], "--library", "BJ-LB-001")
    # medical
    run("medical", "hospitals", "--region", "110105")
    run("medical", "catalogue", "--region", "110000")
    run("medical", "policies", "--region", "110000")
    registration = run("medical", "register", "--card", liu, "--kind", "other_temporary", "--province", "120000",
                       "--from", "2025-03-03", "--to", "2025-03-10", "--operator", "BJ-C1")["id"]
    run("medical", "registrations", "--card", liu)
    run("medical", "unregister", str(registration), "--card", liu, "--operator", "BJ-C1")
    items = file("items.json", '[{"code": "XJ01CAA040", "quantity": 2, "price": "12.50"}]')
    claim = run("medical", "settle", "--reader", blanks[0], "--hospital", "BJH003", "--items", items)["claim_id"]
    run("medical", "settle", "--reader", blanks[0], "--hospital", "BJH003", "--items", items, "--pin", PIN)
    run("medical", "refund", claim)
    run("medical", "claims")
    run("medical", "year", "--card", liu)
    run("medical", "reconcile")
    # the hub's links
    run("hub", "link", "tj")
    run("hub", "link", "tj", "--down", variant="set")
    run("hub", "link", "tj", "--up", variant="set")
    run("hub", "links")
    # the card's life, on a second card
    application = run("card", "apply", "--citizen-id", CHEN, "--outlet", OUTLET, "--operator", "BJ-C1")["application_id"]
    chen = run("card", "issue", application, "--reader", blanks[1], "--operator", "BJ-C1")["card_number"]
    run("card", "activate", chen, "--pin", PIN, "--operator", "BJ-C1")
    run("card", "pin", "change", chen, "--old-pin", PIN, "--new-pin", "246813")
    run("card", "pin", "reset", chen, "--citizen-id", CHEN, "--new-pin", PIN, "--operator", "BJ-C1")
    run("card", "report-lost", chen, "--channel", "phone", "--operator", "BJ-C1")
    run("card", "confirm-loss", chen, "--operator", "BJ-C1", "--outlet", OUTLET)
    run("card", "unblock", chen, "--operator", "BJ-C1", "--outlet", OUTLET)
    run("card", "lapse-losses")
    run("card", "replace", chen, "--reader", blanks[2], "--operator", "BJ-C1", "--outlet", OUTLET)
    run("card", "refunds")
    # a third card, cancelled
    application = run("card", "apply", "--citizen-id", GAO, "--outlet", OUTLET, "--operator", "BJ-C1")["application_id"]
    gao = run("card", "issue", application, "--reader", blanks[3], "--operator", "BJ-C1")["card_number"]
    run("card", "activate", gao, "--pin", PIN, "--operator", "BJ-C1")
    # subsidies: a file paid and one row reversed; a generated batch rejected
    run("subsidy", "items")
    batch = file("batch.csv", f"seq,citizen_id,name,card_number,item,period,amount,remark\n"
                              f"1,{LIU},刘洋,{liu},GLJT,202503,100.00,\n#TOTAL,1,100.00\n")
    paid = run("subsidy", "import", batch, "--region", "110105", "--operator", "BJ-F1")["batch_id"]
    run("subsidy", "approve", paid, "--operator", "BJ-F2")
    run("subsidy", "pay", paid, "--operator", "BJ-F1")
    run("subsidy", "reverse", paid, "1", "--operator", "BJ-F2", "--reason", "paid in error")
    run("subsidy", "show", paid)
    run("subsidy", "failures", paid, "--out", str(story.tmp / "failures.csv"), "--operator", "BJ-F1")
    generated = run("subsidy", "generate", "--item", "GLJT", "--region", "110105", "--operator", "BJ-F1")["batch_id"]
    run("subsidy", "reject", generated, "--operator", "BJ-F2", "--reason", "wrong month")
    run("subsidy", "batches")
    run("card", "cancel", gao, "--operator", "BJ-C1", "--reason", "the holder died", "--outlet", BANK)
    # the night: clearing and settlement
    run("clearing", "run", "--date", "2025-03-03")
    run("clearing", "report", "--date", "2025-03-03")
    run("settlement", "show", "--date", "2025-03-03")


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str | None], Any]:
    tmp = tmp_path_factory.mktemp("docs-cli")
    story = Story(tmp / "world", tmp)
    with freeze_time(NOW):
        _tell(story)
    return story.printed


# Commands that take --json but are not run here, and why. Their key lists are still required
# (test_the_json_commands_documented_are_those_that_take_json) and read by eye.
NOT_RUN = {
    # a run of even 20 people takes ~6 s; tests/sim/test_sim_cli.py checks the summary's keys
    "sbcard simulate",
    # needs an offline claim reconciled against an account that cannot take the difference: a
    # region cut off, a claim, the link back, reconcile, an emptied account — a story of its own
    "sbcard medical settle-owed",
}


def test_not_run_lists_only_json_commands() -> None:
    assert NOT_RUN <= JSON_COMMANDS


@pytest.mark.parametrize("path", sorted(JSON_COMMANDS - NOT_RUN))
def test_printed_keys_are_the_documented_keys(path: str, printed: dict[tuple[str, str | None], Any]) -> None:
    runs = {variant: data for (where, variant), data in printed.items() if where == path}
    assert runs, f"{path} was not run: add it to the story in _tell, or to NOT_RUN with the reason"
    documented = KEY_LISTS.get(path, {})
    for variant, data in runs.items():
        label = f"{path}" + (f" ({variant})" if variant else "")
        assert variant in documented, f"docs/cli/ has no 'JSON keys{f' ({variant})' if variant else ''}:' line for {path}"
        shape, keys = documented[variant]
        if shape == "items":
            assert isinstance(data, list) and data, f"{label} printed {type(data).__name__}, documented as a list"
            for item in data:
                _same(label, list(item), keys)
        else:
            assert isinstance(data, dict), f"{label} printed a {type(data).__name__}, documented as one object"
            _same(label, list(data), keys)


def _same(label: str, printed: list[str], documented: list[str]) -> None:
    missing, extra = sorted(set(printed) - set(documented)), sorted(set(documented) - set(printed))
    assert not missing and not extra, f"{label}: printed but not documented {missing}; documented but not printed {extra}"
