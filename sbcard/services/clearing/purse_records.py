"""The day's clearing (清分): accepted purchases and settled claims → lines payer → payee, and the ledgers.

``run_clearing(world, day, now=…)`` (``sbcard clearing run --date D``) runs once per date;
the hub's ``settlements`` row for the date (idempotency key ``settlement/<day>``) says it
ran, and a second run changes nothing and answers so. A run cut short (a crash) finishes
the job the next time: each step below is idempotent on its own.

1. **Routing.** Every region's uploaded records that waited for an issuer out of reach
   (``transit_host.route_awaiting``) go to it now, where the hub reaches both ends.
2. **Each region's part** (a region whose link is down waits for the next clearing date:
   its records stay "not yet in a clearing"), in one transaction of that region:
   - transit, as the cards' issuer: every purchase it accepted (``purse_purchases`` status
     ``cleared``, flagged ones included) received up to the end of the day (Beijing time)
     and not yet in a clearing gets the day in ``clearing_day`` (set once: a trigger refuses
     a second) → lines (issuer → operator's region, operator, count, amount, flagged);
   - medical, as the insured region: every claim it settled (``recorded_at``) and every
     refund it made (``refunded_at``, a negative amount) up to the end of the day and not
     yet in a clearing → lines (insured region → hospital's region, hospital, count, amount
     owed: what the claim's ledger transaction credited ``CLEARING-<hospital node>``);
   - its ledger (kind ``clearing``): ``FLOAT-PURSE`` −x and ``CLEARING-<operator node>`` +x,
     or ``OPERATOR-<operator>`` +x for its own region's operators; for its own hospitals
     ``CLEARING-<own node>`` −x, ``HOSPITAL-<code>`` +x (the claims credited it already);
   - the counter gaps of its cards as they stand (a counter skipped below a cleared one:
     a tap whose record has not arrived), in its ``clearing_runs`` row with the counts;
   - the flag policy (``purse_integrity.review_flags``): its cards whose cleared purchases'
     flags or overdue gaps condemn them are blocked (the hub's blacklist, delivered in the run).
3. **Through the hub.** Each region's new lines go to the hub (``clearing.lines/<day>/<node>``,
   kept in the hub's ``clearing_lines``), which delivers each payer's lines to each other
   payee region it reaches (``clearing.deliver/<day>/<payer>/<payee>``, once by the payee's
   ``inbox``): the payee writes them and posts ``CLEARING-<payer node>`` −Σ,
   ``OPERATOR-<operator>`` / ``HOSPITAL-<code>`` +x. Lines of a payee out of reach wait for
   the next run.
4. **Settlement.** The hub records the day's settlement (``settlement.day_settlement``)
   once, and each region's settlement file ``<home>/settlement/<day>/<node>.json`` is written.

``report(world, day)`` (``sbcard clearing report``) shows a day's clearing: lines, records
rejected (with the reasons' categories) and flagged, duplicates, counter gaps; and, as the
run does, the day's corrections of credited reversals and blocked cards (``purse_cases``).

**One node per process** (``sbcard serve --node hub``, ``docs/api/nodes.md``): the run is the
hub's process's, over a world that holds only the hub. Each region's part is its process's,
asked by a message (``clearing.part``); its lines are a question (``clearing.unsent_lines``)
and a message once kept (``clearing.taken``); each payee's receipt a message
(``clearing.deliver``) — all applied once by the region's ``inbox`` (``apply_from_hub``);
the rest the run and the report read are named questions (``peers.QUESTIONS``, answered by
the ``answer_*`` functions here). A region's process that cannot be reached is as a link
marked down; one whose part was sent and not answered is in doubt (it may apply it late, its
lines dated the day): asked (``clearing.part_done``) and sent once more, and if still unknown
the run records nothing (``ClearingInDoubt``, 503: run the date again), so no day is recorded
— its settlement files written once — without every region's part known. Routing records awaiting their issuer (step 1) is the transit exchange's there.

The SQL is the store's (``sbcard.store.repositories.clearing``: ``ClearingRepository`` on the
hub, ``RegionClearingRepository`` on a region), the money the ledger's: a function that
works on one database takes its unit of work; one that crosses nodes takes the ``World`` and
opens a unit of work per node, each step (a region's part, the hub taking a payer's lines,
a payee taking them) a transaction of its own.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import attrs

from sbcard.clock import BEIJING
from sbcard.domain import settlement as settlement_rules
from sbcard.domain.errors import InvalidInput
from sbcard.services.accounts import ledger
from sbcard.services.clearing import settlement
from sbcard.services.exchange import links, outbox, peers
from sbcard.services.exchange.peers import PeerRefused, PeerUnavailable
from sbcard.services.outlets import audit
from sbcard.services.transit import host as transit_host, purse_integrity
from sbcard.services.transit.purse_host import FLOAT_PURSE
from sbcard.store.migrations import timestamp
from sbcard.store.repositories.clearing import ClearingRepository, RegionClearingRepository
from sbcard.store.repositories.transit import OperatorRecords
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import HUB, REGION_NODES, NodeElsewhere, World

SYSTEM = "clearing"
LEDGER_KIND = "clearing"
LINES_KIND = "clearing.lines"
DELIVER_KIND = "clearing.deliver"
FIELD = "--date"


def clearing_account(node: str) -> str:
    """What this region owes ``node`` (credit) or is owed by it (debit)."""
    return f"CLEARING-{node}"


def operator_account(operator: str) -> str:
    return f"OPERATOR-{operator}"


def hospital_account(hospital: str) -> str:
    return f"HOSPITAL-{hospital}"


@attrs.frozen
class ClearingResult:
    """What a clearing run did (``changed`` False: the date was cleared before; the stored answer)."""

    date: str
    changed: bool
    message: str
    routed: dict[str, dict[str, int]]  # operator node → {issuer node: records routed}
    regions: dict[str, dict[str, Any]]  # node → {status, transit, medical, gaps}
    lines: list[dict[str, Any]]  # the day's lines (the hub's), sorted
    delivered: int  # payer → payee deliveries made by this run
    undelivered: int  # lines still waiting for their payee's region
    gaps: list[dict[str, Any]]  # cards with a counter skipped, as the issuers saw them
    files: list[str]  # the settlement files, relative to the world's home
    settlement: dict[str, Any]  # settlement.day_settlement as recorded
    corrections: list[dict[str, Any]] = attrs.field(factory=list)  # reversed loads credited after all, taken back
    blocks: list[dict[str, Any]] = attrs.field(factory=list)  # cards blocked that day, with the float they leave

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


# ----------------------------------------------------------------------------- the run


FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(9998, 12, 31)  # a day's window (day - 1 … day + 2) stays a date


def parse_day(text: str, field: str = FIELD) -> dt.date:
    try:
        day = dt.date.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise InvalidInput("clearing.date", f"{text!r} is not a date (YYYY-MM-DD)", field) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise InvalidInput("clearing.date", f"{day.isoformat()} is outside {FIRST_DAY} to {LAST_DAY}", field)
    return day


class ClearingInDoubt(PeerUnavailable):
    """A region's part of the day was sent and no answer came back: it may have been applied, or may still be.

    Recording the day then would leave the part's lines (dated that day, if the region applies it late) out of
    every settlement file: the day's is written once, the next day's holds only its own. So the day is not
    recorded; everything done so far is idempotent, and running the date again finishes it (HTTP 503).
    """

    def __init__(self, nodes: list[str], day: dt.date, what: str = "part") -> None:
        super().__init__(nodes[0], "in doubt", in_doubt=True)  # a PeerUnavailable: HTTP 503, try again
        self.code, self.field = "clearing.in_doubt", "node"
        why = ("was sent and not answered (its process may be busy): whether it was applied is not known"
               if what == "part" else "was cleared, and its lines could not be taken by the hub")
        self.message = (f"the clearing part of {', '.join(nodes)} for {day.isoformat()} {why}, so the day is "
                        "not recorded; run the clearing of this date again")
        self.args = (self.message,)
        self.nodes = nodes


def run_clearing(world: World, day: dt.date, *, now: dt.datetime, operator: str | None = None) -> ClearingResult:
    """Clear ``day`` (see the module doc); the stored answer, unchanged, when it was cleared before.

    ``operator``: who started the run (staff over the API), kept in the hub's record of the day.
    """
    check_day(day, now)
    hub = UnitOfWork(world.hub())
    done = recorded(hub, day)
    if done is not None:
        return ClearingResult(**{**done, "changed": False,
                                 "message": f"the clearing of {day.isoformat()} was run before: nothing changed"})
    routed: dict[str, dict[str, int]] = {}
    if world.whole:  # routing records between regions is the transit exchange's; one process does it here
        for node in REGION_NODES:
            got = transit_host.route_awaiting(world, node, now=now)
            if got:
                routed[node] = got
    regions: dict[str, dict[str, Any]] = {}
    in_doubt = []
    for node in REGION_NODES:
        if not links.is_up(world.hub(), node):
            regions[node] = _unreachable("the hub cannot reach it: its part waits for the next clearing date")
            continue
        try:
            regions[node] = {"status": "cleared", **_clear_region(world, node, day, now)}
        except PeerRefused as exc:  # it answered, and refused its part: nothing of it was cleared
            regions[node] = _unreachable(f"its process refused its part ({exc.code}: {exc.message}): its part "
                                         "waits for the next clearing date", status="refused")
        except PeerUnavailable as exc:
            if exc.in_doubt:
                in_doubt.append(node)
            else:  # its process is down: as a link marked down
                regions[node] = _unreachable(f"{exc.message}: its part waits for the next clearing date")
        except NodeElsewhere as exc:
            regions[node] = _unreachable(f"{exc.message}: its part waits for the next clearing date")
    if in_doubt:
        raise ClearingInDoubt(in_doubt, day)
    cleared = [n for n, r in regions.items() if r["status"] == "cleared"]
    cases = purse_cases(world, day, cleared)
    held = [n for n in REGION_NODES if world.holds(n) and links.is_up(world.hub(), n)]
    if any(purse_integrity.blocks_waiting(UnitOfWork(world.region(n))) for n in held):
        outbox.deliver_pending(world, now)  # purse blocks (this run's, or an upload's) go on the hub's blacklist
    # (a region's own process delivers its blocks: its courier, once the run lets go)
    untaken = _send_lines(world, now, required=cleared)
    if untaken:  # its part of the day is done there, its lines dated the day: the day's files must hold them
        raise ClearingInDoubt(untaken, day, what="lines")
    delivered = deliver(world, now)
    lines = settlement.hub_lines(world, day)
    undelivered = hub.get(ClearingRepository).undelivered_count()
    gaps = _day_gaps(world, day, cleared)
    day_settlement = settlement.day_settlement(world, day)
    files = settlement.write_files(world, day, day_settlement)
    parts = [f"{n}: {r['status']}" for n, r in regions.items()]
    result = ClearingResult(
        date=day.isoformat(), changed=True,
        message=f"cleared {day.isoformat()}: {len(lines)} line(s); " + ", ".join(parts),
        routed=routed, regions=regions, lines=[_line_view(row) for row in lines], delivered=delivered,
        undelivered=undelivered, gaps=gaps, files=files, settlement=day_settlement, **cases)
    settlement.record(world, day, day_settlement, result.to_dict(), now=now, operator=operator)
    return result


def audit_run(world: World, node: str, *, operator: str, day: dt.date, answer: Mapping[str, Any], forced: bool,
              now: dt.datetime) -> None:
    """A clearing run started by staff, audited in their region (``clearing.run``, subject the date): who
    settled money between the regions, and what came of it (the hub keeps the operator with the day too)."""
    uow = UnitOfWork(world.region(node))
    with uow.transaction():
        audit.record(uow.db, at=now, operator=operator, action="clearing.run", subject=day.isoformat(),
                     details={"changed": bool(answer.get("changed")), "forced": forced,
                              "regions": {n: r.get("status") for n, r in (answer.get("regions") or {}).items()}})


def check_day(day: dt.date, now: dt.datetime) -> None:
    """A day that may be cleared: a date that has begun (Beijing time)."""
    if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
        raise InvalidInput("clearing.date", f"{day!r} is not a date", FIELD)
    today = now.astimezone(BEIJING).date()
    if day > today:
        raise InvalidInput("clearing.date", f"{day.isoformat()} has not begun yet (today is {today.isoformat()})",
                           FIELD)


def recorded(hub: UnitOfWork, day: dt.date) -> dict[str, Any] | None:
    """The clearing run's answer for ``day`` as the hub recorded it, or None (not run yet)."""
    row = hub.get(ClearingRepository).settlement_of(day.isoformat())
    return None if row is None else json.loads(row["result"])


def _zero() -> dict[str, int]:
    return {"count": 0, "amount_fen": 0}


def _unreachable(note: str, status: str = "unreachable") -> dict[str, Any]:
    return {"status": status, "transit": _zero(), "medical": _zero(), "gaps": 0, "note": note}


def _clear_region(world: World, node: str, day: dt.date, now: dt.datetime) -> dict[str, Any]:
    """This region's part of the day's clearing, in one transaction; its summary (the stored one if done).

    A region this world does not hold clears its part in its own process: the hub's message
    ``clearing.part/<day>/<node>`` (applied once by the region's ``inbox``, and the part itself
    done once a day by its ``clearing_runs``) answers the same summary.
    """
    if not world.holds(node):
        return _part_over_link(world, node, day, now)
    with UnitOfWork(world.region(node)) as uow:
        summary = _clear_part(world, uow, node, day, now)
        uow.finish()
    return summary


def _part_over_link(world: World, node: str, day: dt.date, now: dt.datetime) -> dict[str, Any]:
    """The region's part by its process (message ``clearing.part/<day>/<node>``), its doubt resolved if it can be.

    A part sent and not answered (its process waiting for its write lock behind a long job, say) may
    have been applied, or may be applied yet: the hub asks whether it was (``clearing.part_done``, a
    question, answered without that lock), and if not sends it once more — applied once by its key,
    this waits for the first and answers its result. Still no answer: ``PeerUnavailable`` in doubt,
    and the run records nothing (``ClearingInDoubt``).
    """
    payload, key = {"day": day.isoformat()}, f"{PART_KIND}/{day.isoformat()}/{node}"
    try:
        return _over_link(world, node, PART_KIND, key, payload, now)
    except PeerUnavailable as exc:
        if not exc.in_doubt:
            raise
    try:
        done = peers.ask(world, node, "clearing.part_done", day=day.isoformat())
    except PeerUnavailable as exc:
        raise PeerUnavailable(node, f"its part of {day.isoformat()} is in doubt and {exc.message}",
                              in_doubt=True) from None
    if done is not None:
        return done
    try:  # not applied yet: once more, and wait for it
        return _over_link(world, node, PART_KIND, key, payload, now)
    except PeerRefused:
        raise
    except PeerUnavailable as exc:  # the first may still be waiting there, whatever became of this one
        raise PeerUnavailable(node, f"its part of {day.isoformat()} is in doubt and {exc.message}",
                              in_doubt=True) from None


def answer_part_done(db: Any, day: str) -> dict[str, Any] | None:
    """(question ``clearing.part_done``) The region's part of the day as its run summary says, or None (not done)."""
    found = UnitOfWork(db).get(RegionClearingRepository).run_summary(parse_day(day, "day").isoformat())
    return None if found is None else _public(json.loads(found))


def _clear_part(world: World, uow: UnitOfWork, node: str, day: dt.date, now: dt.datetime) -> dict[str, Any]:
    """The region's part (see ``_clear_region``) inside ``uow``'s open transaction; its public summary."""
    key = day.isoformat()
    store = uow.get(RegionClearingRepository)
    done = store.run_summary(key)
    if done is not None:
        return _public(json.loads(done))
    lines: dict[tuple[str, str, str], dict[str, int]] = {}  # (kind, payee, party) → totals

    # transit: this region as the cards' issuer
    for from_node, operator, terminal_no, count, amount, flagged in store.purchases_to_clear(day):
        if operator is None:  # kept before the operator was: its region's register of terminals knows it
            operator = _operator_of_terminal(world, from_node, terminal_no or "")
        _add(lines, ("transit", from_node, operator), count, amount, flagged)
    store.mark_purchases_cleared(day)

    # medical: this region as the insured region
    for hospital_node, hospital, amount in _owed(uow, store.claims_to_clear(day)):
        _add(lines, ("medical", hospital_node, hospital), 1, amount, 0)
    for hospital_node, hospital, amount in _owed(uow, store.refunds_to_clear(day)):
        _add(lines, ("medical", hospital_node, hospital), 0, amount, 0, refunds=1)
    store.mark_claims_cleared(day)

    txns = _post_payer(uow, node, day, lines, now)
    created = timestamp(now)
    rows = [{"day": key, "kind": kind, "payer_node": node, "payee_node": payee, "party": party, **t,
             "txn_id": txns.get((kind, payee))} for (kind, payee, party), t in sorted(lines.items())]
    store.insert_lines(rows, created)
    summary = {
        "transit": _totals(t for (kind, _, _), t in lines.items() if kind == "transit"),
        "medical": _totals(t for (kind, _, _), t in lines.items() if kind == "medical"),
        "lines": len(rows),
        "gap_list": counter_gaps(uow),
    }
    summary["blocked"] = purse_integrity.review_flags(uow, day, summary["gap_list"], now)
    store.insert_run(key, created, json.dumps(summary, ensure_ascii=False, sort_keys=True))
    return _public(summary)


LEGS_AT_ONCE = 5000  # transactions whose legs are read in one query (well below SQLite's bound of parameters)


def _owed(uow: UnitOfWork, claims: list[tuple[str, str, str | None]]) -> list[tuple[str, str, int]]:
    """(hospital's node, hospital, fen) of each claim: what its ledger transaction credited
    ``CLEARING-<hospital's node>`` (0 without a transaction)."""
    txns = [txn for _, _, txn in claims if txn]
    legs: dict[str, Mapping[tuple[str, int], int]] = {}
    for i in range(0, len(txns), LEGS_AT_ONCE):
        legs.update(ledger.posted(uow, txns[i:i + LEGS_AT_ONCE]))
    out = []
    for hospital_node, hospital, txn in claims:
        account = clearing_account(hospital_node)
        entries = legs.get(txn, {}) if txn else {}
        out.append((hospital_node, hospital, sum(amount * n for (a, amount), n in entries.items() if a == account)))
    return out


def _public(summary: Mapping[str, Any]) -> dict[str, Any]:
    return {"transit": summary["transit"], "medical": summary["medical"], "gaps": len(summary["gap_list"])}


def _run_summary(uow: UnitOfWork, node: str, day: dt.date) -> dict[str, Any]:
    found = uow.get(RegionClearingRepository).run_summary(day.isoformat())
    if found is None:
        return {}
    summary = json.loads(found)
    return {**summary, "gaps": [{**g, "issuer": node} for g in summary["gap_list"]]}


def _day_gaps(world: World, day: dt.date, nodes: Iterable[str] = REGION_NODES) -> list[dict[str, Any]]:
    """The counter gaps every issuer's run of the day found, by card (a region out of reach: none of its)."""
    found = []
    for node in nodes:
        if world.holds(node):
            found += _run_summary(UnitOfWork(world.region(node)), node, day).get("gaps", [])
        else:
            found += _region_answer(world, node, "clearing.gaps", [], region=node, day=day.isoformat())
    return sorted(found, key=lambda g: (g["card_number"] or "", g["app_serial"]))


def _add(lines: dict[tuple[str, str, str], dict[str, int]], key: tuple[str, str, str], count: int, amount: int,
         flagged: int, refunds: int = 0) -> None:
    t = lines.setdefault(key, {"count": 0, "amount_fen": 0, "flagged": 0, "refunds": 0})
    t["count"] += count
    t["amount_fen"] += amount or 0
    t["flagged"] += flagged or 0
    t["refunds"] += refunds


def _totals(items: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out = {"count": 0, "amount_fen": 0}
    for t in items:
        out["count"] += t["count"]
        out["amount_fen"] += t["amount_fen"]
    return out


def _operator_of_terminal(world: World, node: str, terminal_no: str) -> str:
    """The operator of a terminal in ``node``'s register of terminals (``UNKNOWN-<terminal>`` if it is not
    there); asked of the region's process when this world does not hold it."""
    found = peers.ask(world, node, "clearing.operator_of_terminal", terminal_no=terminal_no)
    return found if found is not None else f"UNKNOWN-{terminal_no}"


def txn_id(day: dt.date | str, kind: str, payer: str, payee: str) -> str:
    d = day.isoformat() if isinstance(day, dt.date) else day
    return f"CLR-{d.replace('-', '')}-{'T' if kind == 'transit' else 'M'}-{payer}-{payee}"


def _post_payer(uow: UnitOfWork, node: str, day: dt.date, lines: Mapping[tuple[str, str, str], Mapping[str, int]],
                now: dt.datetime) -> dict[tuple[str, str], str]:
    """The payer region's ledger for its lines; {(kind, payee): txn id} of what was posted."""
    groups: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    for (kind, payee, party), t in sorted(lines.items()):
        groups[(kind, payee)].append((party, t["amount_fen"]))
    out: dict[tuple[str, str], str] = {}
    for (kind, payee), parties in groups.items():
        total = sum(amount for _, amount in parties)
        if kind == "transit":
            ledger.ensure_internal_account(uow, FLOAT_PURSE, "purse_float", now)
            if payee == node:
                entries = [(FLOAT_PURSE, -total), *((operator_account(p), a) for p, a in parties)]
            else:
                entries = [(FLOAT_PURSE, -total), (clearing_account(payee), total)]
        elif payee == node:  # own hospitals: the claims credited CLEARING-<own node>
            entries = [(clearing_account(node), -total), *((hospital_account(p), a) for p, a in parties)]
        else:
            continue  # the claims posted what this region owes the hospital's region already
        txn = _post(uow, txn_id(day, kind, node, payee), entries, now,
                    memo=f"{kind} clearing of {day.isoformat()}: {node} → {payee}")
        if txn:
            out[(kind, payee)] = txn
    return out


def _post(uow: UnitOfWork, txn: str, entries: list[tuple[str, int]], now: dt.datetime, *, memo: str) -> str | None:
    """Post the non-zero entries (accounts opened on first use); None when nothing moves."""
    merged: dict[str, int] = defaultdict(int)
    for account, amount in entries:
        merged[account] += amount
    kept = [(a, v) for a, v in merged.items() if v]
    if not kept:
        return None
    for account, _ in kept:
        if account != FLOAT_PURSE:
            ledger.ensure_internal_account(uow, account, "clearing", now)
    ledger.post(uow, txn_id=txn, entries=kept, kind=LEDGER_KIND, operator=SYSTEM, memo=memo, now=now)
    return txn


# ----------------------------------------------------------------------------- corrections and blocks


def purse_cases(world: World, day: dt.date, nodes: Iterable[str] = REGION_NODES) -> dict[str, list[dict[str, Any]]]:
    """The issuers' corrections (reversed loads credited after all) and blocks made on ``day`` (Beijing)."""
    out: dict[str, list[dict[str, Any]]] = {"corrections": [], "blocks": []}
    for node in nodes:
        if world.holds(node):
            got = purse_integrity.day_cases(UnitOfWork(world.region(node)), node, day)
        else:
            got = _region_answer(world, node, "clearing.day_cases", {"corrections": [], "blocks": []},
                                 region=node, day=day.isoformat())
        out["corrections"] += got["corrections"]
        out["blocks"] += got["blocks"]
    return out


# ----------------------------------------------------------------------------- counters


def counter_gaps(uow: UnitOfWork) -> list[dict[str, Any]]:
    """This issuer's cards with a counter skipped below a cleared one (``purse_shadow``), by card."""
    out = []
    for app_serial, card_number, next_counter, loose in uow.get(RegionClearingRepository).loose_counters():
        counters = [e[0] for e in json.loads(loose)]
        missing = settlement_rules.counter_gaps(next_counter, counters)
        if missing:
            out.append({"card_number": card_number, "app_serial": app_serial, "missing": missing[:50],
                        "missing_count": len(missing), "highest_cleared": max(counters)})
    return out


# ----------------------------------------------------------------------------- through the hub


def _send_lines(world: World, now: dt.datetime, required: Collection[str] = ()) -> list[str]:
    """Every region's lines the hub has not taken yet (payer rows), one message per day and payer.

    A region this world does not hold is asked for its unsent lines (``clearing.unsent_lines``);
    once the hub has kept them, its message ``clearing.taken/<day>/<node>`` marks them sent there.
    A region out of reach keeps them unsent: the next run takes them. The regions of ``required``
    (whose part this run cleared) that could not be asked, returned: their lines of the day are not
    at the hub, and a day recorded without them would leave them out of every settlement file.
    """
    hub = UnitOfWork(world.hub())
    untaken = []
    for node in REGION_NODES:
        if not links.is_up(world.hub(), node):
            continue
        if not world.holds(node):
            try:
                _send_lines_over_link(world, hub, node, now)
            except (PeerUnavailable, NodeElsewhere):  # its lines wait, unsent, for the next run
                if node in required:
                    untaken.append(node)
            continue
        region = UnitOfWork(world.region(node))
        store = region.get(RegionClearingRepository)
        for day in store.unsent_days(node):
            rows = store.payer_lines(day, node)
            _take_lines(hub, node, day, rows, now)
            with region.transaction():
                store.mark_sent(day, node, timestamp(now))
    return untaken


def _send_lines_over_link(world: World, hub: UnitOfWork, node: str, now: dt.datetime) -> int:
    sent = 0
    for got in peers.ask(world, node, "clearing.unsent_lines", payer=node):
        day, rows = got["day"], got["lines"]
        _take_lines(hub, node, day, rows, now)
        _over_link(world, node, TAKEN_KIND, f"{TAKEN_KIND}/{day}/{node}", {"day": day, "payer": node}, now)
        sent += len(rows)
    return sent


def _take_lines(hub: UnitOfWork, payer: str, day: str, rows: list[dict[str, Any]], now: dt.datetime) -> None:
    """The hub keeps a payer's lines of a day once (its message ``clearing.lines/<day>/<payer>``)."""
    key = f"{LINES_KIND}/{day}/{payer}"
    with hub.transaction():
        store = hub.get(ClearingRepository)
        if store.has_message(key):
            return
        store.take_lines(payer, rows, timestamp(now))
        store.insert_message({
            "idempotency_key": key, "kind": LINES_KIND, "from_node": payer, "to_node": "hub",
            "received_at": now.isoformat(),
            "payload": json.dumps({"lines": len(rows), "amount_fen": sum(r["amount_fen"] for r in rows)}),
            "result": json.dumps({"taken": len(rows)})})


def deliver(world: World, now: dt.datetime) -> int:
    """The hub's lines not yet delivered to their payee's region, where it reaches it; deliveries made."""
    hub = UnitOfWork(world.hub())
    store = hub.get(ClearingRepository)
    done = 0
    for day, payer, payee in store.undelivered_groups():
        if not links.is_up(world.hub(), payee):
            continue
        rows = store.lines_between(day, payer, payee)
        if world.holds(payee):
            _receive(UnitOfWork(world.region(payee)), day, payer, payee, rows, now)
        else:  # the payee's receipt, a message its inbox applies once
            try:
                _over_link(world, payee, DELIVER_KIND, f"{DELIVER_KIND}/{day}/{payer}/{payee}",
                           {"day": day, "payer": payer, "payee": payee, "lines": rows}, now)
            except (PeerUnavailable, NodeElsewhere):
                continue  # its lines wait for the next run
        _delivered(hub, day, payer, payee, rows, now)
        done += 1
    return done


def _delivered(hub: UnitOfWork, day: str, payer: str, payee: str, rows: list[dict[str, Any]],
               now: dt.datetime) -> None:
    """The hub marks a payer's lines to a payee delivered, and logs the delivery once."""
    key = f"{DELIVER_KIND}/{day}/{payer}/{payee}"
    with hub.transaction():
        store = hub.get(ClearingRepository)
        store.mark_delivered(day, payer, payee, timestamp(now))
        if not store.has_message(key):
            store.insert_message({
                "idempotency_key": key, "kind": DELIVER_KIND, "from_node": "hub", "to_node": payee,
                "received_at": now.isoformat(),
                "payload": json.dumps({"lines": len(rows), "amount_fen": sum(r["amount_fen"] for r in rows)}),
                "result": json.dumps({"delivered": len(rows)})})


def _receive(uow: UnitOfWork, day: str, payer: str, payee: str, rows: list[dict[str, Any]],
             now: dt.datetime) -> None:
    """The payee region takes a payer's lines once (its ``inbox``): its lines and ledger."""
    key = f"{DELIVER_KIND}/{day}/{payer}/{payee}"
    with uow.transaction():
        store = uow.get(RegionClearingRepository)
        if store.has_received(key):
            return
        txns = _take_receipt(uow, day, payer, payee, rows, now)
        store.insert_received({
            "idempotency_key": key, "from_node": "hub", "kind": DELIVER_KIND, "received_at": now.isoformat(),
            "payload": json.dumps({"day": day, "payer": payer, "lines": len(rows)}),
            "result": json.dumps({"txns": txns}, sort_keys=True)})


def _take_receipt(uow: UnitOfWork, day: str, payer: str, payee: str, rows: list[dict[str, Any]],
                  now: dt.datetime) -> dict[str, str | None]:
    """The payee's lines and ledger for a payer's lines, inside ``uow``'s transaction; the txns posted by kind."""
    txns: dict[str, str | None] = {}
    for kind in ("transit", "medical"):
        mine = [r for r in rows if r["kind"] == kind]
        if not mine:
            continue
        total = sum(r["amount_fen"] for r in mine)
        party_account = operator_account if kind == "transit" else hospital_account
        entries = [(clearing_account(payer), -total), *((party_account(r["party"]), r["amount_fen"]) for r in mine)]
        txns[kind] = _post(uow, txn_id(day, kind, payer, payee), entries, now,
                           memo=f"{kind} clearing of {day}: owed by {payer}")
    uow.get(RegionClearingRepository).insert_lines([{**r, "txn_id": txns.get(r["kind"])} for r in rows],
                                                   timestamp(now))
    return txns


# ----------------------------------------------------------------------------- across processes
#
# A world that holds only the hub (``sbcard serve --node hub``) reaches each region's process
# through its link: messages the region applies once (its ``inbox``) for what the run changes
# there, named questions (``peers.QUESTIONS``, answered by the functions below) for what it reads.

PART_KIND = "clearing.part"  # hub → region: clear your part of the day   {day}
TAKEN_KIND = "clearing.taken"  # hub → region: the hub kept your lines      {day, payer}
FROM_HUB_KINDS = (PART_KIND, TAKEN_KIND, DELIVER_KIND)  # DELIVER_KIND: your receipt {day, payer, payee, lines}


def _over_link(world: World, node: str, kind: str, key: str, payload: Mapping[str, Any], now: dt.datetime) -> Any:
    """The hub's message to ``node``'s process, applied there once; the result its inbox recorded."""
    if world.link is None:
        raise NodeElsewhere(node, world.nodes)
    message = {"idempotency_key": key, "to_node": node, "kind": kind, "created_at": now.isoformat(),
               "payload": json.dumps(dict(payload), ensure_ascii=False, sort_keys=True)}
    return world.link.deliver(HUB, message)["result"]


def apply_from_hub(world: World, uow: UnitOfWork, node: str, kind: str, payload: Mapping[str, Any],
                   now: dt.datetime) -> dict[str, Any]:
    """A clearing message of the hub, applied in region ``node``'s open transaction (``outbox.receive``)."""
    if kind == PART_KIND:
        return _clear_part(world, uow, node, parse_day(payload["day"], "day"), now)
    if kind == TAKEN_KIND:
        uow.get(RegionClearingRepository).mark_sent(payload["day"], payload["payer"], timestamp(now))
        return {"sent": payload["day"]}
    if kind == DELIVER_KIND:
        rows = [dict(r) for r in payload["lines"]]
        if not rows or any((r["payer_node"], r["payee_node"]) != (payload["payer"], node) for r in rows):
            raise ValueError(f"a clearing receipt for {node} carries only lines of {payload['payer']} to {node}")
        return {"txns": _take_receipt(uow, payload["day"], payload["payer"], node, rows, now)}
    raise ValueError(f"not a clearing message: {kind!r}")


def _region_answer(world: World, region: str, question: str, default: Any, /, **params: Any) -> Any:
    """``question`` answered by ``region``'s process; ``default`` when it cannot be reached now."""
    try:
        return peers.ask(world, region, question, **params)
    except (PeerUnavailable, NodeElsewhere):
        return default


def answer_unsent_lines(db: Any, payer: str) -> list[dict[str, Any]]:
    """(question ``clearing.unsent_lines``) The region's lines not yet taken by the hub, by day."""
    store = UnitOfWork(db).get(RegionClearingRepository)
    return [{"day": day, "lines": store.payer_lines(day, payer)} for day in store.unsent_days(payer)]


def answer_gaps(db: Any, region: str, day: str) -> list[dict[str, Any]]:
    """(question ``clearing.gaps``) The counter gaps the region's part of the day found."""
    return _run_summary(UnitOfWork(db), region, parse_day(day, "day")).get("gaps", [])


def answer_day_cases(db: Any, region: str, day: str) -> dict[str, list[dict[str, Any]]]:
    """(question ``clearing.day_cases``) The region's corrections and blocks of the day."""
    return purse_integrity.day_cases(UnitOfWork(db), region, parse_day(day, "day"))


def answer_operator_of_terminal(db: Any, terminal_no: str) -> str | None:
    """(question ``clearing.operator_of_terminal``) A terminal's operator in the region's register."""
    return UnitOfWork(db).get(RegionClearingRepository).operator_of_terminal(terminal_no)


def answer_report_part(db: Any, region: str, day: str) -> dict[str, Any]:
    """(question ``clearing.report_part``) What the day's report reads of the region's own records."""
    return _report_part(UnitOfWork(db), region, parse_day(day, "day"))


def answer_recorded(db: Any, day: str) -> bool:
    """(question ``clearing.recorded``, the hub) Whether the day's clearing was run."""
    return recorded(UnitOfWork(db), parse_day(day, "day")) is not None


def _line_view(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"kind": row["kind"], "payer": row["payer_node"], "payee": row["payee_node"], "party": row["party"],
            "count": row["count"], "amount_fen": row["amount_fen"], "flagged": row["flagged"],
            "refunds": row["refunds"], "delivered": row.get("delivered_at") is not None}


# ----------------------------------------------------------------------------- the report


def report(world: World, day: dt.date) -> dict[str, Any]:
    """The day's clearing for people and scripts (``sbcard clearing report``); stable keys.

    ``transit``: per issuer / operator's region / operator — accepted (flagged included)
    count and amount in the day's clearing, flagged by category, rejected by category
    (records uploaded that day); ``rejected`` and ``flagged``: the records, with reasons;
    ``duplicates``: records sent again, per operator's region; ``gaps``: cards with a
    counter skipped at the clearing; ``medical``: the claims' lines; ``awaiting``: records
    still waiting for their issuer, per operator's region.
    """
    key = day.isoformat()
    lines = settlement.hub_lines(world, day)
    transit: dict[tuple[str, str, str], dict[str, Any]] = {}

    def entry(issuer: str, node: str, operator: str) -> dict[str, Any]:
        return transit.setdefault((issuer, node, operator), {
            "issuer": issuer, "operator_node": node, "operator": operator, "accepted": 0, "amount_fen": 0,
            "flagged": 0, "flags": {}, "rejected": 0, "rejected_fen": 0, "reasons": {}})

    for row in lines:
        if row["kind"] == "transit":
            e = entry(row["payer_node"], row["payee_node"], row["party"])
            e["accepted"] += row["count"]
            e["amount_fen"] += row["amount_fen"]
            e["flagged"] += row["flagged"]
    flagged = []
    rejected = []
    duplicates: dict[str, int] = {}
    awaiting: dict[str, int] = {}
    unavailable: list[str] = []
    parts: dict[str, dict[str, Any]] = {}
    for node in REGION_NODES:
        if world.holds(node):
            parts[node] = _report_part(UnitOfWork(world.region(node)), node, day)
        else:
            got = _region_answer(world, node, "clearing.report_part", None, region=node, day=key)
            if got is None:
                unavailable.append(node)
                got = {"flagged": [], "rejected": [], "duplicates": 0, "awaiting": 0}
            parts[node] = got
    for issuer in REGION_NODES:
        for r in parts[issuer]["flagged"]:
            flags = json.loads(r[8])
            categories = settlement_rules.flag_categories(flags)
            e = entry(issuer, r[6], r[7] or "")
            for c in categories:
                e["flags"][c] = e["flags"].get(c, 0) + 1
            flagged.append({"issuer": issuer, "card_number": r[0], "app_serial": r[1], "counter": r[2],
                            "terminal_no": r[3], "terminal_serial": r[4], "amount_fen": r[5], "operator_node": r[6],
                            "operator": r[7], "categories": categories,
                            "reason": "; ".join(f.get("message", "") for f in flags)})
    for node in REGION_NODES:
        for r in parts[node]["rejected"]:
            category = settlement_rules.rejection_category(r[9])
            e = entry(r[7] or "", node, r[8])
            e["rejected"] += 1
            e["rejected_fen"] += r[6]
            e["reasons"][category] = e["reasons"].get(category, 0) + 1
            rejected.append({"issuer": r[7], "card_number": r[0], "app_serial": r[1], "counter": r[2],
                             "terminal": r[3], "terminal_no": r[4], "terminal_serial": r[5], "amount_fen": r[6],
                             "operator_node": node, "operator": r[8], "category": category, "reason": r[9]})
        duplicates[node] = parts[node]["duplicates"]
        awaiting[node] = parts[node]["awaiting"]
    for e in transit.values():
        e["flags"] = dict(sorted(e["flags"].items()))
        e["reasons"] = dict(sorted(e["reasons"].items()))
    reached = [node for node in REGION_NODES if node not in unavailable]
    gaps = _day_gaps(world, day, reached)
    cases = purse_cases(world, day, reached)
    if world.holds(HUB):
        run = recorded(UnitOfWork(world.hub()), day) is not None
    else:
        run = bool(peers.ask(world, HUB, "clearing.recorded", day=key))
    extra = {"unavailable": unavailable} if unavailable else {}
    return {
        "date": key,
        "run": run,
        "transit": [transit[k] for k in sorted(transit)],
        "medical": [_line_view(r) for r in lines if r["kind"] == "medical"],
        "totals": {
            "accepted": sum(e["accepted"] for e in transit.values()),
            "accepted_fen": sum(e["amount_fen"] for e in transit.values()),
            "flagged": sum(e["flagged"] for e in transit.values()),
            "rejected": len(rejected),
            "duplicates": sum(duplicates.values()),
            "gaps": len(gaps),
            "medical_claims": sum(r["count"] for r in lines if r["kind"] == "medical"),
            "medical_fen": sum(r["amount_fen"] for r in lines if r["kind"] == "medical"),
            "corrections": len(cases["corrections"]),
            "corrected_fen": sum(c["taken_fen"] for c in cases["corrections"]),
            "shortfall_fen": sum(c["short_fen"] for c in cases["corrections"]),
            "blocked": len(cases["blocks"]),
            "blocked_float_fen": sum(b["float_fen"] for b in cases["blocks"]),
            "overspent_fen": sum(b["overspent_fen"] for b in cases["blocks"]),
        },
        "rejected": rejected,
        "flagged": flagged,
        "duplicates": duplicates,
        "gaps": gaps,
        "awaiting": awaiting,
        **cases,
        **extra,
    }


def _report_part(uow: UnitOfWork, node: str, day: dt.date) -> dict[str, Any]:
    """What the day's report reads of one region's records (rows as lists: they may cross to another process)."""
    store = uow.get(RegionClearingRepository)
    return {"flagged": [list(r) for r in store.flagged_purchases(day.isoformat())],
            "rejected": [list(r) for r in store.rejected_records(day)],
            "duplicates": store.duplicates(day),
            "awaiting": _awaiting(uow)}


def _awaiting(uow: UnitOfWork) -> int:
    """The region's uploaded records still waiting for their issuer (``transit_host.awaiting_count``)."""
    taken = uow.get(OperatorRecords)
    return taken.waiting_count(taken.routed_up_to(REGION_NODES))


# what the hub's and the regions' processes answer each other for the clearing (``peers``, ``outbox``)
for _question, _side, _answer in (
        ("clearing.unsent_lines", peers.REGION, answer_unsent_lines),
        ("clearing.part_done", peers.REGION, answer_part_done),
        ("clearing.gaps", peers.REGION, answer_gaps),
        ("clearing.day_cases", peers.REGION, answer_day_cases),
        ("clearing.operator_of_terminal", peers.REGION, answer_operator_of_terminal),
        ("clearing.report_part", peers.REGION, answer_report_part),
        ("clearing.reconcile", peers.REGION, settlement.answer_reconcile),
        ("clearing.hub_lines", HUB, settlement.answer_hub_lines),
        ("clearing.recorded", HUB, answer_recorded)):
    peers.register(_question, _side, _answer)
for _kind in FROM_HUB_KINDS:
    outbox.FROM_HUB[_kind] = apply_from_hub


def _run_act(world: World, now: dt.datetime, date: str, operator: str | None = None) -> dict[str, Any]:
    """(act ``clearing.run``, the hub's process) The day's clearing, started at a region's process by
    ``operator`` (kept in the hub's record of the day; the region audits it)."""
    return run_clearing(world, parse_day(date, "date"), now=now, operator=operator).to_dict()


peers.register_act("clearing.run", HUB, _run_act)
