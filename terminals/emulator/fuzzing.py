"""Seeded APDU fuzzing of the card OS and the PSAM, with invariants (``benchmarks/fuzz_card.py``).

The card runs in process on an image held in memory (``MemoryCardFile``: a commit keeps the
image's bytes, as the card file's bank would hold them), so a million APDUs need no file
I/O. Each *episode* starts from the same personalised card (¥100.00 on it), powers it on,
brings it into one security state (``STATES``: nothing selected, SSSE selected, the purse
selected, after VERIFY PIN, after EXTERNAL AUTHENTICATE, a challenge out, mid-purchase,
mid-load) through the real commands, and then sends fuzzed APDUs: random bytes, and
structured ones — a valid command of the card with its lengths, parameters and data
mutated (or left valid, so that the card's state moves on). Some episodes run with a
tear (``Faults(tear_at_write=N)``): the card is then loaded again from the image its
last commit saved.

What counts as a failure (each must stay 0):

- *exceptions*: a Python exception escaping ``process`` (``CardTorn`` only when a tear
  was asked for), or ``6F00`` — the card's last resort, which masks an exception inside;
  an answer that is not data ‖ SW1 SW2 with a proper SW1, or a refusal carrying data;
- *hangs*: an APDU taking longer than ``HANG_SECONDS`` (a watchdog alarm also breaks a
  real loop);
- *invariant breaks*: the balance changed without its log record and its counter moving
  on by one (a purchase: the offline counter; a load: the online one), a counter going
  back, a balance out of 0…max, a saved image that does not load or differs from the
  card's state.

The PSAM gets its own episodes: its terminal serial must never repeat or go back.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from sbcard.chip import profile
from sbcard.chip.apdu import Command
from sbcard.chip.codec import bcd_datetime
from sbcard.chip.commands import (
    ApplicationBlock,
    CreditForLoad,
    DebitForPurchase,
    Dgi,
    InitializeForLoad,
    InitializeForPurchase,
)
from sbcard.chip.keys import CardKeys, transport_key
from sbcard.chip.personalisation import build_factory_script
from terminals.emulator import image_codec, testing
from terminals.emulator.blank import blank_state
from terminals.emulator.card import CardTorn, VirtualCard
from terminals.emulator.faults import Faults
from terminals.emulator.image import TU, CardState
from terminals.psam import MemorySerials, Psam, PsamKeySet

HANG_SECONDS = 1.0  # per APDU (the card answers in microseconds)
WATCHDOG_SECONDS = 30  # per episode: an alarm breaks a real infinite loop
APDUS_PER_EPISODE = 48
TEAR_SHARE = 0.1  # episodes run with a tear at a random persistent write
LOG_REF = (TU, profile.SFI_TU_LOG)
PURSE_KEY_INDEX = profile.CARD_KEY_INDEX
BLANK_SERIAL = bytes.fromhex("8612000000000042")
PERSONALISING = "personalising (after ERASE under TK)"
GOOD_SW1 = frozenset(range(0x61, 0x70)) | frozenset(range(0x90, 0xA0))
CATCH_ALL = 0x6F00


class Hang(BaseException):
    """The watchdog's alarm: an episode ran past ``WATCHDOG_SECONDS`` (BaseException: the card's
    ``except Exception`` must not swallow it)."""


class MemoryCardFile:
    """The card file's stand-in: each commit keeps the image's bytes (what the file's bank would hold)."""

    def __init__(self, saved: bytes) -> None:
        self.saved = saved
        self.commits = 0

    def save(self, state: CardState, *, durable: bool = False) -> None:
        del durable
        self.saved = image_codec.dumps(state)
        self.commits += 1

    def close(self) -> None:
        pass


@attrs.define
class Figures:
    """What a run counted."""

    apdus: int = 0  # fuzzed APDUs sent to the card
    setup_apdus: int = 0  # the commands that brought the card into its state
    psam_apdus: int = 0
    episodes: int = 0
    tears: int = 0
    reloads: int = 0
    seconds: float = 0.0
    psam_seconds: float = 0.0
    per_state: Counter[str] = attrs.Factory(Counter)
    per_sw: Counter[int] = attrs.Factory(Counter)
    accepted: Counter[str] = attrs.Factory(Counter)  # 9000 answers by command name
    exceptions: list[str] = attrs.Factory(list)
    hangs: list[str] = attrs.Factory(list)
    invariant_breaks: list[str] = attrs.Factory(list)

    @property
    def failures(self) -> int:
        return len(self.exceptions) + len(self.hangs) + len(self.invariant_breaks)


# ----------------------------------------------------------------------------- the card


@attrs.frozen
class Pristine:
    """The personalised card every episode starts from."""

    image: bytes
    keys: CardKeys
    pin: str
    blank: bytes  # a blank chip's image, for the episodes of a card being personalised


def make_pristine(folder: Path, balance_fen: int = 10000) -> Pristine:
    """A personalised test card with ``balance_fen`` on it (made once, through its commands)."""
    data = testing.card_data()
    keys = testing.keys_of(data)
    card = testing.personalised_card(folder / "pristine.card", balance_fen=balance_fen, rng=random.Random(1))
    try:
        return Pristine(image_codec.dumps(card.state), keys, data.initial_pin,
                        image_codec.dumps(blank_state(BLANK_SERIAL)))
    finally:
        card.close()


def load_card(saved: bytes, rng: random.Random, faults: Faults | None = None) -> tuple[VirtualCard, MemoryCardFile]:
    file = MemoryCardFile(saved)
    card = VirtualCard("fuzz.card", image_codec.loads(saved), faults, rng, file=file)  # type: ignore[arg-type]
    return card, file


def _apdu(cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None) -> bytes:
    return Command(cla, ins, p1, p2, data, le).to_bytes()


def _send(card: VirtualCard, apdu: bytes) -> bytes:
    response = card.process(apdu)
    if response[-2:] != b"\x90\x00":
        raise _SetupRefused(f"{apdu.hex().upper()} -> {response.hex().upper()}")
    return response[:-2]


class _SetupRefused(Exception):
    pass


SELECT_SSSE = _apdu(0x00, profile.Ins.SELECT, 0x04, 0x00, profile.SSSE_NAME)
SELECT_DF04 = _apdu(0x00, profile.Ins.SELECT, 0x04, 0x00, profile.AID_DF04)
SELECT_TU = _apdu(0x00, profile.Ins.SELECT, 0x04, 0x00, profile.AID_TUNION)


def _state_none(card: VirtualCard, p: Pristine) -> None:
    pass


def _state_ssse(card: VirtualCard, p: Pristine) -> None:
    _send(card, SELECT_SSSE)


def _state_purse(card: VirtualCard, p: Pristine) -> None:
    _send(card, SELECT_TU)


def _state_pin(card: VirtualCard, p: Pristine) -> None:
    _send(card, SELECT_DF04)
    _send(card, _apdu(0x00, profile.Ins.VERIFY, 0x00, 0x00, bytes.fromhex(p.pin)))


def _state_auth(card: VirtualCard, p: Pristine) -> None:
    testing.external_authenticate(card, p.keys.maintenance, profile.CARD_KEY_INDEX)


def _state_challenge(card: VirtualCard, p: Pristine) -> None:
    _send(card, SELECT_TU)
    _send(card, _apdu(0x00, profile.Ins.GET_CHALLENGE, 0x00, 0x00, le=8))


def _state_purchase(card: VirtualCard, p: Pristine) -> bytes:
    """INITIALIZE FOR PURCHASE answered; the DEBIT that completes it (MAC1 right), for the episode to send."""
    started = testing.start_purchase(card, 150, keys=p.keys)
    when = bcd_datetime(testing.TEST_WHEN)
    mac1 = started.mac1(testing.TEST_TERMINAL_SERIAL, when)
    return DebitForPurchase(testing.TEST_TERMINAL_SERIAL, when, mac1).command().to_bytes()


def _state_load(card: VirtualCard, p: Pristine) -> bytes:
    """INITIALIZE FOR LOAD answered; the CREDIT that completes it (MAC2 right)."""
    started = testing.start_load(card, 500, keys=p.keys)
    return CreditForLoad(bcd_datetime(testing.TEST_WHEN), started.mac2(testing.TEST_WHEN)).command().to_bytes()


def _state_personalising(card: VirtualCard, p: Pristine) -> None:
    """A blank chip (loaded from ``Pristine.blank``) after TK authentication and ERASE: STORE DATA's state."""
    testing.external_authenticate(card, transport_key(BLANK_SERIAL), profile.TRANSPORT_KEY_INDEX)
    _send(card, _apdu(0x80, profile.Ins.ERASE, 0x00, 0x00))


STATES: dict[str, Callable[[VirtualCard, Pristine], bytes | None]] = {
    PERSONALISING: _state_personalising,
    "nothing selected": _state_none,
    "SSSE selected": _state_ssse,
    "purse selected": _state_purse,
    "after PIN verify": _state_pin,
    "after external auth": _state_auth,
    "challenge out": _state_challenge,
    "mid-purchase": _state_purchase,
    "mid-load": _state_load,
}


# ----------------------------------------------------------------------------- APDUs


def _templates(p: Pristine) -> list[tuple[str, bytes]]:
    """A valid command of every kind the card knows (the structured fuzzing mutates these)."""
    dt8 = bcd_datetime(testing.TEST_WHEN)
    pin = bytes.fromhex(p.pin)
    t = [
        ("SELECT MF", _apdu(0x00, profile.Ins.SELECT, 0x00, 0x00, profile.MF_FID)),
        ("SELECT SSSE", SELECT_SSSE),
        ("SELECT DF04", SELECT_DF04),
        ("SELECT TU", SELECT_TU),
        ("SELECT empty", _apdu(0x00, profile.Ins.SELECT, 0x04, 0x00, le=256)),
        ("READ RECORD", _apdu(0x00, profile.Ins.READ_RECORD, 0x01, (profile.SFI_EF05 << 3) | 4, le=256)),
        ("READ RECORD log", _apdu(0x00, profile.Ins.READ_RECORD, 0x01, (profile.SFI_TU_LOG << 3) | 4, le=256)),
        ("READ BINARY", _apdu(0x00, profile.Ins.READ_BINARY, 0x80 | profile.SFI_TU_ISSUER, 0x00, le=256)),
        ("UPDATE RECORD", _apdu(0x00, profile.Ins.UPDATE_RECORD, 0x07, (profile.SFI_EF05 << 3) | 4,
                                bytes.fromhex("0709313838333437303830"))),
        ("UPDATE BINARY", _apdu(0x00, profile.Ins.UPDATE_BINARY, 0x80 | profile.SFI_TU_MANAGEMENT, 0x00, b"\x01")),
        ("APPEND RECORD", _apdu(0x00, profile.Ins.APPEND_RECORD, 0x00, (0x08 << 3) | 0, bytes(32))),
        ("GET CHALLENGE", _apdu(0x00, profile.Ins.GET_CHALLENGE, 0x00, 0x00, le=8)),
        ("EXTERNAL AUTHENTICATE", _apdu(0x00, profile.Ins.EXTERNAL_AUTHENTICATE, 0x00, 0x01, bytes(16))),
        ("VERIFY", _apdu(0x00, profile.Ins.VERIFY, 0x00, 0x00, pin)),
        ("CHANGE PIN", _apdu(0x00, profile.Ins.CHANGE_REFERENCE_DATA, 0x00, 0x00, pin + pin)),
        ("RESET RETRY COUNTER", _apdu(0x00, profile.Ins.RESET_RETRY_COUNTER, 0x02, 0x00, pin)),
        ("GET DATA", _apdu(0x80, profile.Ins.GET_DATA, 0x00, 0xC1, le=256)),
        ("ERASE", _apdu(0x80, profile.Ins.ERASE, 0x00, 0x00)),
        ("WRITE KEY", _apdu(0x80, profile.Ins.WRITE_KEY, 0x01, 0x02, b"\x04\x01" + bytes(16))),
        ("SET STATUS", _apdu(0x80, profile.Ins.SET_STATUS, 0x00, 0x03)),
        ("STORE DATA", _apdu(0x80, profile.Ins.STORE_DATA, 0x08, 0x00, Dgi(profile.DGI_PIN, pin).to_bytes())),
        *((f"factory {c.ins:02X}", c.to_bytes()) for c in build_factory_script(testing.card_data(), p.keys)),
        ("GET BALANCE", _apdu(0x80, profile.Ins.GET_BALANCE, 0x00, 0x02, le=4)),
        ("INITIALIZE FOR PURCHASE",
         InitializeForPurchase(PURSE_KEY_INDEX, 150, testing.TEST_TERMINAL_NO).command().to_bytes()),
        ("INITIALIZE FOR CAPP PURCHASE",
         InitializeForPurchase(PURSE_KEY_INDEX, 150, testing.TEST_TERMINAL_NO, capp=True).command().to_bytes()),
        ("INITIALIZE FOR LOAD", InitializeForLoad(PURSE_KEY_INDEX, 500, testing.TEST_TERMINAL_NO).command().to_bytes()),
        ("UPDATE CAPP DATA CACHE", _apdu(0x80, profile.Ins.UPDATE_CAPP_DATA_CACHE, 0x01, (profile.SFI_TU_CAPP << 3),
                                         bytes(48))),
        ("DEBIT FOR PURCHASE", _apdu(0x80, profile.Ins.DEBIT_FOR_PURCHASE, 0x01, 0x00,
                                     testing.TEST_TERMINAL_SERIAL + dt8 + bytes(4), le=8)),
        ("CREDIT FOR LOAD", _apdu(0x80, profile.Ins.CREDIT_FOR_LOAD, 0x00, 0x00, dt8 + bytes(4), le=4)),
        ("GET TRANSACTION PROVE", _apdu(0x80, profile.Ins.GET_TRANSACTION_PROVE, 0x00, 0x06, b"\x00\x00", le=8)),
        ("APPLICATION BLOCK", _apdu(0x84, profile.Ins.APPLICATION_BLOCK, 0x00, 0x00, bytes(4))),
        ("APPLICATION UNBLOCK", _apdu(0x84, profile.Ins.APPLICATION_UNBLOCK, 0x00, 0x00, bytes(4))),
    ]
    return t


def _encode(cla: int, ins: int, p1: int, p2: int, data: bytes, le: int | None, rng: random.Random) -> bytes:
    """An APDU with a right, wrong, extended or missing Lc and Le."""
    style = rng.random()
    head = bytes((cla, ins, p1, p2))
    if style < 0.6:  # right, short where it fits
        if len(data) <= 255:
            body = (bytes((len(data),)) + data) if data else b""
            return head + body + (b"" if le is None else bytes((le & 0xFF,)))
        body = b"\x00" + len(data).to_bytes(2, "big") + data
        return head + body + (b"" if le is None else (le & 0xFFFF).to_bytes(2, "big"))
    if style < 0.75:  # extended
        body = b"\x00" + len(data).to_bytes(2, "big") + data if data else b""
        return head + body + (b"" if le is None else (b"\x00" if not data else b"") + (le & 0xFFFF).to_bytes(2, "big"))
    if style < 0.9:  # a wrong Lc
        return head + bytes((rng.randrange(256),)) + data + (b"" if rng.random() < 0.5 else bytes((rng.randrange(256),)))
    return head + data  # no Lc at all


def _mutate(data: bytes, rng: random.Random) -> bytes:
    r = rng.random()
    if not data or r < 0.15:
        return rng.randbytes(rng.choice((0, 1, 2, 4, 8, 16, rng.randrange(300))))
    b = bytearray(data)
    if r < 0.45:
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(b))
            b[i] = rng.randrange(256) if rng.random() < 0.5 else b[i] ^ (1 << rng.randrange(8))
    elif r < 0.65:
        del b[rng.randrange(len(b)):]
    elif r < 0.8:
        b += rng.randbytes(rng.randint(1, 40))
    else:
        b = bytearray(rng.randbytes(len(b)))
    return bytes(b)


def structured(templates: list[tuple[str, bytes]], rng: random.Random) -> bytes:
    """A valid command, or one with its class, parameters, lengths or data mutated."""
    _, raw = templates[rng.randrange(len(templates))]
    cmd = Command.parse(raw)
    r = rng.random()
    if r < 0.25:
        return raw  # as it is: the card's state moves on
    cla, ins, p1, p2, data, le = cmd.cla, cmd.ins, cmd.p1, cmd.p2, bytes(cmd.data), cmd.le
    if rng.random() < 0.3:
        p1 = rng.randrange(256)
    if rng.random() < 0.3:
        p2 = rng.randrange(256)
    if rng.random() < 0.05:
        cla = rng.choice((0x00, 0x80, 0x84, 0x04, 0x0C, 0xFF, rng.randrange(256)))
    if rng.random() < 0.6:
        data = _mutate(data, rng)
    if rng.random() < 0.3:
        le = rng.choice((None, 1, 4, 8, 255, 256, rng.randint(1, 65536)))
    return _encode(cla, ins, p1, p2, data, le, rng)


def random_apdu(rng: random.Random) -> bytes:
    return rng.randbytes(rng.choice((0, 1, 3, 4, 5, 6, 7, 9, rng.randrange(300))))


# ----------------------------------------------------------------------------- invariants


@attrs.frozen
class Money:
    """What the invariants compare from one answer to the next."""

    balance: int
    offline: int
    online: int
    log: tuple[bytes, ...]
    max_balance: int

    @classmethod
    def of(cls, state: CardState) -> Money:
        purse = state.purse
        return cls(purse.balance, purse.offline_counter, purse.online_counter, state.logs.get(LOG_REF, ()),
                   purse.max_balance)


def money_breaks(before: Money, after: Money) -> list[str]:
    """Why ``after`` cannot follow ``before`` (empty when it can)."""
    out = []
    if after.offline < before.offline or after.online < before.online:
        out.append(f"a counter went back: offline {before.offline}->{after.offline}, "
                   f"online {before.online}->{after.online}")
    if not 0 <= after.balance <= after.max_balance:
        out.append(f"balance {after.balance} out of 0..{after.max_balance}")
    moved = after.balance - before.balance
    new_log = after.log[:1] != before.log[:1] or len(after.log) != len(before.log)
    if moved < 0 and not (after.offline == before.offline + 1 and after.online == before.online and new_log):
        out.append(f"balance down {-moved} without a purchase's counter and log record")
    if moved > 0 and not (after.online == before.online + 1 and after.offline == before.offline and new_log):
        out.append(f"balance up {moved} without a load's counter and log record")
    if moved == 0 and (after.offline != before.offline or after.online != before.online):
        # a zero-amount transaction still logs; a counter moving alone must come with a record
        if not new_log:
            out.append("a counter moved without a log record")
    if after.offline > before.offline + 1 or after.online > before.online + 1:
        out.append("a counter moved by more than one in one command")
    return out


# ----------------------------------------------------------------------------- the run


@contextmanager
def watchdog(seconds: int) -> Iterator[None]:
    """An alarm that raises ``Hang`` if the block runs past ``seconds`` (main thread, POSIX only)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def alarm(_signum: int, _frame: Any) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _answer_problem(apdu: bytes, response: Any) -> str | None:
    if not isinstance(response, bytes) or len(response) < 2:
        return f"{apdu.hex().upper()} -> {response!r}: no status word"
    sw = response[-2] << 8 | response[-1]
    if response[-2] not in GOOD_SW1:
        return f"{apdu.hex().upper()} -> SW {sw:04X}: not a status word"
    if sw == CATCH_ALL:
        return f"{apdu.hex().upper()} -> 6F00: an exception inside the card OS"
    if sw != 0x9000 and sw & 0xFF00 != 0x6100 and len(response) != 2:
        return f"{apdu.hex().upper()} -> {response.hex().upper()}: a refusal with data"
    return None


def fuzz_card(apdus: int, seed: int, pristine: Pristine, *, per_episode: int = APDUS_PER_EPISODE,
              tear_share: float = TEAR_SHARE, figures: Figures | None = None,
              progress: Callable[[Figures], None] | None = None) -> Figures:
    """Send ``apdus`` fuzzed APDUs to the card OS, episode after episode; the figures."""
    rng = random.Random(seed)
    fig = figures if figures is not None else Figures()
    templates = _templates(pristine)
    names = list(STATES)
    started = time.perf_counter()
    perf = time.perf_counter
    next_report = 100_000
    while fig.apdus < apdus:
        fig.episodes += 1
        state_name = names[fig.episodes % len(names)]
        tear = rng.random() < tear_share
        faults = Faults(tear_at_write=rng.randint(1, 14)) if tear else None
        start = pristine.blank if state_name == PERSONALISING else pristine.image
        card, file = load_card(start, random.Random(rng.getrandbits(32)), faults)
        n = min(per_episode, apdus - fig.apdus)
        try:
            with watchdog(WATCHDOG_SECONDS):
                _episode(card, file, pristine, state_name, templates, rng, n, tear, fig, perf)
        except Hang as e:
            fig.hangs.append(f"{state_name}: {e}")
        if progress is not None and fig.apdus >= next_report:
            next_report += 100_000
            fig.seconds = perf() - started
            progress(fig)
    fig.seconds = perf() - started
    return fig


def _episode(card: VirtualCard, file: MemoryCardFile, pristine: Pristine, state_name: str,
             templates: list[tuple[str, bytes]], rng: random.Random, n: int, tear: bool, fig: Figures,
             perf: Callable[[], float]) -> None:
    state = card.state
    before = Money.of(state)
    card.power_on()
    try:
        completion = STATES[state_name](card, pristine)
    except CardTorn:
        fig.tears += 1
        _after_tear(file, before, f"{state_name} (set-up)", fig)
        return
    except _SetupRefused as e:
        fig.exceptions.append(f"{state_name}: the set-up was refused: {e}")
        return
    fig.setup_apdus += 1
    fig.per_state[state_name] += n
    before = Money.of(state)
    purse, log = state.purse, state.logs.get(LOG_REF, ())
    commits = file.commits
    for i in range(n):
        if completion is not None and i == 0 and rng.random() < 0.6:
            apdu = completion  # the transaction completed (money moves: the invariants have work)
        else:
            apdu = structured(templates, rng) if rng.random() < 0.85 else random_apdu(rng)
        fig.apdus += 1
        t0 = perf()
        try:
            response = card.process(apdu)
        except CardTorn:
            if not tear:
                fig.exceptions.append(f"{state_name}: {apdu.hex().upper()} tore the card with no tear asked for")
                return
            fig.tears += 1
            _after_tear(file, before, f"{state_name}: {apdu.hex().upper()}", fig)
            return
        except Exception as e:  # noqa: BLE001 - what the fuzzing looks for
            fig.exceptions.append(f"{state_name}: {apdu.hex().upper()} raised {type(e).__name__}: {e}")
            return
        elapsed = perf() - t0
        if elapsed > HANG_SECONDS:
            fig.hangs.append(f"{state_name}: {apdu.hex().upper()} took {elapsed:.2f} s")
        problem = _answer_problem(apdu, response)
        if problem is not None:
            fig.exceptions.append(f"{state_name}: {problem}")
        sw = response[-2] << 8 | response[-1] if len(response) >= 2 else -1
        fig.per_sw[sw] += 1
        if sw == 0x9000:
            fig.accepted[_name(apdu)] += 1
        if state.purse is not purse or state.logs.get(LOG_REF, ()) is not log:  # a commit replaced them
            after = Money.of(state)
            for broken in money_breaks(before, after):
                fig.invariant_breaks.append(f"{state_name}: {apdu.hex().upper()} -> {response.hex().upper()}: "
                                            f"{broken}")
            before, purse, log = after, state.purse, state.logs.get(LOG_REF, ())
    if file.commits != commits:
        _check_saved(file, state, state_name, fig)


def _name(apdu: bytes) -> str:
    if len(apdu) < 2:
        return "?"
    if apdu[0] & 0xF0 == 0x80 and apdu[1] in (profile.Ins.STORE_DATA, profile.Ins.UPDATE_CAPP_DATA_CACHE):
        return "STORE_DATA" if apdu[1] == profile.Ins.STORE_DATA else "UPDATE_CAPP_DATA_CACHE"
    try:
        return profile.Ins(apdu[1]).name
    except ValueError:
        return f"INS {apdu[1]:02X}"


def _after_tear(file: MemoryCardFile, before: Money, where: str, fig: Figures) -> None:
    """The card torn: its saved image must load, and follow what the card held before the command."""
    fig.reloads += 1
    try:
        reloaded = image_codec.loads(file.saved)
    except Exception as e:  # noqa: BLE001 - a corrupt image is what this looks for
        fig.invariant_breaks.append(f"{where}: the torn card's image does not load: {e}")
        return
    for broken in money_breaks(before, Money.of(reloaded)):
        fig.invariant_breaks.append(f"{where} (torn): {broken}")


def _check_saved(file: MemoryCardFile, state: CardState, where: str, fig: Figures) -> None:
    try:
        saved = image_codec.loads(file.saved)
    except Exception as e:  # noqa: BLE001
        fig.invariant_breaks.append(f"{where}: the saved image does not load: {e}")
        return
    if image_codec.to_json(saved) != image_codec.to_json(state):
        fig.invariant_breaks.append(f"{where}: the saved image differs from the card's state")


# ----------------------------------------------------------------------------- the PSAM


PSAM_TERMINAL = bytes.fromhex("110100900001")


def psam_key_sets() -> list[PsamKeySet]:
    return [PsamKeySet(f"{province}00000000000000", bytes([province]) * 16, bytes([province ^ 0xFF]) * 16)
            for province in (0x11, 0x12, 0x13)]


def _psam_templates(rng: random.Random) -> list[bytes]:
    def init(p1: int = 0, serial: bytes = b"") -> bytes:
        issuer = bytes.fromhex(rng.choice(("11", "12", "13", "99"))) + bytes(7)
        data = (rng.randbytes(4) + rng.randbytes(2) + (150).to_bytes(4, "big") + b"\x06"
                + bcd_datetime(testing.TEST_WHEN) + b"\x01\x04" + rng.randbytes(8) + issuer + serial)
        return _apdu(0x80, profile.PsamIns.INIT_SAM_FOR_PURCHASE, p1, 0, data, le=8)

    batch_mac = getattr(profile.PsamIns, "BATCH_MAC", None)  # an upload batch's MAC, where the PSAM has it
    extra = [] if batch_mac is None else [
        _apdu(0x80, batch_mac, 0, 0, PSAM_TERMINAL + rng.randrange(1, 500).to_bytes(4, "big") + rng.randbytes(32), le=8)]
    return [
        *extra,
        _apdu(0x00, profile.PsamIns.READ_BINARY, 0x80 | profile.SFI_PSAM_TERMINAL_NO, 0, le=6),
        init(),
        init(profile.PSAM_INIT_AGAIN, (1).to_bytes(4, "big")),
        _apdu(0x80, profile.PsamIns.VERIFY_MAC2, 0, 0, bytes(4)),
        _apdu(0x80, profile.PsamIns.APPLICATION_BLOCK_MAC, 0, 0,
              rng.randbytes(8) + bytes.fromhex("12") + bytes(7) + rng.randbytes(8) + ApplicationBlock.header(), le=4),
    ]


def fuzz_psam(apdus: int, seed: int, figures: Figures | None = None) -> Figures:
    """Send ``apdus`` fuzzed APDUs to a PSAM (random and structured); its serial must never repeat or go back."""
    rng = random.Random(seed)
    fig = figures if figures is not None else Figures()
    serials = MemorySerials()
    psam = Psam(PSAM_TERMINAL, psam_key_sets(), serials, psam_id="fuzz")
    templates = _psam_templates(rng)
    given: set[int] = set()
    started = time.perf_counter()
    with watchdog(max(WATCHDOG_SECONDS, apdus // 1000)):
        for i in range(apdus):
            if i % 64 == 0:
                templates = _psam_templates(rng)
            if rng.random() < 0.85:
                cmd = Command.parse(templates[rng.randrange(len(templates))])
                data, p1, p2, le = bytes(cmd.data), cmd.p1, cmd.p2, cmd.le
                if rng.random() < 0.5:
                    data = _mutate(data, rng)
                if rng.random() < 0.15:
                    p1 = rng.randrange(256)
                if rng.random() < 0.15:
                    p2 = rng.randrange(256)
                apdu = _encode(cmd.cla, cmd.ins, p1, p2, data, le, rng) if rng.random() < 0.7 else \
                    Command.parse(templates[rng.randrange(len(templates))]).to_bytes()
            else:
                apdu = random_apdu(rng)
            last = serials.last_serial()
            fig.psam_apdus += 1
            t0 = time.perf_counter()
            try:
                response = psam.transmit_raw(apdu)
            except Exception as e:  # noqa: BLE001
                fig.exceptions.append(f"PSAM: {apdu.hex().upper()} raised {type(e).__name__}: {e}")
                continue
            if time.perf_counter() - t0 > HANG_SECONDS:
                fig.hangs.append(f"PSAM: {apdu.hex().upper()} too slow")
            problem = _answer_problem(apdu, response)
            if problem is not None:
                fig.exceptions.append(f"PSAM: {problem}")
            now = serials.last_serial()
            if now < last:
                fig.invariant_breaks.append(f"PSAM: {apdu.hex().upper()}: the serial went back {last}->{now}")
            if now > last:
                if now in given or now != last + 1:
                    fig.invariant_breaks.append(f"PSAM: serial {now} given twice or skipped to")
                given.add(now)
                if response[-2:] == b"\x90\x00" and apdu[2] == 0 and response[:4] != now.to_bytes(4, "big"):
                    fig.invariant_breaks.append(f"PSAM: answered serial {response[:4].hex()} but took {now}")
    fig.psam_seconds = time.perf_counter() - started
    return fig
