"""A fuzz campaign against the whole command line: every option and argument of every command, malformed.

It walks click's command tree (``sbcard.cli.main.cli``) and runs each command in-process
(click's ``CliRunner``) against a small prepared world (three regions, a card in each,
staff, a terminal, an imported and approved subsidy batch), with the command's other
required parameters given plausible values and one parameter given a malformed one:
empty, blank, huge, negative, the wrong type, unicode oddities (RTL and override marks,
zero-width characters, NUL, full-width digits, lone surrogates, control characters), very
long strings, a directory where a file is expected, a file that is not what it should be
(binary junk, empty, a CSV with the wrong header), a card spec naming such a file. About a
quarter of the invocations add ``--json``. Seeded: the same seed runs the same cases.

Each invocation is checked:

- **no traceback**: no exception escapes click, and no exit 3 naming a Python exception
  class ("internal error");
- **one line**: a failing command writes exactly one line on stderr (``error: …``), or one
  JSON object ``{"error": {"code", "field", "message"}}`` with ``--json``;
- **the documented exit code**: 2 for a value that is malformed (1 or 2 for a plausible but
  odd value, which a rule may refuse);
- **nothing written**: a command refusing bad input (exit 2) leaves every database of the
  world (row by row) and every card and terminal file as they were (a rule's refusal, exit 1,
  may record itself — a wrong PIN counts on the card, a gate logs a refused tap — and an I/O
  failure, exit 3, keeps what a resumable import had committed);
- **not silently accepted**: a malformed value is never taken (exit 0).

It prints tried / clean / tracebacks / wrong exit codes / not one line / written on refusal /
silently accepted, the first few cases of each kind to reproduce, and exits 1 if any check
failed.

    .venv/bin/python benchmarks/cli_fuzz.py [--invocations 2400] [--seed 15] [--keep DIR] [--show 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import click  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from bench_world import PIN, REGIONS, build_world, run_cli  # noqa: E402

# ----------------------------------------------------------------------------- the values

BAD_TEXT = [  # never a value of any parameter
    "", " ", "   \t ", "\t", "a\x00b", "\x00", "line\nbreak", "\r", "esc\x1b[31mred", "\x7f", "\x85",
    "\u200f123", "\u202eabc", "\u2066x\u2069", "12\u200b34", "\ufeff1", "\ud800", "a\udcff", "\udfff\ud800",
    "A" * 100_000, "9" * 5_000,
]
ODD_TEXT = [  # well formed as text, wrong for most parameters: a rule or parser refuses them, or they are taken
    "-1", "0", "-0", "99999999999999999999", "9223372036854775808", "-9223372036854775809", "1e400", "NaN",
    "inf", "0x10", "1.5", "1,000", "abc", "true", "[]", "{}", "'; DROP TABLE cards; --", "../../etc/passwd",
    "１２３", "١٢٣", "e\u0301", "💳", "Ω" * 300, "%s%n", "${HOME}", "-", "--", "--help-not",
    "2025-02-30", "0001-01-01", "9999-12-31", "2025-13-01", "20250101", "0.001", "¥1", "1e2", "000000",
    "999999", "110105198001010014", "110105000000000000", "B00000010", "1" * 19,
]
BAD_INT = ["abc", "1.5", "1e3", "0x10", "１２", "1_000", " 7", "99999999999999999999", "9223372036854775808",
           "-9223372036854775809", "NaN", "inf", "", "+-1", "9" * 5_000]
ODD_INT = ["-1", "0", "1", "65536", "100000", "2147483648"]


def path_values(scratch: Path) -> dict[str, tuple[Path, str]]:
    """Files and folders that are not what a command expects: name → (path, 'bad'|'odd')."""
    scratch.mkdir(parents=True, exist_ok=True)
    made: dict[str, tuple[Path, str]] = {}

    def write(name: str, data: bytes, kind: str = "bad") -> None:
        path = scratch / name
        path.write_bytes(data)
        made[name] = (path, kind)

    folder = scratch / "a-folder.csv"
    folder.mkdir(exist_ok=True)
    made["directory"] = (folder, "bad")
    made["missing"] = (scratch / "no-such-dir" / "missing.csv", "bad")
    write("junk.csv", bytes(random.Random(1).randrange(256) for _ in range(4096)))
    write("empty.csv", b"")
    write("wrong-header.csv", "name,amount\n张三,100\n".encode())
    write("nul.csv", b"seq,citizen_id\x00,name\n1,\x00\x00,\n")
    write("gbk-garbage.json", "[{\"code\": \"药\"}]".encode("gbk"))
    write("not-a-zip.xlsx", b"PK\x03\x04 this is not a workbook")
    write("huge-line.csv", b"seq," + b"9" * 200_000 + b"\n")
    write("card.bin", b"\x00" * 64)
    write("deep.json", b"[" * 100_000)
    return made


# ----------------------------------------------------------------------------- the world


def prepare(home: Path) -> dict[str, Any]:
    """A small world and the plausible value of every parameter name, for the parameters not being fuzzed."""
    people = build_world(home, 3, deposit_yuan="100")
    from sbcard.clock import FixedClock
    from sbcard.services.outlets import operators
    from sbcard.store.world import open_world
    from bench_world import START

    with open_world(home, FixedClock(START)) as world:
        for code, role, region, node in (("BJ-FIN-A", "finance", "110105", "bj"),
                                          ("BJ-FIN-B", "finance", "110105", "bj"),
                                          ("BJ-SUP", "supervisor", "110105", "bj")):
            operators.add_operator(world.region(node), code=code, name="王会计", role=role, region=region,
                                   now=START)
    runner = CliRunner()
    terminal = run_cli(runner, home, "terminal", "add", "--operator", "bj-bus", "--line", "1")["terminal"]
    bj = next(p for p in people if p["node"] == "bj")
    batch_file = home.parent / "batch.csv"
    batch_file.write_text("seq,citizen_id,name,card_number,item,period,amount,remark\n"
                          f"1,{bj['citizen_id']},测试0,,GLJT,202502,100.00,\n#TOTAL,1,100.00\n", encoding="utf-8")
    people_file = home.parent / "people.csv"
    people_file.write_text("citizen_id,name,insurance,ethnicity,region\n"
                           "110105198001010013,李四,resident,01,110105\n", encoding="utf-8")
    items_file = home.parent / "items.csv"
    items_file.write_text("code,quantity,price\nXJ01CAA040,1,12.50\n", encoding="utf-8")
    batch = run_cli(runner, home, "subsidy", "import", str(batch_file), "--region", "110105", "--operator",
                    "BJ-FIN-A")["batch_id"]
    run_cli(runner, home, "subsidy", "approve", batch, "--operator", "BJ-FIN-B")
    reader = f"emulator:{bj['path']}"
    plausible = {
        "card_number": bj["card_number"], "card_or_citizen_id": bj["card_number"], "citizen_id": bj["citizen_id"],
        "holder_id": bj["citizen_id"], "guardian_id": bj["citizen_id"], "value": bj["citizen_id"],
        "operator": "BJ-BENCH", "outlet": REGIONS["bj"][1], "reader_spec": reader, "old_reader_spec": reader,
        "amount": "1", "region": "110105", "insured_region": "110105", "name": "李四", "code": "BJ-110105-01",
        "count": "1", "terminal_id": terminal, "terminal_no": "110105000001", "batch": batch, "seq": "1",
        "file": str(batch_file), "items_path": str(items_file), "hospital": "BJH001", "venue_code": "BJ-MU-001",
        "library_code": "BJ-LI-001", "item": "GLJT", "reason": "测试", "memo": "测试", "note": "测试",
        "pin": PIN, "old_pin": PIN, "new_pin": "258369", "node": "bj", "date_text": "2025-03-03",
        "day_text": "2025-03-03", "until_text": "2026-03-03", "km": "5", "sections": "2", "station": "古城",
        "origin": "古城", "destination": "八角游乐园", "line": "1", "full_fare": "2", "claim_id": "X",
        "application_id": "X", "chip_serial": "X", "kind": "elderly", "operator_code": "bj-bus", "role": "counter",
        "insurance": "resident", "ethnicity": "1", "phone": "13800138000", "address": "北京市朝阳区",
        "photo_ref": "p1", "guardian_relation": "parent", "txn_id": "SLIP-1", "total": "100", "as_of": "2025-03-03",
        "codes": "XJ01CAA040", "host": "127.0.0.1", "port": "35963", "tear": "1", "year": "2025", "limit": "1",
        "chunk": "1", "wait_seconds": "0", "population": "1", "days": "1", "seed": "1", "serial": "0102030405060708",
        "out": str(home.parent / "out.card"), "out_path": str(home.parent / "out.csv"),
        "errors_path": str(home.parent / "errors.csv"), "report_dir": str(home.parent / "report"),
    }
    by_command = {  # where the plausible value differs by command
        ("account", "deposit"): {"outlet": REGIONS["bj"][2]}, ("account", "withdraw"): {"outlet": REGIONS["bj"][2]},
        ("subsidy", "import"): {"operator": "BJ-FIN-A"}, ("subsidy", "generate"): {"operator": "BJ-FIN-A"},
        ("subsidy", "approve"): {"operator": "BJ-FIN-B"}, ("subsidy", "reject"): {"operator": "BJ-FIN-B"},
        ("subsidy", "pay"): {"operator": "BJ-FIN-A"}, ("subsidy", "reverse"): {"operator": "BJ-SUP"},
        ("subsidy", "failures"): {"operator": "BJ-FIN-A"}, ("person", "import"): {"file": str(people_file)},
        ("operator", "add"): {"code": "NEW-OP-1"}, ("terminal", "add"): {"operator": "bj-bus"},
        ("terminal", "list"): {"operator": "bj-bus"}, ("reader", "serve"): {"card_path": "JUNK"},
    }
    return {"plausible": plausible, "by_command": by_command}


# ----------------------------------------------------------------------------- the cases


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name), command


OUTPUTS = {"out", "out_path", "errors_path", "report_dir"}  # parameters naming a file or folder to write

# Commands whose refusal is their answer, printed on stdout (documented): a validator's or a gate's
# display, ``ids check``'s verdict. Their non-zero exit comes with that answer and nothing on stderr.
ANSWERS = {("transit", "tap"), ("venue", "enter"), ("library", "borrow"), ("library", "return"), ("library", "pay"),
           ("ids", "check")}


def kind_of(param: click.Parameter) -> str:
    from sbcard.cli.params import Checked, Seconds, Whole

    t = param.type.inner if isinstance(param.type, Checked) else param.type
    if isinstance(param, click.Option) and param.is_flag:
        return "flag"
    if isinstance(t, (Whole, click.types.IntParamType)):
        return "int"
    if isinstance(t, (Seconds, click.types.FloatParamType)):
        return "float"
    if isinstance(t, click.Choice):
        return "choice"
    if isinstance(t, click.Path):
        return "path_out" if param.name in OUTPUTS else "path_in"
    if param.name in ("reader_spec", "old_reader_spec"):
        return "reader"
    return "text"


def values_for(kind: str, files: dict[str, tuple[Path, str]], junk_card: Path) -> list[tuple[str, str]]:
    """(value, 'bad'|'odd') for a parameter of ``kind``."""
    text = [(v, "bad") for v in BAD_TEXT] + [(v, "odd") for v in ODD_TEXT]
    if kind == "int":
        return [(v, "bad") for v in BAD_INT + BAD_TEXT[:12]] + [(v, "odd") for v in ODD_INT]
    if kind == "float":
        return ([(v, "bad") for v in BAD_INT if v != "1.5"] + [(v, "bad") for v in ["-1", "-0.5", "1e9", "1e999"]]
                + [(v, "odd") for v in ["0", "0.5", "1.5"]])
    if kind == "choice":
        return [(v, "bad") for v in BAD_TEXT + ODD_TEXT]
    if kind == "flag":
        return [("=yes", "bad"), ("=", "bad"), ("=1", "bad")]
    if kind in ("path_in", "path_out"):
        paths = [(str(p), k if kind == "path_in" or name == "directory" else "odd") for name, (p, k) in files.items()]
        return paths + [(v, "bad") for v in BAD_TEXT[:12]] + [("/dev/null", "odd"), ("/proc/self/mem", "io")]
    if kind == "reader":
        # well formed, but what the file holds is no card: found only when the card is read
        not_cards = [(f"emulator:{p}", "late") for name, (p, _) in files.items() if name != "missing"]
        malformed = [(s, "bad") for s in ("emulator:", "emulator", "nfc:1", "emulator:?tear=1", "pcsc",
                                          f"emulator:{junk_card}?tear=abc", f"emulator:{junk_card}?colour=red")]
        no_card = (f"emulator:{files['missing'][0]}", "odd")  # no card in the reader: a refusal (exit 1), documented
        return not_cards + malformed + [no_card] + text
    return text


def plan(cli: click.Group, n: int, rng: random.Random, world: dict[str, Any], files: dict[str, tuple[Path, str]],
         junk_card: Path) -> list[dict[str, Any]]:
    """``n`` cases: every (command, parameter) pair in turn, a value drawn for each."""
    pairs: list[tuple[tuple[str, ...], click.Command, click.Parameter]] = []
    for path, command in commands(cli):
        for param in command.params:
            if param.name in ("help", "json_flag") or param.expose_value is False:
                continue
            pairs.append((path, command, param))
    pairs.append((("account", "show"), None, None))  # --home itself
    rng.shuffle(pairs)
    cases = []
    i = 0
    while len(cases) < n:
        path, command, param = pairs[i % len(pairs)]
        i += 1
        as_json = rng.random() < 0.25
        if command is None:
            home_value, category = rng.choice([(str(files["junk.csv"][0]), "bad"), (str(files["directory"][0]), "bad"),
                                               (str(files["missing"][0]), "bad"), ("", "bad"), ("\x00", "bad")])
            cases.append({"path": path, "param": "--home", "value": home_value, "category": category,
                          "args": [*path, world["plausible"]["card_number"]], "home": home_value, "json": as_json})
            continue
        value, category = rng.choice(values_for(kind_of(param), files, junk_card))
        args = build_args(path, command, param, value, world, junk_card)
        cases.append({"path": path, "param": param.name, "value": value, "category": category, "args": args,
                      "home": None, "json": as_json})
    return cases


def build_args(path: tuple[str, ...], command: click.Command, fuzzed: click.Parameter, value: str,
               world: dict[str, Any], junk_card: Path) -> list[str]:
    plausible = {**world["plausible"], **world["by_command"].get(path, {})}
    options: list[str] = []
    arguments: list[str] = []
    for param in command.params:
        if param.name in ("help", "json_flag"):
            continue
        if param is fuzzed:
            given = value
        elif param.required:
            given = plausible.get(param.name or "", "X")
            if given == "JUNK":
                given = str(junk_card)
        else:
            continue
        if isinstance(param, click.Argument):
            arguments.append(given)
        elif isinstance(param, click.Option) and param.is_flag:
            options.append(max(param.opts, key=len) + given)  # given is "=yes" and the like
        else:
            options += [max(param.opts, key=len), given]
    return [*path, *arguments, *options] if all(not a.startswith("-") or a == "-" for a in arguments) \
        else [*path, *options, "--", *arguments]


# ----------------------------------------------------------------------------- the checks

TRACE = re.compile(r"Traceback \(most recent call last\)|an internal error|\b[A-Z]\w*(Error|Exception):")


def digest(home: Path) -> str:
    """Every row of every table of every database of the world, and every other file's bytes."""
    h = hashlib.sha256()
    for path in sorted(home.rglob("*")):
        if path.is_dir() or path.name.endswith(("-wal", "-shm", "-journal")):
            continue
        h.update(str(path.relative_to(home)).encode())
        if path.suffix == ".db":
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                                     "ORDER BY name")]
                for table in tables:
                    h.update(table.encode())
                    for row in conn.execute(f'SELECT * FROM "{table}"'):
                        h.update(repr(row).encode())
            finally:
                conn.close()
        else:
            h.update(path.read_bytes())
    return h.hexdigest()


# The exit codes a failing invocation may have, by the kind of value given: malformed → 2; plausible but odd
# → 1 or 2 (a rule may refuse it first); a card file that is no card, found only when the card is read →
# 1 or 2 (a rule may refuse before the card is read); a file the system cannot read (EIO) → 2 or 3.
EXPECTED = {"bad": {2}, "odd": {1, 2}, "late": {1, 2}, "io": {2, 3}}


def judge(case: dict[str, Any], exit_code: int, stdout: str, stderr: str, escaped: BaseException | None,
          changed: bool) -> list[str]:
    """The checks a case failed (empty: clean)."""
    failed = []
    if escaped is not None or TRACE.search(stderr):
        failed.append("traceback")
    if exit_code == 0:
        if case["category"] in ("bad", "late"):
            failed.append("silently accepted")
        return failed
    if exit_code not in EXPECTED[case["category"]]:
        failed.append("wrong exit code")
    if case["path"] in ANSWERS and not stderr and stdout.strip() and exit_code in (1, 2):
        pass  # the refusal is the answer, on stdout
    elif case["json"]:
        try:
            error = json.loads(stderr)["error"]
            assert set(error) == {"code", "field", "message"} and error["code"] and error["message"]
        except Exception:  # noqa: BLE001
            failed.append("not one line")
    elif not (stderr.startswith("error: ") and stderr.count("\n") == 1 and stderr.endswith("\n")):
        failed.append("not one line")
    if changed and exit_code == 2:
        failed.append("written on refusal")
    return failed


KINDS = ("traceback", "wrong exit code", "not one line", "written on refusal", "silently accepted")


def campaign(invocations: int, seed: int, workdir: Path, *, show: int = 5, out=sys.stdout) -> dict[str, Any]:
    """Run the campaign in ``workdir``; its figures (and the failing cases) as a dict."""
    from sbcard.cli.main import cli

    started = time.monotonic()
    # The world records its card files by absolute path: it is prepared where it runs, and restored there
    # from a copy kept aside.
    home = workdir / "run" / "world"
    home.parent.mkdir(parents=True)
    world = prepare(home)
    pristine = workdir / "pristine"
    shutil.copytree(home, pristine)
    files = path_values(workdir / "files")
    junk_card = files["card.bin"][0]
    clean_digest = digest(home)
    cases = plan(cli, invocations, random.Random(seed), world, files, junk_card)
    prepared = time.monotonic() - started
    runner = CliRunner()
    tally: Counter[str] = Counter()
    examples: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
    before = clean_digest
    for case in cases:
        args = case["args"]
        if case["json"]:
            args = [*case["path"], "--json", *args[len(case["path"]):]]
        words = ["--home", case["home"] if case["home"] is not None else str(home), *args]
        result = runner.invoke(cli, words, env={"SBCARD_DEBUG": None})
        escaped = result.exception if result.exception and not isinstance(result.exception, SystemExit) else None
        after = digest(home)
        failed = judge(case, result.exit_code, result.stdout, result.stderr, escaped, after != before)
        tally["tried"] += 1
        tally["clean" if not failed else "failed"] += 1
        tally[f"exit {result.exit_code}"] += 1
        for kind in failed:
            tally[kind] += 1
            if len(examples[kind]) < show:
                examples[kind].append({"args": words[2:], "category": case["category"], "exit": result.exit_code,
                                       "stderr": result.stderr[:300],
                                       "escaped": repr(escaped)[:300] if escaped else None})
        if result.exit_code == 0:
            path_values(workdir / "files")  # what a command wrote over stays what it was
        if after != clean_digest:  # a command that did something: back to the prepared world
            shutil.rmtree(home)
            shutil.copytree(pristine, home)
            after = clean_digest
        before = after
    elapsed = time.monotonic() - started
    figures = {"seed": seed, "tried": tally["tried"], "clean": tally["clean"],
               **{k: tally[k] for k in KINDS},
               "exit_codes": {k: v for k, v in sorted(tally.items()) if k.startswith("exit ")},
               "prepare_s": round(prepared, 1), "elapsed_s": round(elapsed, 1), "examples": examples}
    return figures


def report(figures: dict[str, Any], out=sys.stdout) -> None:
    print(f"sbcard CLI fuzz (seed {figures['seed']}): {figures['tried']:,} invocations in "
          f"{figures['elapsed_s']:.1f} s (world prepared in {figures['prepare_s']:.1f} s)", file=out)
    print(f"  tried               {figures['tried']:>7,}", file=out)
    print(f"  clean               {figures['clean']:>7,}", file=out)
    for kind in KINDS:
        print(f"  {kind:<19} {figures[kind]:>7,}", file=out)
    print("  exit codes          " + ", ".join(f"{k[5:]}: {v:,}" for k, v in figures["exit_codes"].items()),
          file=out)
    for kind, cases in figures["examples"].items():
        for case in cases:
            print(f"\n[{kind}] sbcard {' '.join(repr(a) if not a.isprintable() or ' ' in a or not a else a for a in case['args'])[:400]}"
                  f"\n  ({case['category']}) exit {case['exit']}: {case['stderr'].strip()[:300]}"
                  + (f"\n  escaped: {case['escaped']}" if case["escaped"] else ""), file=out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--invocations", type=int, default=2400)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--keep", type=Path, default=None, help="Work in this (new) directory and keep it.")
    parser.add_argument("--show", type=int, default=5, help="Failing cases shown per kind.")
    args = parser.parse_args()
    os.environ.pop("SBCARD_DEBUG", None)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="sbcard-cli-fuzz-"))
    try:
        figures = campaign(args.invocations, args.seed, workdir, show=args.show)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    report(figures)
    return 0 if figures["clean"] == figures["tried"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
