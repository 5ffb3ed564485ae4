"""The software card: a small card OS with an INS dispatch table, persisted to a file.

``VirtualCard.load(path)`` reads the card's image (its EEPROM, ``image.CardState``) from its
file and keeps the file open for the card's saves (``card_file.CardFile``: two banks, one
``pwrite`` per commit) until ``power_off()`` or ``close()``;
``power_on()`` answers the ATR and starts a fresh session (the card's RAM);
``process(apdu)`` runs one command. Inside the OS a failed check raises
``CardStatus(sw)``; only ``process`` turns it into the two status bytes, so no byte
string makes it raise — except ``CardTorn``, when a fault cuts the power: the card then
gives no response and is out of the field until its file is loaded again.

Handlers are small functions ``(session, command) -> response data``, grouped by what
they touch: ``files`` (SELECT, records, binaries), ``security`` (challenge, external
authentication, PIN), ``personalisation`` (life cycle, keys, STORE DATA) and ``purse``
(T-Union).
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from pathlib import Path

from sbcard.chip import sw as status_words
from sbcard.chip.apdu import Command
from sbcard.chip.profile import ATR_PREFIX, CLA_ISO, CLA_PROPRIETARY, CLA_SECURE, Ins
from sbcard.chip.sw import CardStatus
from terminals.emulator import files, personalisation, purse, security
from terminals.emulator.card_file import CardFile, as_path
from terminals.emulator.faults import Faults
from terminals.emulator.image import CardState
from terminals.emulator.journal import CardTorn, Journal
from terminals.emulator.session import RandomSource, Session

__all__ = ["CardTorn", "VirtualCard", "COMMANDS"]

Handler = Callable[[Session, Command], bytes]

COMMANDS: dict[tuple[int, int], Handler] = {
    # ISO 7816-4
    (CLA_ISO, Ins.SELECT): files.select,
    (CLA_ISO, Ins.READ_RECORD): files.read_record,
    (CLA_ISO, Ins.READ_BINARY): files.read_binary,
    (CLA_ISO, Ins.UPDATE_RECORD): files.update_record,
    (CLA_ISO, Ins.UPDATE_BINARY): files.update_binary,
    (CLA_ISO, Ins.APPEND_RECORD): files.append_record,
    (CLA_ISO, Ins.GET_CHALLENGE): security.get_challenge,
    (CLA_ISO, Ins.EXTERNAL_AUTHENTICATE): security.external_authenticate,
    (CLA_ISO, Ins.VERIFY): security.verify,
    (CLA_ISO, Ins.CHANGE_REFERENCE_DATA): security.change_reference_data,
    (CLA_ISO, Ins.RESET_RETRY_COUNTER): security.reset_retry_counter,
    # life cycle and personalisation
    (CLA_PROPRIETARY, Ins.GET_DATA): personalisation.get_data,
    (CLA_PROPRIETARY, Ins.ERASE): personalisation.erase,
    (CLA_PROPRIETARY, Ins.WRITE_KEY): personalisation.write_key,
    (CLA_PROPRIETARY, Ins.SET_STATUS): personalisation.set_status,
    (CLA_PROPRIETARY, Ins.STORE_DATA): personalisation.store_data,
    # T-Union e-purse
    (CLA_PROPRIETARY, Ins.GET_BALANCE): purse.get_balance,
    (CLA_PROPRIETARY, Ins.INITIALIZE): purse.initialize,
    (CLA_PROPRIETARY, Ins.UPDATE_CAPP_DATA_CACHE): purse.update_capp_data_cache,
    (CLA_PROPRIETARY, Ins.DEBIT_FOR_PURCHASE): purse.debit_for_purchase,
    (CLA_PROPRIETARY, Ins.CREDIT_FOR_LOAD): purse.credit_for_load,
    (CLA_PROPRIETARY, Ins.GET_TRANSACTION_PROVE): purse.get_transaction_prove,
    (CLA_SECURE, Ins.APPLICATION_BLOCK): purse.application_block,
    (CLA_SECURE, Ins.APPLICATION_UNBLOCK): purse.application_unblock,
}
_CLASSES = frozenset(cla for cla, _ in COMMANDS)
_NO_FAULTS = Faults()  # frozen: one serves every card
_OK = status_words.OK.to_bytes(2, "big")


def _sw_bytes(sw: int) -> bytes:
    return sw.to_bytes(2, "big") if 0x6000 <= sw <= 0x9FFF else status_words.NO_PRECISE_DIAGNOSIS.to_bytes(2, "big")


class VirtualCard:
    """One emulated chip, bound to the file that holds its image."""

    def __init__(
        self,
        path: Path | str,
        state: CardState,
        faults: Faults | None = None,
        rng: RandomSource | None = None,
        *,
        durable: bool = False,
        file: CardFile | None = None,
    ) -> None:
        """``file`` is the open card file ``state`` was read from (``load`` passes it);
        without it the file at ``path`` is opened at the first save."""
        self._path = as_path(path)
        self._file = file if file is not None else CardFile(self._path)
        self._state = state
        self._rng = rng if rng is not None else random.SystemRandom()
        faults = faults if faults is not None else _NO_FAULTS
        # The saver holds the file, not the card: no reference cycle, so a card dropped
        # without power-off closes its file at once (CardFile.__del__).
        save = functools.partial(self._file.save, durable=durable)
        self._journal = Journal(state, save, faults.tear_at_write)
        self._session: Session | None = None
        self._out = False  # torn: no more answers from this object
        self.trace: Callable[[str], None] | None = None

    @classmethod
    def load(
        cls, path: Path | str, faults: Faults | None = None, rng: RandomSource | None = None, *, durable: bool = False
    ) -> VirtualCard:
        """Read the card's file (``FileNotFoundError``; ``ValueError`` if it is no card)."""
        file, state = CardFile.open(path)
        return cls(path, state, faults, rng, durable=durable, file=file)

    def __repr__(self) -> str:
        return f"VirtualCard({str(self._path)!r}, chip {self.chip_serial.hex().upper()})"

    @property
    def path(self) -> Path:
        return self._path

    @property
    def chip_serial(self) -> bytes:
        return self._state.chip_serial

    @property
    def state(self) -> CardState:
        """The image as the card holds it now (for tests and tools: do not modify)."""
        return self._state

    @property
    def atr(self) -> bytes:
        return ATR_PREFIX + self._state.chip_serial

    @property
    def writes_since_power_on(self) -> int:
        """Persistent writes (journal and commit) counted for ``Faults.tear_at_write``."""
        return self._journal.writes

    @property
    def torn(self) -> bool:
        return self._out

    def power_on(self) -> bytes:
        """Cold reset: a fresh session (MF selected, nothing authenticated); the ATR."""
        self._require_present()
        self._journal.power_on()
        self._session = Session(self._state, self._journal, self._rng)
        return self.atr

    def power_off(self) -> None:
        """End the session and close the card's file (a later command reopens it)."""
        self._session = None
        self._journal.discard()
        self._file.close()

    def close(self) -> None:
        """Power off and release the card's file; the same as ``power_off``."""
        self.power_off()

    def __enter__(self) -> VirtualCard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def process(self, apdu: bytes) -> bytes:
        """Run one command APDU; the response APDU (data ‖ SW1 SW2).

        A card that is not powered is powered on first, as a reader's field would.
        """
        self._require_present()
        if self._session is None:
            self.power_on()
        if self.trace:
            self.trace("> " + bytes(apdu).hex(" ").upper())
        try:
            response = self._run(bytes(apdu))
        except CardTorn:
            self._out, self._session = True, None
            self._file.close()
            if self.trace:
                self.trace("< (card torn: no response)")
            raise
        if self.trace:
            self.trace("< " + response.hex(" ").upper())
        return response

    def _run(self, raw: bytes) -> bytes:
        session = self._session
        assert session is not None
        try:
            cmd = Command.parse(raw)
            handler = COMMANDS.get((cmd.cla, cmd.ins))
            if handler is None:
                sw = status_words.INS_NOT_SUPPORTED if cmd.cla in _CLASSES else status_words.CLA_NOT_SUPPORTED
                raise CardStatus(sw)
            data = handler(session, cmd)
            assert not self._journal.pending, f"{handler.__name__} left writes uncommitted"
            return data + _OK
        except CardStatus as e:
            self._journal.discard()
            return _sw_bytes(e.sw)
        except CardTorn:
            raise
        except Exception:  # noqa: BLE001 - a card answers; 6F00 is its last resort
            self._journal.discard()
            return _sw_bytes(status_words.NO_PRECISE_DIAGNOSIS)

    def _require_present(self) -> None:
        if self._out:
            raise CardTorn("the card was torn out of the field; load it again from its file")
