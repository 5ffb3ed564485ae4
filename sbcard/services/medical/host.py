"""The insured region's medical host (参保地): settles its insured persons' claims, refunds them.

A claim reaches the insured region from a hospital's point of sale through the hub
(``sbcard.services.medical.routing``). ``settle`` splits it with ``sbcard.domain.medical.settle``
— the hospital's province's catalogue (就医地目录), this region's policy for the holder's
insurance type and retirement (参保地政策), the holder's accumulators for the claim's
calendar year — and writes, in one transaction of this region:

- the claim (``medical_claims``, the split item by item) and the year's accumulators
  (``medical_years``: deductible paid, pooled fund paid; a new year starts at 0);
- the personal account (``medical_account_entries``): the part it paid. An employee's
  account receives the policy's annual allocation when their year's row is first made
  (the year's first claim), posted from ``FUND-MEDICAL-CONTRIB`` to
  ``FUND-MEDICAL-ACCOUNTS``, whose balance is the sum of every personal account;
- the ledger: the pooled fund (``FUND-MEDICAL-POOL``) and the personal accounts
  (``FUND-MEDICAL-ACCOUNTS``) pay what they pay, and a self-pay from the card's financial
  account debits the holder; what is owed to the hospital's region is credited to
  ``CLEARING-<node>`` (a cash self-pay is paid at the counter and never reaches the ledger).

An **offline** claim (settled at the point of sale against the card while this region
was unreachable, ``sbcard.domain.medical_claim``) is settled here with the real
accumulators when it arrives. The holder paid ``offline_self_fen`` in cash there; the
hospital is owed the rest of the total (``CLEARING``); the difference with the real
self-pay is settled with the holder's financial account — credited when they paid too
much, debited when too little — and, where the account cannot take it (none open, or not
enough money), recorded as owed (``FUND-MEDICAL-DUE``, the claim's ``owed_fen``: positive,
the holder owes; negative, owed to them). Every transaction sums to zero.

A **refund** (退费, ``refund``) reverses a claim of the current year exactly: the
accumulators lose its deductible and fund (``sbcard.domain.medical.reverse``), the
personal account gets back what it paid, its ledger transaction is reversed entry by
entry. A partial refund (some item codes) then settles the remaining lines again as a
new claim ``<claim>-R`` (``refund_of``) with the same circumstances and payment choices,
so the state is as if only those items had been claimed. Refused: an unknown claim, one
refunded already, item codes not in it, a claim of an earlier (closed) year.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from sbcard.clock import BEIJING
from sbcard.domain import medical
from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused
from sbcard.domain.lifecycle import effective_status
from sbcard.domain.masking import mask_citizen_id
from sbcard.domain.medical_claim import ClaimRequest
from sbcard.domain.regions import NODE_NAMES, node_of
from sbcard.reference import medical as ref
from sbcard.services.accounts import ledger
from sbcard.services.medical import registrations as medical_registrations
from sbcard.services.outlets import audit
from sbcard.store.migrations import timestamp
from sbcard.store.repositories.medical import MedicalRepository
from sbcard.store.sequences import next_value
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import node_of_db

POOL = "FUND-MEDICAL-POOL"
ACCOUNTS = "FUND-MEDICAL-ACCOUNTS"
CONTRIB = "FUND-MEDICAL-CONTRIB"
DUE = "FUND-MEDICAL-DUE"
FUNDS = (POOL, ACCOUNTS, CONTRIB, DUE)
ALLOCATION_SEQUENCE = "medical_allocation"
FIELD = "--reader"
SYSTEM = "medical"


def clearing_account(node: str) -> str:
    """What this region owes the hospitals of ``node`` (its own hospitals included)."""
    return f"CLEARING-{node}"


# ----------------------------------------------------------------------------- settle


def settle(uow: UnitOfWork, request: ClaimRequest, *, now: dt.datetime) -> dict[str, Any]:
    """Settle one claim for this region's insured holder (see the module doc); its view.

    A claim id seen before answers that claim's view again and changes nothing.
    """
    with uow:
        existing = uow.get(MedicalRepository).claim(request.claim_id)
        if existing is not None:
            return claim_view(uow, existing)
        card, person, policy = _holder(uow, request, now)
        hospital = ref.hospital(request.hospital)
        row = _settle_lines(uow, claim_id=request.claim_id, card=card, person=person, policy=policy,
                            hospital=hospital, lines=request.lines, at=request.at.astimezone(BEIJING),
                            visit=request.visit, use_account=request.use_account, self_pay=request.self_pay, mode=request.mode,
                            offline_self_fen=request.offline_self_fen, refund_of=None, now=now)
        view = claim_view(uow, row)
        uow.finish()
    return view


def _holder(uow: UnitOfWork, request: ClaimRequest,
            now: dt.datetime) -> tuple[dict[str, Any], dict[str, Any], medical.Policy]:
    """The card, its holder's enrolment and policy; refused when the card cannot claim."""
    store = uow.get(MedicalRepository)
    card = store.card(request.card_number)
    region = NODE_NAMES[node_of_db(uow.db)]
    if card is None:
        raise NotFound("card.unknown", f"no card {request.card_number} in {region}", FIELD)
    if card["card_id_code"] != request.card_id_code or card["citizen_id"] != request.citizen_id:
        raise RuleRefused("card.mismatch", f"the card's chip does not match card {card['card_number']}'s record "
                          f"in {region}", FIELD)
    if request.mode == "online":  # an offline claim was checked with the hub's directory at the time
        status = effective_status(card, now)
        if status != "active":
            raise RuleRefused(f"card.{status}", f"card {card['card_number']} is {status}: no medical settlement",
                              FIELD)
    person = store.enrolment(card["citizen_id"])
    if person is None:
        raise RuleRefused("medical.not_insured", f"the holder of card {card['card_number']} is not insured in "
                          f"{region}", FIELD)
    insured_region, insurance_type, retired = person
    if medical.province_of(insured_region) != medical.province_of(request.insured_region):
        raise RuleRefused("medical.insured_region", f"the card says insured in {request.insured_region}, the "
                          f"registry says {insured_region}: update the card at a counter", FIELD)
    policy = ref.policy(medical.province_of(insured_region), insurance_type, bool(retired), request.episode)
    if request.use_account and policy.insurance_type != medical.EMPLOYEE:
        raise RuleRefused("medical.no_personal_account",
                          "resident insurance has no personal account: settle without the PIN", "--pin")
    return card, {"citizen_id": card["citizen_id"], "insured_region": insured_region}, policy


def _settle_lines(uow: UnitOfWork, *, claim_id: str, card: dict[str, Any], person: dict[str, Any],
                  policy: medical.Policy, hospital: medical.Hospital, lines: Sequence[medical.ClaimLine], at: dt.datetime,
                  visit: str, use_account: bool, self_pay: str, mode: str,
                  offline_self_fen: int | None, refund_of: str | None, now: dt.datetime) -> dict[str, Any]:
    """Split ``lines`` and write the claim, the year, the personal account and the ledger; the claim's row.

    The cross-region terms come from the holder's registration valid on the day of
    treatment (``medical_registrations``), the visit the hospital declared and this
    region's cross-region rules (``sbcard.domain.medical.cross_region_terms``).
    """
    citizen = person["citizen_id"]
    year = at.year
    catalogue = ref.catalogue(hospital.province)
    c = circumstances(uow, citizen, policy, hospital, at.date(), visit)
    ytd = _year(uow, citizen, year, policy, now)
    available = account_balance(uow, citizen) if use_account else 0
    s = medical.settle(lines, catalogue, policy, ytd, c, account_available_fen=available)

    hospital_node = node_of(hospital.region)
    holder_account = ledger.account_of_card(uow, card["card_number"])
    entries: list[tuple[str, int]] = []
    adjustment = owed = 0
    if mode == "offline":
        assert offline_self_fen is not None
        adjustment = offline_self_fen - s.self_fen
        entries += [(POOL, -s.fund_fen), (clearing_account(hospital_node), s.total_fen - offline_self_fen)]
        if adjustment:
            if holder_account is not None and (adjustment > 0 or _can_pay(uow, holder_account, -adjustment)):
                entries.append((holder_account, adjustment))
            else:
                owed = -adjustment
                entries.append((DUE, adjustment))
    else:
        paid_here = s.fund_fen + s.account_fen
        entries += [(POOL, -s.fund_fen), (ACCOUNTS, -s.account_fen)]
        if self_pay == "account" and s.self_fen:
            if holder_account is None:
                raise RuleRefused("account.none", f"card {card['card_number']} reaches no open financial account: "
                                  "pay the self-pay in cash", "--self-pay")
            entries.append((holder_account, -s.self_fen))
            paid_here += s.self_fen
        entries.append((clearing_account(hospital_node), paid_here))
    entries = [(account, amount) for account, amount in entries if amount]
    txn_id = None
    if entries:
        txn_id = f"MED-{claim_id}"
        _ensure_accounts(uow, hospital_node, now)
        ledger.post(uow, txn_id=txn_id, entries=entries, kind="medical_claim", operator=f"{SYSTEM}:{hospital.code}",
                    memo=f"claim {claim_id} at {hospital.code} ({mode})", now=now)
    if s.account_fen:
        _account_entry(uow, citizen, year, -s.account_fen, "claim", claim_id, now)
    _save_year(uow, citizen, s.after, now)
    row = {
        "claim_id": claim_id, "card_number": card["card_number"], "citizen_id": citizen, "hospital": hospital.code,
        "hospital_node": hospital_node, "hospital_level": hospital.level, "year": year, "mode": mode,
        "status": "settled", "refund_of": refund_of, "insurance_type": policy.insurance_type,
        "retired": int(policy.retired), "cross_region": int(c.cross_region), "registered": int(c.registered),
        "referral_or_emergency": int(bool(visit)), "episode": policy.episode, "visit": visit,
        "registration_kind": s.registration_kind, "cut_points": s.cut_points, "use_account": int(use_account), "self_pay": self_pay,
        "total_fen": s.total_fen, "fund_fen": s.fund_fen, "account_fen": s.account_fen, "self_fen": s.self_fen,
        "deductible_fen": s.deductible_fen, "ratio_pct": s.ratio_pct, "cap_reached": int(s.cap_reached),
        "offline_self_fen": offline_self_fen, "adjustment_fen": adjustment, "owed_fen": owed,
        "split": json.dumps(s.to_json(), ensure_ascii=False, separators=(",", ":")),
        "lines": json.dumps([[line.code, line.quantity, line.unit_price_fen] for line in lines]),
        "txn_id": txn_id, "reversal_txn_id": None, "at": at.isoformat(), "recorded_at": timestamp(now),
        "refunded_at": None,
    }
    uow.get(MedicalRepository).insert_claim(row)
    audit.record(uow.db, at=now, operator=f"{SYSTEM}:{hospital.code}", action="medical.settle", subject=card["card_number"],
                 details={"claim_id": claim_id, "mode": mode, "total_fen": s.total_fen, "fund_fen": s.fund_fen,
                          "account_fen": s.account_fen, "self_fen": s.self_fen, "refund_of": refund_of,
                          "citizen_id": mask_citizen_id(citizen)})
    return row


def circumstances(uow: UnitOfWork, citizen_id: str, policy: medical.Policy, hospital: medical.Hospital,
                  day: dt.date, visit: str) -> medical.Circumstances:
    """The treatment's circumstances with the cross-region terms of the day (see ``_settle_lines``)."""
    cross = hospital.province != policy.region
    registration = medical_registrations.valid_on(uow, citizen_id, hospital.province, day) if cross else None
    terms = medical.cross_region_terms(ref.cross_region(policy.region), insured_province=policy.region,
                                 treated_province=hospital.province, day=day, registration=registration,
                                 visit=visit)
    return medical.Circumstances(hospital_level=hospital.level, cross_region=cross,
                           registered=terms.kind not in (medical.UNREGISTERED, medical.LOCAL),
                           referral_or_emergency=bool(visit), episode=policy.episode, terms=terms)


def _can_pay(uow: UnitOfWork, account_no: str, amount: int) -> bool:
    account = ledger.get_account(uow, account_no)
    return account["status"] == "active" and ledger.balance(uow, account_no) >= amount


def _ensure_accounts(uow: UnitOfWork, hospital_node: str, now: dt.datetime) -> None:
    wanted = (*FUNDS, clearing_account(hospital_node))
    present = uow.get(MedicalRepository).existing_accounts(wanted)
    for account in (a for a in wanted if a not in present):
        ledger.ensure_internal_account(uow, account, "clearing" if account.startswith("CLEARING-") else "fund", now)


# ----------------------------------------------------------------------------- years and personal accounts


def _year(uow: UnitOfWork, citizen_id: str, year: int, policy: medical.Policy,
          now: dt.datetime) -> medical.YearToDate:
    """The holder's accumulators for ``year``; the row (and an employee's allocation) made on first use."""
    store = uow.get(MedicalRepository)
    row = store.year(citizen_id, year)
    if row is not None:
        return medical.YearToDate(year, *row[:5])
    allocation = policy.personal_account_annual_fen
    store.insert_year({"citizen_id": citizen_id, "year": year, "deductible_paid_fen": 0, "fund_paid_fen": 0,
                       "allocated_fen": allocation, "created_at": timestamp(now), "updated_at": timestamp(now)})
    if allocation:
        txn = f"MED-ALLOC-{year}-{next_value(uow.db, ALLOCATION_SEQUENCE):08d}"
        for account in (CONTRIB, ACCOUNTS):
            if account not in store.existing_accounts((account,)):
                ledger.ensure_internal_account(uow, account, "fund", now)
        ledger.post(uow, txn_id=txn, entries=[(CONTRIB, -allocation), (ACCOUNTS, allocation)], kind="medical_allocation",
                    operator=SYSTEM, memo=f"personal account allocation for {year}", now=now)
        _account_entry(uow, citizen_id, year, allocation, "allocation", None, now)
    return medical.YearToDate(year)


def _save_year(uow: UnitOfWork, citizen_id: str, ytd: medical.YearToDate, now: dt.datetime) -> None:
    uow.get(MedicalRepository).save_year(
        citizen_id, ytd.year, (ytd.deductible_paid_fen, ytd.fund_paid_fen, ytd.eligible_fen,
                               ytd.inpatient_deductible_paid_fen, ytd.inpatient_fund_paid_fen), timestamp(now))


def _account_entry(uow: UnitOfWork, citizen_id: str, year: int, amount: int, kind: str,
                   claim_id: str | None, now: dt.datetime) -> None:
    uow.get(MedicalRepository).insert_account_entry({"citizen_id": citizen_id, "year": year, "amount_fen": amount,
                                                     "kind": kind, "claim_id": claim_id, "at": timestamp(now)})


def account_balance(uow: UnitOfWork, citizen_id: str) -> int:
    """The holder's personal account (个人账户) balance in fen: the sum of its entries."""
    return uow.get(MedicalRepository).personal_balance(citizen_id)


def year_view(uow: UnitOfWork, card_number: str, year: int) -> dict[str, Any]:
    """A holder's accumulators for ``year`` (``sbcard medical year``); nothing is written.

    A year with no claim yet shows zeros; an employee's allocation for it comes with the
    year's first claim.
    """
    store = uow.get(MedicalRepository)
    card = store.card_with_enrolment(card_number)
    if card is None:
        raise NotFound("card.unknown", f"no card {card_number} in {NODE_NAMES[node_of_db(uow.db)]}", "--card")
    if card["insured_region"] is None:
        raise RuleRefused("medical.not_insured", f"the holder of card {card_number} is not insured", "--card")
    policy = ref.policy(medical.province_of(card["insured_region"]), card["insurance_type"], bool(card["retired"]))
    row = store.year(card["citizen_id"], year)
    ytd = medical.YearToDate(year, *row[:5]) if row else medical.YearToDate(year)
    claims = store.settled_claims(card["citizen_id"], year)
    return {
        "card_number": card_number, "year": year, "insured_region": card["insured_region"],
        "insurance_type": policy.insurance_type, "retired": policy.retired,
        "deductible_paid_fen": ytd.deductible_paid_fen, "fund_paid_fen": ytd.fund_paid_fen,
        "deductible_fen": {str(level): policy.deductible_fen[level] for level in medical.LEVELS},
        "deductible_remaining_fen": {str(level): ytd.remaining_deductible_fen(policy, level) for level in medical.LEVELS},
        "cap_fen": policy.cap_fen, "cap_remaining_fen": ytd.remaining_cap_fen(policy),
        "personal_account_fen": account_balance(uow, card["citizen_id"]),
        "allocated_fen": row[5] if row else 0, "claims": claims, "eligible_fen": ytd.eligible_fen,
        "inpatient_deductible_paid_fen": ytd.inpatient_deductible_paid_fen,
        "inpatient_fund_paid_fen": ytd.inpatient_fund_paid_fen,
    }


# ----------------------------------------------------------------------------- refund


def refund(uow: UnitOfWork, claim_id: str, codes: Sequence[str] | None, *,
           now: dt.datetime, requested_by: str | None = None) -> dict[str, Any]:
    """退费: reverse the claim; with ``codes`` (some of its item codes) re-settle the rest. See the module doc.

    ``requested_by``: the back-office operator who asked for it (the service's refund route),
    recorded as ``medical.refund_requested`` in the refund's own transaction, so that no
    crash between the two can leave a refund without its requester in the audit log.

    Returns ``{"refunded": <claim view>, "resettled": <claim view> | None}``.
    """
    store = uow.get(MedicalRepository)
    with uow:
        row = store.claim(claim_id)
        if row is None:
            raise NotFound("medical.claim.unknown", f"no claim {claim_id}", "CLAIM_ID")
        if row["status"] == "refunded":
            raise RuleRefused("medical.refund.done", f"claim {claim_id} was refunded already ({row['refunded_at']})",
                              "CLAIM_ID")
        this_year = now.astimezone(BEIJING).year
        if row["year"] != this_year:
            raise RuleRefused("medical.refund.closed_year", f"claim {claim_id} belongs to {row['year']}, a closed "
                              f"year: no refund in {this_year}", "CLAIM_ID")
        lines = [medical.ClaimLine(code, quantity, price) for code, quantity, price in json.loads(row["lines"])]
        remaining: list[medical.ClaimLine] = []
        if codes:
            wanted = list(dict.fromkeys(c.strip() for c in codes if c.strip()))
            present = {line.code for line in lines}
            unknown = [c for c in wanted if c not in present]
            if unknown:
                raise InvalidInput("medical.refund.items", f"{', '.join(unknown)}: not an item of claim {claim_id} "
                                   f"(its items: {', '.join(sorted(present))})", "--items")
            remaining = [line for line in lines if line.code not in wanted]
        _reverse(uow, row, now)
        resettled = None
        if remaining:
            card = store.card(row["card_number"])
            assert card is not None  # a claim's card is never deleted
            policy = ref.policy(*_policy_key(uow, row), row.get("episode") or medical.OUTPATIENT)
            new = _settle_lines(
                uow, claim_id=f"{claim_id}-R", card=card, person={"citizen_id": row["citizen_id"]},
                policy=policy, hospital=ref.hospital(row["hospital"]), lines=remaining,
                at=dt.datetime.fromisoformat(row["at"]), visit=_visit_of(row), use_account=bool(row["use_account"]),
                self_pay=row["self_pay"] if row["mode"] == "online" else "cash", mode="online",
                offline_self_fen=None, refund_of=claim_id, now=now)
            resettled = claim_view(uow, new)
        refunded_row = store.claim(claim_id)
        assert refunded_row is not None
        refunded = claim_view(uow, refunded_row)
        if requested_by is not None:
            back = refunded["total_fen"] - (resettled["total_fen"] if resettled else 0)
            audit.record(uow.db, at=now, operator=requested_by, action="medical.refund_requested", subject=claim_id,
                         details={"items": list(codes) if codes is not None else None, "refund_fen": back})
        uow.finish()
    return {"refunded": refunded, "resettled": resettled}


def _visit_of(row: dict[str, Any]) -> str:
    """The visit a stored claim declared (a claim stored before visits: its referral-or-emergency flag)."""
    if row.get("visit"):
        return str(row["visit"])
    return medical.REFERRAL if row["referral_or_emergency"] else ""


def _policy_key(uow: UnitOfWork, row: dict[str, Any]) -> tuple[str, str, bool]:
    enrolment = uow.get(MedicalRepository).enrolment(row["citizen_id"])
    assert enrolment is not None  # the claim was settled on it
    insured_region = enrolment[0]
    return medical.province_of(insured_region), row["insurance_type"], bool(row["retired"])


def _reverse(uow: UnitOfWork, row: dict[str, Any], now: dt.datetime) -> None:
    """The claim as if it had never been: accumulators, personal account, ledger; marked refunded."""
    split = json.loads(row["split"])
    before, after = (medical.YearToDate.from_json(split[x]) for x in ("before", "after"))
    settlement = medical.Settlement(total_fen=row["total_fen"], fund_fen=row["fund_fen"], account_fen=row["account_fen"],
                              self_fen=row["self_fen"], deductible_fen=row["deductible_fen"],
                              ratio_pct=row["ratio_pct"], items=(), before=before, after=after,
                              cap_reached=bool(row["cap_reached"]), episode=row.get("episode") or medical.OUTPATIENT)
    store = uow.get(MedicalRepository)
    current = store.year(row["citizen_id"], row["year"])
    assert current is not None  # the claim moved it
    _save_year(uow, row["citizen_id"], medical.reverse(medical.YearToDate(row["year"], *current[:5]), settlement),
               now)
    if row["account_fen"]:
        _account_entry(uow, row["citizen_id"], row["year"], row["account_fen"], "refund", row["claim_id"], now)
    reversal = None
    if row["txn_id"]:
        reversal = f"{row['txn_id']}-REV"
        entries = [(account, -amount) for account, amount in ledger.legs(uow, row["txn_id"])]
        ledger.post(uow, txn_id=reversal, entries=entries, kind="medical_refund",
                    operator=f"{SYSTEM}:{row['hospital']}", memo=f"refund of claim {row['claim_id']}", now=now)
    store.mark_refunded(row["claim_id"], reversal_txn_id=reversal, at=timestamp(now))
    audit.record(uow.db, at=now, operator=f"{SYSTEM}:{row['hospital']}", action="medical.refund",
                 subject=row["card_number"], details={"claim_id": row["claim_id"], "total_fen": row["total_fen"]})


# ----------------------------------------------------------------------------- views


def get_claim(uow: UnitOfWork, claim_id: str) -> dict[str, Any] | None:
    row = uow.get(MedicalRepository).claim(claim_id)
    return None if row is None else claim_view(uow, row)


def claim_view(uow: UnitOfWork, row: dict[str, Any], *, with_account: bool = True) -> dict[str, Any]:
    """A claim as the CLI shows it (stable keys, README "Medical settlement")."""
    split = json.loads(row["split"])
    hospital = ref.hospital(row["hospital"])
    return {
        "claim_id": row["claim_id"], "status": row["status"], "mode": row["mode"],
        "card_number": row["card_number"], "hospital": row["hospital"], "hospital_name": hospital.name,
        "hospital_level": row["hospital_level"], "hospital_node": row["hospital_node"],
        "insured_node": node_of_db(uow.db), "year": row["year"], "at": row["at"],
        "total_fen": row["total_fen"], "fund_fen": row["fund_fen"], "account_fen": row["account_fen"],
        "self_fen": row["self_fen"], "deductible_fen": row["deductible_fen"],
        "self_first_fen": split.get("self_first_fen", 0), "ratio_pct": row["ratio_pct"],
        "cap_reached": bool(row["cap_reached"]), "cross_region": bool(row["cross_region"]),
        "registered": bool(row["registered"]), "referral_or_emergency": bool(row["referral_or_emergency"]),
        "insurance_type": row["insurance_type"], "retired": bool(row["retired"]),
        "use_account": bool(row["use_account"]), "self_pay": row["self_pay"],
        "offline_self_fen": row["offline_self_fen"], "adjustment_fen": row["adjustment_fen"],
        "owed_fen": row["owed_fen"], "owed_settled_at": row.get("owed_settled_at"), "items": split["items"],
        "before": split["before"], "after": split["after"],
        "personal_account_fen": account_balance(uow, row["citizen_id"]) if with_account else None,
        "refund_of": row["refund_of"], "txn_id": row["txn_id"], "reversal_txn_id": row["reversal_txn_id"],
        "recorded_at": row["recorded_at"], "refunded_at": row["refunded_at"],
        **terms_view(row, split),
    }


def terms_view(row: dict[str, Any], split: dict[str, Any]) -> dict[str, Any]:
    """The claim's episode, visit, cross-region terms and provenance (README "Medical settlement").

    A claim stored before these existed reads as outpatient with no kind or cut recorded,
    and its figures as illustrative (where they came from was not recorded).
    """
    return {
        "episode": row.get("episode") or medical.OUTPATIENT, "visit": _visit_of(row),
        "registration_kind": row.get("registration_kind"), "cut_points": row.get("cut_points"),
        "band_ratio_pct": split.get("band_ratio_pct"),
        "source": split.get("source", []), "confidence": split.get("confidence", "illustrative"),
        "illustrative": split.get("illustrative", True),
    }


def claims(uow: UnitOfWork, *, card_number: str | None = None,
           hospital: str | None = None) -> list[dict[str, Any]]:
    """This region's claims (of its insured), newest last, optionally one card's or one hospital's."""
    return [claim_view(uow, row, with_account=False)
            for row in uow.get(MedicalRepository).claims(card_number=card_number, hospital=hospital)]
