"""Personalisation: turning a blank chip into one person's card.

Three steps, kept apart so each can be checked on its own:

1. ``CardData`` — the data preparation. Every field is validated when the value is made
   (a value that exists is valid), so a bad name or citizen ID is refused with the field
   named before a single APDU reaches the card.
2. ``build_script`` — the ordered commands that follow transport-key authentication:
   ERASE, the five keys, the SSSE, DF04 and T-Union files, the PIN, and SET STATUS last,
   so that a card torn anywhere before the end stays ``personalising`` and never looks
   valid (docs/card-profile.md, life cycle).
   ``build_factory_script`` makes the same card with STORE DATA, a whole file per
   command, for the card factory's machine (``terminals/apps/factory.py``).
3. ``personalise`` — talks to the card: checks its life state, authenticates, runs the
   script, then reads the card back and compares every field.

Running ``personalise`` again on a card torn mid-way starts over from ERASE. A card torn
at the very last write (SET STATUS's commit) is already complete; a second run finds it
personalised with exactly this data, proves the maintenance key, and accepts it without
writing anything (``resumed=True``). Any other personalised card is refused.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from sbcard.chip import profile
from sbcard.chip import sw
from sbcard.chip.apdu import Command
from sbcard.chip.codec import bcd_date, encode_name, to_bcd
from sbcard.chip.commands import (
    Dgi,
    Erase,
    GetChipInfo,
    PinTriesLeft,
    ResetRetryCounter,
    SetStatus,
    StoreData,
    TUnionIssuerData,
    UpdateBinary,
    UpdateRecord,
    WriteKey,
    encode_pin,
    external_authenticate,
    select_medical,
    select_ssse,
    select_tunion,
)
from sbcard.chip.crypto import Algorithm
from sbcard.chip.keys import CardKeys, transport_key
from sbcard.chip.reader import CountingReader, Reader, transmit
from sbcard.chip.reading import FLAG_CODES, INSURANCE_TYPE_CODES, SEX_CODES, CardSnapshot, MedicalInsurance, read_card
from sbcard.chip.tlv import Tlv
from sbcard.domain.card_id_code import CardIdCode
from sbcard.domain.card_number import CardNumber
from sbcard.domain.citizen_id import CitizenId
from sbcard.domain.errors import InvalidInput, RuleRefused, SbcardError
from sbcard.domain.regions import node_of

ISSUER_ID_FILL = "0000000000"  # issuer id = BCD region code ‖ 5 bytes 00
ETHNICITY_CODES = frozenset(range(1, 57)) | {97, 98}  # GB/T 3304: 56 ethnic groups, 97 other, 98 foreign origin


class CardNotBlank(RuleRefused):
    """The card in the reader is already someone's card; personalising it would erase it."""

    def __init__(self, message: str) -> None:
        super().__init__("card.not_blank", message, "card")


class PersonalisationMismatch(SbcardError):
    """The read-back differs from what was written: the card or the reader is faulty."""

    def __init__(self, fields: tuple[str, ...]) -> None:
        super().__init__(
            "card.personalisation_mismatch",
            f"the card read back differs from the data written in: {', '.join(fields)}",
            "card",
        )
        self.fields = fields


def ten_years_after(day: dt.date) -> dt.date:
    """The card's validity end: the same day ``VALIDITY_YEARS`` later; 29 February → 28 February."""
    try:
        return day.replace(year=day.year + profile.VALIDITY_YEARS)
    except ValueError:
        return day.replace(year=day.year + profile.VALIDITY_YEARS, day=28)


# ----------------------------------------------------------------------------- validation


def _invalid(field: str, code: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}.{code}", message, field)


def _region(field: str):
    def convert(value: Any) -> str:
        if not isinstance(value, str) or not (len(value.strip()) == 6 and value.strip().isdigit() and value.isascii()):
            raise _invalid(field, "format", f"a region code is 6 digits, got {value!r}")
        return value.strip()

    return convert


def _date(field: str):
    # A converter rather than a validator: later defaults (expiry from issue) need a date.
    def convert(value: Any) -> dt.date:
        if type(value) is not dt.date:
            raise _invalid(field, "format", f"expected a date, got {type(value).__name__}")
        return value

    return convert


def _issuing_region(value: Any) -> str:
    code = _region("region_code")(value)
    node_of(code)  # refuses a region outside Beijing, Tianjin and Hebei
    return code


def _check_name(_i: Any, _a: Any, value: str) -> None:
    encode_name(value, field="name")


def _check_ethnicity(_i: Any, _a: Any, value: Any) -> None:
    if type(value) is not int or value not in ETHNICITY_CODES:
        raise _invalid("ethnicity", "unknown", f"not a GB/T 3304 code (1-56, 97, 98): {value!r}")


def _check_app_serial(_i: Any, _a: Any, value: Any) -> None:
    if not (isinstance(value, str) and len(value) == 20 and value.isascii() and value.isdigit()):
        raise _invalid("app_serial", "format", f"an application serial number is 20 digits, got {value!r}")
    if not value.startswith(profile.APP_SERIAL_PREFIX):
        raise _invalid("app_serial", "prefix", f"an application serial number starts {profile.APP_SERIAL_PREFIX}")


def _check_insurance_type(_i: Any, _a: Any, value: Any) -> None:
    if value not in INSURANCE_TYPE_CODES:
        raise _invalid("insurance_type", "unknown", f"expected one of {', '.join(INSURANCE_TYPE_CODES)}, got {value!r}")


def _check_bool(field: str):
    def check(_i: Any, _a: Any, value: Any) -> None:
        if not isinstance(value, bool):
            raise _invalid(field, "format", f"expected true or false, got {value!r}")

    return check


def _check_fen(_i: Any, _a: Any, value: Any) -> None:
    if type(value) is not int or not 0 <= value <= 0xFFFFFFFF:
        raise _invalid("offline_limit_fen", "range", f"an amount of fen that fits 4 bytes, got {value!r}")


@attrs.frozen(kw_only=True)
class CardData:
    """Everything written on one card, validated; keyword arguments only (17 fields).

    ``sex`` and ``birth_date`` default to what the citizen ID says and must agree with it;
    ``expiry_date`` defaults to ten years after ``issue_date``; ``insured_region`` to the
    issuing region. The personal-account flag in DF04 follows the insurance type (employee
    insurance has a personal account, resident insurance does not).
    """

    card_number: str = attrs.field(converter=lambda s: CardNumber.parse(s).value)
    card_id_code: str = attrs.field(converter=lambda s: CardIdCode.parse(s).value)
    region_code: str = attrs.field(converter=_issuing_region)
    citizen_id: str = attrs.field(converter=lambda s: CitizenId.parse(s).value, repr=False)
    name: str = attrs.field(converter=lambda s: s.strip() if isinstance(s, str) else s, validator=_check_name, repr=False)
    sex: str = attrs.field(default=attrs.Factory(lambda self: CitizenId(self.citizen_id).sex, takes_self=True))
    ethnicity: int = attrs.field(validator=_check_ethnicity)
    birth_place: str = attrs.field(converter=_region("birth_place"))
    birth_date: dt.date = attrs.field(
        default=attrs.Factory(lambda self: CitizenId(self.citizen_id).birth_date, takes_self=True),
        converter=_date("birth_date"),
        repr=False,
    )
    issue_date: dt.date = attrs.field(converter=_date("issue_date"))
    expiry_date: dt.date = attrs.field(
        default=attrs.Factory(lambda self: ten_years_after(self.issue_date), takes_self=True),
        converter=_date("expiry_date"),
    )
    app_serial: str = attrs.field(validator=_check_app_serial)
    insured_region: str = attrs.field(
        default=attrs.Factory(lambda self: self.region_code, takes_self=True), converter=_region("insured_region")
    )
    insurance_type: str = attrs.field(validator=_check_insurance_type)
    retired: bool = attrs.field(default=False, validator=_check_bool("retired"))
    initial_pin: str = attrs.field(repr=False)
    offline_limit_fen: int = attrs.field(default=0, validator=_check_fen)

    def __attrs_post_init__(self) -> None:
        encode_pin(self.initial_pin, "initial_pin")
        cid = CitizenId(self.citizen_id)
        if self.sex not in SEX_CODES:
            raise _invalid("sex", "format", f"expected M or F, got {self.sex!r}")
        if self.sex != cid.sex:
            raise _invalid("sex", "mismatch", "differs from the sex the citizen ID encodes")
        if self.birth_date != cid.birth_date:
            raise _invalid("birth_date", "mismatch", "differs from the birth date the citizen ID encodes")
        if CardIdCode(self.card_id_code).region_code != self.region_code:
            raise _invalid("card_id_code", "region", f"does not start with the issuing region {self.region_code}")
        if self.expiry_date <= self.issue_date:
            raise _invalid("expiry_date", "order", "must be after the issue date")

    @property
    def issuer_id(self) -> str:
        """T-Union issuer id, 16 hex digits: the issuing region code in BCD, then zeros."""
        return self.region_code + ISSUER_ID_FILL

    @property
    def card_unique(self) -> bytes:
        """The 卡识别码's card-unique 8 bytes: what MK is diversified by."""
        return CardIdCode(self.card_id_code).unique_bytes

    @property
    def app_serial_bytes(self) -> bytes:
        """The application serial in BCD (10 bytes): what the purse keys are diversified by."""
        return to_bcd(self.app_serial)

    @property
    def init_org(self) -> bytes:
        """SSSE/EF05 tag 04: the issuing region in BCD, then 9 bytes 00."""
        return to_bcd(self.region_code) + bytes(profile.TAG_LENGTHS[profile.Tag.INIT_ORG] - 3)

    @property
    def personal_account(self) -> bool:
        return self.insurance_type == "employee"

    @property
    def tunion(self) -> TUnionIssuerData:
        return TUnionIssuerData(
            issuer_id=self.issuer_id,
            app_type=profile.TU_APP_TYPE_PURSE,
            version=profile.TU_APP_VERSION,
            app_serial=self.app_serial,
            start_date=self.issue_date,
            expiry_date=self.expiry_date,
        )

    @property
    def insurance(self) -> MedicalInsurance:
        return MedicalInsurance(
            insured_region=self.insured_region,
            insurance_type=self.insurance_type,
            retired=self.retired,
            personal_account=self.personal_account,
            offline_limit_fen=self.offline_limit_fen,
            offline_used_fen=0,
            offline_year=self.issue_date.year,
        )


# ----------------------------------------------------------------------------- the script


def ssse_records(card: CardData) -> list[tuple[int, Tlv]]:
    """(SFI, record) for SSSE/EF05 01–07 and EF06 08–0D, in tag order."""
    values = {
        profile.Tag.CARD_ID_CODE: CardIdCode(card.card_id_code).to_bytes(),
        profile.Tag.CARD_TYPE: profile.CARD_TYPE_THIRD_GEN,
        profile.Tag.SPEC_VERSION: profile.SPEC_VERSION_3,
        profile.Tag.INIT_ORG: card.init_org,
        profile.Tag.ISSUE_DATE: bcd_date(card.issue_date),
        profile.Tag.EXPIRY_DATE: bcd_date(card.expiry_date),
        profile.Tag.CARD_NUMBER: card.card_number.encode("ascii"),
        profile.Tag.CITIZEN_ID: card.citizen_id.encode("ascii"),
        profile.Tag.NAME: encode_name(card.name),
        profile.Tag.SEX: SEX_CODES[card.sex],
        profile.Tag.ETHNICITY: bytes((card.ethnicity,)),
        profile.Tag.BIRTH_PLACE: to_bcd(card.birth_place),
        profile.Tag.BIRTH_DATE: bcd_date(card.birth_date),
    }
    out = []
    for tag, value in values.items():
        assert len(value) == profile.TAG_LENGTHS[tag], (tag, value)
        out.append((profile.SFI_EF05 if tag in profile.EF05_TAGS else profile.SFI_EF06, Tlv(tag, value)))
    return out


def medical_records(card: CardData) -> list[tuple[int, Tlv]]:
    """(SFI, record) for DF04/EF05 (basic insurance info) and EF06 (offline settlement)."""
    return [
        (profile.SFI_EF05, Tlv(profile.MedicalTag.INSURED_REGION, to_bcd(card.insured_region))),
        (profile.SFI_EF05, Tlv(profile.MedicalTag.INSURANCE_TYPE, INSURANCE_TYPE_CODES[card.insurance_type])),
        (profile.SFI_EF05, Tlv(profile.MedicalTag.RETIRED, FLAG_CODES[card.retired])),
        (profile.SFI_EF05, Tlv(profile.MedicalTag.PERSONAL_ACCOUNT, FLAG_CODES[card.personal_account])),
        (profile.SFI_EF06, Tlv(profile.OfflineTag.LIMIT, card.offline_limit_fen.to_bytes(4, "big"))),
        (profile.SFI_EF06, Tlv(profile.OfflineTag.USED, bytes(4))),
        (profile.SFI_EF06, Tlv(profile.OfflineTag.YEAR, to_bcd(f"{card.issue_date.year:04d}"))),
    ]


def build_script(card: CardData, keys: CardKeys) -> list[Command]:
    """The commands after transport-key authentication, in the order the card needs them.

    SET STATUS comes last: until it commits, the card is ``personalising`` and answers
    6985 to every application read, so a half-written card is never taken for a card.
    """
    alg, version = keys.algorithm, keys.version
    script = [Erase()]
    script += [WriteKey(usage, profile.CARD_KEY_INDEX, alg, version, key) for usage, key in keys.by_usage().items()]
    script.append(select_ssse())
    script += [UpdateRecord(sfi, record) for sfi, record in ssse_records(card)]
    script.append(select_medical())
    script += [UpdateRecord(sfi, record) for sfi, record in medical_records(card)]
    script.append(select_tunion())
    script.append(UpdateBinary(profile.SFI_TU_ISSUER, 0, card.tunion.to_bytes()))
    script.append(UpdateBinary(profile.SFI_TU_MANAGEMENT, 0, bytes(profile.TU_MANAGEMENT_LEN)))
    script.append(ResetRetryCounter(card.initial_pin))
    script.append(SetStatus(profile.LifeState.PERSONALISED))
    return [c.command() for c in script]


def build_factory_script(card: CardData, keys: CardKeys) -> list[Command]:
    """The card factory's script: the card ``build_script`` makes, in 8 APDUs instead of 33.

    After ERASE, one STORE DATA per group: the keys and the PIN (the card's own, sent
    with the MF selected), then each application's files, the application selected
    first as for UPDATE RECORD. The T-Union block is the last (P1 88): the card becomes
    personalised in that block's commit, so a card torn before it stays
    ``personalising``, as with SET STATUS at the end of the counter's script.
    """
    secrets = [Dgi(profile.DGI_KEYS, _key_entries(keys)), Dgi(profile.DGI_PIN, encode_pin(card.initial_pin))]
    tunion = [
        Dgi(profile.file_dgi(profile.SFI_TU_ISSUER), card.tunion.to_bytes()),
        Dgi(profile.file_dgi(profile.SFI_TU_MANAGEMENT), bytes(profile.TU_MANAGEMENT_LEN)),
    ]
    script = [
        Erase(),
        StoreData(0, secrets),
        select_ssse(),
        StoreData(1, _file_dgis(ssse_records(card))),
        select_medical(),
        StoreData(2, _file_dgis(medical_records(card))),
        select_tunion(),
        StoreData(3, tunion, last=True),
    ]
    return [c.command() for c in script]


def _key_entries(keys: CardKeys) -> bytes:
    """DGI 8000: usage ‖ index ‖ algorithm ‖ version ‖ key per key — WRITE KEY's P1, P2 and data."""
    alg, version = keys.algorithm.id_byte, keys.version
    return b"".join(bytes((usage, profile.CARD_KEY_INDEX, alg, version)) + key for usage, key in keys.by_usage().items())


def _file_dgis(records: list[tuple[int, Tlv]]) -> list[Dgi]:
    """One DGI per EF: its records' TLVs in the order given (``ssse_records``, ``medical_records``)."""
    files: dict[int, list[bytes]] = {}
    for sfi, record in records:
        files.setdefault(sfi, []).append(_tlv_bytes(record))
    return [Dgi(profile.file_dgi(sfi), b"".join(tlvs)) for sfi, tlvs in files.items()]


def _tlv_bytes(record: Tlv) -> bytes:
    """``record.to_bytes()``, written directly for the profile's records (a one-byte tag, a
    value under 128 bytes: tag ‖ length ‖ value), of which every card has twenty."""
    tag, value = record.tag, record.value
    if 0 < tag < 0x1F and len(value) < 0x80:
        return bytes((tag, len(value))) + value
    return record.to_bytes()


# ----------------------------------------------------------------------------- talking to the card


@attrs.frozen
class PersonalisationResult:
    chip_serial: bytes
    snapshot: CardSnapshot  # the read-back, already compared with the data
    apdus: int  # every APDU exchanged, read-back included: the cost of one issuance
    script_apdus: int  # of which the personalisation script
    resumed: bool = False  # True: the card was already complete (a run torn at its last write)


def differences(snapshot: CardSnapshot, card: CardData) -> tuple[str, ...]:
    """The names of the snapshot fields that differ from what ``card`` puts on a card."""
    expected: dict[str, Any] = {
        "life_state": profile.LifeState.PERSONALISED,
        "card_id_code": card.card_id_code,
        "card_type": profile.CARD_TYPE_THIRD_GEN.decode(),
        "spec_version": profile.SPEC_VERSION_3.decode(),
        "init_org": card.init_org.hex().upper(),
        "issue_date": card.issue_date,
        "expiry_date": card.expiry_date,
        "card_number": card.card_number,
        "citizen_id": card.citizen_id,
        "name": card.name,
        "sex": card.sex,
        "ethnicity": card.ethnicity,
        "birth_place": card.birth_place,
        "birth_date": card.birth_date,
        "insurance": card.insurance,
        "tunion": card.tunion,
        "transit_blocked": False,
        "balance_fen": 0,
        "transactions": (),
        "warnings": (),
    }
    return tuple(name for name, value in expected.items() if getattr(snapshot, name) != value)


def personalise(
    reader: Reader, card: CardData, keys: CardKeys, *, transport_alg: Algorithm = Algorithm.SM4
) -> PersonalisationResult:
    """Personalise the card in ``reader`` with ``card`` and ``keys``; see the module docstring.

    Raises ``CardNotBlank`` for a card already personalised with other data,
    ``PersonalisationMismatch`` if the read-back differs, ``CardStatus`` subclasses for a
    refused command and ``CardIOError`` if the card is torn (run again: it starts over).
    """
    script = build_script(card, keys)  # everything that can be refused is refused before any APDU
    counting = CountingReader(reader)
    info = GetChipInfo().send(counting)

    if info.life_state is profile.LifeState.PERSONALISED:
        snapshot = read_card(counting)
        if differences(snapshot, card):
            raise CardNotBlank(
                f"the card (chip {info.chip_serial.hex().upper()}) is already personalised"
                + (f" as card {snapshot.card_number}" if snapshot.card_number else "")
            )
        # Same data: a run torn at SET STATUS's commit. Prove the keys are ours too.
        try:
            external_authenticate(counting, keys.maintenance, profile.CARD_KEY_INDEX, keys.algorithm)
        except sw.WrongPin:
            raise PersonalisationMismatch(("maintenance_key",)) from None
        _check_pin_set(counting)
        return PersonalisationResult(info.chip_serial, snapshot, counting.count, 0, resumed=True)

    tk = transport_key(info.chip_serial, transport_alg)
    external_authenticate(counting, tk, profile.TRANSPORT_KEY_INDEX, transport_alg)
    before = counting.count
    for command in script:
        transmit(counting, command).check()
    script_apdus = counting.count - before

    snapshot = read_card(counting)
    wrong = differences(snapshot, card)
    if wrong:
        raise PersonalisationMismatch(wrong)
    _check_pin_set(counting)
    return PersonalisationResult(info.chip_serial, snapshot, counting.count, script_apdus)


def _check_pin_set(reader: Reader) -> None:
    """The PIN cannot be read back; its try counter can, without spending a try."""
    if PinTriesLeft().send(reader) != profile.PIN_TRIES:
        raise PersonalisationMismatch(("pin_tries",))
