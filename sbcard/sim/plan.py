"""One simulated day's plan: who does what, and when.

``day_plan(...)`` draws the day's intentions from ``random.Random(f"{seed}/plan/{day_no}")``,
the population (fixed by the seed) and the state of the world's cards as the day begins
(``CardBook``): a list of ``Event`` sorted by time. The engine carries them out through
the real services, terminal apps and cards; an intention the world no longer allows
(the card was lost an hour ago, the purse is short, the museum is closed) is met by the
service's refusal, as it would be at a real counter or gate.

- Trips: workers and students ride to work or school in the rush hours (07:00–09:30,
  17:00–19:30) on weekdays; commuters cross regions (Langfang bus, then the Beijing
  subway from Beijing South; the Tianjin metro, then the Beijing subway); others ride off
  peak, fewer on weekends. A metro journey is an entry tap and an exit tap 10–60 minutes
  later at another station's gate; a bus ride is one tap (a distance on Beijing buses).
- Applications: people without a card apply at an outlet near home and are issued one
  while they wait (instant issuance), then activate it.
- Hospital visits (more for the elderly; some across regions), museum and scenic visits
  (more at weekends), library loans and returns, a few lost cards (reported by phone or at
  a counter; most replaced the same or the next day, some found and unblocked; a few
  tapped by whoever found them), and on day 1 and each month's first day the regions'
  subsidy batches (高龄津贴, through maker and checker, then paid).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from sbcard.reference import medical as medical_reference
from sbcard.sim.population import Person, Place
from sbcard.reference.venues import venues

RUSH_AM = (dt.time(7, 0), 150)  # start, minutes
RUSH_PM = (dt.time(17, 0), 150)
OFF_PEAK = (dt.time(9, 30), 390)
LIBRARIES = {"bj": ("BJ-LB-001",), "tj": ("TJ-LB-001",), "he": ("HE-LB-001", "HE-LB-002")}
HOSPITAL_REGION = {"bj": "110000", "tj": "120000", "he": "130000"}


@attrs.frozen(order=True)
class Event:
    at: dt.datetime
    seq: int
    kind: str = attrs.field(order=False)
    who: int = attrs.field(order=False, default=-1)  # a person's index (-1: nobody in particular)
    data: Mapping[str, Any] = attrs.field(order=False, factory=dict)


@attrs.define
class CardBook:
    """What the plan needs to know of people's cards at the start of the day."""

    holders: set[int]  # people with an active card
    without: set[int]  # people with no valid card (never had one, or theirs ended)
    lost: dict[int, dict[str, Any]]  # person → their lost card ({"card", "kind", "at"})
    loans: list[dict[str, Any]]  # open library loans ({"who", "library", "item", "due"})


def _at(day: dt.date, tz: dt.tzinfo, window: tuple[dt.time, int], rng: random.Random, *, peaked: bool = True) -> dt.datetime:
    start, minutes = window
    if peaked:  # a triangle: most around the middle of the window
        offset = int((rng.random() + rng.random()) / 2 * minutes)
    else:
        offset = rng.randrange(minutes)
    return dt.datetime.combine(day, start, tz) + dt.timedelta(minutes=offset, seconds=rng.randrange(60))


class _Plan:
    def __init__(self, day: dt.date, tz: dt.tzinfo, rng: random.Random) -> None:
        self.day, self.tz, self.rng = day, tz, rng
        self.events: list[Event] = []

    def add(self, at: dt.datetime, kind: str, who: int = -1, **data: Any) -> None:
        self.events.append(Event(at, len(self.events), kind, who, data))

    def clock(self, h: int, m: int = 0) -> dt.datetime:
        return dt.datetime.combine(self.day, dt.time(h, m), self.tz)

    # --- trips ---------------------------------------------------------------------------

    def leg(self, who: int, at: dt.datetime, frm: Place, to: Place) -> dt.datetime:
        """One leg on one network: a metro journey (entry, exit) or a bus ride; when it ends."""
        rng = self.rng
        if frm.metro:
            self.add(at, "tap", who, network=frm.network, stop=frm.stop, leg="entry")
            end = at + dt.timedelta(minutes=10 + rng.randrange(50), seconds=rng.randrange(60))
            self.add(end, "tap", who, network=to.network, stop=to.stop, leg="exit")
            return end
        km = f"{2 + rng.randrange(180) / 10:.1f}" if frm.network == "bj-bus" else None
        self.add(at, "tap", who, network=frm.network, stop=frm.stop, leg="ride", km=km)
        return at + dt.timedelta(minutes=15 + rng.randrange(40))

    def commute(self, p: Person, weekday: bool) -> None:
        rng = self.rng
        if not p.home:
            return
        if p.role in ("worker", "student") and p.work:
            go = 0.9 if weekday else (0.25 if p.role == "worker" else 0.2)
            if rng.random() >= go:
                return
            if weekday:
                out_at, back_at = _at(self.day, self.tz, RUSH_AM, rng), _at(self.day, self.tz, RUSH_PM, rng)
            else:
                out_at = _at(self.day, self.tz, (dt.time(9), 240), rng, peaked=False)
                back_at = out_at + dt.timedelta(hours=3 + rng.randrange(5))
            home, work = p.home[0], p.work
            if p.commuter:
                # home leg, the intercity trip (not on the card), then the leg in the city of work
                arrive, office = work
                t = self.leg(p.idx, out_at, home, home if not home.metro else _station_for(home, p.commuter))
                self.leg(p.idx, t + dt.timedelta(minutes=45 + rng.randrange(30)), arrive, office)
                t = self.leg(p.idx, back_at, office, arrive)
                back_home = t + dt.timedelta(minutes=45 + rng.randrange(30))
                self.leg(p.idx, back_home, home if not home.metro else _station_for(home, p.commuter), home)
            else:
                self.leg(p.idx, out_at, home, work[0])
                self.leg(p.idx, back_at, work[0], home)
            return
        if p.role == "child":
            return
        if rng.random() < (0.3 if weekday else 0.25):
            out_at = _at(self.day, self.tz, OFF_PEAK, rng, peaked=False)
            back_at = out_at + dt.timedelta(hours=1 + rng.randrange(4), minutes=rng.randrange(60))
            target = p.work[0] if p.work else p.home[0]
            self.leg(p.idx, out_at, p.home[0], target)
            self.leg(p.idx, back_at, target, p.home[0])


def _station_for(home: Place, commuter: str) -> Place:
    """Where a commuter's home metro leg ends: the intercity station of their city."""
    return Place(home.network, "天津站" if home.network == "tj-metro" else "北京南站")


def day_plan(
    *,
    seed: int,
    day_no: int,
    day: dt.date,
    tz: dt.tzinfo,
    people: Sequence[Person],
    book: CardBook,
    subsidies: bool,
    outage: Any = None,
) -> list[Event]:
    """The day's events, sorted by time (the same for the same seed, day and book)."""
    rng = random.Random(f"{seed}/plan/{day_no}")
    plan = _Plan(day, tz, rng)
    weekday = day.isoweekday() <= 5
    open_venues = [v for v in venues().values() if v.kind != "library" and day.isoweekday() in v.open_days]
    libraries_open = {node: [c for c in codes if day.isoweekday() in venues()[c].open_days]
                      for node, codes in LIBRARIES.items()}

    if outage is not None:
        plan.add(outage.down, "link_down", node=outage.node)
        plan.add(outage.up, "link_up", node=outage.node)
    if subsidies:
        for i, node in enumerate(("bj", "tj", "he")):
            plan.add(plan.clock(10, 10 * i), "subsidy", node=node)

    claims = 0
    for p in people:
        idx = p.idx
        age = p.age_on(day)
        if idx in book.holders:
            plan.commute(p, weekday)
            # a hospital visit
            if rng.random() < (0.004 + (0.012 if age >= 60 else 0.0)):
                _medical(plan, p, age)
                claims += 1
            # a museum or a scenic spot
            if open_venues and rng.random() < (0.004 if weekday else 0.015) and age >= 3:
                local = [v for v in open_venues if v.node == p.node]
                pool = local if local and rng.random() < 0.8 else open_venues
                venue = pool[rng.randrange(len(pool))]
                at = dt.datetime.combine(day, venue.open_from, tz) + dt.timedelta(
                    minutes=rng.randrange(max(1, _minutes(venue.open_from, venue.open_to) - 5)))
                plan.add(at, "venue", idx, venue=venue.code, student=p.role == "student",
                         elderly_card=p.node == "bj" and age >= 60)  # Beijing's 60+ hold the 养老助残卡
            # a library loan
            libs = libraries_open.get(p.node) or []
            if libs and age >= 7 and rng.random() < 0.004:
                lib = libs[rng.randrange(len(libs))]
                plan.add(_library_time(plan, lib), "borrow", idx, library=lib)
            # a lost card
            if rng.random() < 0.0006:
                channel = "phone" if rng.random() < 0.5 else "counter"
                at = _at(day, tz, (dt.time(8), 12 * 60), rng, peaked=False)
                plan.add(at, "lost", idx, channel=channel)
                if rng.random() < 0.25:  # whoever finds it tries it on a bus, before and after the nightly sync
                    plan.add(at + dt.timedelta(minutes=30 + rng.randrange(600)), "finder_tap", idx)
        elif idx in book.lost:
            lost = book.lost[idx]
            if lost["kind"] == "temporary" and rng.random() < 0.2:
                plan.add(_at(day, tz, (dt.time(9), 480), rng, peaked=False), "unblock", idx)
            elif rng.random() < 0.7:
                plan.add(_at(day, tz, (dt.time(9), 480), rng, peaked=False), "replace", idx)
            if rng.random() < 0.1:
                plan.add(_at(day, tz, (dt.time(7), 900), rng, peaked=False), "finder_tap", idx)
        elif idx in book.without and age >= 1 and rng.random() < 0.3:
            plan.add(_at(day, tz, (dt.time(9), 480), rng, peaked=False), "apply", idx)

    for loan in book.loans:
        due = dt.date.fromisoformat(loan["due"])
        chance = 0.5 if day >= due else 0.12
        lib = loan["library"]
        if day.isoweekday() in venues()[lib].open_days and rng.random() < chance:
            plan.add(_library_time(plan, lib), "return", loan["who"], library=lib, item=loan["item"])

    # a few refunds of the day's claims, in the afternoon, by the hospitals' back offices
    for _ in range(sum(1 for _ in range(claims) if rng.random() < 0.02)):
        plan.add(plan.clock(17, rng.randrange(50)), "medical_refund")

    return sorted(plan.events, key=_when)


def _when(event: Event) -> tuple[dt.datetime, int]:
    """An event's place in the day: ``Event``'s own order, without attrs' generic comparison (a day has
    hundreds of thousands of events)."""
    return event.at, event.seq


def _minutes(a: dt.time, b: dt.time) -> int:
    return (b.hour * 60 + b.minute) - (a.hour * 60 + a.minute)


def _library_time(plan: _Plan, code: str) -> dt.datetime:
    v = venues()[code]
    return dt.datetime.combine(plan.day, v.open_from, plan.tz) + dt.timedelta(
        minutes=plan.rng.randrange(max(1, _minutes(v.open_from, v.open_to) - 5)))


def _hospitals_by_node() -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {"bj": [], "tj": [], "he": []}
    for h in medical_reference.hospitals().values():
        out[{"11": "bj", "12": "tj", "13": "he"}[h.region[:2]]].append(h)
    return out


def _medical(plan: _Plan, p: Person, age: int) -> None:
    rng = plan.rng
    by_node = _hospitals_by_node()
    node = p.node
    if p.commuter and rng.random() < 0.5:
        node = p.work_node
    elif rng.random() < 0.12:
        node = rng.choice([n for n in ("bj", "tj", "he") if n != p.node] + ["bj"])
    hospital = by_node[node][rng.randrange(len(by_node[node]))]
    catalogue = list(medical_reference.catalogue(HOSPITAL_REGION[node]).values())
    lines = []
    for item in rng.sample(catalogue, k=min(len(catalogue), 1 + rng.randrange(4))):
        lines.append({"code": item.code, "quantity": 1 + rng.randrange(3), "price_fen": item.price_fen})
    use_account = p.insurance == "employee" and rng.random() < 0.6
    self_pay = "account" if use_account and rng.random() < 0.2 else "cash"
    cross = node != p.node
    at = _at(plan.day, plan.tz, (dt.time(8), 540), rng, peaked=False)
    plan.add(at, "medical", p.idx, hospital=hospital.code, lines=lines, use_account=use_account, self_pay=self_pay,
             registered=cross and rng.random() < 0.5, emergency=cross and rng.random() < 0.1)
