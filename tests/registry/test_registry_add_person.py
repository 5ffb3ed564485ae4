"""`registry.add_person`: every field checked, sex and birth date from the ID, all or nothing."""

from __future__ import annotations

import pytest
from registry_helpers import citizen_id, rows

from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused
from sbcard.services.people.registry import add_person, get_person

ZHANG = citizen_id("120103", "19900101", 123)
CHILD = citizen_id("120104", "20240815", 22)


def add(db, clock, **overrides):
    args = {"citizen_id": ZHANG, "name": "张三", "region": "120103", "insurance": "employee", **overrides}
    return add_person(db, **args, now=clock.now())


def test_a_person_is_registered_with_enrolment_and_audit(world, clock):
    tj = world.region("tj")
    person = add(tj, clock, ethnicity=11, phone="138 1234 5678", address="天津市河西区友谊路 1 号", photo_ref="ph/1.jpg")

    assert person["citizen_id"] == ZHANG
    assert (person["sex"], person["birth_date"]) == ("M", "1990-01-01")  # from the ID, never typed
    assert (person["ethnicity"], person["ethnicity_name"]) == (11, "满族")
    assert person["phone"] == "13812345678"
    assert (person["household_region"], person["insured_region"], person["insurance"], person["retired"]) == (
        "120103", "120103", "employee", False)
    assert get_person(tj, ZHANG) == person
    [audit] = [e for e in rows(tj, "audit_log") if e["action"] == "person.add"]
    assert audit["subject"] == ZHANG


def test_a_minor_is_registered_with_a_guardian(world, clock):
    tj = world.region("tj")
    person = add(tj, clock, citizen_id=CHILD, name="张小宝", region="120104", insurance="resident",
                 guardian_id=ZHANG, guardian_relation="父亲")
    assert person["guardians"] == [{"citizen_id": ZHANG, "relation": "父亲"}]
    assert person["sex"] == "F"


def test_someone_living_in_hebei_and_insured_in_tianjin_is_in_tianjins_registry(world, clock):
    person = add(world.region("tj"), clock, region="131003", insured_region="120116")
    assert (person["household_region"], person["insured_region"]) == ("131003", "120116")


@pytest.mark.parametrize(
    ("overrides", "error", "code", "field"),
    [
        ({"citizen_id": ZHANG[:-1] + "0"}, InvalidInput, "citizen_id.check_char", "--citizen-id"),
        ({"citizen_id": "12010319900101"}, InvalidInput, "citizen_id.length", "--citizen-id"),
        ({"citizen_id": citizen_id("120103", "20250302", 1)}, InvalidInput, "citizen_id.birth_in_future",
         "--citizen-id"),
        ({"name": "   "}, InvalidInput, "name.empty", "--name"),
        ({"name": "阿" * 16}, InvalidInput, "name.too_long", "--name"),
        ({"name": "王\U00020BB7"}, InvalidInput, "name.not_gbk", "--name"),  # 𠮷: outside GBK
        ({"name": "张\t三"}, InvalidInput, "name.control", "--name"),
        ({"region": "12O103"}, InvalidInput, "region.format", "--region"),
        ({"region": "120199"}, NotFound, "region.unknown", "--region"),
        ({"insured_region": "110105"}, InvalidInput, "person.other_region", "--insured-region"),
        ({"insurance": "private"}, InvalidInput, "person.insurance", "--insurance"),
        ({"insurance": "resident", "retired": True}, InvalidInput, "person.retired", "--retired"),
        ({"ethnicity": 57}, InvalidInput, "person.ethnicity", "--ethnicity"),
        ({"phone": "12345"}, InvalidInput, "person.phone", "--phone"),
        ({"address": "x" * 101}, InvalidInput, "person.address", "--address"),
        ({"guardian_id": ZHANG}, InvalidInput, "guardian.self", "--guardian-id"),
        ({"citizen_id": CHILD, "guardian_id": ZHANG}, InvalidInput, "guardian.relation", "--guardian-relation"),
        ({"guardian_relation": "母亲"}, InvalidInput, "guardian.missing", "--guardian-id"),
        ({"guardian_id": CHILD, "guardian_relation": "母亲"}, InvalidInput, "guardian.minor", "--guardian-id"),
        ({"guardian_id": "123", "guardian_relation": "母亲"}, InvalidInput, "citizen_id.length", "--guardian-id"),
    ],
)
def test_bad_input_is_refused_naming_the_option_and_nothing_is_written(world, clock, overrides, error, code, field):
    tj = world.region("tj")
    with pytest.raises(error) as exc:
        add(tj, clock, **overrides)
    assert (exc.value.code, exc.value.field) == (code, field)
    assert str(exc.value).startswith(field + ": ")
    for table in ("persons", "enrolments", "guardians", "audit_log"):
        assert tj[table].count == 0, table


def test_the_name_rule_is_offered_when_a_name_is_refused(world, clock):
    with pytest.raises(InvalidInput) as exc:
        add(world.region("tj"), clock, name="王\U00020BB7")
    assert "cannot be written in GBK" in exc.value.message and "nearest GBK character" in exc.value.message


def test_a_second_registration_is_refused_and_the_first_is_kept(world, clock):
    tj = world.region("tj")
    add(tj, clock)
    with pytest.raises(RuleRefused) as exc:
        add(tj, clock, name="张三丰")
    assert (exc.value.code, exc.value.field) == ("person.exists", "--citizen-id")
    assert ZHANG not in exc.value.message  # masked
    assert get_person(tj, ZHANG)["name"] == "张三"
    assert tj["audit_log"].count == 1


def test_inside_a_larger_use_case_a_refusal_leaves_the_callers_work(world, clock):
    from sbcard.store.unit_of_work import UnitOfWork

    tj = world.region("tj")
    with UnitOfWork(tj) as uow:
        add(uow.db, clock)
        with pytest.raises(RuleRefused):
            add(uow.db, clock)
        uow.commit()
    assert tj["persons"].count == 1 and tj["enrolments"].count == 1


def test_unknown_person_is_none(world):
    assert get_person(world.region("tj"), ZHANG) is None
