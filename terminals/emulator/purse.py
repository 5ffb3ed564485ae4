"""The T-Union e-purse: balance, purchase, load, transaction prove and application lock.

The card computes exactly what ``sbcard.chip.purse`` defines, so the terminal's PSAM
and the issuer check its cryptograms with the same functions. A transaction is opened
by INITIALIZE (the card's random and counter fix its session key) and closed by DEBIT
or CREDIT, which commits balance, counter, log record, capp cache and prove in one
journal commit: a torn card has done all of it or none of it.
"""

from __future__ import annotations

import hmac
from typing import TypeVar

import attrs

from sbcard.chip import profile
from sbcard.chip import sw
from sbcard.chip.apdu import Command
from sbcard.chip.crypto import Algorithm, algorithm_from_id, cbc_mac
from sbcard.chip.profile import CARD_KEY_INDEX, KeyUsage
from sbcard.chip.purse import (
    CAPP_PURCHASE,
    EP_LOAD,
    EP_PURCHASE,
    load_mac1,
    load_mac2,
    load_session_key,
    load_tac,
    purchase_mac1,
    purchase_mac2,
    purchase_session_key,
    purchase_tac,
    u16,
    u32,
)
from sbcard.chip.sw import CardStatus
from terminals.emulator import files
from terminals.emulator.image import TU, KeyEntry, Prove, Purse
from terminals.emulator.session import PendingLoad, PendingPurchase, Session, require, require_length, require_p1p2

MAX_COUNTER = 0xFFFF
INITIALIZE_DATA = 11  # key index (1) ‖ amount (4) ‖ terminal no (6)
DEBIT_DATA = 15  # terminal serial (4) ‖ date (4) ‖ time (3) ‖ MAC1 (4)
CREDIT_DATA = 11  # date (4) ‖ time (3) ‖ MAC2 (4)
PROVE_TYPES = (EP_LOAD, EP_PURCHASE, CAPP_PURCHASE)
LOCK_MAC = 4
_Pending = TypeVar("_Pending", PendingPurchase, PendingLoad)


def _open_purse(s: Session) -> None:
    """Every purse command: a personalised card, T-Union selected and not blocked."""
    s.require_personalised()
    s.require_df(TU)
    require(TU not in s.state.locked, sw.APPLICATION_LOCKED, "the T-Union application is blocked")


def _purse_with(purse: Purse, **changes: int) -> Purse:
    """``attrs.evolve(purse, **changes)`` without its generic machinery (every purchase and load)."""
    if type(purse) is not Purse:
        return attrs.evolve(purse, **changes)
    return Purse(
        balance=changes.get("balance", purse.balance),
        offline_counter=changes.get("offline_counter", purse.offline_counter),
        online_counter=changes.get("online_counter", purse.online_counter),
        overdraft_limit=changes.get("overdraft_limit", purse.overdraft_limit),
        max_balance=changes.get("max_balance", purse.max_balance),
    )


def _same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def get_balance(s: Session, cmd: Command) -> bytes:
    """80 5C 00 02 04."""
    _open_purse(s)
    require_p1p2(cmd.p1, cmd.p2, (0x00, profile.P2_EP))
    require_length(cmd.data, 0)
    return u32(s.state.purse.balance)


# --- INITIALIZE ------------------------------------------------------------------------------


def initialize(s: Session, cmd: Command) -> bytes:
    """80 50 <00 load | 01 purchase | 03 capp purchase> 02 0B key index ‖ amount ‖ terminal no."""
    _open_purse(s)
    s.pending = None
    require(cmd.p2 == profile.P2_EP, sw.WRONG_P1P2, "only the e-purse (P2 02)")
    if cmd.p1 not in _INITIALIZE:  # (a message is made only for a refusal: every tap runs these)
        raise CardStatus(sw.WRONG_P1P2, f"INITIALIZE P1 {cmd.p1:02X}")
    start, txn_type = _INITIALIZE[cmd.p1]
    require_length(cmd.data, INITIALIZE_DATA)
    key_index, amount, terminal_no = cmd.data[0], int.from_bytes(cmd.data[1:5], "big"), cmd.data[5:]
    return start(s, key_index, amount, terminal_no, txn_type)


def _purse_key(s: Session, usage: KeyUsage, key_index: int) -> KeyEntry:
    entry = s.key(usage, key_index)
    if entry is None:
        raise CardStatus(sw.KEY_INDEX_NOT_SUPPORTED, f"no {usage.name} key with index {key_index:02X}")
    return entry


def _initialize_purchase(s: Session, key_index: int, amount: int, terminal_no: bytes, txn_type: int) -> bytes:
    """balance (4) ‖ offline counter (2) ‖ overdraft (3) ‖ key version ‖ algorithm id ‖ random (4)."""
    entry = _purse_key(s, KeyUsage.PURCHASE, key_index)
    purse = s.state.purse
    # A compound purchase may be of 0 fen: a subway entry writes its record into the capp
    # cache, a free ride leaves a TAC-proven record (docs/card-profile.md). A plain purchase
    # of 0 is refused.
    require(amount > 0 or txn_type == CAPP_PURCHASE, sw.WRONG_DATA, "amount 0")
    if amount > purse.balance:
        raise CardStatus(sw.INSUFFICIENT_BALANCE, f"{amount} fen > balance {purse.balance}")
    require(purse.offline_counter < MAX_COUNTER, sw.CONDITIONS_NOT_SATISFIED, "offline counter exhausted")
    random = bytes(s.rng.randbytes(4))
    s.pending = PendingPurchase(
        txn_type, algorithm_from_id(entry.alg_id), entry.key, amount, terminal_no, purse.offline_counter, random
    )
    return (
        u32(purse.balance)
        + u16(purse.offline_counter)
        + purse.overdraft_limit.to_bytes(3, "big")
        + bytes((entry.version, entry.alg_id))
        + random
    )


def _initialize_load(s: Session, key_index: int, amount: int, terminal_no: bytes, _txn_type: int) -> bytes:
    """balance (4) ‖ online counter (2) ‖ key version ‖ algorithm id ‖ random (4) ‖ MAC1 (4)."""
    entry = _purse_key(s, KeyUsage.LOAD, key_index)
    purse = s.state.purse
    require(amount > 0, sw.WRONG_DATA, "amount 0")
    require(purse.balance + amount <= purse.max_balance, sw.CONDITIONS_NOT_SATISFIED, "over the maximum balance")
    require(purse.online_counter < MAX_COUNTER, sw.CONDITIONS_NOT_SATISFIED, "online counter exhausted")
    alg = algorithm_from_id(entry.alg_id)
    random = bytes(s.rng.randbytes(4))
    sk = load_session_key(alg, entry.key, random, purse.online_counter)
    s.pending = PendingLoad(alg, sk, amount, terminal_no, purse.online_counter)
    mac1 = load_mac1(alg, sk, purse.balance, amount, EP_LOAD, terminal_no)
    return u32(purse.balance) + u16(purse.online_counter) + bytes((entry.version, entry.alg_id)) + random + mac1


_INITIALIZE = {  # P1 -> (handler, transaction type)
    profile.INIT_LOAD: (_initialize_load, EP_LOAD),
    profile.INIT_PURCHASE: (_initialize_purchase, EP_PURCHASE),
    profile.INIT_CAPP_PURCHASE: (_initialize_purchase, CAPP_PURCHASE),
}


# --- UPDATE CAPP DATA CACHE / DEBIT / CREDIT ---------------------------------------------------


def update_capp_data_cache(s: Session, cmd: Command) -> bytes:
    """80 DC <record> <SFI<<3> 30 record: staged, written with the DEBIT that follows."""
    _open_purse(s)
    pending = s.pending
    require(
        isinstance(pending, PendingPurchase) and pending.txn_type == CAPP_PURCHASE,
        sw.CONDITIONS_NOT_SATISFIED,
        "UPDATE CAPP DATA CACHE only within a compound purchase",
    )
    require(cmd.p2 & 0x07 == 0, sw.WRONG_P1P2, "P2 must be SFI<<3")
    ref, ef = files.lookup(s, cmd.p2 >> 3)
    require(ref == (TU, profile.SFI_TU_CAPP), sw.FILE_NOT_FOUND, "not the capp data cache")
    require(1 <= cmd.p1 <= ef.count, sw.RECORD_NOT_FOUND, f"record {cmd.p1} of {ef.count}")
    require_length(cmd.data, ef.size)
    pending.capp_records[cmd.p1] = cmd.data
    return b""


def _log_record(counter: int, amount: int, txn_type: int, terminal_no: bytes, date_time: bytes) -> bytes:
    """counter (2) ‖ overdraft (3) ‖ amount (4) ‖ type (1) ‖ terminal no (6) ‖ date (4) ‖ time (3)."""
    return u16(counter) + bytes(3) + u32(amount) + bytes((txn_type,)) + terminal_no + date_time


def _append_log(s: Session, record: bytes) -> None:
    ref = (TU, profile.SFI_TU_LOG)
    s.journal.write(s.state.logs, ref, (record,) + s.state.logs.get(ref, ())[: profile.TU_LOG_RECORDS - 1])


def _tac_key(s: Session) -> tuple[Algorithm, bytes]:
    entry = s.key(KeyUsage.TAC, CARD_KEY_INDEX)
    require(entry is not None, sw.KEY_NOT_FOUND, "no TAC key")
    return algorithm_from_id(entry.alg_id), entry.key


def _close_pending(s: Session, cmd: Command, kind: type[_Pending], p1p2: tuple[int, int], length: int) -> _Pending:
    """DEBIT / CREDIT: the transaction INITIALIZE opened (6985 if none), dropped whatever its MAC."""
    _open_purse(s)
    require_p1p2(cmd.p1, cmd.p2, p1p2)
    p = s.pending
    if not isinstance(p, kind):
        raise CardStatus(sw.CONDITIONS_NOT_SATISFIED, f"no INITIALIZE before {kind.__name__}")
    require_length(cmd.data, length)
    s.pending = None
    return p  # type: ignore[return-value]


def debit_for_purchase(s: Session, cmd: Command) -> bytes:
    """80 54 01 00 0F terminal serial ‖ date ‖ time ‖ MAC1 → TAC (4) ‖ MAC2 (4)."""
    p = _close_pending(s, cmd, PendingPurchase, (0x01, 0x00), DEBIT_DATA)
    serial, date_time, mac1 = cmd.data[:4], cmd.data[4:11], cmd.data[11:]
    sk = purchase_session_key(p.alg, p.dpk, p.random, p.counter, serial)
    require(_same(mac1, purchase_mac1(p.alg, sk, p.amount, p.txn_type, p.terminal_no, date_time)), sw.MAC_ERROR)
    purse = s.state.purse
    assert p.counter == purse.offline_counter and p.amount <= purse.balance, "purse changed under a pending purchase"
    mac2 = purchase_mac2(p.alg, sk, p.amount)
    tac_alg, dtk = _tac_key(s)
    tac = purchase_tac(tac_alg, dtk, p.amount, p.txn_type, p.terminal_no, serial, date_time)

    write = s.journal.write
    write(s.state, "purse", _purse_with(purse, balance=purse.balance - p.amount, offline_counter=p.counter + 1))
    _append_log(s, _log_record(p.counter, p.amount, p.txn_type, p.terminal_no, date_time))
    if p.capp_records:
        capp = (TU, profile.SFI_TU_CAPP)
        write(s.state.records, capp, {**s.state.records.get(capp, {}), **p.capp_records})
    write(s.state, "last_purchase", Prove(p.txn_type, p.counter, mac2, tac))
    s.journal.commit()
    return tac + mac2


def credit_for_load(s: Session, cmd: Command) -> bytes:
    """80 52 00 00 0B date ‖ time ‖ MAC2 (from the host) → TAC (4)."""
    p = _close_pending(s, cmd, PendingLoad, (0x00, 0x00), CREDIT_DATA)
    date_time, mac2 = cmd.data[:7], cmd.data[7:]
    require(_same(mac2, load_mac2(p.alg, p.session_key, p.amount, EP_LOAD, p.terminal_no, date_time)), sw.MAC_ERROR)
    purse = s.state.purse
    assert p.counter == purse.online_counter and purse.balance + p.amount <= purse.max_balance, "purse changed under a pending load"
    balance = purse.balance + p.amount
    tac_alg, dtk = _tac_key(s)
    tac = load_tac(tac_alg, dtk, balance, p.counter, p.amount, EP_LOAD, p.terminal_no, date_time)

    s.journal.write(s.state, "purse", _purse_with(purse, balance=balance, online_counter=p.counter + 1))
    _append_log(s, _log_record(p.counter, p.amount, EP_LOAD, p.terminal_no, date_time))
    s.journal.write(s.state, "last_load", Prove(EP_LOAD, p.counter, mac2, tac))
    s.journal.commit()
    return tac


# --- GET TRANSACTION PROVE / APPLICATION BLOCK / UNBLOCK -----------------------------------------


def get_transaction_prove(s: Session, cmd: Command) -> bytes:
    """80 5A 00 <type> 02 <counter> → MAC2 (4) ‖ TAC (4) of that transaction; 9406 if unknown."""
    _open_purse(s)
    require(cmd.p1 == 0 and cmd.p2 in PROVE_TYPES, sw.WRONG_P1P2, "P1 00, P2 the transaction type 02/06/09")
    require_length(cmd.data, 2)
    prove = s.state.last_load if cmd.p2 == EP_LOAD else s.state.last_purchase
    counter = int.from_bytes(cmd.data, "big")
    if prove is None or prove.txn_type != cmd.p2 or prove.counter != counter:
        raise CardStatus(sw.MAC_NOT_AVAILABLE, f"no prove for type {cmd.p2:02X} counter {counter}")
    return prove.mac2 + prove.tac


def application_block(s: Session, cmd: Command) -> bytes:
    """84 1E 00 00 04 MAC: the issuer blocks T-Union (purse commands answer 9303)."""
    return _set_lock(s, cmd, blocked=True)


def application_unblock(s: Session, cmd: Command) -> bytes:
    """84 18 00 00 04 MAC: the issuer unblocks T-Union."""
    return _set_lock(s, cmd, blocked=False)


def _set_lock(s: Session, cmd: Command, *, blocked: bool) -> bytes:
    """MAC = CBC-MAC(DAMK; challenge ‖ CLA INS P1 P2 Lc), after a GET CHALLENGE."""
    s.require_personalised()
    s.require_df(TU)
    require_p1p2(cmd.p1, cmd.p2, (0x00, 0x00))
    require_length(cmd.data, LOCK_MAC)
    damk = s.key(KeyUsage.APP_MAINTENANCE, CARD_KEY_INDEX)
    require(damk is not None, sw.KEY_NOT_FOUND, "no application maintenance key")
    challenge = s.take_challenge()
    header = bytes((cmd.cla, cmd.ins, cmd.p1, cmd.p2, len(cmd.data)))
    mac = cbc_mac(algorithm_from_id(damk.alg_id), damk.key, challenge + header)
    require(_same(cmd.data, mac), sw.MAC_ERROR)
    s.pending = None
    locked = s.state.locked | {TU} if blocked else s.state.locked - {TU}
    if locked != s.state.locked:
        s.journal.write(s.state, "locked", locked)
        s.journal.commit()
    return b""
