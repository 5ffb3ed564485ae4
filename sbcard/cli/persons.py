"""``sbcard person …``: the registry of the region a person is insured with."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from sbcard.cli.context import AppContext, with_app
from sbcard.cli.output import emit_json, fields, named_region, number, warn
from sbcard.cli.params import Whole
from sbcard.cli.operator_option import staff_operator_option
from sbcard.domain.errors import InvalidInput, NotFound, SbcardError
from sbcard.domain.masking import mask_person
from sbcard.domain.regions import NODE_NAMES, node_of, validate_region_code
from sbcard.services.people.record import INSURANCE, RESIDENCES
from sbcard.store.world import open_world


@click.group()
def person() -> None:
    """People in a region's registry: add, import, show."""


@person.command("add")
@click.option("--citizen-id", required=True, help="The citizen ID (社会保障号码); sex and birth date come from it.")
@click.option("--name", required=True, help="As it will be printed on the card (GBK, at most 30 bytes).")
@click.option("--region", required=True, metavar="NNNNNN", help="The district the person lives in.")
@click.option("--insurance", required=True, type=click.Choice(INSURANCE), help="employee (职工) or resident (居民).")
@click.option("--retired", is_flag=True, help="A retired employee (退休).")
@click.option("--insured-region", default=None, metavar="NNNNNN",
              help="Where the person is insured (default: --region); that region's registry holds them.")
@click.option("--ethnicity", type=Whole(), default=1, show_default=True, help="GB/T 3304 code (1 汉族 … 56, 97, 98).")
@click.option("--phone", default=None, help="A mobile number or a landline with its area code.")
@click.option("--address", default=None, help="Postal address.")
@click.option("--photo", "photo_ref", default=None, help="Reference of the photo (newborns may have none).")
@click.option("--guardian-id", default=None, help="The guardian's citizen ID (for a minor).")
@click.option("--guardian-relation", default=None, help="How the guardian is related (母亲, 父亲, …).")
@click.option("--residence", type=click.Choice(RESIDENCES), default=None,
              help="Residence status where the person lives (--region's province): hukou (户籍), permit (居住证), "
                   "none, or unknown (the default: not recorded). Beijing's elderly free bus needs hukou or permit.")
@staff_operator_option("The member of staff registering the person (recorded; required).")
@with_app
def add_command(app: AppContext, citizen_id: str, operator: str, **given: Any) -> None:
    """Register a person in the registry of the region they are insured with."""
    from sbcard.services.exchange.lookup import require_operator_anywhere
    from sbcard.services.exchange.people_desk import register_person

    with open_world(app.home, app.clock) as world:
        require_operator_anywhere(world, operator)
        data = register_person(world, citizen_id=citizen_id, now=app.clock.now(), operator=operator, **given)
    _emit_person(app, data, show_personal=False, verb="Registered")


@person.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--region", required=True, metavar="NNNNNN",
              help="Whose registry: also the region of rows that leave `region` empty.")
@click.option("--errors", "errors_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the per-row error report (default: FILE.errors.csv).")
@staff_operator_option("The member of staff running the import (recorded; required).")
@with_app
def import_command(app: AppContext, file: Path, region: str, errors_path: Path | None, operator: str) -> None:
    """Register every good row of FILE.csv; bad rows go to the error report, never blocking the rest.

    Columns: citizen_id, name, insurance (required); retired, ethnicity, phone, address,
    photo_ref, region, insured_region, guardian_id, guardian_relation, residence
    (hukou, permit, none or unknown) (optional).
    """
    from sbcard.services.exchange.lookup import require_operator_anywhere
    from sbcard.services.people.registry import import_persons

    _node(region, "--region")
    if not file.is_file():
        raise NotFound("import.no_file", f"no such file: {file}", "FILE")
    report_path = errors_path or file.with_name(file.stem + ".errors.csv")
    with open_world(app.home, app.clock) as world:
        require_operator_anywhere(world, operator)
        with _progress_bar(file, quiet=app.json) as progress:
            report = import_persons(world, file, region=region, now=app.clock.now(), error_report_path=report_path,
                                    operator=operator, progress=progress)
    data = report.to_dict()
    if app.json:
        emit_json(data)
        return
    click.echo(f"Imported {number(data['imported'])} of {number(data['rows'])} rows into {NODE_NAMES[data['node']]}'s "
               "registry")
    if data["rejected"]:
        warn(f"{number(data['rejected'])} rows rejected: see {data['errors_file']}")


@person.command("show")
@click.argument("citizen_id", metavar="CITIZEN_ID")
@click.option("--show-personal", is_flag=True, help="Reveal ID, name, phone and address (recorded in the audit log).")
@click.option("--operator", default=None, help="Who looks (required with --show-personal).")
@with_app
def show_command(app: AppContext, citizen_id: str, show_personal: bool, operator: str | None) -> None:
    """A person's registry record, wherever they are registered."""
    from sbcard.services.exchange.lookup import require_operator_anywhere
    from sbcard.services.exchange.people_desk import parse_id, person_anywhere
    from sbcard.services.people.registry import record_personal_data_shown

    cid = parse_id(citizen_id)
    if show_personal and not operator:
        raise InvalidInput("operator.missing", "--show-personal needs --operator: revealing personal data is audited",
                           "--operator")
    with open_world(app.home, app.clock) as world:
        node, data = person_anywhere(world, cid.value)
        if show_personal:
            _, staff = require_operator_anywhere(world, operator or "")
            record_personal_data_shown(world.region(node), citizen_id=cid.value, operator=staff["code"],
                                       command="person show", now=app.clock.now())
    _emit_person(app, {**data, "node": node}, show_personal=show_personal)


@person.command("residence")
@click.argument("citizen_id", metavar="CITIZEN_ID")
@click.option("--residence", required=True, type=click.Choice(RESIDENCES),
              help="hukou (户籍), permit (居住证) where the person lives, none, or unknown.")
@staff_operator_option("The member of staff who saw the papers (recorded; required).")
@with_app
def residence_command(app: AppContext, citizen_id: str, residence: str, operator: str) -> None:
    """Record a person's residence status, as their 户口簿 or 居住证 shows it (audited)."""
    from sbcard.services.exchange.lookup import require_operator_anywhere
    from sbcard.services.exchange.people_desk import record_residence

    with open_world(app.home, app.clock) as world:
        staff_node, _ = require_operator_anywhere(world, operator)
        data = record_residence(world, citizen_id=citizen_id, residence=residence, operator=operator,
                                operator_node=staff_node, now=app.clock.now())
    _emit_person(app, data, show_personal=False, verb="Updated")


def _emit_person(app: AppContext, data: dict[str, Any], *, show_personal: bool, verb: str | None = None) -> None:
    shown = data if show_personal else _masked(data)
    if app.json:
        emit_json(shown)
        return
    if verb:
        click.echo(f"{verb} {shown['citizen_id']} in {NODE_NAMES[node_of(shown['insured_region'])]}'s registry")
    retired = " (retired)" if shown["retired"] else ""
    pairs = [
        ("citizen ID", shown["citizen_id"]), ("name", shown["name"]),
        ("sex", {"M": "male", "F": "female"}[shown["sex"]]), ("born", shown["birth_date"]),
        ("ethnicity", f"{shown['ethnicity']:02d} {shown['ethnicity_name']}"),
        ("lives in", named_region(shown["household_region"])),
        ("residence", _RESIDENCE_WORDS.get(shown.get("residence") or "unknown", shown.get("residence"))),
        ("insured in", named_region(shown["insured_region"])),
        ("insurance", shown["insurance"] + retired), ("phone", shown["phone"]), ("address", shown["address"]),
        ("photo", shown["photo_ref"]),
    ]
    pairs += [("guardian", f"{g['citizen_id']} ({g['relation']})") for g in shown["guardians"]]
    click.echo(fields(pairs))


@contextmanager
def _progress_bar(file: Path, *, quiet: bool) -> Iterator[Callable[[int], None] | None]:
    """A bar on stderr when it is a terminal (by bytes of the file read); nothing otherwise."""
    stderr = sys.stderr
    if quiet or not stderr.isatty():
        yield None
        return
    with click.progressbar(length=file.stat().st_size, label="importing", file=stderr, show_eta=True) as bar:
        done = 0

        def progress(bytes_read: int) -> None:
            nonlocal done
            bar.update(bytes_read - done)
            done = bytes_read

        yield progress


_RESIDENCE_WORDS = {"hukou": "户籍 (hukou) where they live", "permit": "居住证 (residence permit) where they live",
                    "none": "neither 户籍 nor 居住证 where they live", "unknown": "not recorded"}


def _masked(data: dict[str, Any]) -> dict[str, Any]:
    """Human output and JSON alike hide what identifies the person, unless --show-personal."""
    return mask_person(data)


def _node(region: str, field: str) -> str:
    try:
        return node_of(validate_region_code(region))
    except SbcardError as e:
        raise InvalidInput(e.code, e.message, field) from None
