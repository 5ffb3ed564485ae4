"""What the validator's tests share: a world with terminals, cards of the three regions, taps.

``ValidatorRig`` works on a copy of one initialised world (its issuer keys matter: the
PSAM gets every region's consumer keys from it). Cards are personalised through their
commands with the keys of their region's masters (``terminals.emulator.testing``), and
topped up with a real load; terminals are added through the service the CLI uses, so a
terminal's directory is exactly what ``sbcard terminal add`` makes.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from sbcard.chip.keys import IssuerMasterKeys
from sbcard.chip.reader import Reader
from sbcard.clock import BEIJING, SimClock
from sbcard.domain.card_number import CardNumber
from sbcard.domain.citizen_id import compute_check_char
from sbcard.services.exchange import directory as hub_directory
from sbcard.services.terminals import register as terminal_service
from sbcard.services.cards.keys import issuer_masters
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import World, open_world
from terminals.apps.terminal_state import TerminalState
from terminals.apps.transit import TapResult, Validator
from terminals.apps.transit_fares import TariffFares
from terminals.drivers.emulator import EmulatorReader
from terminals.emulator import testing
from terminals.emulator.card import VirtualCard
from terminals.emulator.faults import Faults

NOW = dt.datetime(2025, 3, 1, 9, 30, tzinfo=BEIJING)
REGIONS = {"bj": "110000", "tj": "120000", "he": "130100"}  # a Hebei card comes from a prefecture city
T_UNION_CITY = {"bj": "1000", "tj": "1200", "he": "0311"}


def citizen_id(region: str, birth: str, seq: str = "123") -> str:
    first17 = f"{region}{birth}{seq}"
    return first17 + compute_check_char(first17)


def card_number(letter: str, n: int) -> str:
    body = f"{letter}{n:07d}"
    return CardNumber.from_body(body).value


ADULT_BORN = "19900307"
ELDER_BORN = "19500101"


@attrs.define
class ValidatorRig:
    home: Path
    cards_dir: Path
    clock: SimClock = attrs.field(factory=lambda: SimClock(NOW))
    _masters: dict[str, IssuerMasterKeys] = attrs.Factory(dict)
    _cards: dict[Path, tuple[str, Any]] = attrs.Factory(dict)
    _serial: int = 0
    _fares: TariffFares | None = None

    # --- the world ------------------------------------------------------------------------

    def world(self) -> World:
        return open_world(self.home)

    def masters(self, node: str) -> IssuerMasterKeys:
        if node not in self._masters:
            with self.world() as world:
                self._masters[node] = issuer_masters(world.region(node))
        return self._masters[node]

    @property
    def fares(self) -> TariffFares:
        if self._fares is None:
            from sbcard.reference.transit import load_tariff

            self._fares = TariffFares(load_tariff())
        return self._fares

    # --- cards ----------------------------------------------------------------------------

    def card(
        self,
        node: str = "bj",
        *,
        balance_fen: int = 5000,
        born: str = ADULT_BORN,
        issue_date: dt.date = dt.date(2024, 1, 2),
        number: str | None = None,
        region: str | None = None,
    ) -> Path:
        """A personalised card of ``node``'s issuer, with ``balance_fen`` loaded."""
        self._serial += 1
        region = region or REGIONS[node]
        number = number or card_number({"bj": "B", "tj": "T", "he": "H"}[node], self._serial)
        path = self.cards_dir / f"{number}.card"
        issue_date = dt.date(issue_date.year, issue_date.month, issue_date.day)  # freezegun's date, when frozen
        fields = dict(
            card_number=number,
            citizen_id=citizen_id(region[:4] + "02", born, f"{self._serial % 1000:03d}"),
            region=region,
            issue_date=issue_date,
            city=T_UNION_CITY[node],
        )
        card = testing.personalised_card(path, masters=self.masters(node), balance_fen=balance_fen,
                                   rng=random.Random(self._serial), **fields)
        card.close()
        self._cards[path] = (node, testing.card_data(**fields))  # type: ignore[arg-type]
        return path

    def card_data(self, path: Path):
        return self._cards[path][1]

    def card_keys(self, path: Path):
        node, data = self._cards[path]
        return testing.keys_of(data, self.masters(node))

    def write_0017(self, path: Path, content: bytes) -> None:
        """EF 0017 written at a counter: UPDATE BINARY under the card maintenance key."""
        from sbcard.chip import profile
        from sbcard.chip.commands import SelectMF, UpdateBinary, select_tunion

        keys = self.card_keys(path)
        with VirtualCard.load(path) as card:
            card.power_on()
            testing.run(card, SelectMF())
            testing.external_authenticate(card, keys.maintenance, profile.CARD_KEY_INDEX)
            testing.run(card, select_tunion())
            testing.run(card, UpdateBinary(profile.SFI_TU_MANAGEMENT, 0, content))

    def balance(self, path: Path) -> int:
        with VirtualCard.load(path) as card:
            return card.state.purse.balance

    def counter(self, path: Path) -> int:
        with VirtualCard.load(path) as card:
            return card.state.purse.offline_counter

    def purse(self, path: Path):
        with VirtualCard.load(path) as card:
            return card.state.purse

    def capp(self, path: Path) -> bytes | None:
        from sbcard.chip import profile
        from terminals.emulator.image import TU

        with VirtualCard.load(path) as card:
            return card.state.records.get((TU, profile.SFI_TU_CAPP), {}).get(1)

    def locked(self, path: Path) -> bool:
        with VirtualCard.load(path) as card:
            return "TU" in card.state.locked

    # --- terminals ------------------------------------------------------------------------

    def terminal(self, operator: str, **options: Any) -> TerminalState:
        """A new terminal of ``operator`` (``station``, ``gate``, ``line``, ``area``, ``full_fare_fen``)."""
        from sbcard.cli.terminals import install_terminal, terminal_dir

        with self.world() as world:
            row = terminal_service.add_terminal(world, operator=operator, now=self.clock.now(),
                                                install=install_terminal(self.home, "normal"), **options)
        return TerminalState.open(terminal_dir(self.home, row["id"]))

    def validator(self, state: TerminalState, *, psam: Reader | None = None) -> Validator:
        return Validator(state, psam if psam is not None else state.psam(), self.fares, self.clock)

    def tap(
        self,
        terminal: TerminalState | Validator,
        card: Path,
        *,
        tear: int | None = None,
        wrap: Callable[[Reader], Reader] | None = None,
        **kw: Any,
    ) -> TapResult:
        """One tap: the card enters the field (loaded from its file), the validator runs, it leaves."""
        validator = terminal if isinstance(terminal, Validator) else self.validator(terminal)
        reader: Reader = EmulatorReader(card, Faults(tear_at_write=tear) if tear else None)
        try:
            return validator.tap(wrap(reader) if wrap else reader, **kw)
        finally:
            reader.close()

    def later(self, **delta: float) -> dt.datetime:
        return self.clock.advance(dt.timedelta(**delta))

    # --- the hub ----------------------------------------------------------------------------

    def blacklist(self, *cards: str, remove: bool = False) -> int:
        with self.world() as world, UnitOfWork(world.hub()) as uow:
            version = hub_directory.publish_blacklist(
                uow.db, adds=() if remove else cards, removes=cards if remove else (), note="test",
                now=self.clock.now())
            uow.commit()
        return version

    def sync(self, state: TerminalState) -> int:
        with self.world() as world:
            copy = terminal_service.blacklist_copy(world)
        state.replace_blacklist(copy.version, copy.cards, published_at=copy.published_at,
                                synced_at=self.clock.now().isoformat(), revoked_concessions=copy.revoked_concessions)
        return copy.version


class ApduTap:
    """A Reader around another, counting the card's APDUs; ``cut_at=n`` pulls the card at the n-th.

    ``lose_response``: the n-th command reaches the card and runs, but its answer is lost
    (the card leaves as the response is on its way); otherwise the card is gone before it.
    """

    def __init__(self, reader: Reader, cut_at: int | None = None, *, lose_response: bool = False,
                 mangle: Callable[[bytes, bytes], bytes] | None = None) -> None:
        self._reader, self.name = reader, reader.name
        self.cut_at, self.lose_response, self.mangle = cut_at, lose_response, mangle
        self.sent: list[bytes] = []
        self.answers: list[bytes] = []

    @property
    def atr(self) -> bytes:
        return self._reader.atr

    def card_present(self) -> bool:
        return self._reader.card_present()

    def transmit_raw(self, apdu: bytes) -> bytes:
        from sbcard.chip.reader import CardIOError

        self.sent.append(bytes(apdu))
        if self.cut_at is not None and len(self.sent) == self.cut_at:
            if self.lose_response:
                self._reader.transmit_raw(apdu)
            self._reader.close()
            raise CardIOError(f"card pulled away at APDU {self.cut_at}")
        answer = self._reader.transmit_raw(apdu)
        if self.mangle is not None:
            answer = self.mangle(bytes(apdu), answer)
        self.answers.append(answer)
        return answer

    def close(self) -> None:
        self._reader.close()


# --- fixtures (import them into a test module: ``from validator_helpers import rig, validator_template``)

import shutil  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def validator_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sbcard.clock import FixedClock
    from sbcard.store.world import init_world

    home = tmp_path_factory.mktemp("validator-template") / "world"
    init_world(home, FixedClock(NOW), rng_seed=44)
    return home


@pytest.fixture
def rig(tmp_path: Path, validator_template: Path) -> ValidatorRig:
    home = tmp_path / "world"
    shutil.copytree(validator_template, home)
    cards = tmp_path / "cards"
    cards.mkdir()
    return ValidatorRig(home, cards)
