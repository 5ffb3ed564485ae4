"""The validator's fare port over the project's fare rules (``sbcard.domain``).

``TariffFares(tariff)`` answers what ``terminals.apps.transit.FarePort`` asks with the
pure ``sbcard.domain.network.Tariff`` (the CLI loads it from ``fixtures/transit`` with
``sbcard.reference.transit.load_tariff``) and ``sbcard.domain.concessions`` (EF 0017).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sbcard.domain import concessions
from sbcard.domain import fares
from sbcard.domain.errors import SbcardError
from sbcard.domain.network import Tariff
from terminals.apps.transit import FareQuote, Quote, Station


class TariffFares:
    """``FarePort`` over a ``Tariff``: stations by name or code, quotes, maximum fares, concessions."""

    def __init__(self, tariff: Tariff) -> None:
        self.tariff = tariff
        self._by_code: dict[tuple[str, str], Station | None] = {}
        self._documents: dict[str, dict[str, Any]] | None = None

    def sources(self, ids: list[str]) -> list[dict[str, Any]]:
        """The documents a record's source ids name (``Source.to_json``), as the tariff cites them."""
        if self._documents is None:
            cited = [*self.tariff.rule_provenance.values(), *(r.provenance for r in self.tariff.policy.rules),
                     *(line.provenance for line in self.tariff.lines.values()),
                     *(o.provenance for o in self.tariff.operators.values())]
            self._documents = {s.id: s.to_json() for p in cited for s in p.sources}
        return [self._documents.get(i, {"id": i}) for i in ids]

    def gated(self, operator: str) -> bool:
        return self.tariff.operator(operator).mode == "metro"

    def uses_age(self, operator: str) -> bool:
        """Beijing buses (the elderly free bus) and Tianjin buses (the elderly free ride)."""
        return operator in (fares.BJ_BUS, fares.TJ_BUS)

    def station(self, operator: str, name: str) -> Station:
        """A name naming several codes (the airport express's 东直门) takes the first listed;
        give the code to choose another."""
        try:
            codes = self.tariff.network(operator).find(name, "--station")
        except SbcardError as e:
            raise LookupError(e.message) from None
        network = self.tariff.network(operator)
        return Station(codes[0], network.stations[codes[0]].name)

    def station_by_code(self, operator: str, code: str) -> Station | None:
        key = (operator, code)
        if key not in self._by_code:
            found = self.tariff.network(operator).stations.get(code)
            self._by_code[key] = Station(found.code, found.name) if found else None
        return self._by_code[key]

    def concession(self, operator: str, ef0017: bytes, day: dt.date) -> str | None:
        try:
            card = concessions.decode_0017(bytes(ef0017))
        except SbcardError:
            return None  # a layout this project did not write: no concession
        region = fares.OPERATOR_REGIONS.get(operator)
        return concessions.fare_concession(card, region, day) if region else None

    def ride(
        self,
        operator: str,
        *,
        km: Any,
        line: str | None,
        area: str | None,
        holder_birth_date: dt.date | None,
        day: dt.date,
        concession: str | None,
        full_fare_fen: int | None,
        card_region: str | None = None,
    ) -> FareQuote:
        if operator == fares.BJ_BUS and km is None:
            km = 0  # one tap, no distance: the first band
        if concession == fares.ELDERLY and holder_birth_date is None:
            concession = None  # the free ride depends on an age the card does not tell
        quote, _ = self.tariff.quote(
            operator,
            km=km,
            line=line,
            area=area,
            full_fare_fen=full_fare_fen,
            holder_birth_date=holder_birth_date,
            day=day,
            concession=concession,
            card_region=card_region,
        )
        return quote

    def journey(
        self,
        operator: str,
        entry: Station,
        exit: Station,
        *,
        holder_birth_date: dt.date | None,
        day: dt.date,
        concession: str | None,
        card_region: str | None = None,
    ) -> FareQuote:
        try:
            quote, route = self.tariff.quote(
                operator, origin=entry.code, destination=exit.code, holder_birth_date=holder_birth_date, day=day,
                concession=concession, card_region=card_region,
            )
        except SbcardError as e:  # not connected: the airport express's own fare system
            fen = self.max_fare(operator, exit)
            return Quote(fen, fen, f"{operator}.max-fare", f"maximum fare: {e.message}")
        return quote

    def max_fare(self, operator: str, station: Station | None = None) -> int:
        return self.tariff.max_fare(operator, station.code if station else None)

    def min_fare(self, operator: str) -> int:
        if operator == fares.BJ_SUBWAY:
            return fares.bj_subway_full_fare(0)
        if operator == fares.TJ_METRO:
            return fares.tj_metro_full_fare(0)
        return 0
