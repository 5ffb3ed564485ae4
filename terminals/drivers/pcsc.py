"""The PC/SC reader driver (pyscard).

pyscard is imported inside the functions that use it, so the rest of the project imports
and works on a machine without libpcsclite. Errors are told apart the way the Reader
port asks: the PC/SC service down or no such reader → ``ReaderError``; no card →
``NoCard``; the card pulled out mid-exchange → ``CardIOError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sbcard.chip.reader import CardIOError, NoCard, ReaderError
from sbcard.domain.errors import InvalidInput

SERVICE_DOWN = "PC/SC service not running: start it with `pcscd` (Debian package pcscd)"

# PC/SC return codes (winscard.h), spelled here so that matching them needs no pyscard.
_SCARD_E_NO_SERVICE = 0x8010001D
_SCARD_E_SERVICE_STOPPED = 0x8010001E
_SCARD_E_READER_UNAVAILABLE = 0x80100017
_SCARD_E_UNKNOWN_READER = 0x80100009
_SCARD_E_NO_SMARTCARD = 0x8010000C
_SCARD_W_REMOVED_CARD = 0x80100069
_SCARD_W_UNPOWERED_CARD = 0x80100067
_SCARD_E_TIMEOUT = 0x8010000A

_SERVICE_CODES = {_SCARD_E_NO_SERVICE, _SCARD_E_SERVICE_STOPPED}
_NO_CARD_CODES = {_SCARD_E_NO_SMARTCARD, _SCARD_W_REMOVED_CARD, _SCARD_W_UNPOWERED_CARD}


def _hresult(exc: BaseException) -> int | None:
    h = getattr(exc, "hresult", None)
    if isinstance(h, int) and h != -1:
        return h & 0xFFFFFFFF
    return None


def _scard() -> Any:
    """The low-level pyscard module, or a ReaderError saying why PC/SC is unusable."""
    try:
        # pyscard is optional: imported where used, not at the top (module doc)
        from smartcard import scard
    except ImportError as e:  # pyscard or libpcsclite missing
        raise ReaderError(f"PC/SC support unavailable: {e} (install pyscard and libpcsclite1)") from e
    return scard


def _service_error(exc: BaseException) -> ReaderError:
    """Map an error from establishing a context or listing readers."""
    # pyscard is optional: imported where used, not at the top (module doc)
    from smartcard.Exceptions import CardServiceNotFoundException, CardServiceStoppedException

    if isinstance(exc, (CardServiceNotFoundException, CardServiceStoppedException)) or _hresult(exc) in _SERVICE_CODES:
        return ReaderError(SERVICE_DOWN)
    return ReaderError(f"PC/SC error: {exc}")


def _reader_names() -> list[str]:
    """The names of the PC/SC readers (ReaderError with one line if pcscd is down)."""
    _scard()
    # pyscard is optional: imported where used, not at the top (module doc)
    from smartcard.System import readers

    try:
        return [str(r) for r in readers()]
    except Exception as e:  # pyscard raises several unrelated classes here
        raise _service_error(e) from e


def _states(names: list[str]) -> dict[str, tuple[bool, bytes | None]]:
    """For each reader: (card present, ATR or None), without connecting to the card."""
    scard = _scard()
    if not names:
        return {}
    hresult, hcontext = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        if (hresult & 0xFFFFFFFF) in _SERVICE_CODES:
            raise ReaderError(SERVICE_DOWN)
        raise ReaderError(f"PC/SC error: {scard.SCardGetErrorMessage(hresult)}")
    try:
        hresult, states = scard.SCardGetStatusChange(
            hcontext, 0, [(n, scard.SCARD_STATE_UNAWARE) for n in names]
        )
        if hresult != scard.SCARD_S_SUCCESS:
            code = hresult & 0xFFFFFFFF
            if code in _SERVICE_CODES:
                raise ReaderError(SERVICE_DOWN)
            if code in (_SCARD_E_UNKNOWN_READER, _SCARD_E_READER_UNAVAILABLE):
                raise ReaderError("PC/SC reader disappeared: " + ", ".join(names))
            raise ReaderError(f"PC/SC error: {scard.SCardGetErrorMessage(hresult)}")
        out: dict[str, tuple[bool, bytes | None]] = {}
        for name, event_state, atr in states:
            present = bool(event_state & scard.SCARD_STATE_PRESENT) and not event_state & scard.SCARD_STATE_MUTE
            out[name] = (present, bytes(atr) if present and atr else None)
        return out
    finally:
        scard.SCardReleaseContext(hcontext)


def list_pcsc_readers() -> list[dict[str, Any]]:
    """Every PC/SC reader: ``{"name", "card_present", "atr_hex"}`` (ReaderError if down)."""
    names = _reader_names()
    states = _states(names)
    return [
        {
            "name": n,
            "card_present": states[n][0],
            "atr_hex": states[n][1].hex().upper() if states[n][1] else None,
        }
        for n in names
    ]


def _quoted(names: list[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _pick(name: str | None, names: list[str],
          states: Callable[[list[str]], dict[str, tuple[bool, bytes | None]]] | None = None) -> str:
    """The reader ``name`` names (exactly, or as the unique prefix), or with no name the one
    reader holding a card. A name that matches no reader or several, or no name while several
    readers hold cards, is bad input (``InvalidInput``, exit 2): a clerk must never
    personalise the wrong card."""
    available = _quoted(names) or "none"
    if not names:
        raise ReaderError("no PC/SC reader connected (is the reader plugged in, or the vpcd bridge running?)")
    if name:
        if name in names:
            return name
        matches = [n for n in names if n.startswith(name)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise InvalidInput("reader.ambiguous", f'PC/SC reader name "{name}" is ambiguous: it matches '
                               f"{_quoted(matches)}; give more of the name", "reader")
        raise InvalidInput("reader.unknown", f'no PC/SC reader "{name}"; available: {available}', "reader")
    present = (states or _states)(names)
    holding = [n for n in names if present[n][0]]
    if len(holding) == 1:
        return holding[0]
    if holding:
        raise InvalidInput("reader.several_cards", f"cards are in {len(holding)} PC/SC readers: "
                           f"{_quoted(holding)}; say which with --reader pcsc:NAME, or take out the other cards",
                           "reader")
    raise NoCard(f"no card in any PC/SC reader (readers: {available})")


def _hex(b: bytes) -> str:
    return b.hex(" ").upper()


class PcscReader:
    """A PC/SC reader, named exactly or by a unique prefix; ``None`` = the one reader with a card.

    The connection to the card is made at first use (``atr`` or ``transmit_raw``): a card
    already in the reader when it is opened counts as inserted. After the card was
    pulled out (``CardIOError``) the next use connects again to whatever card is there.
    """

    def __init__(self, name: str | None = None, *, trace: Callable[[str], None] | None = None) -> None:
        self.name = _pick(name, _reader_names())
        self._trace = trace
        self._conn: Any = None
        self._atr: bytes | None = None

    def __repr__(self) -> str:
        return f"PcscReader({self.name!r})"

    # -- connection -------------------------------------------------------------------
    def _connect(self) -> Any:
        if self._conn is not None:
            return self._conn
        # pyscard is optional: imported where used, not at the top (module doc)
        from smartcard.Exceptions import CardConnectionException, NoCardException
        from smartcard.System import readers

        try:
            found = [r for r in readers() if str(r) == self.name]
        except Exception as e:
            raise _service_error(e) from e
        if not found:
            raise ReaderError(f'PC/SC reader "{self.name}" is gone')
        conn = found[0].createConnection()
        try:
            conn.connect()  # T=0 or T=1, whichever the card offers
            atr = bytes(conn.getATR())
        except NoCardException as e:
            self._release(conn)
            raise NoCard(f'no card in PC/SC reader "{self.name}"') from e
        except CardConnectionException as e:
            self._release(conn)
            code = _hresult(e)
            if code in _SERVICE_CODES:
                raise ReaderError(SERVICE_DOWN) from e
            if code in _NO_CARD_CODES or code == _SCARD_E_TIMEOUT:
                raise NoCard(f'no card in PC/SC reader "{self.name}"') from e
            raise ReaderError(f'cannot connect to the card in "{self.name}": {e}') from e
        self._conn, self._atr = conn, atr
        return conn

    @staticmethod
    def _release(conn: Any) -> None:
        try:
            conn.disconnect()
        except Exception:  # noqa: BLE001 - the card or service may already be gone
            pass
        try:
            conn.release()
        except Exception:  # noqa: BLE001
            pass

    def _drop(self) -> None:
        conn, self._conn, self._atr = self._conn, None, None
        if conn is not None:
            self._release(conn)

    # -- the Reader port --------------------------------------------------------------
    @property
    def atr(self) -> bytes:
        self._connect()
        assert self._atr is not None
        return self._atr

    def card_present(self) -> bool:
        return _states([self.name]).get(self.name, (False, None))[0]

    def transmit_raw(self, apdu: bytes) -> bytes:
        # pyscard is optional: imported where used, not at the top (module doc)
        from smartcard.Exceptions import CardConnectionException

        conn = self._connect()
        if self._trace:
            self._trace("> " + _hex(apdu))
        try:
            data, sw1, sw2 = conn.transmit(list(apdu))
        except CardConnectionException as e:
            self._drop()
            code = _hresult(e)
            if code in _SERVICE_CODES:
                raise ReaderError(SERVICE_DOWN) from e
            if code in (_SCARD_E_READER_UNAVAILABLE, _SCARD_E_UNKNOWN_READER):
                raise ReaderError(f'PC/SC reader "{self.name}" went away') from e
            raise CardIOError(f'card removed from "{self.name}" during the exchange ({e})') from e
        response = bytes(data) + bytes((sw1, sw2))
        if self._trace:
            self._trace("< " + _hex(response))
        return response

    def close(self) -> None:
        self._drop()

    def __enter__(self) -> "PcscReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
