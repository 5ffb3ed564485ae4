"""Where a figure comes from, and how far to trust it (issue 16, item 7).

Every fare, concession, price, deductible, rate and cap in ``fixtures/`` cites sources
by id from its folder's ``sources.csv`` and carries a confidence:

- ``official``: the issuing body's own notice or page (a government notice, the
  operator's or venue's own rules) says so;
- ``secondary``: a public page reports it (news, a travel or policy-digest page quoting
  the notice), not checked against the notice itself;
- ``illustrative``: the project's own figure, in the shape real rules have. A user must
  not trust it as the region's rule.

``Provenance`` is what an answer carries to the user (``"source"``, ``"confidence"`` and
``"illustrative"`` in ``--json``), so a fare or a settlement says which answers to trust.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

OFFICIAL, SECONDARY, ILLUSTRATIVE = "official", "secondary", "illustrative"
CONFIDENCES: tuple[str, ...] = (OFFICIAL, SECONDARY, ILLUSTRATIVE)  # most trusted first

_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


def _source_id(_inst: Any, _attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str) or not _ID.match(value):
        raise ValueError(f"a source id is lower-case letters, digits and '-', got {value!r}")


@attrs.frozen(cache_hash=True)  # a key of the tariff's combination cache, on the tap's path
class Source:
    """One public document a figure comes from: what it is, who issued it, when, where."""

    id: str = attrs.field(validator=_source_id)
    title: str = attrs.field(validator=attrs.validators.min_len(1))
    issuer: str = attrs.field(validator=attrs.validators.min_len(1))  # the body that issued it (or the site)
    date: str = ""  # YYYY, YYYY-MM or YYYY-MM-DD of issue (or of the page); blank when not known
    url: str = ""  # the public address, when there is one
    kind: str = attrs.field(default=OFFICIAL, validator=attrs.validators.in_((OFFICIAL, SECONDARY)))
    note: str = ""  # what the project took from it, or why it chose it over another

    def __attrs_post_init__(self) -> None:
        if self.date and not _DATE.match(self.date):
            raise ValueError(f"{self.id}: date {self.date!r} is not YYYY, YYYY-MM or YYYY-MM-DD")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"{self.id}: url {self.url!r} is not an http(s) address")

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "issuer": self.issuer, "date": self.date or None,
                "url": self.url or None, "kind": self.kind}


@attrs.frozen(cache_hash=True)
class Provenance:
    """The sources of one figure (or one rule's figures) and the confidence they earn."""

    sources: tuple[Source, ...] = ()
    confidence: str = attrs.field(default=ILLUSTRATIVE, validator=attrs.validators.in_(CONFIDENCES))

    def __attrs_post_init__(self) -> None:
        if self.confidence != ILLUSTRATIVE and not self.sources:
            raise ValueError(f"{'an' if self.confidence == OFFICIAL else 'a'} {self.confidence} figure names its source")
        if self.confidence == OFFICIAL and all(s.kind != OFFICIAL for s in self.sources):
            raise ValueError("an official figure cites at least one official source "
                             f"(got {', '.join(s.id for s in self.sources)})")

    @property
    def illustrative(self) -> bool:
        return self.confidence == ILLUSTRATIVE

    def to_json(self) -> dict[str, Any]:
        return {"source": [s.to_json() for s in self.sources], "confidence": self.confidence,
                "illustrative": self.illustrative}

    def text(self) -> str:
        """One line for people: ``official: <title> (<issuer>, <date>)`` or ``illustrative``."""
        if not self.sources:
            return self.confidence
        cited = "; ".join(f"{s.title} ({s.issuer}{', ' + s.date if s.date else ''})" for s in self.sources)
        return f"{self.confidence}: {cited}"


ILLUSTRATIVE_ONLY = Provenance((), ILLUSTRATIVE)


def least(confidences: Iterable[str]) -> str:
    """The weakest of several confidences: an answer built from figures is as trusted as its weakest."""
    ranked = [CONFIDENCES.index(c) for c in confidences]
    return CONFIDENCES[max(ranked)] if ranked else ILLUSTRATIVE


def combine(provenances: Iterable[Provenance]) -> Provenance:
    """One provenance for an answer made of several figures: every source, the weakest confidence."""
    items = list(provenances)
    seen: dict[str, Source] = {}
    for p in items:
        for s in p.sources:
            seen.setdefault(s.id, s)
    confidence = least(p.confidence for p in items)
    return Provenance(tuple(seen.values()), confidence)


def cite(sources: Mapping[str, Source], ids_text: str, confidence: str, *, where: str) -> Provenance:
    """A fixture row's ``source`` cell (ids joined by ``;``) and ``confidence`` → its provenance.

    Raises ``ValueError`` naming ``where`` for an unknown id, an unknown confidence, or a
    sourced confidence with no source: the loaders turn it into ``fixture.invalid``.
    """
    confidence = (confidence or "").strip()
    if confidence not in CONFIDENCES:
        raise ValueError(f"{where}: confidence {confidence!r} is not one of {', '.join(CONFIDENCES)}")
    ids = [part.strip() for part in (ids_text or "").split(";") if part.strip()]
    unknown = [i for i in ids if i not in sources]
    if unknown:
        raise ValueError(f"{where}: unknown source {', '.join(unknown)} (not in sources.csv)")
    try:
        return Provenance(tuple(sources[i] for i in ids), confidence)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
