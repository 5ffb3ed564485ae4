"""Administrative region codes (GB/T 2260) of Beijing, Tianjin and Hebei.

A region code says which region's card service owns a card or a person: the first two
digits name the province, and each province is one node of the world (``bj``, ``tj``,
``he``; DESIGN.md). The directory itself is data (``fixtures/regions.csv``, loaded by
``sbcard.reference``); this module only holds the values and the rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Literal

import attrs

from sbcard.domain.errors import InvalidInput, NotFound

FIELD = "region"
Level = Literal["province", "prefecture", "county"]
Node = Literal["bj", "tj", "he"]
LEVELS: tuple[str, ...] = ("province", "prefecture", "county")
NODES: dict[str, Node] = {"110000": "bj", "120000": "tj", "130000": "he"}
NODE_NAMES: dict[str, str] = {"bj": "Beijing", "tj": "Tianjin", "he": "Hebei"}  # for messages
_CODE = re.compile(r"[0-9]{6}")  # ASCII digits only


def validate_region_code(text: str) -> str:
    """The code, stripped, if it is 6 digits; otherwise InvalidInput naming the field ``region``."""
    if not isinstance(text, str):
        raise InvalidInput(code="region.format", message=f"expected text, got {type(text).__name__}", field=FIELD)
    code = text.strip()
    if not _CODE.fullmatch(code):
        raise InvalidInput(code="region.format", message=f"a region code is 6 digits, got {code!r}", field=FIELD)
    return code


def province_code_of(code: str) -> str:
    """The province a code belongs to by its first two digits: 120103 → 120000."""
    return validate_region_code(code)[:2] + "0000"


def node_of(code: str) -> Node:
    """Which region's service owns the code: "bj", "tj" or "he"."""
    province = province_code_of(code)
    try:
        return NODES[province]
    except KeyError:
        raise InvalidInput(
            code="region.outside",
            message=f"region {code.strip()} is outside Beijing, Tianjin and Hebei",
            field=FIELD,
        ) from None


def is_within(code: str, area: str) -> bool:
    """Whether region ``code`` lies in ``area``: the area itself, its prefecture (``1301xx`` in
    ``130100``) or its province (``1201xx`` in ``120000``). Both are valid 6-digit codes."""
    if area.endswith("0000"):
        return code[:2] == area[:2]
    if area.endswith("00"):
        return code[:4] == area[:4]
    return code == area


def _check_code(_instance: object, attribute: attrs.Attribute, value: str | None) -> None:
    if value is None and attribute.name == "parent":
        return
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        raise InvalidInput(
            code="region.format", message=f"{attribute.name} must be 6 digits, got {value!r}", field=FIELD
        )


def _check_name(_instance: object, _attribute: object, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(code="region.format", message="a region needs a name", field=FIELD)


def _check_level(_instance: object, _attribute: object, value: str) -> None:
    if value not in LEVELS:
        raise InvalidInput(
            code="region.format", message=f"level must be one of {', '.join(LEVELS)}, got {value!r}", field=FIELD
        )


@attrs.frozen
class Region:
    """One row of GB/T 2260. ``parent`` is None exactly for provinces."""

    code: str = attrs.field(validator=_check_code)
    name: str = attrs.field(validator=_check_name)
    level: Level = attrs.field(validator=_check_level)
    parent: str | None = attrs.field(default=None, validator=_check_code)

    def __attrs_post_init__(self) -> None:
        if (self.level == "province") != (self.parent is None):
            raise InvalidInput(
                code="region.format",
                message=f"region {self.code}: a province has no parent and every other level has one",
                field=FIELD,
            )
        if self.level == "province" and not self.code.endswith("0000"):
            raise InvalidInput(
                code="region.format", message=f"province code {self.code} must end in 0000", field=FIELD
            )


class RegionDirectory:
    """The known regions, looked up by code. Built once from the fixture; immutable after."""

    def __init__(self, regions: Iterable[Region]) -> None:
        by_code: dict[str, Region] = {}
        for region in regions:
            if region.code in by_code:
                raise InvalidInput(
                    code="region.duplicate", message=f"region {region.code} is listed twice", field=FIELD
                )
            by_code[region.code] = region
        children: dict[str, list[Region]] = {}
        for region in by_code.values():
            if region.parent is None:
                continue
            parent = by_code.get(region.parent)
            if parent is None:
                raise InvalidInput(
                    code="region.orphan",
                    message=f"region {region.code}'s parent {region.parent} is not listed",
                    field=FIELD,
                )
            if LEVELS.index(parent.level) >= LEVELS.index(region.level):
                raise InvalidInput(
                    code="region.format",
                    message=f"region {region.code} ({region.level}) cannot sit under {parent.code} ({parent.level})",
                    field=FIELD,
                )
            children.setdefault(region.parent, []).append(region)
        self._by_code = dict(sorted(by_code.items()))
        self._children = {code: tuple(sorted(kids, key=lambda r: r.code)) for code, kids in children.items()}

    def __len__(self) -> int:
        return len(self._by_code)

    def __iter__(self) -> Iterator[Region]:
        return iter(self._by_code.values())

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code in self._by_code

    def is_known(self, code: str) -> bool:
        return code in self

    def get(self, code: str) -> Region:
        """The region with this code; NotFound (field ``region``) if it is not listed."""
        code = validate_region_code(code)
        try:
            return self._by_code[code]
        except KeyError:
            raise NotFound(code="region.unknown", message=f"unknown region code {code}", field=FIELD) from None

    def province_of(self, code: str) -> Region:
        """The province of any code with a known province prefix, listed or not (IDs keep old codes)."""
        node_of(code)  # refuses codes outside the three provinces with the message that says so
        return self.get(province_code_of(code))

    def children(self, code: str) -> tuple[Region, ...]:
        """The regions directly under ``code``, by code; empty for a county."""
        return self._children.get(self.get(code).code, ())

    def provinces(self) -> tuple[Region, ...]:
        return tuple(r for r in self._by_code.values() if r.level == "province")

    def full_name(self, code: str) -> str:
        """The name with its ancestors': 120103 → 天津市河西区, 130102 → 河北省石家庄市长安区."""
        region = self.get(code)
        names = [region.name]
        while region.parent is not None:
            region = self._by_code[region.parent]
            names.append(region.name)
        return "".join(reversed(names))
