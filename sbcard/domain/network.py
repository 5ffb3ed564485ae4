"""Rail networks and bus lines as values: shortest routes, and the fare of a trip.

A rail network is built from fixture rows ``(line, seq, station, code, km_from_previous)``
(``fixtures/transit/bj_subway.csv``, ``tj_metro.csv``): consecutive rows of a line are
joined by a segment of ``km_from_previous`` km; a loop line repeats its first station as
its last row. Stations are one node per **code**, so two lines meet where they list the
same code (a transfer). A station whose name appears under several codes (the airport
express's 东直门, outside the subway's gates) is looked up by name as every one of them,
and a route takes the pair that connects best.

- Beijing subway: the shortest route in km (Dijkstra), the fare by distance; a trip
  entirely on the Capital Airport Express is its flat fare, and the express shares no
  code with the other lines (passengers leave the gates to change).
- Tianjin metro: the route with the fewest sections (区间, ``最短路径法``), ties broken by
  km; the fare by sections.

``Tariff`` bundles the networks, the bus lines and the operators, and answers what a
terminal or a fare query asks: the quote of one trip and an operator's maximum fare (for
a missing entry tap or an exit after too long). Everything here is pure: the fixtures
are read by ``sbcard.reference.transit``.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from sbcard.domain import fares
from sbcard.domain.concessions import ConcessionPolicy, ConcessionRule
from sbcard.domain.errors import InvalidInput, NotFound
from sbcard.domain.sources import ILLUSTRATIVE_ONLY, Provenance, combine

KM, SECTIONS = "km", "sections"


@attrs.frozen
class Station:
    code: str  # 8 digits (4 BCD bytes in the card's capp record): network (2) ‖ line (2) ‖ station (4)
    name: str
    lines: tuple[str, ...]


@attrs.frozen
class Route:
    """The route a fare is computed over: its stations, lines, distance and sections."""

    from_code: str
    to_code: str
    km: Decimal
    sections: int
    stations: tuple[str, ...]  # codes, entry to exit
    lines: tuple[str, ...]  # the lines ridden, in order, each once per stretch

    def to_json(self, network: Network) -> dict[str, Any]:
        return {
            "from": network.stations[self.from_code].name, "from_code": self.from_code,
            "to": network.stations[self.to_code].name, "to_code": self.to_code,
            "km": str(self.km), "sections": self.sections, "lines": list(self.lines),
        }


@attrs.frozen
class _Edge:
    to: str
    km: Decimal
    line: str


def _row_km(row: Mapping[str, str], where: str) -> Decimal | None:
    text = (row.get("km_from_previous") or "").strip()
    if not text:
        return None
    try:
        km = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{where}: km_from_previous {text!r} is not a number") from None
    if not km.is_finite() or km <= 0:
        raise ValueError(f"{where}: km_from_previous must be > 0, got {text}")
    return km


class Network:
    """One operator's rail network: stations by code, segments between them."""

    def __init__(self, operator: str, rows: Iterable[Mapping[str, str]], *, weight: str = KM) -> None:
        if weight not in (KM, SECTIONS):
            raise ValueError(f"weight is {KM!r} or {SECTIONS!r}")
        self.operator, self.weight = operator, weight
        names: dict[str, str] = {}
        lines_of: dict[str, list[str]] = {}
        self._adjacent: dict[str, list[_Edge]] = {}
        self.lines: dict[str, list[str]] = {}  # line → station codes in order
        previous: dict[str, tuple[int, str]] = {}
        for n, row in enumerate(rows, start=2):
            where = f"{operator} row {n}"
            line, code, name = (row.get(k, "").strip() for k in ("line", "code", "station"))
            if not (line and name and len(code) == 8 and code.isascii() and code.isdigit()):
                raise ValueError(f"{where}: needs a line, a station name and an 8-digit code, got {dict(row)}")
            try:
                seq = int(row.get("seq", ""))
            except ValueError:
                raise ValueError(f"{where}: seq {row.get('seq')!r} is not a number") from None
            if names.setdefault(code, name) != name:
                raise ValueError(f"{where}: code {code} is {names[code]!r} elsewhere, not {name!r}")
            km = _row_km(row, where)
            if line in previous:
                last_seq, last_code = previous[line]
                if seq != last_seq + 1:
                    raise ValueError(f"{where}: line {line} goes from seq {last_seq} to {seq}")
                if km is None:
                    raise ValueError(f"{where}: a station after the first of its line needs km_from_previous")
                self._adjacent.setdefault(last_code, []).append(_Edge(code, km, line))
                self._adjacent.setdefault(code, []).append(_Edge(last_code, km, line))
            elif km is not None:
                raise ValueError(f"{where}: the first station of line {line} has no km_from_previous")
            previous[line] = (seq, code)
            self.lines.setdefault(line, []).append(code)
            if line not in lines_of.setdefault(code, []):
                lines_of[code].append(line)
            self._adjacent.setdefault(code, [])
        if not names:
            raise ValueError(f"{operator}: a network needs stations")
        self.stations: dict[str, Station] = {c: Station(c, names[c], tuple(lines_of[c])) for c in names}
        self._by_name: dict[str, list[str]] = {}
        for code, station in self.stations.items():
            self._by_name.setdefault(station.name, []).append(code)
        self._routes: dict[tuple[str, str], Route | None] = {}

    # ----------------------------------------------------------------------- stations

    def find(self, text: str, field: str = "--from") -> list[str]:
        """The codes a station name or code names (a name may have several: see the module doc)."""
        key = (text or "").strip()
        if key in self.stations:
            return [key]
        if key in self._by_name:
            return list(self._by_name[key])
        raise NotFound("transit.station", f"no station {key!r} on the {self.operator} network", field)

    # ----------------------------------------------------------------------- routes

    def route(self, origin: str, destination: str) -> Route:
        """The route between two stations (names or codes) by this network's weight."""
        best: Route | None = None
        for a in self.find(origin, "--from"):
            for b in self.find(destination, "--to"):
                found = self._route(a, b)
                if found is not None and (best is None or self._key(found) < self._key(best)):
                    best = found
        if best is None:
            raise InvalidInput("transit.route", f"{origin} and {destination} are not connected on the "
                               f"{self.operator} network (different fare systems: leave the gates to change)",
                               "--to")
        return best

    def _key(self, route: Route) -> tuple[Any, ...]:
        return (route.km, route.sections) if self.weight == KM else (route.sections, route.km)

    def _route(self, a: str, b: str) -> Route | None:
        if (a, b) not in self._routes:
            self._routes.update(self._dijkstra(a, only=b))
        return self._routes[(a, b)]

    def _dijkstra(self, source: str, only: str | None = None) -> dict[tuple[str, str], Route | None]:
        """Shortest routes from ``source`` (to ``only``, or to every station)."""
        by_km = self.weight == KM
        start = (Decimal(0), 0) if by_km else (0, Decimal(0))
        best: dict[str, tuple[Any, Any]] = {source: start}
        parent: dict[str, tuple[str, str]] = {}
        heap: list[tuple[Any, Any, str]] = [(*start, source)]
        done: set[str] = set()
        while heap:
            w1, w2, here = heapq.heappop(heap)
            if here in done:
                continue
            done.add(here)
            if here == only:
                break
            for edge in self._adjacent[here]:
                step = (edge.km, 1) if by_km else (1, edge.km)
                cand = (w1 + step[0], w2 + step[1])
                if edge.to not in best or cand < best[edge.to]:
                    best[edge.to] = cand
                    parent[edge.to] = (here, edge.line)
                    heapq.heappush(heap, (*cand, edge.to))
        targets = [only] if only is not None else list(self.stations)
        return {(source, t): self._build(source, t, best, parent) if t in done else None for t in targets}

    def _build(self, source: str, target: str, best: dict[str, tuple[Any, Any]],
               parent: dict[str, tuple[str, str]]) -> Route:
        codes, lines = [target], []
        while codes[-1] != source:
            prev, line = parent[codes[-1]]
            if not lines or lines[-1] != line:
                lines.append(line)
            codes.append(prev)
        codes.reverse()
        lines.reverse()
        w1, w2 = best[target]
        km, sections = (w1, w2) if self.weight == KM else (w2, w1)
        return Route(source, target, km, sections, tuple(codes), tuple(lines))

    def all_routes_from(self, source: str) -> list[Route]:
        """Every route from ``source`` (to the stations it connects to)."""
        found = self._dijkstra(source)
        self._routes.update(found)
        return [r for r in found.values() if r is not None]


@attrs.frozen
class BusLine:
    operator: str
    line: str
    area: str | None = None  # bj-bus: city | suburb
    km: Decimal | None = None  # bj-bus: the line's length (a missing tap-off pays the whole line)
    full_fare_fen: int | None = None  # flat-fare lines
    kind: str = fares.REGULAR  # tj-bus: regular | commuter | custom
    provenance: Provenance = attrs.field(default=ILLUSTRATIVE_ONLY, eq=False)  # its fare / length


@attrs.frozen
class OperatorInfo:
    code: str
    name: str
    node: str
    region: str
    mode: str  # metro | bus
    fare_rule: str
    provenance: Provenance = attrs.field(default=ILLUSTRATIVE_ONLY, eq=False)  # of fare_rule

    @property
    def source(self) -> str:
        """The fare rule's sources in words (``Provenance.text``)."""
        return self.provenance.text()


# The stations' distances are the project's estimates (fixtures/transit/README.md): a fare
# computed from a route is as trusted as they are.
NETWORK_PROVENANCE = ILLUSTRATIVE_ONLY


class Tariff:
    """The operators, their networks and lines: quotes of trips and maximum fares."""

    def __init__(self, operators: Iterable[OperatorInfo], networks: Mapping[str, Network],
                 lines: Iterable[BusLine], policy: ConcessionPolicy | None = None,
                 rule_provenance: Mapping[str, Provenance] | None = None) -> None:
        self.operators = {o.code: o for o in operators}
        self.policy = policy if policy is not None else ConcessionPolicy()
        self.rule_provenance = dict(rule_provenance or {})  # FareQuote.rule → its row in fare_rules.csv
        self._combined: dict[tuple[Provenance, ...], Provenance] = {}
        self.networks = dict(networks)
        self.lines: dict[tuple[str, str], BusLine] = {}
        for line in lines:
            if (line.operator, line.line) in self.lines:
                raise ValueError(f"{line.operator} line {line.line} is listed twice")
            self.lines[(line.operator, line.line)] = line
        self._max: dict[str, int] = {}

    def operator(self, code: str) -> OperatorInfo:
        if code not in self.operators:
            raise InvalidInput("fare.operator", f"unknown operator {code!r} (known: {', '.join(self.operators)})",
                               "--operator")
        return self.operators[code]

    def network(self, operator: str) -> Network:
        self.operator(operator)
        if operator not in self.networks:
            raise InvalidInput("transit.route", f"{operator} has no stations: give --km or --full-fare", "--from")
        return self.networks[operator]

    def line(self, operator: str, line: str) -> BusLine:
        self.operator(operator)
        key = (operator, (line or "").strip())
        if key not in self.lines:
            known = ", ".join(name for op, name in self.lines if op == operator) or "none"
            raise NotFound("transit.line", f"no {operator} line {line!r} (known: {known})", "--line")
        return self.lines[key]

    def route(self, operator: str, origin: str, destination: str) -> Route:
        return self.network(operator).route(origin, destination)

    def quote(
        self,
        operator: str,
        *,
        km: Any = None,
        sections: int | None = None,
        origin: str | None = None,
        destination: str | None = None,
        line: str | None = None,
        area: str | None = None,
        full_fare_fen: int | None = None,
        holder_birth_date: date | None = None,
        day: date | None = None,
        concession: str | None = None,
        card_region: str | None = None,
    ) -> tuple[fares.FareQuote, Route | None]:
        """The quote of one trip, and the route when it was given by its stations.

        ``origin``/``destination`` (rail) give the distance or sections; ``line`` gives a
        bus line's area (Beijing) or full fare and kind (flat-fare lines). Explicit
        ``km``/``sections``/``area``/``full_fare_fen`` win over what they would give.
        """
        self.operator(operator)
        route = None
        airport = False
        if km is not None and sections is not None:
            raise InvalidInput("transit.km_and_sections", "give the distance (--km) or the sections (--sections), "
                               "not both: a fare counts one or the other", "--sections")
        if (origin is None) != (destination is None):
            raise InvalidInput("transit.route", "a trip by stations needs both --from and --to",
                               "--to" if destination is None else "--from")
        if origin is not None:
            route = self.route(operator, origin, destination or "")
            airport = operator == fares.BJ_SUBWAY and set(route.lines) == {fares.BJ_AIRPORT_EXPRESS_LINE}
            km = route.km if km is None else km
            sections = route.sections if sections is None else sections
        line_kind = None
        used: list[Provenance] = []
        if route is not None:
            used.append(NETWORK_PROVENANCE)
        if line is not None:
            bus = self.line(operator, line)
            area = bus.area if area is None else area
            full_fare_fen = bus.full_fare_fen if full_fare_fen is None else full_fare_fen
            line_kind = bus.kind
            used.append(bus.provenance)
        fare = fares.quote(operator, km=km, sections=sections, area=area, holder_birth_date=holder_birth_date, day=day,
                       concession=concession, full_fare_fen=full_fare_fen, line_kind=line_kind,
                       airport_express=airport, policy=self.policy, card_region=card_region)
        return self.cited(fare, operator, day, concession=concession, used=used), route

    def cited(self, fare: fares.FareQuote, operator: str, day: date | None, *, concession: str | None = None,
              used: Iterable[Provenance] = ()) -> fares.FareQuote:
        """``fare`` with the provenance of the rows it was built from: its fare rule's, the line's or
        route's, and the elderly rule's when it decided (a free ride, or a card's elderly concession)."""
        parts = (self.rule_provenance.get(fare.rule, ILLUSTRATIVE_ONLY), *used)
        elderly = "elderly" in fare.rule or concession == fares.ELDERLY or "elderly" in fare.description
        if elderly and day is not None:
            rule = self.policy.for_operator(operator, day) or self._latest_rule(operator)
            if rule is not None:
                parts = (*parts, rule.provenance)
        combined = self._combined.get(parts)  # a tap's hot path: the same few combinations over and over
        if combined is None:
            combined = self._combined[parts] = combine(parts)
        return attrs.evolve(fare, provenance=combined)

    def _latest_rule(self, operator: str) -> ConcessionRule | None:
        """The operator's latest elderly rule, in force or not (what a charged fare before its start cites)."""
        rules = [r for r in self.policy.rules if operator in r.operators]
        return max(rules, key=lambda r: r.start) if rules else None

    def max_fare(self, operator: str, station: str | None = None) -> int:
        """The highest full fare a trip can cost: what a missing entry or an overlong trip pays.

        Rail: the longest route of the network (from ``station``'s fare system when given:
        the airport express's own stations pay its flat fare). Buses: the longest Beijing
        line's full fare, the dearest flat-fare line.
        """
        self.operator(operator)
        if operator == fares.BJ_SUBWAY and station is not None:
            codes = self.network(operator).find(station, "--station")
            if all(self.network(operator).stations[c].lines == (fares.BJ_AIRPORT_EXPRESS_LINE,) for c in codes):
                return fares.BJ_AIRPORT_EXPRESS_FEN
        if operator not in self._max:
            self._max[operator] = self._compute_max(operator)
        return self._max[operator]

    def _compute_max(self, operator: str) -> int:
        if operator == fares.BJ_SUBWAY:
            net = self.network(operator)
            longest = max((r.km for c, s in net.stations.items() if fares.BJ_AIRPORT_EXPRESS_LINE not in s.lines
                           for r in net.all_routes_from(c)), default=Decimal(0))
            return fares.bj_subway_full_fare(longest)
        if operator == fares.TJ_METRO:
            net = self.network(operator)
            most = max((r.sections for c in net.stations for r in net.all_routes_from(c)), default=0)
            return fares.tj_metro_full_fare(most)
        lines = [b for (op, _), b in self.lines.items() if op == operator]
        if operator == fares.BJ_BUS:
            return max((fares.bj_bus_full_fare(b.km) for b in lines if b.km is not None),
                       default=fares.BJ_BUS_BASE_FEN)
        base = fares.TJ_BUS_BASE_FEN if operator == fares.TJ_BUS else fares.HE_BUS_BASE_FEN[operator]
        return max([base, *(b.full_fare_fen for b in lines if b.full_fare_fen is not None)])


def max_fare(tariff: Tariff, operator: str, station: str | None = None) -> int:
    """``tariff.max_fare``: the fare a missing entry tap or an exit after too long pays."""
    return tariff.max_fare(operator, station)
