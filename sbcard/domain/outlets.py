"""Service outlets (服务网点): their codes and kinds.

An outlet code is ``<NODE>-<district>-<nn>``, e.g. ``TJ-120103-01``: the prefix names the
region service that owns the outlet, its stock and its operators, so any node can route
a request about an outlet without asking anyone; the district is the outlet's GB/T 2260
county-level code.
"""

from __future__ import annotations

import re

import attrs

from sbcard.domain.errors import InvalidInput
from sbcard.domain.regions import NODES, province_code_of

FIELD = "--outlet"
KINDS: dict[str, str] = {
    "outlet": "service outlet (服务网点)",
    "bank_branch": "bank-branch outlet (社银合作网点)",
    "experience_centre": "experience centre (体验中心)",
    "self_service": "self-service machine (自助服务终端)",
}
_CODE = re.compile(r"(BJ|TJ|HE)-([0-9]{6})-([0-9]{2})")


@attrs.frozen
class OutletCode:
    node: str
    district: str
    number: str

    @classmethod
    def parse(cls, text: str, field: str = FIELD) -> OutletCode:
        """``TJ-120103-01`` (case-insensitive); the district must lie in the prefix's province."""
        code = text.strip().upper() if isinstance(text, str) else ""
        match = _CODE.fullmatch(code)
        if match is None:
            raise InvalidInput(
                "outlet.format",
                f"{text!r} is not an outlet code: expected BJ|TJ|HE-<district code>-<nn>, e.g. TJ-120103-01",
                field,
            )
        prefix, district, number = match.groups()
        node = prefix.lower()
        if NODES.get(province_code_of(district)) != node:
            raise InvalidInput(
                "outlet.format", f"{code}: district {district} is not in {prefix}'s province", field
            )
        return cls(node=node, district=district, number=number)

    def __str__(self) -> str:
        return f"{self.node.upper()}-{self.district}-{self.number}"
