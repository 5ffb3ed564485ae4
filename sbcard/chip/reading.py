"""Reading a card: everything its public files say, as one frozen snapshot.

``read_card`` is what a counter, a medical point of sale and ``sbcard card read`` use,
and what personalisation reads back to prove the card holds what it wrote. It is
tolerant the way a reader of cards from the field must be: a card number failing its
check character, a missing record or an undecodable field becomes a line in
``warnings`` and a null field, never a refusal. Status words that say the card cannot
be read at all (a torn card, a card pulled out) still raise.

The field encodings (docs/card-profile.md) are decoded here; ``personalisation``
encodes them with the same code tables, and its read-back proves the two agree.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

import attrs

from sbcard.chip import profile
from sbcard.chip import sw
from sbcard.chip.codec import decode_name, decode_text, from_bcd, parse_bcd_date
from sbcard.chip.commands import (
    GetBalance,
    GetChipInfo,
    MalformedResponse,
    ReadRecord,
    TransactionLogRecord,
    TUnionIssuerData,
    read_transaction_log,
    select_medical,
    select_ssse,
    select_tunion,
)
from sbcard.chip.reader import Reader
from sbcard.domain.card_id_code import CardIdCode
from sbcard.domain.card_number import CardNumber
from sbcard.domain.citizen_id import CitizenId
from sbcard.domain.errors import InvalidInput, SbcardError
from sbcard.domain.masking import mask_citizen_id, mask_name

# Code tables shared with personalisation (GB/T 2261.1 sex; DF04's own one-byte flags).
SEX_CODES = {"M": b"1", "F": b"2"}
INSURANCE_TYPE_CODES = {"employee": b"1", "resident": b"2"}
FLAG_CODES = {False: b"0", True: b"1"}

_Warn = Callable[[str], None]


def _reverse(table: dict[Any, bytes], value: bytes, what: str) -> Any:
    for key, code in table.items():
        if code == value:
            return key
    raise ValueError(f"unknown {what} code {value!r}")


def _card_number(value: bytes, warn: _Warn) -> str:
    number = CardNumber.parse(value.decode("ascii"), strict=False)
    if not number.check_ok:
        warn(f"card number {number.value}: {number.warning} (kept as read)")
    return number.value


def _card_id_code(value: bytes, warn: _Warn) -> str:
    try:
        return CardIdCode.from_bytes(value).value
    except InvalidInput as e:
        warn(f"card identification code: {e.message} (kept as read)")
        return value.hex().upper()


def _citizen_id(value: bytes, warn: _Warn) -> str:
    text = decode_text(value)
    try:
        CitizenId(text)
    except InvalidInput as e:
        warn(f"citizen ID on the card fails GB 11643: {e.message} (kept as read)")
    return text


_SSSE_DECODERS: dict[int, Callable[[bytes, _Warn], Any]] = {
    profile.Tag.CARD_ID_CODE: _card_id_code,
    profile.Tag.CARD_TYPE: lambda v, warn: decode_text(v),
    profile.Tag.SPEC_VERSION: lambda v, warn: decode_text(v),
    profile.Tag.INIT_ORG: lambda v, warn: v.hex().upper(),
    profile.Tag.ISSUE_DATE: lambda v, warn: parse_bcd_date(v),
    profile.Tag.EXPIRY_DATE: lambda v, warn: parse_bcd_date(v),
    profile.Tag.CARD_NUMBER: _card_number,
    profile.Tag.CITIZEN_ID: _citizen_id,
    profile.Tag.NAME: lambda v, warn: decode_name(v),
    profile.Tag.SEX: lambda v, warn: _reverse(SEX_CODES, v, "sex"),
    profile.Tag.ETHNICITY: lambda v, warn: v[0],
    profile.Tag.BIRTH_PLACE: lambda v, warn: from_bcd(v),
    profile.Tag.BIRTH_DATE: lambda v, warn: parse_bcd_date(v),
}

_MEDICAL_DECODERS: dict[tuple[int, int], tuple[str, Callable[[bytes], Any]]] = {
    (profile.SFI_EF05, profile.MedicalTag.INSURED_REGION): ("insured_region", from_bcd),
    (profile.SFI_EF05, profile.MedicalTag.INSURANCE_TYPE): (
        "insurance_type",
        lambda v: _reverse(INSURANCE_TYPE_CODES, v, "insurance type"),
    ),
    (profile.SFI_EF05, profile.MedicalTag.RETIRED): ("retired", lambda v: _reverse(FLAG_CODES, v, "retired flag")),
    (profile.SFI_EF05, profile.MedicalTag.PERSONAL_ACCOUNT): (
        "personal_account",
        lambda v: _reverse(FLAG_CODES, v, "personal account flag"),
    ),
    (profile.SFI_EF06, profile.OfflineTag.LIMIT): ("offline_limit_fen", lambda v: int.from_bytes(v, "big")),
    (profile.SFI_EF06, profile.OfflineTag.USED): ("offline_used_fen", lambda v: int.from_bytes(v, "big")),
    (profile.SFI_EF06, profile.OfflineTag.YEAR): ("offline_year", lambda v: int(from_bcd(v))),
}


@attrs.frozen
class MedicalInsurance:
    """DF04 (medical insurance): EF05 basic insurance info and EF06 offline settlement."""

    insured_region: str | None = None
    insurance_type: str | None = None  # "employee" | "resident"
    retired: bool | None = None
    personal_account: bool | None = None
    offline_limit_fen: int | None = None
    offline_used_fen: int | None = None
    offline_year: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "insured_region": self.insured_region,
            "type": self.insurance_type,
            "retired": self.retired,
            "personal_account": self.personal_account,
            "offline_limit_fen": self.offline_limit_fen,
            "offline_used_fen": self.offline_used_fen,
            "offline_year": self.offline_year,
        }


@attrs.frozen
class CardSnapshot:
    """What a card said in one reading. Fields are None when the card does not (yet) hold them."""

    atr: bytes
    chip_serial: bytes
    life_state: profile.LifeState
    os_version: bytes | None = None
    # SSSE/EF05
    card_id_code: str | None = None
    card_type: str | None = None
    spec_version: str | None = None
    init_org: str | None = None  # 24 hex digits
    issue_date: dt.date | None = None
    expiry_date: dt.date | None = None
    card_number: str | None = None
    # SSSE/EF06
    citizen_id: str | None = None
    name: str | None = None
    sex: str | None = None  # "M" | "F"
    ethnicity: int | None = None
    birth_place: str | None = None
    birth_date: dt.date | None = None
    # DF04 and T-Union
    insurance: MedicalInsurance | None = None
    tunion: TUnionIssuerData | None = None
    transit_blocked: bool | None = None
    balance_fen: int | None = None
    transactions: tuple[TransactionLogRecord, ...] | None = None
    warnings: tuple[str, ...] = ()

    @property
    def personalised(self) -> bool:
        return self.life_state is profile.LifeState.PERSONALISED

    @property
    def region(self) -> str | None:
        """The issuing region: the first 6 digits of the 卡识别码."""
        return self.card_id_code[:6] if self.card_id_code else None

    @property
    def app_serial(self) -> str | None:
        return self.tunion.app_serial if self.tunion else None

    def to_json(self, show_personal: bool = False) -> dict[str, Any]:
        """Stable keys for ``--json``; the citizen ID and name are masked unless ``show_personal``.

        Birth date, birth place and ethnicity are personal data with no masked form, so
        their keys appear only with ``show_personal``.
        """
        iso = lambda d: d.isoformat() if d else None  # noqa: E731
        out: dict[str, Any] = {
            "atr": self.atr.hex().upper(),
            "chip_serial": self.chip_serial.hex().upper(),
            "life_state": self.life_state.name.lower(),
            "card_number": self.card_number,
            "card_id_code": self.card_id_code,
            "card_type": self.card_type,
            "spec_version": self.spec_version,
            "issue_date": iso(self.issue_date),
            "expiry_date": iso(self.expiry_date),
            "citizen_id": self.citizen_id if show_personal or not self.citizen_id else mask_citizen_id(self.citizen_id),
            "name": self.name if show_personal or not self.name else mask_name(self.name),
            "sex": self.sex,
            "region": self.region,
            "app_serial": self.app_serial,
            "balance_fen": self.balance_fen,
            "transit_blocked": self.transit_blocked,
            "transactions": None
            if self.transactions is None
            else [
                {
                    "counter": t.counter,
                    "type": t.type_name,
                    "amount_fen": t.amount,
                    "terminal": t.terminal_no.hex().upper(),
                    "at": t.at.isoformat(),
                }
                for t in self.transactions
            ],
            "insurance": self.insurance.to_json() if self.insurance else None,
            "warnings": list(self.warnings),
        }
        if show_personal:
            out["birth_date"] = iso(self.birth_date)
            out["birth_place"] = self.birth_place
            out["ethnicity"] = self.ethnicity
        return out


class _Records:
    """READ RECORD by tag, turning what a field reader must tolerate into warnings.

    Warnings are shown unmasked, so for the holder's records (``personal``) they say what
    is wrong without quoting the bytes.
    """

    def __init__(self, reader: Reader, warnings: list[str]) -> None:
        self.reader = reader
        self.warnings = warnings

    def read(
        self,
        where: str,
        sfi: int,
        tag: int,
        decode: Callable[[bytes], Any],
        length: int | None = None,
        personal: bool = False,
    ) -> Any:
        label = f"{where}/{tag:02X}"
        try:
            record = ReadRecord(sfi, tag).send(self.reader)
        except sw.RecordNotFound:
            self.warnings.append(f"{label}: record missing")
            return None
        except MalformedResponse as e:
            self.warnings.append(f"{label}: " + ("not one TLV record with this tag" if personal else str(e)))
            return None
        value = record.value  # type: ignore[union-attr]
        if length is not None and len(value) != length:
            self.warnings.append(f"{label}: {len(value)} bytes, the profile says {length}")
        try:
            return decode(value)
        except (ValueError, IndexError, SbcardError) as e:
            detail = "" if personal else f" {value.hex().upper()}: {e}"
            self.warnings.append(f"{label}: cannot decode{detail}")
            return None


def read_insurance(reader: Reader) -> tuple[MedicalInsurance, tuple[str, ...]]:
    """DF04 (selected here): EF05's insurance data and EF06's offline settlement, with warnings.

    What a medical point of sale reads besides the holder (``terminals/apps/medical.py``);
    ``read_card`` reads it the same way.
    """
    warnings: list[str] = []
    records = _Records(reader, warnings)
    select_medical().send(reader)
    medical = {
        name: records.read(f"DF04/EF{sfi:02X}", sfi, tag, decode)
        for (sfi, tag), (name, decode) in _MEDICAL_DECODERS.items()
    }
    return MedicalInsurance(**medical), tuple(warnings)


def read_card(reader: Reader) -> CardSnapshot:
    """Read the card in ``reader``: chip info always, the applications once personalised.

    A blank or personalising card answers only its ATR and chip info (its application
    data answer 6985 by design), so its snapshot has nulls everywhere else.
    """
    atr = reader.atr
    info = GetChipInfo().send(reader)
    base = {"atr": atr, "chip_serial": info.chip_serial, "life_state": info.life_state, "os_version": info.os_version}
    if info.life_state is not profile.LifeState.PERSONALISED:
        return CardSnapshot(**base)

    warnings: list[str] = []
    records = _Records(reader, warnings)
    fields: dict[str, Any] = {}

    select_ssse().send(reader)
    for sfi, tags in ((profile.SFI_EF05, profile.EF05_TAGS), (profile.SFI_EF06, profile.EF06_TAGS)):
        for tag in map(profile.Tag, tags):  # each tag's name is the snapshot field it fills
            decode = functools.partial(_SSSE_DECODERS[tag], warn=warnings.append)
            fields[tag.name.lower()] = records.read(
                f"SSSE/EF{sfi:02X}", sfi, tag, decode, profile.TAG_LENGTHS[tag], personal=sfi == profile.SFI_EF06
            )

    insurance, medical_warnings = read_insurance(reader)
    warnings.extend(medical_warnings)

    fci = select_tunion().send(reader)
    if fci.tunion is None:
        warnings.append("T-Union FCI has no issuer data (9F0C)")
    try:
        balance: int | None = GetBalance().send(reader)
        blocked = False
    except sw.ApplicationLocked:
        balance, blocked = None, True
        warnings.append("the T-Union application is blocked")
    try:
        log: tuple[TransactionLogRecord, ...] | None = tuple(read_transaction_log(reader))
    except MalformedResponse as e:
        log = None
        warnings.append(f"T-Union transaction log: {e}")

    return CardSnapshot(
        **base,
        **fields,
        insurance=insurance,
        tunion=fci.tunion,
        transit_blocked=blocked,
        balance_fen=balance,
        transactions=log,
        warnings=tuple(warnings),
    )
