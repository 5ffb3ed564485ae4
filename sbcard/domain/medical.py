"""Medical settlement (一卡通结) as pure rules: split a claim into pooled fund, personal account and self-pay.

A claim is settled with the **place of treatment's catalogue** and the **insured region's
policy** (就医地目录、参保地政策): the catalogue says what each item is (甲类 ``A`` fully
eligible, 乙类 ``B`` with a share the patient pays first, 丙类 ``C`` not covered); the policy
says how much of the eligible money the pooled fund pays (annual deductible 起付线 and ratio
by hospital level, annual cap 封顶线). The figures, their sources and which are illustrative
are in ``fixtures/medical/README.md``; ``sbcard.reference.medical`` loads them.

Each item, in the order of the claim:

1. ``amount = quantity × unit price``;
2. ``self_first``: the whole amount of a 丙类 item, ``amount × pct // 100`` (floor) of a 乙类
   item, nothing for a 甲类 item; ``eligible = amount − self_first``;
3. the deductible part: ``min(eligible, what is left of the level's annual deductible)``, where
   what is left counts what the year has paid already and what earlier items of this claim paid;
4. ``fund = min((eligible − deductible part) × ratio // 100, what is left of the annual cap)``;
5. the rest of the amount is the person's share; the personal account (when the holder uses
   it) pays the person's share of in-catalogue money — everything but a 丙类 item, i.e.
   deductible, co-pay, 乙类 self-first and what the fund did not pay above the cap — item by
   item until it is exhausted; ``self = amount − fund − account``.

Floors always favour the fund's arithmetic being exact: the patient's share absorbs every
fraction of a fen, so ``fund + account + self == amount`` holds for each item and the claim.

**Episodes (就诊类型).** A claim is an outpatient visit (门(急)诊) or an inpatient stay (住院,
one claim = one admission's discharge settlement), each with its own policy row: its own
deductible (``deductible_basis`` ``year``: the year's accumulator for that episode type;
``admission``: in full at every admission), ratios by level, cap (``None``: no cap) and an
optional **band** (``band_fen``): once the year's eligible outpatient money (for an
inpatient episode: the admission's) passes ``band_fen``, what lies above it is paid at
``band_ratio_pct`` (Beijing's employee outpatient rule above 20,000 yuan). The deductible
takes the bottom of the eligible money; the band edge is measured on eligible money
including the deductible (``19,999.99`` yuan is below it, ``20,000.01`` has one fen above).

**Cross-region care (国医保发〔2022〕22号).** A cross-region patient's ratio (the level's and
the band's) is cut by ``Circumstances.cut_points``, decided by ``cross_region_terms`` from
the insured region's ``CrossRegionRules`` (data, each figure with its source): the
registration kind valid on the day of treatment (long-term residents: 0), an emergency
(视同备案), a declared referral, the Jing-Jin-Ji same-treatment switch, else the region's
rule for an unregistered patient; never more than the national caps (``NationalCaps``),
never below 0. Without a ``cut_points`` (an old caller) the national caps apply as before:
10 points for a referral or emergency, 20 otherwise, nothing when registered.
The deductibles and the caps are per calendar year: ``YearToDate`` is one holder's year,
a new year starts at 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import attrs

import datetime as dt

from sbcard.domain.errors import InvalidInput, RuleRefused
from sbcard.domain.money import parse_yuan
from sbcard.domain.sources import ILLUSTRATIVE_ONLY, Provenance, combine

CLASSES: tuple[str, ...] = ("A", "B", "C")  # 甲 乙 丙
CLASS_NAMES: dict[str, str] = {"A": "甲类", "B": "乙类", "C": "丙类"}
LEVELS: tuple[int, ...] = (1, 2, 3)  # 一级 二级 三级
LEVEL_NAMES: dict[int, str] = {1: "一级", 2: "二级", 3: "三级"}
EMPLOYEE, RESIDENT = "employee", "resident"  # 职工医保, 城乡居民医保
INSURANCE_TYPES: tuple[str, ...] = (EMPLOYEE, RESIDENT)
PROVINCES: tuple[str, ...] = ("110000", "120000", "130000")

# Points off the level's ratio for a cross-region patient who did not register, for a caller
# that gives no cut of its own (the national caps of 国医保发〔2022〕22号; the caps themselves are
# data in fixtures/medical/national.csv, checked equal to these by the tests).
UNREGISTERED_REFERRAL_POINTS = 10  # 转诊 or 急诊
UNREGISTERED_OTHER_POINTS = 20

OUTPATIENT, INPATIENT = "outpatient", "inpatient"  # 门(急)诊, 住院
EPISODES: tuple[str, ...] = (OUTPATIENT, INPATIENT)
PER_YEAR, PER_ADMISSION = "year", "admission"
DEDUCTIBLE_BASES: tuple[str, ...] = (PER_YEAR, PER_ADMISSION)

# Registration kinds (异地就医备案) of 国医保发〔2022〕22号, and how a visit is declared.
RETIRED_RESETTLED = "retired_resettled"  # 异地安置退休人员
LONG_TERM_RESIDENT = "long_term_resident"  # 异地长期居住人员
POSTED_WORKER = "posted_worker"  # 常驻异地工作人员
REFERRAL = "referral"  # 异地转诊就医人员
EMERGENCY = "emergency"  # 异地急诊抢救人员 (视同已备案: a fact of the visit, not registered)
OTHER_TEMPORARY = "other_temporary"  # 其他临时外出就医人员
LONG_TERM_KINDS: tuple[str, ...] = (RETIRED_RESETTLED, LONG_TERM_RESIDENT, POSTED_WORKER)
TEMPORARY_KINDS: tuple[str, ...] = (REFERRAL, EMERGENCY, OTHER_TEMPORARY)
REGISTRABLE_KINDS: tuple[str, ...] = (*LONG_TERM_KINDS, REFERRAL, OTHER_TEMPORARY)
UNREGISTERED = "unregistered"  # no registration valid that day, no emergency, no referral
JJJ_DEEMED = "jjj_deemed"  # treated inside Jing-Jin-Ji: 视同备案 (a switch in the data)
LOCAL = "local"  # not cross-region
TERMS_KINDS: tuple[str, ...] = (*LONG_TERM_KINDS, *TEMPORARY_KINDS, UNREGISTERED, JJJ_DEEMED)
KIND_NAMES: dict[str, str] = {
    RETIRED_RESETTLED: "异地安置退休", LONG_TERM_RESIDENT: "异地长期居住", POSTED_WORKER: "常驻异地工作",
    REFERRAL: "异地转诊", EMERGENCY: "异地急诊抢救", OTHER_TEMPORARY: "其他临时外出就医",
    UNREGISTERED: "未备案", JJJ_DEEMED: "京津冀视同备案", LOCAL: "本地",
}
VISITS: tuple[str, ...] = ("", REFERRAL, EMERGENCY)  # what the hospital declares of the visit
# The national cap that bounds each kind's cut (unregistered and Jing-Jin-Ji: as other temporary).
CAP_OF_KIND: dict[str, str] = {**{k: "long_term" for k in LONG_TERM_KINDS}, REFERRAL: REFERRAL,
                               EMERGENCY: EMERGENCY, OTHER_TEMPORARY: OTHER_TEMPORARY,
                               UNREGISTERED: OTHER_TEMPORARY, JJJ_DEEMED: OTHER_TEMPORARY}
CAP_RULES: tuple[str, ...] = ("long_term", REFERRAL, EMERGENCY, OTHER_TEMPORARY)

# Bounds of one claim line: beyond them the line is a typo, not a prescription.
MAX_QUANTITY = 9_999
MAX_UNIT_PRICE_FEN = 100_000_000  # 1,000,000 yuan
MAX_LINES = 1_000  # a claim's lines (a long stay's bill has hundreds): totals stay far below SQLite's integer limit

ITEM_FIELDS = ("code", "quantity", "price")


def province_of(region: str) -> str:
    """The province (GB/T 2260) of a 6-digit region code: its first two digits and ``0000``."""
    return region[:2] + "0000"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _non_negative(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not _is_int(value) or value < 0:
        raise ValueError(f"{attribute.name} must be an int ≥ 0, got {value!r}")


def _region_code(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not (isinstance(value, str) and len(value) == 6 and value.isascii() and value.isdigit()):
        raise ValueError(f"{attribute.name} must be a 6-digit region code, got {value!r}")


def _level(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value not in LEVELS or not _is_int(value):
        raise ValueError(f"{attribute.name} must be a hospital level 1, 2 or 3, got {value!r}")


def _by_level(value: Mapping[int, int]) -> Mapping[int, int]:
    """A read-only copy keyed by level: a Policy that exists cannot be changed in place."""
    return MappingProxyType(dict(value))


# --------------------------------------------------------------------------- reference values


@attrs.frozen
class Hospital:
    """A designated hospital (定点医疗机构): where a claim is made, and at what level."""

    code: str = attrs.field(validator=attrs.validators.min_len(1))  # BJH001, TJH001, HEH001 …
    name: str = attrs.field(validator=attrs.validators.min_len(1))
    region: str = attrs.field(validator=_region_code)  # county or city code in regions.csv
    level: int = attrs.field(validator=_level)

    @property
    def province(self) -> str:
        """Whose catalogue applies here (就医地目录)."""
        return province_of(self.region)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "region": self.region, "level": self.level}


@attrs.frozen
class CatalogueItem:
    """One drug or service of a province's catalogue (医保目录) and its class.

    ``self_first_pct`` is the 乙类 share the patient pays before anything else (先行自付);
    it is 0 for 甲类 and 100 for 丙类 by definition, so a row saying otherwise is refused.
    """

    region: str = attrs.field(validator=_region_code)  # the province whose catalogue this is
    code: str
    name: str
    cls: str = attrs.field(validator=attrs.validators.in_(CLASSES))
    price_fen: int = attrs.field(validator=_non_negative)  # the reference price
    self_first_pct: int = attrs.field(validator=_non_negative)
    provenance: Provenance = attrs.field(default=ILLUSTRATIVE_ONLY, eq=False)  # the row's price and class

    def __attrs_post_init__(self) -> None:
        if not self.code or not self.code.isascii() or not self.code.isalnum():
            raise ValueError(f"a catalogue code is ASCII letters and digits, got {self.code!r}")
        expected = {"A": (0, 0), "B": (0, 100), "C": (100, 100)}[self.cls]
        if not expected[0] <= self.self_first_pct <= expected[1]:
            raise ValueError(f"{self.code}: class {self.cls} cannot have self_first_pct {self.self_first_pct}")

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "class": self.cls, "price_fen": self.price_fen,
                "self_first_pct": self.self_first_pct, **self.provenance.to_json()}


def _optional_non_negative(_inst: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None:
        _non_negative(_inst, attribute, value)


@attrs.frozen
class Policy:
    """One insured region's rules for one kind of holder and episode (参保地政策): type × retired × episode.

    ``cap_fen`` ``None``: no annual cap. ``band_fen`` (``None``: no band): eligible money above
    it is paid at ``band_ratio_pct``. ``provenance`` is the row's; ``band_provenance`` the
    band's figures' (they may be less trusted than the row). ``illustrative`` and ``source``
    say the same for callers that read them.
    """

    region: str = attrs.field(validator=_region_code)  # province code
    insurance_type: str = attrs.field(validator=attrs.validators.in_(INSURANCE_TYPES))
    retired: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    deductible_fen: Mapping[int, int] = attrs.field(converter=_by_level, hash=False)  # 起付线 by level
    ratio_pct: Mapping[int, int] = attrs.field(converter=_by_level, hash=False)  # pooled-fund share by level
    cap_fen: int | None = attrs.field(validator=_optional_non_negative)  # annual 封顶线 of the pooled fund
    personal_account_annual_fen: int = attrs.field(validator=_non_negative)
    offline_limit_fen: int = attrs.field(validator=_non_negative)  # DF04/EF06 offline limit
    illustrative: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    source: str = ""
    episode: str = attrs.field(default=OUTPATIENT, validator=attrs.validators.in_(EPISODES))
    deductible_basis: str = attrs.field(default=PER_YEAR, validator=attrs.validators.in_(DEDUCTIBLE_BASES))
    band_fen: int | None = attrs.field(default=None, validator=_optional_non_negative)
    band_ratio_pct: int | None = attrs.field(default=None, validator=_optional_non_negative)
    provenance: Provenance = attrs.field(default=ILLUSTRATIVE_ONLY, eq=False)
    band_provenance: Provenance = attrs.field(default=ILLUSTRATIVE_ONLY, eq=False)

    def __attrs_post_init__(self) -> None:
        for name in ("deductible_fen", "ratio_pct"):
            table = getattr(self, name)
            if set(table) != set(LEVELS):
                raise ValueError(f"{name} must give levels {LEVELS}, got {sorted(table)}")
            if any(not _is_int(v) or v < 0 for v in table.values()):
                raise ValueError(f"{name} values must be ints ≥ 0, got {dict(table)}")
        if any(v > 100 for v in self.ratio_pct.values()):
            raise ValueError(f"ratio_pct cannot exceed 100, got {dict(self.ratio_pct)}")
        if (self.band_fen is None) != (self.band_ratio_pct is None):
            raise ValueError("a band has both an edge (band_fen) and a ratio (band_ratio_pct), or neither")
        if self.band_ratio_pct is not None and self.band_ratio_pct > 100:
            raise ValueError(f"band_ratio_pct cannot exceed 100, got {self.band_ratio_pct}")
        if self.insurance_type == RESIDENT and self.personal_account_annual_fen:
            raise ValueError("residents' insurance has no personal account")

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region, "insurance_type": self.insurance_type, "retired": self.retired,
            "episode": self.episode, "deductible_basis": self.deductible_basis,
            "deductible_fen": {str(k): v for k, v in sorted(self.deductible_fen.items())},
            "ratio_pct": {str(k): v for k, v in sorted(self.ratio_pct.items())},
            "band_fen": self.band_fen, "band_ratio_pct": self.band_ratio_pct,
            "cap_fen": self.cap_fen, "personal_account_annual_fen": self.personal_account_annual_fen,
            "offline_limit_fen": self.offline_limit_fen, **self.provenance.to_json(),
            "band": None if self.band_fen is None else self.band_provenance.to_json(),
        }


@attrs.frozen
class NationalCaps:
    """The most points a region may cut for each kind (国医保发〔2022〕22号), as data with its source."""

    points: Mapping[str, int] = attrs.field(converter=lambda v: MappingProxyType(dict(v)), hash=False)
    provenance: Provenance = attrs.field(default=ILLUSTRATIVE_ONLY, eq=False)

    def __attrs_post_init__(self) -> None:
        if set(self.points) != set(CAP_RULES):
            raise ValueError(f"national caps must give {', '.join(CAP_RULES)}, got {', '.join(sorted(self.points))}")
        if any(not _is_int(v) or not 0 <= v <= 100 for v in self.points.values()):
            raise ValueError(f"national caps are points 0…100, got {dict(self.points)}")

    def of_kind(self, kind: str) -> int:
        return self.points[CAP_OF_KIND[kind]]


@attrs.frozen
class KindTerms:
    """One insured region's cut for one kind, with its source; ``on`` False: the rule does not apply."""

    kind: str = attrs.field(validator=attrs.validators.in_(TERMS_KINDS))
    cut_points: int = attrs.field(validator=_non_negative)
    provenance: Provenance = attrs.field(default=ILLUSTRATIVE_ONLY, eq=False)
    on: bool = True
    valid_from: dt.date | None = None  # the rule's first day (None: no known start; it applies)

    def applies_on(self, day: dt.date) -> bool:
        return self.on and (self.valid_from is None or day >= self.valid_from)


@attrs.frozen
class CrossRegionRules:
    """An insured region's cross-region terms (参保地 sets the cut, within the national caps)."""

    region: str = attrs.field(validator=_region_code)
    kinds: Mapping[str, KindTerms] = attrs.field(converter=lambda v: MappingProxyType(dict(v)), hash=False)

    def check(self, caps: NationalCaps) -> None:
        """``ValueError`` naming the kind when a kind is missing or cuts more than the national cap."""
        missing = [k for k in TERMS_KINDS if k not in self.kinds]
        if missing:
            raise ValueError(f"{self.region}: no cross-region terms for {', '.join(missing)}")
        for kind, terms in self.kinds.items():
            if terms.cut_points > caps.of_kind(kind):
                raise ValueError(f"{self.region}: the {kind} cut of {terms.cut_points} points exceeds the national "
                                 f"cap of {caps.of_kind(kind)} (国医保发〔2022〕22号)")
            if not terms.on and kind != JJJ_DEEMED:
                raise ValueError(f"{self.region}: only the {JJJ_DEEMED} rule can be switched off, not {kind}")


@attrs.frozen
class Registration:
    """A holder's cross-region registration (异地就医备案) kept by the insured region.

    ``province`` is the place of treatment's province; ``valid_to`` ``None``: open-ended (a
    long-term registration); both dates count (valid from the first day to the last).
    """

    kind: str = attrs.field(validator=attrs.validators.in_(REGISTRABLE_KINDS))
    province: str = attrs.field(validator=_region_code)
    valid_from: dt.date = attrs.field(validator=attrs.validators.instance_of(dt.date))
    valid_to: dt.date | None = None
    id: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError("a registration ends on or after its first day")

    def valid_on(self, day: dt.date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


@attrs.frozen
class Terms:
    """The cross-region terms one claim is settled on: the kind, the cut, where the cut comes from."""

    kind: str
    cut_points: int
    provenance: Provenance = attrs.field(default=ILLUSTRATIVE_ONLY, eq=False)
    registration_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"registration_kind": self.kind, "cut_points": self.cut_points,
                "registration_id": self.registration_id}


def in_jing_jin_ji(province: str) -> bool:
    return province in PROVINCES


def cross_region_terms(rules: CrossRegionRules, *, insured_province: str, treated_province: str,
                       day: dt.date, registration: Registration | None = None, visit: str = "") -> Terms:
    """The kind and cut of one treatment (see the module doc): the most favourable that applies.

    ``registration`` is the holder's registration valid on ``day`` for ``treated_province``
    (the caller looked it up); ``visit`` what the hospital declares (``referral``,
    ``emergency`` or ``""``). A registration for another province or not valid that day
    is ignored.
    """
    if visit not in VISITS:
        raise InvalidInput("medical.visit", f"{visit!r} is not a referral, an emergency or nothing", "--visit")
    if insured_province == treated_province:
        return Terms(LOCAL, 0)
    if rules.region != insured_province:
        raise ValueError(f"the terms of {rules.region} applied to a holder insured in {insured_province}")
    candidates: list[tuple[str, int | None]] = []
    if registration is not None and registration.province == treated_province and registration.valid_on(day):
        candidates.append((registration.kind, registration.id))
    if visit:
        candidates.append((visit, None))
    jjj = rules.kinds.get(JJJ_DEEMED)
    if (jjj is not None and jjj.applies_on(day) and in_jing_jin_ji(insured_province)
            and in_jing_jin_ji(treated_province)):
        candidates.append((JJJ_DEEMED, None))
    if not candidates:
        candidates.append((UNREGISTERED, None))
    kind, reg_id = min(candidates, key=lambda c: rules.kinds[c[0]].cut_points)
    chosen = rules.kinds[kind]
    return Terms(kind, chosen.cut_points, chosen.provenance, reg_id)


# --------------------------------------------------------------------------- a claim


@attrs.frozen
class ClaimLine:
    """One line of a claim: a catalogue code, how many, at what unit price (fen).

    Bad values are refused here too (field names without the line index: ``parse_lines``
    names ``items[i].field`` before it builds a line).
    """

    code: str
    quantity: int
    unit_price_fen: int

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.code, str) or not self.code.strip():
            raise InvalidInput("medical.item.code", "a catalogue code is needed", "code")
        if not _is_int(self.quantity) or not 0 < self.quantity <= MAX_QUANTITY:
            raise InvalidInput("medical.item.quantity",
                               f"must be a whole number from 1 to {MAX_QUANTITY}, got {self.quantity!r}",
                               "quantity")
        if not _is_int(self.unit_price_fen) or not 0 < self.unit_price_fen <= MAX_UNIT_PRICE_FEN:
            raise InvalidInput("medical.item.price",
                               f"must be more than 0 and at most {MAX_UNIT_PRICE_FEN} fen, "
                               f"got {self.unit_price_fen!r}", "price")

    @property
    def amount_fen(self) -> int:
        return self.quantity * self.unit_price_fen


@attrs.frozen
class YearToDate:
    """One holder's accumulators for one calendar year.

    Outpatient: deductible paid, pooled fund paid, eligible money (for the band). Inpatient:
    deductible paid (it limits only a per-year deductible) and pooled fund paid.
    """

    year: int = attrs.field()
    deductible_paid_fen: int = attrs.field(default=0, validator=_non_negative)
    fund_paid_fen: int = attrs.field(default=0, validator=_non_negative)
    eligible_fen: int = attrs.field(default=0, validator=_non_negative)
    inpatient_deductible_paid_fen: int = attrs.field(default=0, validator=_non_negative)
    inpatient_fund_paid_fen: int = attrs.field(default=0, validator=_non_negative)

    @year.validator
    def _year(self, _attribute: attrs.Attribute, value: Any) -> None:
        if not _is_int(value) or not 1900 <= value <= 9999:
            raise ValueError(f"year must be an int 1900…9999, got {value!r}")

    def deductible_paid(self, episode: str) -> int:
        return self.inpatient_deductible_paid_fen if episode == INPATIENT else self.deductible_paid_fen

    def fund_paid(self, episode: str) -> int:
        return self.inpatient_fund_paid_fen if episode == INPATIENT else self.fund_paid_fen

    def remaining_deductible_fen(self, policy: Policy, level: int) -> int:
        if policy.deductible_basis == PER_ADMISSION:
            return policy.deductible_fen[level]
        return max(0, policy.deductible_fen[level] - self.deductible_paid(policy.episode))

    def remaining_cap_fen(self, policy: Policy) -> int | None:
        if policy.cap_fen is None:
            return None
        return max(0, policy.cap_fen - self.fund_paid(policy.episode))

    def plus(self, episode: str, *, deductible: int, fund: int, eligible: int) -> YearToDate:
        """The year after a claim of ``episode`` added these (negative: taken off, for a refund)."""
        if episode == INPATIENT:
            return attrs.evolve(self, inpatient_deductible_paid_fen=self.inpatient_deductible_paid_fen + deductible,
                                inpatient_fund_paid_fen=self.inpatient_fund_paid_fen + fund)
        return attrs.evolve(self, deductible_paid_fen=self.deductible_paid_fen + deductible,
                            fund_paid_fen=self.fund_paid_fen + fund, eligible_fen=self.eligible_fen + eligible)

    def to_json(self) -> dict[str, Any]:
        return {"year": self.year, "deductible_paid_fen": self.deductible_paid_fen,
                "fund_paid_fen": self.fund_paid_fen, "eligible_fen": self.eligible_fen,
                "inpatient_deductible_paid_fen": self.inpatient_deductible_paid_fen,
                "inpatient_fund_paid_fen": self.inpatient_fund_paid_fen}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> YearToDate:
        """A stored year (receipts stored before the episodes lack the new keys: 0)."""
        return cls(data["year"], data["deductible_paid_fen"], data["fund_paid_fen"], data.get("eligible_fen", 0),
                   data.get("inpatient_deductible_paid_fen", 0), data.get("inpatient_fund_paid_fen", 0))


@attrs.frozen
class Circumstances:
    """Where and how the patient is treated: the hospital's level, the episode, the cross-region cut.

    ``cut_points`` (from ``cross_region_terms``) is what comes off the ratios when
    ``cross_region``; without it, the legacy flags ``registered`` (异地就医备案) and
    ``referral_or_emergency`` decide with the national caps. ``terms`` travels to the receipt.
    """

    hospital_level: int = attrs.field(validator=_level)
    cross_region: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    registered: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    referral_or_emergency: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    episode: str = attrs.field(default=OUTPATIENT, validator=attrs.validators.in_(EPISODES))
    terms: Terms | None = None

    @property
    def cut_points(self) -> int:
        if not self.cross_region:
            return 0
        if self.terms is not None:
            return self.terms.cut_points
        if self.registered:
            return 0
        return UNREGISTERED_REFERRAL_POINTS if self.referral_or_emergency else UNREGISTERED_OTHER_POINTS


@attrs.frozen
class ItemSplit:
    """One line of the receipt: ``amount = fund + account + self``.

    ``self_first_fen`` is the 乙类 先行自付 part, or the whole of a 丙类 item; ``self_fen`` is
    everything the holder pays otherwise (self-first, deductible, co-pay, beyond the cap)
    that the personal account did not pay.
    """

    code: str
    name: str
    cls: str
    quantity: int
    unit_price_fen: int
    amount_fen: int
    self_first_fen: int
    deductible_fen: int
    fund_fen: int
    account_fen: int
    self_fen: int

    def __attrs_post_init__(self) -> None:
        parts = (self.self_first_fen, self.deductible_fen, self.fund_fen, self.account_fen, self.self_fen)
        if min(parts) < 0 or self.fund_fen + self.account_fen + self.self_fen != self.amount_fen:
            raise AssertionError(f"item split does not add up: {self!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code, "name": self.name, "class": self.cls, "quantity": self.quantity,
            "unit_price_fen": self.unit_price_fen, "amount_fen": self.amount_fen,
            "self_first_fen": self.self_first_fen, "deductible_fen": self.deductible_fen,
            "fund_fen": self.fund_fen, "account_fen": self.account_fen, "self_fen": self.self_fen,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ItemSplit:
        return cls(**{f.name: data["class" if f.name == "cls" else f.name] for f in attrs.fields(cls)})


@attrs.frozen
class Settlement:
    """A settled claim: totals, the effective ratio, the receipt's items, the year before/after, where it comes from.

    ``episode``, ``registration_kind`` and ``cut_points`` say on what terms it was settled
    (``None`` in receipts stored before they existed); ``provenance`` combines the policy
    rows and cross-region terms used (an answer is as trusted as its weakest figure).
    """

    total_fen: int
    fund_fen: int
    account_fen: int
    self_fen: int
    deductible_fen: int
    ratio_pct: int
    items: tuple[ItemSplit, ...]
    before: YearToDate
    after: YearToDate
    cap_reached: bool
    episode: str = OUTPATIENT
    registration_kind: str | None = None
    cut_points: int | None = None
    band_ratio_pct: int | None = None  # the band's effective ratio, when the claim reached the band
    provenance: Provenance | None = attrs.field(default=None, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.fund_fen + self.account_fen + self.self_fen != self.total_fen:
            raise AssertionError(f"settlement does not add up: {self!r}")

    @property
    def self_first_fen(self) -> int:
        return sum(i.self_first_fen for i in self.items)

    @property
    def eligible_fen(self) -> int:
        return sum(i.amount_fen - i.self_first_fen for i in self.items)

    def to_json(self) -> dict[str, Any]:
        out = {
            "total_fen": self.total_fen, "fund_fen": self.fund_fen, "account_fen": self.account_fen,
            "self_fen": self.self_fen, "deductible_fen": self.deductible_fen,
            "self_first_fen": self.self_first_fen, "ratio_pct": self.ratio_pct,
            "cap_reached": self.cap_reached, "items": [i.to_json() for i in self.items],
            "before": self.before.to_json(), "after": self.after.to_json(),
            "episode": self.episode, "registration_kind": self.registration_kind, "cut_points": self.cut_points,
            "band_ratio_pct": self.band_ratio_pct,
        }
        if self.provenance is not None:
            out.update(self.provenance.to_json())
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Settlement:
        """A receipt stored as ``to_json()`` back as a value (a refund reads the claim it reverses).

        Receipts stored before episodes and cross-region terms existed read as outpatient
        claims with no kind, cut or provenance recorded.
        """
        return cls(
            total_fen=data["total_fen"], fund_fen=data["fund_fen"], account_fen=data["account_fen"],
            self_fen=data["self_fen"], deductible_fen=data["deductible_fen"], ratio_pct=data["ratio_pct"],
            items=tuple(ItemSplit.from_json(i) for i in data["items"]),
            before=YearToDate.from_json(data["before"]), after=YearToDate.from_json(data["after"]),
            cap_reached=data["cap_reached"], episode=data.get("episode") or OUTPATIENT,
            registration_kind=data.get("registration_kind"), cut_points=data.get("cut_points"),
            band_ratio_pct=data.get("band_ratio_pct"),
        )


# --------------------------------------------------------------------------- rules


def effective_ratio(policy: Policy, c: Circumstances) -> int:
    """The pooled fund's percent for this treatment: the level's, less the cross-region cut (never below 0)."""
    return max(0, policy.ratio_pct[c.hospital_level] - c.cut_points)


def effective_band_ratio(policy: Policy, c: Circumstances) -> int | None:
    """The percent above the band, less the same cut; ``None`` when the policy has no band."""
    if policy.band_ratio_pct is None:
        return None
    return max(0, policy.band_ratio_pct - c.cut_points)


def _catalogue_region(catalogue: Mapping[str, CatalogueItem]) -> str:
    for item in catalogue.values():
        return item.region
    return "place of treatment's"


def settle(lines: Sequence[ClaimLine], catalogue: Mapping[str, CatalogueItem], policy: Policy,
           ytd: YearToDate, c: Circumstances, *, account_available_fen: int = 0) -> Settlement:
    """Split a claim item by item (see the module's docstring) and give the year after it.

    ``catalogue`` is the place of treatment's (code → item), ``policy`` the insured region's
    for the claim's episode, ``ytd`` the holder's accumulators for the year of the claim,
    ``account_available_fen`` the personal-account balance the holder lets the claim use
    (0: not used).
    """
    if not lines:
        raise InvalidInput("medical.items.empty", "a claim needs at least one item", "items")
    if not _is_int(account_available_fen) or account_available_fen < 0:
        raise InvalidInput("medical.account", f"must be an int ≥ 0 of fen, got {account_available_fen!r}",
                           "account_available_fen")
    if policy.episode != c.episode:
        raise ValueError(f"a {c.episode} claim settled with a {policy.episode} policy")
    items_of: list[CatalogueItem] = []
    for i, line in enumerate(lines):
        item = catalogue.get(line.code)
        if item is None:
            raise InvalidInput("medical.item.unknown",
                               f"{line.code!r} is not in the {_catalogue_region(catalogue)} catalogue",
                               f"items[{i}].code")
        items_of.append(item)

    ratio = effective_ratio(policy, c)
    band_ratio = effective_band_ratio(policy, c)
    deductible_left = ytd.remaining_deductible_fen(policy, c.hospital_level)
    cap_left = ytd.remaining_cap_fen(policy)
    # where the band is measured from: the year's eligible outpatient money, or the admission's
    position = ytd.eligible_fen if policy.episode == OUTPATIENT else 0
    account_left = account_available_fen
    truncated = band_reached = False
    splits = []
    for line, item in zip(lines, items_of):
        amount = line.amount_fen
        if item.cls == "C":
            self_first = amount
        elif item.cls == "B":
            self_first = amount * item.self_first_pct // 100
        else:
            self_first = 0
        eligible = amount - self_first
        deductible = min(eligible, deductible_left)
        deductible_left -= deductible
        payable = eligible - deductible
        if policy.band_fen is None or band_ratio is None:
            wanted = payable * ratio // 100
        else:
            below = min(payable, max(0, policy.band_fen - (position + deductible)))
            above = payable - below
            band_reached = band_reached or above > 0
            wanted = below * ratio // 100 + above * band_ratio // 100
        position += eligible
        fund = wanted if cap_left is None else min(wanted, cap_left)
        truncated = truncated or fund < wanted
        if cap_left is not None:
            cap_left -= fund
        in_catalogue_share = 0 if item.cls == "C" else amount - fund
        account = min(in_catalogue_share, account_left)
        account_left -= account
        splits.append(ItemSplit(
            code=item.code, name=item.name, cls=item.cls, quantity=line.quantity,
            unit_price_fen=line.unit_price_fen, amount_fen=amount, self_first_fen=self_first,
            deductible_fen=deductible, fund_fen=fund, account_fen=account,
            self_fen=amount - fund - account,
        ))
    deductible_total = sum(s.deductible_fen for s in splits)
    fund_total = sum(s.fund_fen for s in splits)
    eligible_total = sum(s.amount_fen - s.self_first_fen for s in splits)
    after = ytd.plus(policy.episode, deductible=deductible_total, fund=fund_total, eligible=eligible_total)
    terms = c.terms
    used = [policy.provenance] + ([policy.band_provenance] if band_reached else [])
    if terms is not None and c.cross_region:
        used.append(terms.provenance)
    cap_reached = policy.cap_fen is not None and (truncated or after.fund_paid(policy.episode) >= policy.cap_fen)
    return Settlement(
        total_fen=sum(s.amount_fen for s in splits), fund_fen=fund_total,
        account_fen=sum(s.account_fen for s in splits), self_fen=sum(s.self_fen for s in splits),
        deductible_fen=deductible_total, ratio_pct=ratio, items=tuple(splits), before=ytd, after=after,
        cap_reached=cap_reached, episode=policy.episode,
        registration_kind=(terms.kind if terms is not None else (None if c.cross_region else LOCAL)),
        cut_points=c.cut_points, band_ratio_pct=band_ratio if band_reached else None, provenance=combine(used),
    )


def reverse(ytd_now: YearToDate, s: Settlement) -> YearToDate:
    """The accumulators as if ``s`` had never happened (a refund, 退费), from today's.

    Later claims of the same year stay counted: only ``s``'s deductible, fund (and, for an
    outpatient claim, eligible money) come off. Refused when ``ytd_now`` is another year's,
    or holds less than ``s`` added (it cannot be the year ``s`` was settled into).
    """
    if ytd_now.year != s.after.year:
        raise RuleRefused("medical.refund.year",
                          f"the claim was settled in {s.after.year}; the accumulators given are {ytd_now.year}'s")
    eligible = s.after.eligible_fen - s.before.eligible_fen if s.episode == OUTPATIENT else 0
    eligible = min(eligible, ytd_now.eligible_fen)  # a receipt stored before the band counted no eligible money
    if (ytd_now.deductible_paid(s.episode) < s.deductible_fen or ytd_now.fund_paid(s.episode) < s.fund_fen):
        raise RuleRefused("medical.refund.larger",
                          "the refund is larger than what the year's accumulators hold")
    return ytd_now.plus(s.episode, deductible=-s.deductible_fen, fund=-s.fund_fen, eligible=-eligible)


def parse_lines(rows: Iterable[Mapping[str, Any]]) -> list[ClaimLine]:
    """Rows of an items file (``code, quantity, price`` — price in yuan text like ``"12.50"``) → lines.

    Quantity is a whole number (text or int); price is yuan text (a JSON number is read
    through its shortest text, so ``12.5`` is 12.50 yuan). Every error names ``items[i].field``.
    """
    out = []
    for i, row in enumerate(rows):
        if i >= MAX_LINES:
            raise InvalidInput("medical.items.too_many", f"a claim has at most {MAX_LINES:,} lines", "items")
        if not isinstance(row, Mapping):
            raise InvalidInput("medical.item.format", "an item must have code, quantity and price", f"items[{i}]")
        for name in ITEM_FIELDS:
            value = row.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise InvalidInput("medical.item.missing", f"{name} is missing", f"items[{i}].{name}")
        code = str(row["code"]).strip()
        quantity = _parse_quantity(row["quantity"], f"items[{i}].quantity")
        price = _parse_price(row["price"], f"items[{i}].price")
        try:
            out.append(ClaimLine(code, quantity, price))
        except InvalidInput as e:
            raise InvalidInput(e.code, e.message, f"items[{i}].{e.field}") from None
    if not out:
        raise InvalidInput("medical.items.empty", "a claim needs at least one item", "items")
    return out


def _parse_quantity(value: Any, field: str) -> int:
    if _is_int(value):
        quantity = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        quantity = int(value.strip())
    else:
        raise InvalidInput("medical.item.quantity", f"{value!r} is not a whole number of units", field)
    if not 0 < quantity <= MAX_QUANTITY:
        raise InvalidInput("medical.item.quantity", f"must be from 1 to {MAX_QUANTITY}, got {quantity}", field)
    return quantity


def _parse_price(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise InvalidInput("medical.item.price", f"{value!r} is not a price in yuan", field)
    text = repr(value) if isinstance(value, (int, float)) else value
    if not isinstance(text, str):
        raise InvalidInput("medical.item.price", f"{value!r} is not a price in yuan", field)
    fen = parse_yuan(text, field=field)
    if not 0 < fen <= MAX_UNIT_PRICE_FEN:
        raise InvalidInput("medical.item.price",
                           f"must be more than 0 and at most {MAX_UNIT_PRICE_FEN // 100} yuan, got {text.strip()}",
                           field)
    return fen
