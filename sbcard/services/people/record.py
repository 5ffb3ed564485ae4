"""One person's registry record, checked field by field before anything is written.

Shared by `person add` and `person import`, so a row of a CSV file and a typed command
are held to exactly the same rules. Errors name the record's field (`citizen_id`,
`name`, …, the columns of an import file); the CLI turns them into option names.
"""

from __future__ import annotations

import functools
import re
from datetime import date
from typing import Any

import attrs

from sbcard.chip.codec import encode_name
from sbcard.domain.citizen_id import CitizenId
from sbcard.domain.errors import InvalidInput, SbcardError
from sbcard.domain.regions import NODE_NAMES, node_of
from sbcard.reference import load_ethnicities, load_regions

INSURANCE: tuple[str, ...] = ("employee", "resident")  # 职工 / 居民
# Residence status in the province the person lives in (region migration 13): 户籍, 居住证,
# neither, or not recorded. The elderly transit concessions check it (sbcard.domain.concessions).
RESIDENCES: tuple[str, ...] = ("hukou", "permit", "none", "unknown")
ADULT_AGE = 18
MAX_ADDRESS = 100
MAX_PHOTO_REF = 200
MAX_RELATION = 20
# A mobile number (11 digits, 1[3-9]…) or a landline with its area code (022-23456789).
_PHONE = re.compile(r"1[3-9][0-9]{9}|0[1-9][0-9]{1,2}-?[1-9][0-9]{6,7}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@attrs.frozen
class PersonRecord:
    """A person as the registry stores them; every field has passed its check."""

    citizen_id: CitizenId
    name: str
    household_region: str
    insured_region: str
    insurance: str
    retired: bool
    ethnicity: int
    phone: str | None
    address: str | None
    photo_ref: str | None
    guardian_id: str | None
    guardian_relation: str | None
    residence: str = "unknown"

    @property
    def node(self) -> str:
        """The region service that holds the person: the one they are insured with."""
        return _node_of_known(self.insured_region)

    def person_row(self, at: str) -> dict[str, Any]:
        cid = self.citizen_id.value
        return {
            "citizen_id": cid,
            "name": self.name,
            "sex": self.citizen_id.sex,
            "birth_date": f"{cid[6:10]}-{cid[10:12]}-{cid[12:14]}",  # the ID's date, checked to exist
            "ethnicity": self.ethnicity,
            "phone": self.phone,
            "address": self.address,
            "photo_ref": self.photo_ref,
            "household_region": self.household_region,
            "residence": self.residence,
            "created_at": at,
            "updated_at": at,
        }

    def enrolment_row(self, at: str) -> dict[str, Any]:
        return {
            "citizen_id": self.citizen_id.value,
            "insured_region": self.insured_region,
            "insurance_type": self.insurance,
            "retired": int(self.retired),
            "since": at,
        }

    def guardian_row(self) -> dict[str, Any] | None:
        if self.guardian_id is None:
            return None
        return {"minor_id": self.citizen_id.value, "guardian_id": self.guardian_id, "relation": self.guardian_relation}


def check_person(
    *,
    citizen_id: str,
    name: str,
    region: str,
    insurance: str,
    today: date,
    retired: bool = False,
    ethnicity: int = 1,
    phone: str | None = None,
    address: str | None = None,
    photo_ref: str | None = None,
    insured_region: str | None = None,
    guardian_id: str | None = None,
    guardian_relation: str | None = None,
    residence: str | None = None,
) -> PersonRecord:
    """The record, or InvalidInput/NotFound naming the first field that is wrong."""
    cid = _field("citizen_id", CitizenId.parse, citizen_id)
    cid.check_not_future(today)
    household = _region("region", region)
    insured = _region("insured_region", insured_region) if _given(insured_region) else household
    if insurance not in INSURANCE:
        raise InvalidInput("person.insurance", f"{insurance!r} is not one of {', '.join(INSURANCE)}", "insurance")
    if retired and insurance != "employee":
        raise InvalidInput(
            "person.retired", "only employee insurance (职工) has retirees; residents (居民) are never 'retired'",
            "retired",
        )
    if ethnicity not in load_ethnicities():
        raise InvalidInput(
            "person.ethnicity", f"{ethnicity} is not a GB/T 3304 ethnicity code (01–56, 97 其他, 98)", "ethnicity"
        )
    guardian, relation = _guardian(cid, guardian_id, guardian_relation, today)
    residence = (residence or "").strip() or "unknown"
    if residence not in RESIDENCES:
        raise InvalidInput("person.residence", f"{residence!r} is not a residence status ({', '.join(RESIDENCES)}: "
                           "户籍 or 居住证 in the region the person lives in, neither, or not recorded)", "residence")
    return PersonRecord(
        citizen_id=cid,
        name=_name(name),
        household_region=household,
        insured_region=insured,
        insurance=insurance,
        retired=bool(retired),
        ethnicity=ethnicity,
        phone=_phone(phone),
        address=_text("address", address, MAX_ADDRESS),
        photo_ref=_text("photo_ref", photo_ref, MAX_PHOTO_REF),
        guardian_id=guardian,
        guardian_relation=relation,
        residence=residence,
    )


def check_registry_node(record: PersonRecord, node: str, field: str = "insured_region") -> None:
    """A person lives in the registry of the region they are insured with, nowhere else."""
    if record.node != node:
        raise InvalidInput(
            "person.other_region",
            f"insured in {NODE_NAMES[record.node]} ({record.insured_region}): register the person "
            f"in {NODE_NAMES[record.node]}'s registry, not {NODE_NAMES[node]}'s",
            field,
        )


def _given(value: str | None) -> bool:
    return value is not None and value.strip() != ""


def _field(field: str, parse: Any, value: Any) -> Any:
    """Run a domain parser, re-labelling its error with this record's field name."""
    try:
        return parse(value)
    except SbcardError as e:
        raise type(e)(e.code, e.message, field) from None


def _region(field: str, code: str) -> str:
    if code in _known_regions():  # the fast path of a million-row import
        return code
    return _field(field, load_regions().get, code).code  # raises: malformed or unknown


@functools.lru_cache(maxsize=None)
def _node_of_known(code: str) -> str:
    return node_of(code)


@functools.lru_cache(maxsize=1)
def _known_regions() -> frozenset[str]:
    return frozenset(region.code for region in load_regions())  # all in Jing-Jin-Ji


def _name(name: str) -> str:
    text = (name or "").strip()
    if _CONTROL.search(text):
        raise InvalidInput("name.control", "must not contain control characters (tabs, line breaks)", "name")
    encode_name(text, field="name")  # the card's rule: GBK, at most 30 bytes
    return text


def _phone(phone: str | None) -> str | None:
    if not _given(phone):
        return None
    text = phone.strip().replace(" ", "")
    if not _PHONE.fullmatch(text):
        raise InvalidInput(
            "person.phone",
            f"{phone!r} is neither a mobile number (11 digits, 13x–19x) nor a landline with its area code (022-23456789)",
            "phone",
        )
    return text


def _text(field: str, value: str | None, limit: int) -> str | None:
    if not _given(value):
        return None
    text = value.strip()
    if _CONTROL.search(text):
        raise InvalidInput(f"person.{field}", "must not contain control characters (tabs, line breaks)", field)
    if len(text) > limit:
        raise InvalidInput(f"person.{field}", f"{len(text)} characters, at most {limit}", field)
    return text


def _guardian(
    minor: CitizenId, guardian_id: str | None, relation: str | None, today: date
) -> tuple[str | None, str | None]:
    if not _given(guardian_id):
        if _given(relation):
            raise InvalidInput("guardian.missing", "a relation was given without the guardian's citizen ID", "guardian_id")
        return None, None
    guardian = _field("guardian_id", CitizenId.parse, guardian_id)
    if guardian == minor:
        raise InvalidInput("guardian.self", "a person cannot be their own guardian", "guardian_id")
    if guardian.birth_date > today or guardian.age_on(today) < ADULT_AGE:
        raise InvalidInput("guardian.minor", f"the guardian must be an adult ({ADULT_AGE} or older)", "guardian_id")
    if not _given(relation):
        raise InvalidInput(
            "guardian.relation", "say how the guardian is related (e.g. 母亲, 父亲, 祖父)", "guardian_relation"
        )
    text = _text("guardian_relation", relation, MAX_RELATION)
    return guardian.value, text

