"""The medical point of sale (医保结算终端) at a hospital's counter: one claim settled on one card.

It drives the card in a ``Reader`` and reaches the service only through the ports below,
which the composition root (``sbcard/cli``) wires: ``MedicalHost`` to the hospital's region
and, through the hub, the holder's insured region (``sbcard.services.medical.routing``);
``MedicalRules`` to the catalogues and policies (``sbcard.reference.medical``). A claim
(``PointOfSale.settle``):

1. the lines' codes are checked against the hospital's province's catalogue (an unknown
   code is refused before the card is touched);
2. the card is read: SSSE EF05 卡识别码, expiry and card number, EF06 citizen ID and
   name; DF04 EF05 (insured region, insurance type, retired, personal-account flag) and
   EF06 (offline limit, used, year). A card not issued, expired or without insurance
   data is refused;
3. the card's status in the hub's directory: anything but active (lost, replaced,
   cancelled, unknown) or a blacklisted card is refused, and so is a card whose DF04
   insured region is not its issuing region's province — nothing written anywhere;
4. the PIN, when the personal account pays (``pin``: the DF04 flag must say the holder
   has one) or the self-pay is taken from the card's financial account (``self_pay=
   "account"``): VERIFY; a wrong PIN is refused with the tries left, a blocked one with
   "PIN blocked: reset at a counter"; the wrong PIN that blocks it is refused as ``pin.blocked``
   and recorded as the card's ``pin_blocked`` event (``MedicalHost.pin_blocked``), as at a counter;
5. online (the hub reaches the insured region): a claim id from the hospital's region,
   the claim settled by the insured region through the hub;
   offline (its link is down): the conservative split against DF04/EF06
   (``sbcard.domain.medical_claim.offline_settlement``; the holder's registration is the
   insured region's to know, so only the visit and the Jing-Jin-Ji rule count: a
   registered holder gets the difference back at reconciliation), refused beyond the card's
   offline limit; the card's EF06 used/year written forward (no key needed: the card
   lets a terminal spend its offline limit, never give it back), then the claim queued
   in the hospital's region for reconciliation;
6. the settlement appended to the card's medical log, DF04/EF08 (``sbcard.chip.medical_log``).
   The claim stands even if the card leaves the field before that: ``ef08_written`` says so.

A refund (退费) at the counter with the card (``refund_card`` before, ``record_refund``
after the insured region refunded the claim) appends its record the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import attrs

from sbcard.chip import profile
from sbcard.chip import sw
from sbcard.chip.codec import decode_name, decode_text, parse_bcd_date, to_bcd
from sbcard.chip.commands import AppendRecord, MalformedResponse, ReadRecord, UpdateRecord, Verify, select_medical, \
    select_ssse
from sbcard.chip.medical_log import OFFLINE, ONLINE, REFUND, MedicalLogRecord
from sbcard.chip.reader import CardIOError, Reader
from sbcard.chip.reading import MedicalInsurance, read_insurance
from sbcard.chip.tlv import Tlv
from sbcard.clock import Clock
from sbcard.domain import medical
from sbcard.domain.card_id_code import CardIdCode
from sbcard.domain.errors import InvalidInput, RuleRefused, SbcardError
from sbcard.domain.masking import mask_name
from sbcard.domain.medical_claim import ClaimRequest, OfflineCard, offline_settlement
from sbcard.domain.regions import node_of

FIELD = "--reader"
SELF_PAY = ("cash", "account")
_STATUS_WORDS = {"issued": "not activated yet", "lost": "reported lost", "replaced": "replaced by a new card",
                 "cancelled": "cancelled"}


# ----------------------------------------------------------------------------- ports


class MedicalHost(Protocol):
    """The service as the point of sale reaches it."""

    def card_status(self, card_number: str) -> Mapping[str, Any] | None:
        """The hub directory's ``{"status", "issuing_region", "blacklisted"}`` for the card, or None."""
        ...

    def reachable(self, hospital: medical.Hospital, insured_node: str) -> bool:
        """Whether a claim can go online from this hospital to the insured region now."""
        ...

    def new_claim(self, hospital: medical.Hospital) -> tuple[str, int]:
        """(claim id, serial) from the hospital's region."""
        ...

    def settle(self, hospital: medical.Hospital, request: ClaimRequest) -> dict[str, Any]:
        """Online: the insured region settles the claim; its view (``medical_host.claim_view``)."""
        ...

    def queue_offline(self, hospital: medical.Hospital, request: ClaimRequest, settlement: medical.Settlement) -> dict[str, Any]:
        """Offline: keep the claim for its insured region; the queue entry."""
        ...

    def pin_blocked(self, card_number: str) -> None:
        """The third wrong PIN blocked the card's PIN here: recorded as a ``pin_blocked`` card event, as at a
        counter's PIN change."""
        ...


class MedicalRules(Protocol):
    """Hospitals, catalogues and policies (the module ``sbcard.reference.medical`` is one)."""

    def hospital(self, code: str) -> medical.Hospital: ...

    def catalogue(self, region_province: str) -> Mapping[str, medical.CatalogueItem]: ...

    def policy(self, region_province: str, insurance_type: str, retired: bool,
               episode: str = medical.OUTPATIENT) -> medical.Policy: ...

    def cross_region(self, region_province: str) -> medical.CrossRegionRules: ...


# ----------------------------------------------------------------------------- the card


@attrs.frozen
class CardFacts:
    """What the point of sale read of the card."""

    card_number: str
    card_id_code: str
    citizen_id: str = attrs.field(repr=False)
    name: str = attrs.field(repr=False)
    expiry_date: dt.date
    insurance: MedicalInsurance

    @property
    def insured_province(self) -> str:
        return medical.province_of(self.insurance.insured_region or "")

    @property
    def offline(self) -> OfflineCard:
        i = self.insurance
        return OfflineCard(i.offline_limit_fen or 0, i.offline_used_fen or 0, i.offline_year)


def _value(reader: Reader, sfi: int, tag: int) -> bytes:
    return bytes(ReadRecord(sfi, tag).send(reader).value)  # type: ignore[union-attr]


def read_facts(reader: Reader) -> CardFacts:
    """SSSE (card, holder) and DF04 (insurance, offline settlement); refused if the card cannot serve."""
    try:
        select_ssse().send(reader)
        id_code = CardIdCode.from_bytes(_value(reader, profile.SFI_EF05, profile.Tag.CARD_ID_CODE)).value
        expiry = parse_bcd_date(_value(reader, profile.SFI_EF05, profile.Tag.EXPIRY_DATE))
        number = _value(reader, profile.SFI_EF05, profile.Tag.CARD_NUMBER).decode("ascii").strip()
        citizen_id = decode_text(_value(reader, profile.SFI_EF06, profile.Tag.CITIZEN_ID))
        name = decode_name(_value(reader, profile.SFI_EF06, profile.Tag.NAME))
        insurance, warnings = read_insurance(reader)
    except sw.FileNotFound:
        raise RuleRefused("card.wrong_application", "not a social security card", FIELD) from None
    except sw.ConditionsNotSatisfied:
        raise RuleRefused("card.not_issued", "card not issued (not personalised)", FIELD) from None
    except (sw.RecordNotFound, MalformedResponse, ValueError, SbcardError) as e:
        raise RuleRefused("card.unreadable", f"the card's data cannot be read ({e})", FIELD) from None
    if None in (insurance.insured_region, insurance.insurance_type, insurance.retired, insurance.personal_account):
        raise RuleRefused("card.no_insurance", "the card's medical application (DF04) holds no insurance data"
                          + (f": {'; '.join(warnings)}" if warnings else ""), FIELD)
    return CardFacts(number, id_code, citizen_id, name, expiry, insurance)


# ----------------------------------------------------------------------------- the point of sale


class PointOfSale:
    """One hospital's point of sale: its host port, the rules and a clock."""

    def __init__(self, host: MedicalHost, rules: MedicalRules, clock: Clock, hospital: str) -> None:
        self.host, self.rules, self.clock = host, rules, clock
        self.hospital = rules.hospital(hospital)
        self.catalogue = rules.catalogue(self.hospital.province)

    def settle(self, reader: Reader, lines: Sequence[medical.ClaimLine], *, pin: str | None = None, self_pay: str = "cash",
               visit: str = "", episode: str = medical.OUTPATIENT) -> dict[str, Any]:
        """Settle one claim on the card in ``reader`` (see the module doc); the receipt as a dict.

        Refusals raise ``RuleRefused`` / ``InvalidInput`` with nothing recorded; a card torn
        mid-way raises ``CardIOError`` (before the claim: nothing recorded).
        """
        if visit not in medical.VISITS:
            raise InvalidInput("medical.visit", f"{visit!r} is not a referral or an emergency", "--visit")
        if episode not in medical.EPISODES:
            raise InvalidInput("medical.episode", f"{episode!r} is not outpatient or inpatient", "--inpatient")
        if self_pay not in SELF_PAY:
            raise InvalidInput("medical.self_pay", f"{self_pay!r} is not cash or account", "--self-pay")
        if not lines:
            raise InvalidInput("medical.items.empty", "a claim needs at least one item", "--items")
        for i, line in enumerate(lines):
            if line.code not in self.catalogue:
                raise InvalidInput("medical.item.unknown", f"{line.code!r} is not in the {self.hospital.province} "
                                   f"catalogue of {self.hospital.name}", f"items[{i}].code")
        if pin is not None:
            try:
                Verify(pin)
            except InvalidInput as e:
                raise InvalidInput(e.code, e.message, "--pin") from None
        elif self_pay == "account":
            raise InvalidInput("pin.missing", "a self-pay from the card's financial account needs the holder's PIN",
                               "--pin")
        now = self.clock.now()
        card = read_facts(reader)
        self._check_card(card, now)
        use_account = pin is not None and bool(card.insurance.personal_account)
        if pin is not None and not card.insurance.personal_account and self_pay == "cash":
            raise RuleRefused("medical.no_personal_account", "the card has no personal account (resident "
                              "insurance): settle without a PIN", "--pin")
        if pin is not None:
            self._verify(reader, pin, card)
        insured_node = node_of(card.insurance.insured_region or "")
        base = dict(claim_card=card, lines=tuple(lines), now=now, visit=visit, episode=episode)
        if self.host.reachable(self.hospital, insured_node):
            receipt = self._online(reader, use_account=use_account, self_pay=self_pay, **base)
        else:
            receipt = self._offline(reader, use_account=use_account, self_pay=self_pay, **base)
        receipt.update(holder=mask_name(card.name), insured_node=insured_node)
        return receipt

    # --- checks --------------------------------------------------------------------------

    def _check_card(self, card: CardFacts, now: dt.datetime) -> None:
        if now.date() > card.expiry_date:
            raise RuleRefused("card.expired", f"card {card.card_number} expired on {card.expiry_date.isoformat()}",
                              FIELD)
        entry = self.host.card_status(card.card_number)
        if entry is None:
            raise RuleRefused("card.unknown", f"card {card.card_number} is not in the national directory", FIELD)
        if entry["status"] != "active":
            status = entry["status"]
            raise RuleRefused(f"card.{status}", f"card {card.card_number} is {_STATUS_WORDS.get(status, status)}: "
                              "no medical settlement", FIELD)
        if entry.get("blacklisted"):
            raise RuleRefused("card.blacklisted", f"card {card.card_number} is on the blacklist: see a service "
                              "outlet", FIELD)
        issuing = entry.get("issuing_region") or card.card_id_code[:6]
        if medical.province_of(issuing) != card.insured_province:
            raise RuleRefused("medical.insured_region", f"the card's DF04 says insured in "
                              f"{card.insurance.insured_region}, but the card was issued by {issuing}: update the "
                              "card at a counter", FIELD)

    def _verify(self, reader: Reader, pin: str, card: CardFacts) -> None:
        """VERIFY; the wrong PIN that blocks the PIN is ``pin.blocked`` and recorded, as everywhere else."""
        try:
            Verify(pin).send(reader)
        except sw.WrongPin as wrong:
            if wrong.tries_left:
                raise RuleRefused("pin.wrong", f"wrong PIN: {wrong.tries_left} tries left", "--pin") from None
            self.host.pin_blocked(card.card_number)
            raise RuleRefused("pin.blocked", "wrong PIN, 0 tries left: the PIN is now blocked; have it reset at a "
                              "counter", "--pin") from None
        except sw.AuthenticationBlocked:
            raise RuleRefused("pin.blocked", "PIN blocked: reset at a counter", "--pin") from None

    # --- online and offline ----------------------------------------------------------------

    def _request(self, card: CardFacts, claim_id: str, lines: tuple[medical.ClaimLine, ...], now: dt.datetime, *,
                 visit: str, episode: str, use_account: bool, self_pay: str, mode: str,
                 offline_self_fen: int | None = None) -> ClaimRequest:
        i = card.insurance
        return ClaimRequest(
            claim_id=claim_id, hospital=self.hospital.code, card_number=card.card_number,
            card_id_code=card.card_id_code, citizen_id=card.citizen_id, insured_region=i.insured_region or "",
            insurance_type=i.insurance_type or "", retired=bool(i.retired), lines=lines, at=now,
            referral_or_emergency=bool(visit), visit=visit, episode=episode, use_account=use_account,
            self_pay=self_pay, mode=mode, offline_self_fen=offline_self_fen)

    def _online(self, reader: Reader, *, claim_card: CardFacts, lines: tuple[medical.ClaimLine, ...], now: dt.datetime,
                visit: str, episode: str, use_account: bool, self_pay: str) -> dict[str, Any]:
        claim_id, serial = self.host.new_claim(self.hospital)
        request = self._request(claim_card, claim_id, lines, now, visit=visit, episode=episode,
                                use_account=use_account, self_pay=self_pay, mode="online")
        claim = self.host.settle(self.hospital, request)
        record = MedicalLogRecord(ONLINE, self.hospital.code, _local(now), serial, claim["total_fen"],
                                  claim["fund_fen"], claim["self_fen"], account_used=claim["account_fen"] > 0,
                                  self_pay_account=self_pay == "account", cross_region=claim["cross_region"])
        i = claim_card.insurance
        return {**claim, "ef08_written": _append(reader, record), "offline_limit_fen": i.offline_limit_fen,
                "offline_used_fen": claim_card.offline.used_in(now.year), "notes": []}

    def _offline(self, reader: Reader, *, claim_card: CardFacts, lines: tuple[medical.ClaimLine, ...], now: dt.datetime,
                 visit: str, episode: str, use_account: bool, self_pay: str) -> dict[str, Any]:
        i = claim_card.insurance
        if self_pay == "account":
            raise RuleRefused("medical.offline.account", "the insured region cannot be reached: the self-pay cannot "
                              "come from the card's financial account offline, pay it in cash", "--self-pay")
        policy = self.rules.policy(claim_card.insured_province, i.insurance_type or "", bool(i.retired), episode)
        cross = self.hospital.province != claim_card.insured_province
        terms = medical.cross_region_terms(self.rules.cross_region(claim_card.insured_province),
                                     insured_province=claim_card.insured_province,
                                     treated_province=self.hospital.province, day=_local(now).date(), visit=visit)
        c = medical.Circumstances(hospital_level=self.hospital.level, cross_region=cross,
                            registered=terms.kind not in (medical.UNREGISTERED, medical.LOCAL),
                            referral_or_emergency=bool(visit), episode=episode, terms=terms)
        decision = offline_settlement(lines, self.catalogue, policy, claim_card.offline, c, year=now.year)
        s = decision.settlement
        claim_id, serial = self.host.new_claim(self.hospital)
        stored = 0 if decision.new_year else i.offline_used_fen
        _write_offline(reader, decision.year if decision.new_year else None,
                       decision.used_fen if decision.used_fen != stored else None)
        request = self._request(claim_card, claim_id, lines, now, visit=visit, episode=episode,
                                use_account=False, self_pay="cash",
                                mode="offline", offline_self_fen=s.self_fen)
        queued = self.host.queue_offline(self.hospital, request, s)
        record = MedicalLogRecord(OFFLINE, self.hospital.code, _local(now), serial, s.total_fen, s.fund_fen,
                                  s.self_fen, cross_region=c.cross_region)
        notes = ["settled offline: the insured region cannot be reached; the deductible was taken as unpaid "
                 "this year and the difference is settled at reconciliation"]
        if use_account:
            notes.append("the personal account cannot be used offline")
        split = s.to_json()
        return {
            "claim_id": claim_id, "status": queued["status"], "mode": "offline", "card_number": claim_card.card_number,
            "hospital": self.hospital.code, "hospital_name": self.hospital.name,
            "hospital_level": self.hospital.level, "hospital_node": node_of(self.hospital.region),
            "insured_node": node_of(claim_card.insurance.insured_region or ""), "year": now.year,
            "at": now.isoformat(), **{k: split[k] for k in ("total_fen", "fund_fen", "account_fen", "self_fen",
                                                           "deductible_fen", "self_first_fen", "ratio_pct",
                                                           "cap_reached")},
            "cross_region": c.cross_region, "registered": c.registered, "referral_or_emergency": bool(visit),
            "insurance_type": i.insurance_type, "retired": bool(i.retired), "use_account": False, "self_pay": "cash",
            "offline_self_fen": s.self_fen, "adjustment_fen": None, "owed_fen": None, "owed_settled_at": None,
            "items": split["items"],
            "before": split["before"], "after": split["after"], "personal_account_fen": None, "refund_of": None,
            "txn_id": None, "reversal_txn_id": None, "recorded_at": None, "refunded_at": None,
            "episode": episode, "visit": visit, "registration_kind": split["registration_kind"],
            "cut_points": split["cut_points"], "band_ratio_pct": split["band_ratio_pct"],
            **{k: split[k] for k in ("source", "confidence", "illustrative")},
            "ef08_written": _append(reader, record), "offline_limit_fen": i.offline_limit_fen,
            "offline_used_fen": decision.used_fen, "notes": notes,
        }


# ----------------------------------------------------------------------------- a refund with the card


def refund_card(reader: Reader, card_number: str) -> CardFacts:
    """The card in ``reader`` as the card of the claim to refund (``card_number``); refused otherwise."""
    card = read_facts(reader)
    if card.card_number != card_number:
        raise RuleRefused("medical.refund.wrong_card", f"the card in the reader is {card.card_number}, the claim's "
                          f"is {card_number}", FIELD)
    return card


def record_refund(reader: Reader, *, hospital: str, serial: int, at: dt.datetime, total_fen: int, fund_fen: int,
                  account_fen: int, self_fen: int, cross_region: bool) -> bool:
    """The refund into the card's medical log (DF04/EF08), as a settlement's; False when the card refused it
    or left the field (the refund stands, as a claim does)."""
    fund = max(0, fund_fen)
    self_part = max(0, min(self_fen, total_fen - fund))
    record = MedicalLogRecord(REFUND, hospital, _local(at), serial, max(0, total_fen), fund, self_part,
                              account_used=account_fen > 0, cross_region=cross_region)
    return _append(reader, record)


def _local(now: dt.datetime) -> dt.datetime:
    return now.replace(tzinfo=None, microsecond=0)


def _write_offline(reader: Reader, year: int | None, used: int | None) -> None:
    """DF04/EF06: the year forward (the card zeroes its used amount), then the used amount."""
    if year is None and used is None:
        return
    select_medical().send(reader)
    try:
        if year is not None:
            UpdateRecord(profile.SFI_EF06, Tlv(profile.OfflineTag.YEAR, to_bcd(f"{year:04d}"))).send(reader)
        if used is not None:
            UpdateRecord(profile.SFI_EF06, Tlv(profile.OfflineTag.USED, used.to_bytes(4, "big"))).send(reader)
    except sw.CardStatus as e:
        raise RuleRefused("card.offline_refused", f"the card refused its offline settlement data ({e})",
                          FIELD) from None


def _append(reader: Reader, record: MedicalLogRecord) -> bool:
    """The record into DF04/EF08; False when the card refused it or left the field (the claim stands)."""
    try:
        select_medical().send(reader)
        AppendRecord(profile.SFI_EF08, record.to_bytes()).send(reader)
    except (sw.CardStatus, CardIOError):
        return False
    return True
