"""``sbcard medical …``: medical settlement with the card (一卡通结).

``hospitals`` and ``catalogue`` show the reference data (``fixtures/medical``); ``settle``
runs a hospital's point of sale (``terminals.apps.medical``) on the card in ``--reader``
with the service behind it (``sbcard.services.medical.routing.PosHost``: the hub, the insured
region); ``refund``, ``claims``, ``year`` and ``reconcile`` are the back office's.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import click

from sbcard.cli.context import AppContext, with_app
from sbcard.cli.output import caution, emit_json, fields, money, named_region, number, refusal, table, when
from sbcard.cli.params import Whole
from sbcard.cli.readers import reader_session, trace_option
from sbcard.domain.errors import InvalidInput, NotFound


@click.group("medical")
def medical() -> None:
    """Medical settlement: hospitals, catalogues, settle at a point of sale, refund, claims, years."""


# ----------------------------------------------------------------------------- reference data


@medical.command("hospitals")
@click.option("--region", default=None, metavar="NNNNNN",
              help="Only hospitals in this region (province, city or county).")
@with_app
def hospitals_command(app: AppContext, region: str | None) -> None:
    """Designated hospitals (定点医疗机构) of the three regions, with their level (一/二/三级)."""
    from sbcard.reference import medical as ref
    from sbcard.domain.regions import is_within

    area = _region(region) if region else None
    rows = [h.to_json() for h in ref.hospitals().values() if area is None or is_within(h.region, area)]
    if app.json:
        emit_json(rows)
        return
    click.echo(table([(h["code"], h["name"], named_region(h["region"]), h["level"]) for h in rows],
                     ["code", "name", "region", "level"]) if rows else "No hospitals.")


@medical.command("catalogue")
@click.option("--region", required=True, metavar="NNNNNN", help="The place of treatment (its province's catalogue).")
@with_app
def catalogue_command(app: AppContext, region: str) -> None:
    """The catalogue (医保目录) of the place of treatment: 甲类 A, 乙类 B (self-pay-first share), 丙类 C."""
    from sbcard.reference import medical as ref
    from sbcard.domain.regions import province_code_of

    province = province_code_of(_region(region))
    try:
        catalogue = ref.catalogue(province)
    except InvalidInput as e:
        raise InvalidInput(e.code, f"region {region}: no catalogue; the catalogues are of 110000, 120000 and 130000",
                           "--region") from None
    items = [item.to_json() for item in catalogue.values()]
    if app.json:
        emit_json(items)
        return
    click.echo(table([(i["code"], i["name"], i["class"], money(i["price_fen"]), f"{i['self_first_pct']}%")
                      for i in items], ["code", "name", "class", "price", "self first"]))


@medical.command("policies")
@click.option("--region", default=None, metavar="NNNNNN", help="Only this insured province's policies.")
@with_app
def policies_command(app: AppContext, region: str | None) -> None:
    """The insured regions' policies (参保地政策) and cross-region terms, each figure with its source."""
    from sbcard.reference import medical as ref
    from sbcard.domain.regions import province_code_of

    province = province_code_of(_region(region)) if region else None
    rows = [p.to_json() for p in ref.policies() if province is None or p.region == province]
    terms = []
    for p in (ref.cross_region(r) for r in ("110000", "120000", "130000") if province in (None, r)):
        for kind, t in p.kinds.items():
            terms.append({"region": p.region, "kind": kind, "cut_points": t.cut_points, "on": t.on,
                          "valid_from": t.valid_from.isoformat() if t.valid_from else None,
                          **t.provenance.to_json()})
    caps = ref.national_caps()
    data = {"policies": rows, "cross_region": terms,
            "national_caps": {"points": dict(caps.points), **caps.provenance.to_json()}}
    if app.json:
        emit_json(data)
        return

    def pct(p: dict[str, Any]) -> str:
        return "/".join(str(p["ratio_pct"][str(lv)]) for lv in (1, 2, 3))

    click.echo(table([(p["region"], p["insurance_type"], "yes" if p["retired"] else "no", p["episode"],
                       f"{'/'.join(money(p['deductible_fen'][str(lv)]) for lv in (1, 2, 3))} "
                       f"{'an admission' if p['deductible_basis'] == 'admission' else 'a year'}",
                       pct(p), "none" if p["cap_fen"] is None else money(p["cap_fen"]),
                       "" if p["band_fen"] is None else f"{p['band_ratio_pct']}% above {money(p['band_fen'])}"
                       + (" (illustrative)" if p["band"]["illustrative"] else ""),
                       p["confidence"]) for p in rows],
                     ["region", "type", "retired", "episode", "deductible l1/l2/l3", "ratio %", "cap", "band",
                      "confidence"]))
    click.echo()
    click.echo(table([(t["region"], t["kind"], t["cut_points"], "on" if t["on"] else "off", t["confidence"])
                      for t in terms], ["region", "kind", "points off", "switch", "confidence"]))
    click.echo(f"national caps (国医保发〔2022〕22号): " + ", ".join(f"{k} {v}" for k, v in caps.points.items())
               + f" points ({caps.provenance.confidence})")
    if any(p["illustrative"] for p in rows) or any(t["illustrative"] for t in terms):
        click.echo(caution("illustrative rows are the simulator's own figures, not a region's published rule"))


# ----------------------------------------------------------------------------- registrations (异地就医备案)


def _holder_of(world: Any, card_number: str) -> tuple[str, str]:
    from sbcard.services.exchange import lookup

    found = lookup.find_card(world, card_number)
    if found is None:
        raise NotFound("card.unknown", f"no card {card_number} in Beijing, Tianjin or Hebei", "--card")
    node, card = found
    return node, card["citizen_id"]


@medical.command("register")
@click.option("--card", "card_number", required=True, metavar="CARD", help="The holder's card.")
@click.option("--kind", required=True, type=click.Choice(["retired_resettled", "long_term_resident", "posted_worker",
                                                          "referral", "other_temporary"]),
              help="异地安置退休 / 异地长期居住 / 常驻异地工作 / 异地转诊 / 其他临时外出就医.")
@click.option("--province", required=True, metavar="NNNNNN", help="The place of treatment's province.")
@click.option("--from", "valid_from", default=None, metavar="YYYY-MM-DD", help="First day (default: today).")
@click.option("--to", "valid_to", default=None, metavar="YYYY-MM-DD",
              help="Last day (required for referral and other_temporary; open-ended otherwise).")
@click.option("--operator", default=None, help="The staff member recording it (default: the holder themselves).")
@with_app
def register_command(app: AppContext, card_number: str, kind: str, province: str, valid_from: str | None,
                     valid_to: str | None, operator: str | None) -> None:
    """异地就医备案: record a cross-region registration at the holder's insured region."""
    from sbcard.services.medical import registrations
    from sbcard.store.unit_of_work import UnitOfWork
    from sbcard.store.world import open_world

    now = app.clock.now()
    first = _day(valid_from, "--from") if valid_from else now.date()
    last = _day(valid_to, "--to") if valid_to else None
    with open_world(app.home, app.clock) as world:
        node, citizen = _holder_of(world, card_number.strip().upper())
        if operator:
            from sbcard.services.outlets import operators
            from sbcard.services.cards.issuance import COUNTER_ROLES

            operators.require_operator(world.region(node), operator.strip(), roles=COUNTER_ROLES)
        done = registrations.register(UnitOfWork(world.region(node)), citizen_id=citizen, kind=kind,
                                      province=_region(province, "--province"), valid_from=first, valid_to=last,
                                      operator=(operator or registrations.HOLDER).strip(), now=now)
    if app.json:
        emit_json(done)
        return
    click.echo(fields([("registration", str(done["id"])), ("kind", f"{done['kind_name']} ({done['kind']})"),
                       ("treated in", named_region(done["province"])),
                       ("valid", f"{done['valid_from']} to {done['valid_to'] or 'open-ended'}"),
                       ("by", done["operator"])]))


@medical.command("unregister")
@click.argument("registration_id", metavar="REGISTRATION_ID", type=Whole(1, 10**12))
@click.option("--card", "card_number", required=True, metavar="CARD", help="The holder's card.")
@click.option("--operator", default=None, help="The staff member recording it (default: the holder themselves).")
@with_app
def unregister_command(app: AppContext, registration_id: int, card_number: str, operator: str | None) -> None:
    """取消备案: a registration stops counting from now (claims settled on it stand)."""
    from sbcard.services.medical import registrations
    from sbcard.store.unit_of_work import UnitOfWork
    from sbcard.store.world import open_world

    with open_world(app.home, app.clock) as world:
        node, citizen = _holder_of(world, card_number.strip().upper())
        if operator:
            from sbcard.services.outlets import operators
            from sbcard.services.cards.issuance import COUNTER_ROLES

            operators.require_operator(world.region(node), operator.strip(), roles=COUNTER_ROLES)
        done = registrations.cancel(UnitOfWork(world.region(node)), citizen_id=citizen,
                                    registration_id=registration_id,
                                    operator=(operator or registrations.HOLDER).strip(), now=app.clock.now())
    if app.json:
        emit_json(done)
        return
    click.echo(fields([("registration", f"{done['id']} cancelled"), ("kind", f"{done['kind_name']} ({done['kind']})"),
                       ("cancelled at", when(done["cancelled_at"]))]))


@medical.command("registrations")
@click.option("--card", "card_number", required=True, metavar="CARD", help="The holder's card.")
@with_app
def registrations_command(app: AppContext, card_number: str) -> None:
    """A holder's cross-region registrations, and whether each is valid today."""
    from sbcard.services.medical import registrations
    from sbcard.store.unit_of_work import UnitOfWork
    from sbcard.store.world import open_world

    with open_world(app.home, app.clock) as world:
        node, citizen = _holder_of(world, card_number.strip().upper())
        rows = registrations.listing(UnitOfWork(world.region(node)), citizen, app.clock.now().date())
    if app.json:
        emit_json(rows)
        return
    if not rows:
        click.echo("No registrations.")
        return
    click.echo(table([(r["id"], f"{r['kind_name']} ({r['kind']})", r["province"], r["valid_from"],
                       r["valid_to"] or "open", "yes" if r["valid_today"] else "no") for r in rows],
                     ["id", "kind", "treated in", "from", "to", "valid today"]))


def _day(text: str, option: str) -> Any:
    import datetime as dt

    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput("date.invalid", f"{text!r} is not a date YYYY-MM-DD", option) from None


# ----------------------------------------------------------------------------- settle


@medical.command("settle")
@click.option("--reader", "reader_spec", required=True, metavar="SPEC",
              help="The reader with the card: emulator:PATH[?tear=N], pcsc:NAME or pcsc:.")
@click.option("--hospital", required=True, metavar="CODE", help="The hospital (see `medical hospitals`).")
@click.option("--items", "items_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The claim's lines: JSON list of {code, quantity, price} or CSV code,quantity,price (yuan).")
@click.option("--pin", default=None, metavar="PIN", help="The holder's PIN: the personal account pays what it may.")
@click.option("--self-pay", "self_pay", type=click.Choice(["cash", "account"]), default="cash", show_default=True,
              help="How the holder pays their share: cash at the counter, or the card's financial account (PIN).")
@click.option("--referral", is_flag=True,
              help="The hospital declares a referral (转诊, with the referring hospital's papers): 异地转诊 terms.")
@click.option("--emergency", is_flag=True, help="The hospital declares an emergency (急诊抢救): deemed registered.")
@click.option("--inpatient", is_flag=True,
              help="An inpatient stay's discharge settlement (住院): the inpatient deductible and ratios.")
@trace_option
@with_app
def settle_command(app: AppContext, reader_spec: str, hospital: str, items_path: Path, pin: str | None,
                   self_pay: str, referral: bool, emergency: bool, inpatient: bool, trace: bool) -> None:
    """Settle a claim at a hospital's point of sale: the card read, the split, the card's log written.

    Online, the holder's insured region settles it through the hub, with the holder's
    registration (`sbcard medical register`) valid that day and its cross-region rules;
    while the hub cannot reach that region (`sbcard hub link`), it is settled offline
    against the card's offline data and queued (`sbcard medical reconcile`).
    """
    from sbcard.reference import medical as ref
    from sbcard.services.medical.routing import PosHost
    from sbcard.store.world import open_world
    from terminals.apps.medical import PointOfSale

    if referral and emergency:
        raise InvalidInput("medical.flags", "a claim is a referral or an emergency, not both", "--emergency")
    lines = read_items(items_path)
    now = app.clock.now()
    with open_world(app.home, app.clock) as world:
        pos = PointOfSale(PosHost(world, now=now), ref, app.clock, hospital)
        with reader_session(reader_spec, trace) as reader:
            receipt = pos.settle(reader, lines, pin=pin, self_pay=self_pay,
                                 visit="emergency" if emergency else "referral" if referral else "",
                                 episode="inpatient" if inpatient else "outpatient")
    if app.json:
        emit_json(receipt)
        return
    click.echo(_receipt(receipt))


def _terms_text(r: dict[str, Any]) -> str:
    from sbcard.domain.medical import KIND_NAMES

    kind = r.get("registration_kind")
    episode = "inpatient" if r.get("episode") == "inpatient" else "outpatient"
    if kind is None:
        return f"{episode}; cross-region terms not recorded" if r.get("cross_region") else episode
    cut = r.get("cut_points") or 0
    return f"{episode}; {KIND_NAMES.get(kind, kind)} ({kind})" + (f", {cut} points off" if cut else "")


def read_items(path: Path) -> list[Any]:
    """The claim's lines from a JSON or CSV file (``sbcard.domain.medical.parse_lines``)."""
    from sbcard.domain.medical import parse_lines

    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise NotFound("items.missing", f"no file {path}", "--items") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput("items.unreadable", f"{path}: {e}", "--items") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:  # RecursionError: nested past Python's stack
            raise InvalidInput("items.json", f"{path.name} is not JSON: {e or 'nested too deep'}", "--items") from None
        if not isinstance(rows, list):
            raise InvalidInput("items.json", f"{path.name} must hold a list of {{code, quantity, price}}", "--items")
    else:
        reader = csv.DictReader(io.StringIO(text))
        try:
            header = [h.strip() for h in reader.fieldnames or []]
            if not {"code", "quantity", "price"} <= set(header):
                raise InvalidInput("items.csv", f"{path.name} needs a header code,quantity,price (got "
                                   f"{','.join(header) or 'none'})", "--items")
            rows = [{(k or "").strip(): v for k, v in row.items()} for row in reader]
        except csv.Error as e:  # e.g. a field past the csv module's limit
            raise InvalidInput("items.csv", f"{path.name} line {reader.line_num}: not readable as CSV ({e})",
                               "--items") from None
    return parse_lines(rows)


def _receipt(r: dict[str, Any]) -> str:
    rows = [(i["code"], i["name"], i["class"], i["quantity"], money(i["amount_fen"]), money(i["fund_fen"]),
             money(i["account_fen"]), money(i["self_fen"])) for i in r["items"]]
    out = table(rows, ["code", "item", "class", "qty", "amount", "fund", "account", "self"])
    pairs = [("claim", f"{r['claim_id']} ({r['mode']}{', queued' if r['status'] == 'queued' else ''})"),
             ("hospital", f"{r['hospital_name']} ({r['hospital']}, level {r['hospital_level']})"),
             ("card", f"{r['card_number']} {r.get('holder') or ''}".strip()),
             ("total", money(r["total_fen"])),
             ("pooled fund", f"{money(r['fund_fen'])} at {r['ratio_pct']}%"
                             + (" (cap reached)" if r["cap_reached"] else "")),
             ("personal account", money(r["account_fen"])),
             ("to pay", f"{money(r['self_fen'])} "
                        f"({'financial account' if r['self_pay'] == 'account' else 'cash'})"),
             ("deductible", money(r["deductible_fen"])),
             ("terms", _terms_text(r))]
    if r.get("personal_account_fen") is not None:
        pairs.append(("account left", money(r["personal_account_fen"])))
    if not r.get("ef08_written", True):
        pairs.append(("card log", caution("not written (the card left the reader): the claim stands")))
    out += "\n\n" + fields(pairs)
    if r.get("illustrative"):
        out += "\n" + caution("illustrative: some figures of this settlement are the simulator's own, not a "
                               "region's published rule (see fixtures/medical/README.md)")
    for note in r.get("notes") or []:
        out += "\n" + caution(f"note: {note}")
    return out


# ----------------------------------------------------------------------------- back office


@medical.command("refund")
@click.argument("claim_id", metavar="CLAIM_ID")
@click.option("--items", "codes", default=None, metavar="CODE,CODE",
              help="Refund only these items (catalogue codes); the rest is settled again as a new claim.")
@click.option("--reader", "reader_spec", default=None, metavar="SPEC",
              help="The reader with the holder's card: the refund is written into its medical log (DF04/EF08).")
@trace_option
@with_app
def refund_command(app: AppContext, claim_id: str, codes: str | None, reader_spec: str | None, trace: bool) -> None:
    """退费: reverse a claim of this year (accumulators, personal account, ledger); partly with --items."""
    from contextlib import nullcontext

    from sbcard.services.medical import routing as route
    from sbcard.store.world import open_world

    wanted = [c.strip() for c in codes.split(",") if c.strip()] if codes is not None else None
    if codes is not None and not wanted:
        raise InvalidInput("medical.refund.items", "--items names at least one item code", "--items")
    now = app.clock.now()
    ef08_written = None
    with open_world(app.home, app.clock) as world:
        with reader_session(reader_spec, trace) if reader_spec else nullcontext() as reader:
            if reader is not None:
                from terminals.apps import medical as pos

                found = route.find_claim(world, claim_id.strip())
                if found is not None:  # else the refund says the claim is unknown (or queued)
                    pos.refund_card(reader, found[1]["card_number"])
            done = route.refund(world, claim_id, wanted, now=now)
            data = route.refund_summary(done, wanted)
            refunded, resettled = done["refunded"], done["resettled"]
            if reader is not None:
                ef08_written = pos.record_refund(
                    reader, hospital=refunded["hospital"], serial=_claim_serial(refunded["claim_id"]), at=now,
                    total_fen=data["refund_fen"], fund_fen=data["fund_fen"], account_fen=data["account_fen"],
                    self_fen=data["self_fen"], cross_region=refunded["cross_region"])
    data["ef08_written"] = ef08_written
    if app.json:
        emit_json(data)
        return
    pairs = [("claim", f"{data['claim_id']} refunded"), ("refunded", money(data["refund_fen"])),
             ("back to the fund", money(data["fund_fen"])),
             ("back to the personal account", money(data["account_fen"])),
             ("back to the holder", money(data["self_fen"]))]
    if resettled:
        pairs.append(("remaining items", f"settled again as {resettled['claim_id']}: "
                                         f"{money(resettled['total_fen'])}"))
    if ef08_written is not None:
        pairs.append(("card's medical log", "refund written" if ef08_written else
                      "NOT written (the card left the reader): the refund stands"))
    click.echo(fields(pairs))


def _claim_serial(claim_id: str) -> int:
    """The number in a claim id ``<hospital>-<serial>`` (what the card's log keeps)."""
    return int(claim_id.split("-")[1])


@medical.command("claims")
@click.option("--card", "card_number", default=None, metavar="CARD", help="Only this card's claims.")
@click.option("--hospital", default=None, metavar="CODE", help="Only this hospital's claims.")
@with_app
def claims_command(app: AppContext, card_number: str | None, hospital: str | None) -> None:
    """Claims settled in the three regions, and those still queued offline."""
    from sbcard.services.medical import claims as medical_claims, host as medical_host
    from sbcard.store.unit_of_work import UnitOfWork
    from sbcard.store.world import REGION_NODES, open_world

    card = card_number.strip().upper() if card_number else None
    code = hospital.strip().upper() if hospital else None
    rows: list[dict[str, Any]] = []
    with open_world(app.home, app.clock) as world:
        for node in REGION_NODES:
            rows += medical_host.claims(UnitOfWork(world.region(node)), card_number=card, hospital=code)
        for node in REGION_NODES:
            rows += [medical_claims.listed(q)
                     for q in medical_claims.entries(UnitOfWork(world.region(node)), card_number=card, hospital=code)]
    rows.sort(key=lambda r: (r["at"], r["claim_id"]))
    if app.json:
        emit_json(rows)
        return
    if not rows:
        click.echo("No claims.")
        return
    click.echo(table([(r["claim_id"], when(r["at"]), r["card_number"], r["hospital"], r["mode"],
                       r["status"], *(money(r[k]) if r[k] is not None else "?"
                                      for k in ("total_fen", "fund_fen", "account_fen", "self_fen"))) for r in rows],
                     ["claim", "at", "card", "hospital", "mode", "status", "total", "fund", "account", "self"]))
    if any(r.get("illustrative") for r in rows):
        click.echo(caution("illustrative: some claims were settled on figures that are the simulator's own "
                           "(`--json` says which, with their sources)"))


@medical.command("year")
@click.option("--card", "card_number", required=True, metavar="CARD", help="The holder's card.")
@click.option("--year", type=Whole(1900, 9999), default=None, metavar="YYYY", help="The calendar year (default: this year).")
@with_app
def year_command(app: AppContext, card_number: str, year: int | None) -> None:
    """The holder's accumulators for a year: deductible and pooled fund paid, what is left, the personal account."""
    from sbcard.services.exchange import lookup
    from sbcard.services.medical import host as medical_host
    from sbcard.store.unit_of_work import UnitOfWork
    from sbcard.store.world import open_world

    with open_world(app.home, app.clock) as world:
        found = lookup.find_card(world, card_number)
        if found is None:
            raise NotFound("card.unknown", f"no card {card_number} in Beijing, Tianjin or Hebei", "--card")
        node, card = found
        data = medical_host.year_view(UnitOfWork(world.region(node)), card["card_number"], year or app.clock.now().year)
    if app.json:
        emit_json(data)
        return
    click.echo(fields([
        ("card", data["card_number"]), ("year", data["year"]),
        ("insurance", f"{data['insurance_type']}{', retired' if data['retired'] else ''} "
                      f"in {named_region(data['insured_region'])}"),
        ("deductible paid", money(data["deductible_paid_fen"])),
        ("deductible left", " / ".join(f"level {k}: {money(v)}" for k, v in
                                      data["deductible_remaining_fen"].items())),
        ("pooled fund paid", money(data["fund_paid_fen"])),
        ("cap left", "no cap" if data["cap_fen"] is None else
         f"{money(data['cap_remaining_fen'])} of {money(data['cap_fen'])}"),
        ("inpatient", f"deductible {money(data['inpatient_deductible_paid_fen'])}, "
                      f"pooled fund {money(data['inpatient_fund_paid_fen'])}"),
        ("personal account", money(data["personal_account_fen"])), ("claims", number(data["claims"])),
    ]))


@medical.command("reconcile")
@with_app
def reconcile_command(app: AppContext) -> None:
    """Send the claims settled offline to their insured regions, where their links are up."""
    from sbcard.services.medical import routing as route
    from sbcard.store.world import open_world

    with open_world(app.home, app.clock) as world:
        done = route.reconcile(world, now=app.clock.now())
    if app.json:
        emit_json(done)
        return
    click.echo(f"{number(len(done['reconciled']))} reconciled, {number(len(done['refused']))} refused, "
               f"{number(len(done['waiting']))} waiting for their region's link")
    for c in done["reconciled"]:
        adjustment = c["adjustment_fen"]
        what = (f"{money(adjustment)} back to the holder" if adjustment > 0 else
                f"{money(-adjustment)} more from the holder" if adjustment < 0 else "no difference")
        click.echo(f"  {c['claim_id']}: fund {money(c['fund_fen'])}, self {money(c['self_fen'])}; {what}"
                   + (f" (owed: {money(c['owed_fen'])})" if c["owed_fen"] else ""))
    for r in done["refused"]:
        refusal(f"  {r['claim_id']}: refused: {r['message']}")


@medical.command("settle-owed")
@click.argument("claim_id", metavar="CLAIM_ID")
@click.option("--operator", required=True, help="The staff member settling it: finance or supervisor (a counter "
              "operator too, in cash at a bank-branch outlet).")
@click.option("--outlet", default=None, metavar="CODE",
              help="Settle in cash at this bank-branch outlet of the insured region (default: the holder's account).")
@with_app
def settle_owed_command(app: AppContext, claim_id: str, operator: str, outlet: str | None) -> None:
    """Settle what a reconciled offline claim left owed (its owed_fen), once: the holder's account or cash."""
    from sbcard.services.medical.owed import settle_owed
    from sbcard.store.world import open_world

    with open_world(app.home, app.clock) as world:
        done = settle_owed(world, claim_id, operator=operator, outlet=outlet, now=app.clock.now())
    if app.json:
        emit_json(done)
        return
    owed = done["owed_fen"]
    what = (f"{money(owed)} paid by the holder" if owed > 0 else f"{money(-owed)} paid to the holder")
    how = "in cash" if done["via"] == "cash" else "through the financial account"
    click.echo(fields([("claim", done["claim_id"]), ("owed", f"{what} {how}"),
                       ("settled", when(done["settled_at"]) + ("" if done["settled_now"] else " (earlier: nothing done now)")),
                       ("transaction", done["txn_id"])]))


def _region(text: str, field: str = "--region") -> str:
    from sbcard.domain.regions import validate_region_code

    try:
        return validate_region_code(text)
    except InvalidInput as e:
        raise InvalidInput(e.code, e.message, field) from None
