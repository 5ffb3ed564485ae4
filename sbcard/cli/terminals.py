"""``sbcard terminal …``: transit validators and other terminals, their PSAM and lists.

The composition root of a terminal's life: ``sbcard.services.terminals.register`` keeps the
region's register and hands over the PSAM keys and the hub's blacklist;
``terminals.apps.terminal_state`` makes and keeps the terminal's own directory
(``<home>/terminals/<ID>/terminal.db``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sbcard.cli.context import AppContext, handle_errors, json_option, pass_app
from sbcard.cli.output import emit_json, fields, number, table
from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused, SbcardError
from sbcard.domain.money import parse_yuan


@click.group()
def terminal() -> None:
    """Terminals: add, list, sync (blacklist version and keys from the hub), credential, revoke."""


def terminal_dir(home: Path, terminal_id: str) -> Path:
    return home / "terminals" / terminal_id


def open_terminal_state(home: Path, terminal_id: str):
    """The terminal's own state (``TerminalState``); NotFound (exit 2) when it has none."""
    from terminals.apps.terminal_state import TerminalState, TerminalStateError

    if not terminal_id or "/" in terminal_id or terminal_id.startswith("."):
        raise NotFound("terminal.unknown", f"{terminal_id!r} is not a terminal id", "--terminal")
    try:
        return TerminalState.open(terminal_dir(home, terminal_id))
    except TerminalStateError as e:
        raise NotFound("terminal.unknown", f"no terminal {terminal_id!r} in {home} ({e}); add it with "
                       "`sbcard terminal add`", "--terminal") from None


def http_host_for(state, terminal_id: str, url: str, clock, *, load: bool = False):
    """The host API at ``url`` as terminal ``terminal_id`` reaches it (``terminals.apps.http_host.HttpHost``;
    ``load``: a kiosk's ``HttpLoadHost``), signed with the credential its state holds."""
    from terminals.apps.http_host import HttpHost, HttpLoadHost

    credential = state.host_credential()
    if credential is None:
        raise RuleRefused("terminal.no_credential", f"terminal {terminal_id} was made before host credentials: "
                          f"load its credential first (`sbcard terminal credential {terminal_id}`)", "--host")
    return (HttpLoadHost if load else HttpHost)(url, terminal_id, credential, clock=clock.now)


def install_terminal(home: Path, durability: str):
    """What ``register_terminal`` calls to make a terminal's directory: its PSAM keys and the hub's lists
    (``terminals.apps.uploads.install_lists``). ``sbcard venue gate add`` makes its gates with it too."""
    from sbcard.chip.crypto import Algorithm
    from terminals.apps import uploads
    from terminals.apps.terminal_state import TerminalConfig, TerminalState, TerminalStateError
    from terminals.psam import PsamKeySet, psam_upload_key

    def install(row: dict[str, Any], keys, blacklist) -> None:
        config = TerminalConfig(
            terminal_id=row["id"],
            operator=row["operator"],
            node=row["node"],
            terminal_no=row["terminal_no"],
            psam_id=row["psam_id"],
            created_at=row["created_at"],
            station=row["station"],
            station_code=row["station_code"],
            gate=row["gate"],
            line=row["line"],
            area=row["area"],
            full_fare_fen=row["full_fare_fen"],
        )
        key_sets = [
            PsamKeySet(k.issuer_id, k.purchase_master, k.app_maintenance_master, Algorithm(k.algorithm), k.version)
            for k in keys
        ]
        try:
            state = TerminalState.create(terminal_dir(home, row["id"]), config, key_sets, durability=durability,
                                         upload_key=psam_upload_key(row.get("upload_key")),
                                         host_credential=row.get("host_credential"))
        except TerminalStateError as e:
            raise SbcardError("terminal.exists", str(e), "terminal") from None
        with state:
            uploads.install_lists(state, blacklist, synced_at=row["synced_at"])

    return install


@terminal.command("add")
@click.option("--operator", default=None, metavar="CODE",
              help="bj-subway, bj-bus, tj-bus, tj-metro, he-sjz-bus, he-lf-bus; or a hospital's code (its medical POS).")
@click.option("--kind", type=click.Choice(["kiosk"]), default=None,
              help="kiosk: a self-service load kiosk (自助圈存) at --outlet, instead of an operator's terminal.")
@click.option("--outlet", default=None, metavar="CODE", help="A kiosk's outlet (with --kind kiosk).")
@click.option("--station", default=None, help="A metro gate's station (name or 8-digit code); a bus stop for buses.")
@click.option("--gate", type=click.Choice(["entry", "exit", "both"]), default="both", show_default=True,
              help="A metro gate's direction (both: the card's entry record decides).")
@click.option("--line", default=None, help="A bus validator's line (gives the area or the line's full fare).")
@click.option("--area", type=click.Choice(["city", "suburb"]), default=None, help="Beijing buses: the fare area.")
@click.option("--full-fare", default=None, metavar="YUAN", help="A flat-fare bus line's full fare (else the line's).")
@click.option("--durability", type=click.Choice(["normal", "full"]), default="normal", show_default=True,
              help="Offline log: normal survives a crash of the terminal; full also a power cut (fsync per tap).")
@json_option
@pass_app
@handle_errors
def add_command(app: AppContext, operator: str | None, kind: str | None, outlet: str | None, station: str | None,
                gate: str, line: str | None, area: str | None, full_fare: str | None, durability: str) -> None:
    """Add a terminal: its PSAM (every issuer's consumer keys), its directory and the blacklist."""
    from sbcard.services.terminals import kiosk
    from sbcard.services.terminals import register as service
    from sbcard.store.world import open_world

    from sbcard.services.medical import pos

    if kind == kiosk.KIND:
        if operator is not None or station or line or area or full_fare is not None or gate != "both":
            raise InvalidInput("terminal.kiosk", "a kiosk is its outlet's: it takes --outlet only (no --operator, "
                               "--station, --gate, --line, --area or --full-fare)", "--kind")
        if outlet is None:
            raise InvalidInput("terminal.outlet", "a kiosk stands at an outlet: give --outlet", "--outlet")
    elif outlet is not None:
        raise InvalidInput("terminal.outlet", "--outlet is for a kiosk (--kind kiosk)", "--outlet")
    elif operator is None:
        raise InvalidInput("terminal.operator", "give --operator (or --kind kiosk --outlet CODE)", "--operator")
    full_fare_fen = parse_yuan(full_fare, field="--full-fare") if full_fare is not None else None
    with open_world(app.home, app.clock) as world:
        if kind == kiosk.KIND:
            assert outlet is not None
            row = kiosk.add_kiosk(world, outlet, now=app.clock.now(), install=install_terminal(app.home, durability))
        elif pos.is_hospital(operator):  # a hospital's point of sale: its identity on the host API
            if station or line or area or full_fare is not None or gate != "both":
                raise InvalidInput("terminal.pos", "a hospital's point of sale takes no --station, --gate, --line, "
                                   "--area or --full-fare", "--operator")
            row = pos.add_pos(world, operator, now=app.clock.now(), install=install_terminal(app.home, durability))
        else:
            row = service.add_terminal(world, operator=operator, station=station, gate=gate, line=line, area=area,
                                       full_fare_fen=full_fare_fen, now=app.clock.now(),
                                       install=install_terminal(app.home, durability))
    data = {
        "terminal": row["id"],
        "operator": row["operator"],
        "station": row["station"],
        "station_code": row["station_code"],
        "gate": row["gate"],
        "line": row["line"],
        "area": row["area"],
        "full_fare_fen": row["full_fare_fen"],
        "node": row["node"],
        "terminal_no": row["terminal_no"],
        "psam_id": row["psam_id"],
        "blacklist_version": row["blacklist_version"],
        "blacklist_size": row["blacklist_size"],
        "durability": durability,
        "path": str(terminal_dir(app.home, row["id"])),
        "created_at": row["created_at"],
    }
    if app.json:
        emit_json(data)
    else:
        click.echo(fields([("terminal", data["terminal"]), ("operator", data["operator"]), ("station", data["station"]),
                           ("terminal no", data["terminal_no"]), ("PSAM", data["psam_id"]),
                           ("blacklist version", data["blacklist_version"]), ("directory", data["path"])]))


@terminal.command("list")
@click.option("--operator", default=None, metavar="CODE", help="Only this operator's terminals.")
@json_option
@pass_app
@handle_errors
def list_command(app: AppContext, operator: str | None) -> None:
    """Every region's terminals, with what their own state holds."""
    from sbcard.services.terminals import register as service
    from sbcard.store.world import open_world

    with open_world(app.home, app.clock) as world:
        rows = service.list_terminals(world, operator=operator)
    items = [_listed(app.home, row) for row in rows]
    if app.json:
        emit_json(items)
        return
    if not items:
        click.echo("No terminals.")
        return
    click.echo(table([(i["terminal"], i["operator"], i["station"] or "", i["terminal_no"], i["blacklist_version"],
                       number(i["records"]) if i["records"] is not None else "",
                       number(i["unsent"]) if i["unsent"] is not None else "") for i in items],
                     ["terminal", "operator", "station", "terminal no", "blacklist", "records", "unsent"]))


def _listed(home: Path, row: dict[str, Any]) -> dict[str, Any]:
    item = {
        "terminal": row["id"],
        "operator": row["operator"],
        "station": row["station"],
        "node": row["node"],
        "terminal_no": row["terminal_no"],
        "psam_id": row["psam_id"],
        "blacklist_version": row.get("blacklist_version"),
        "synced_at": row.get("synced_at"),
        "created_at": row["created_at"],
        "gate": None,
        "records": None,
        "unsent": None,
        "pending": None,
        "psam_serial": None,
    }
    try:
        state = open_terminal_state(home, row["id"])
    except NotFound:
        return item
    with state:
        item.update(gate=state.config.gate, blacklist_version=state.blacklist_version, records=state.record_count(),
                    unsent=state.unsent_count(), pending=len(state.pending()), psam_serial=state.last_serial())
    return item


@terminal.command("sync")
@click.argument("terminal_id")
@click.option("--host", "host_url", default=None, metavar="URL",
              help="Fetch over the host API of a running service (e.g. http://127.0.0.1:8000), signed with the "
                   "terminal's credential, instead of from the world's files.")
@json_option
@pass_app
@handle_errors
def sync_command(app: AppContext, terminal_id: str, host_url: str | None) -> None:
    """What a terminal fetches online: the hub's latest blacklist version (and revoked concessions)."""
    from sbcard.services.terminals import register as service
    from sbcard.services.transit.terminal_host import TerminalHost
    from sbcard.store.world import open_world
    from terminals.apps import uploads

    now = app.clock.now()
    if host_url is not None:
        with open_terminal_state(app.home, terminal_id) as state, \
                http_host_for(state, terminal_id, host_url, app.clock) as remote:
            synced = uploads.sync_lists(state, remote, terminal_id, now=now)
            unsent = state.unsent_count()
    else:
        with open_world(app.home, app.clock) as world:
            service.get_terminal(world, terminal_id)
            with open_terminal_state(app.home, terminal_id) as state:
                synced = uploads.sync_lists(state, TerminalHost(world), terminal_id, now=now)
                unsent = state.unsent_count()
    assert synced is not None  # (only ``if_changed`` leaves a terminal as it is)
    copy, previous = synced.lists, synced.previous_version
    data = {
        "terminal": terminal_id,
        "blacklist_version": copy.version,
        "previous_version": previous,
        "blacklist_size": len(copy.cards),
        "published_at": copy.published_at,
        "revoked_concessions": len(copy.revoked_concessions),
        "unsent_records": unsent,
        "synced_at": now.isoformat(),
    }
    if app.json:
        emit_json(data)
    else:
        click.echo(fields([("terminal", terminal_id), ("blacklist version", f"{previous} → {copy.version}"),
                           ("cards on the list", number(data["blacklist_size"])), ("unsent records", number(unsent))]))


@terminal.command("credential")
@click.argument("terminal_id")
@json_option
@pass_app
@handle_errors
def credential_command(app: AppContext, terminal_id: str) -> None:
    """Load the host API credential into a terminal made before credentials (derived: the same key again is a no-op)."""
    from sbcard.services.terminals import credentials
    from sbcard.store.world import open_world
    from terminals.apps.terminal_state import TerminalStateError

    with open_world(app.home, app.clock) as world:
        key = credentials.credential(world, terminal_id)
        row = credentials.get_terminal(world, terminal_id)
    with open_terminal_state(app.home, terminal_id) as state:
        try:
            loaded = state.load_host_credential(key)
        except TerminalStateError as e:
            raise RuleRefused("terminal.credential_mismatch", str(e), "terminal") from None
    data = {"terminal": terminal_id, "loaded": loaded, "revoked_at": row.get("revoked_at")}
    if app.json:
        emit_json(data)
    else:
        click.echo(f"Terminal {terminal_id}: " + ("host credential loaded." if loaded
                                                  else "already holds its host credential."))


@terminal.command("revoke")
@click.argument("terminal_id")
@click.option("--reason", default=None, help="Why (recorded in the region's audit log).")
@json_option
@pass_app
@handle_errors
def revoke_command(app: AppContext, terminal_id: str, reason: str | None) -> None:
    """Revoke the terminal's host credential: the host API refuses it from now on (401)."""
    from sbcard.services.terminals import credentials
    from sbcard.store.world import open_world

    with open_world(app.home, app.clock) as world:
        row = credentials.revoke(world, terminal_id, now=app.clock.now(), by="cli", reason=reason)
    data = {"terminal": terminal_id, "node": row["node"], "revoked_at": row["revoked_at"],
            "reason": row["revoked_reason"]}
    if app.json:
        emit_json(data)
    else:
        click.echo(fields([("terminal", terminal_id), ("revoked at", data["revoked_at"]),
                           ("reason", data["reason"] or "")]))
