"""Medical settlement (一卡通结) as pure rules: split a claim into pooled fund, personal account and self-pay.

A claim is settled with the **place of treatment's catalogue** and the **insured region's
policy** (就医地目录、参保地政策): the catalogue says what each item is (甲类 ``A`` fully
eligible, 乙类 ``B`` with a share the patient pays first, 丙类 ``C`` not covered); the policy
says how much of the eligible money the pooled fund pays (annual deductible 起付线 and ratio
by hospital level, annual cap 封顶线). The figures, their sources and which are illustrative
are in ``fixtures/medical/README.md``; ``sbcard.medical_reference`` loads them.

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

A cross-region patient (hospital province ≠ insured province) who did not register for
treatment elsewhere (异地就医备案) gets the level's ratio **10 points lower** when referred or
treated as an emergency, **20 points lower** otherwise (never below 0). The deductible and
the cap are per calendar year: ``YearToDate`` is one holder's year, a new year starts at 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import attrs

from sbcard.domain.errors import InvalidInput, RuleRefused
from sbcard.domain.money import parse_yuan

CLASSES: tuple[str, ...] = ("A", "B", "C")  # 甲 乙 丙
CLASS_NAMES: dict[str, str] = {"A": "甲类", "B": "乙类", "C": "丙类"}
LEVELS: tuple[int, ...] = (1, 2, 3)  # 一级 二级 三级
LEVEL_NAMES: dict[int, str] = {1: "一级", 2: "二级", 3: "三级"}
EMPLOYEE, RESIDENT = "employee", "resident"  # 职工医保, 城乡居民医保
INSURANCE_TYPES: tuple[str, ...] = (EMPLOYEE, RESIDENT)
PROVINCES: tuple[str, ...] = ("110000", "120000", "130000")

# Points off the level's ratio for a cross-region patient who did not register (issue 6).
UNREGISTERED_REFERRAL_POINTS = 10  # 转诊 or 急诊
UNREGISTERED_OTHER_POINTS = 20

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

    def __attrs_post_init__(self) -> None:
        if not self.code or not self.code.isascii() or not self.code.isalnum():
            raise ValueError(f"a catalogue code is ASCII letters and digits, got {self.code!r}")
        expected = {"A": (0, 0), "B": (0, 100), "C": (100, 100)}[self.cls]
        if not expected[0] <= self.self_first_pct <= expected[1]:
            raise ValueError(f"{self.code}: class {self.cls} cannot have self_first_pct {self.self_first_pct}")

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "class": self.cls, "price_fen": self.price_fen,
                "self_first_pct": self.self_first_pct}


@attrs.frozen
class Policy:
    """One insured region's rules for one kind of holder (参保地政策): type × retired."""

    region: str = attrs.field(validator=_region_code)  # province code
    insurance_type: str = attrs.field(validator=attrs.validators.in_(INSURANCE_TYPES))
    retired: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    deductible_fen: Mapping[int, int] = attrs.field(converter=_by_level, hash=False)  # annual 起付线 by level
    ratio_pct: Mapping[int, int] = attrs.field(converter=_by_level, hash=False)  # pooled-fund share by level
    cap_fen: int = attrs.field(validator=_non_negative)  # annual 封顶线 of the pooled fund
    personal_account_annual_fen: int = attrs.field(validator=_non_negative)
    offline_limit_fen: int = attrs.field(validator=_non_negative)  # DF04/EF06 offline limit
    illustrative: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    source: str = ""

    def __attrs_post_init__(self) -> None:
        for name in ("deductible_fen", "ratio_pct"):
            table = getattr(self, name)
            if set(table) != set(LEVELS):
                raise ValueError(f"{name} must give levels {LEVELS}, got {sorted(table)}")
            if any(not _is_int(v) or v < 0 for v in table.values()):
                raise ValueError(f"{name} values must be ints ≥ 0, got {dict(table)}")
        if any(v > 100 for v in self.ratio_pct.values()):
            raise ValueError(f"ratio_pct cannot exceed 100, got {dict(self.ratio_pct)}")
        if self.insurance_type == RESIDENT and self.personal_account_annual_fen:
            raise ValueError("residents' insurance has no personal account")

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region, "insurance_type": self.insurance_type, "retired": self.retired,
            "deductible_fen": {str(k): v for k, v in sorted(self.deductible_fen.items())},
            "ratio_pct": {str(k): v for k, v in sorted(self.ratio_pct.items())},
            "cap_fen": self.cap_fen, "personal_account_annual_fen": self.personal_account_annual_fen,
            "offline_limit_fen": self.offline_limit_fen, "illustrative": self.illustrative,
            "source": self.source,
        }


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
    """One holder's accumulators for one calendar year: deductible paid, pooled fund paid."""

    year: int = attrs.field()
    deductible_paid_fen: int = attrs.field(default=0, validator=_non_negative)
    fund_paid_fen: int = attrs.field(default=0, validator=_non_negative)

    @year.validator
    def _year(self, _attribute: attrs.Attribute, value: Any) -> None:
        if not _is_int(value) or not 1900 <= value <= 9999:
            raise ValueError(f"year must be an int 1900…9999, got {value!r}")

    def remaining_deductible_fen(self, policy: Policy, level: int) -> int:
        return max(0, policy.deductible_fen[level] - self.deductible_paid_fen)

    def remaining_cap_fen(self, policy: Policy) -> int:
        return max(0, policy.cap_fen - self.fund_paid_fen)

    def to_json(self) -> dict[str, Any]:
        return {"year": self.year, "deductible_paid_fen": self.deductible_paid_fen,
                "fund_paid_fen": self.fund_paid_fen}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> YearToDate:
        return cls(data["year"], data["deductible_paid_fen"], data["fund_paid_fen"])


@attrs.frozen
class Circumstances:
    """Where and how the patient is treated: the hospital's level, and the cross-region flags.

    ``registered`` (异地就医备案) and ``referral_or_emergency`` (转诊 / 急诊) only matter when
    ``cross_region``.
    """

    hospital_level: int = attrs.field(validator=_level)
    cross_region: bool = attrs.field(validator=attrs.validators.instance_of(bool))
    registered: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    referral_or_emergency: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))


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
    """A settled claim: totals, the effective ratio, the receipt's items and the year before/after."""

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

    def __attrs_post_init__(self) -> None:
        if self.fund_fen + self.account_fen + self.self_fen != self.total_fen:
            raise AssertionError(f"settlement does not add up: {self!r}")

    @property
    def self_first_fen(self) -> int:
        return sum(i.self_first_fen for i in self.items)

    def to_json(self) -> dict[str, Any]:
        return {
            "total_fen": self.total_fen, "fund_fen": self.fund_fen, "account_fen": self.account_fen,
            "self_fen": self.self_fen, "deductible_fen": self.deductible_fen,
            "self_first_fen": self.self_first_fen, "ratio_pct": self.ratio_pct,
            "cap_reached": self.cap_reached, "items": [i.to_json() for i in self.items],
            "before": self.before.to_json(), "after": self.after.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Settlement:
        """A receipt stored as ``to_json()`` back as a value (a refund reads the claim it reverses)."""
        return cls(
            total_fen=data["total_fen"], fund_fen=data["fund_fen"], account_fen=data["account_fen"],
            self_fen=data["self_fen"], deductible_fen=data["deductible_fen"], ratio_pct=data["ratio_pct"],
            items=tuple(ItemSplit.from_json(i) for i in data["items"]),
            before=YearToDate.from_json(data["before"]), after=YearToDate.from_json(data["after"]),
            cap_reached=data["cap_reached"],
        )


# --------------------------------------------------------------------------- rules


def effective_ratio(policy: Policy, c: Circumstances) -> int:
    """The pooled fund's percent for this treatment: the level's, less the unregistered cross-region points."""
    ratio = policy.ratio_pct[c.hospital_level]
    if c.cross_region and not c.registered:
        ratio -= UNREGISTERED_REFERRAL_POINTS if c.referral_or_emergency else UNREGISTERED_OTHER_POINTS
    return max(0, ratio)


def _catalogue_region(catalogue: Mapping[str, CatalogueItem]) -> str:
    for item in catalogue.values():
        return item.region
    return "place of treatment's"


def settle(lines: Sequence[ClaimLine], catalogue: Mapping[str, CatalogueItem], policy: Policy,
           ytd: YearToDate, c: Circumstances, *, account_available_fen: int = 0) -> Settlement:
    """Split a claim item by item (see the module's docstring) and give the year after it.

    ``catalogue`` is the place of treatment's (code → item), ``policy`` the insured region's,
    ``ytd`` the holder's accumulators for the year of the claim, ``account_available_fen``
    the personal-account balance the holder lets the claim use (0: not used).
    """
    if not lines:
        raise InvalidInput("medical.items.empty", "a claim needs at least one item", "items")
    if not _is_int(account_available_fen) or account_available_fen < 0:
        raise InvalidInput("medical.account", f"must be an int ≥ 0 of fen, got {account_available_fen!r}",
                           "account_available_fen")
    items_of: list[CatalogueItem] = []
    for i, line in enumerate(lines):
        item = catalogue.get(line.code)
        if item is None:
            raise InvalidInput("medical.item.unknown",
                               f"{line.code!r} is not in the {_catalogue_region(catalogue)} catalogue",
                               f"items[{i}].code")
        items_of.append(item)

    ratio = effective_ratio(policy, c)
    deductible_left = ytd.remaining_deductible_fen(policy, c.hospital_level)
    cap_left = ytd.remaining_cap_fen(policy)
    account_left = account_available_fen
    truncated = False
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
        wanted = (eligible - deductible) * ratio // 100
        fund = min(wanted, cap_left)
        truncated = truncated or wanted > cap_left
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
    after = attrs.evolve(ytd, deductible_paid_fen=ytd.deductible_paid_fen + deductible_total,
                         fund_paid_fen=ytd.fund_paid_fen + fund_total)
    return Settlement(
        total_fen=sum(s.amount_fen for s in splits), fund_fen=fund_total,
        account_fen=sum(s.account_fen for s in splits), self_fen=sum(s.self_fen for s in splits),
        deductible_fen=deductible_total, ratio_pct=ratio, items=tuple(splits), before=ytd, after=after,
        cap_reached=truncated or after.fund_paid_fen >= policy.cap_fen,
    )


def reverse(ytd_now: YearToDate, s: Settlement) -> YearToDate:
    """The accumulators as if ``s`` had never happened (a refund, 退费), from today's.

    Later claims of the same year stay counted: only ``s``'s deductible and fund come off.
    Refused when ``ytd_now`` is another year's, or holds less than ``s`` added (it cannot
    be the year ``s`` was settled into).
    """
    if ytd_now.year != s.after.year:
        raise RuleRefused("medical.refund.year",
                          f"the claim was settled in {s.after.year}; the accumulators given are {ytd_now.year}'s")
    deductible = ytd_now.deductible_paid_fen - s.deductible_fen
    fund = ytd_now.fund_paid_fen - s.fund_fen
    if deductible < 0 or fund < 0:
        raise RuleRefused("medical.refund.larger",
                          "the refund is larger than what the year's accumulators hold")
    return YearToDate(ytd_now.year, deductible, fund)


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
