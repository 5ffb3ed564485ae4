"""Operators: registered per region, refused when unknown or in the wrong role."""

from __future__ import annotations

import pytest

from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused
from sbcard.services.outlets.operators import add_operator, list_operators, require_operator


def test_an_operator_is_registered_with_an_audit_entry(world, clock):
    tj = world.region("tj")
    op = add_operator(tj, code="tj-hx-01", name="王芳", role="counter", region="120103", now=clock.now())

    assert op == {"code": "tj-hx-01", "name": "王芳", "role": "counter", "region": "120103", "node": "tj",
                  "created_at": "2025-03-01T09:30:00+08:00"}
    [entry] = [e for e in tj["audit_log"].rows if e["action"] == "operator.add"]
    assert entry["subject"] == "tj-hx-01" and entry["operator"] == "admin"


@pytest.mark.parametrize(
    ("kwargs", "error", "code", "field"),
    [
        ({"code": "x"}, InvalidInput, "operator.code", "CODE"),
        ({"code": "has space"}, InvalidInput, "operator.code", "CODE"),
        ({"name": "  "}, InvalidInput, "operator.name", "--name"),
        ({"role": "manager"}, InvalidInput, "operator.role", "--role"),
        ({"region": "12010"}, InvalidInput, "region.format", "--region"),
        ({"region": "120199"}, NotFound, "region.unknown", "--region"),
        ({"region": "110105"}, InvalidInput, "operator.region", "--region"),  # Beijing, not Tianjin
    ],
)
def test_bad_operators_are_refused_naming_the_field(world, clock, kwargs, error, code, field):
    tj = world.region("tj")
    args = {"code": "tj-op", "name": "王芳", "role": "counter", "region": "120103", **kwargs}
    with pytest.raises(error) as exc:
        add_operator(tj, **args, now=clock.now())
    assert (exc.value.code, exc.value.field) == (code, field)
    assert tj["operators"].count == 0 and tj["audit_log"].count == 0


def test_a_code_is_taken_once(world, clock):
    tj = world.region("tj")
    add_operator(tj, code="tj-op", name="王芳", role="counter", region="120103", now=clock.now())
    with pytest.raises(RuleRefused) as exc:
        add_operator(tj, code="tj-op", name="李强", role="finance", region="120104", now=clock.now())
    assert exc.value.code == "operator.exists"
    assert tj["operators"].count == 1


@pytest.mark.parametrize(
    ("roles", "refused"),
    [(None, False), ({"counter"}, False), ({"counter", "supervisor"}, False), ({"finance"}, True)],
)
def test_require_operator_checks_the_role(world, clock, roles, refused):
    tj = world.region("tj")
    add_operator(tj, code="tj-op", name="王芳", role="counter", region="120103", now=clock.now())
    if refused:
        with pytest.raises(RuleRefused) as exc:
            require_operator(tj, "tj-op", roles=roles)
        assert exc.value.code == "operator.role" and exc.value.field == "--operator"
        assert "needs finance" in exc.value.message
    else:
        assert require_operator(tj, "tj-op", roles=roles)["role"] == "counter"


def test_an_unknown_operator_is_not_found(world):
    with pytest.raises(NotFound) as exc:
        require_operator(world.region("bj"), "nobody")
    assert (exc.value.code, exc.value.field) == ("operator.unknown", "--operator")
    assert "Beijing" in exc.value.message


def test_operators_are_listed_by_area(world, clock):
    he = world.region("he")
    for code, region in [("he-a", "130102"), ("he-b", "130104"), ("he-c", "130203")]:
        add_operator(he, code=code, name="赵六", role="counter", region=region, now=clock.now())
    assert [o["code"] for o in list_operators(he)] == ["he-a", "he-b", "he-c"]
    assert [o["code"] for o in list_operators(he, region="130100")] == ["he-a", "he-b"]  # 石家庄市
    assert [o["code"] for o in list_operators(he, region="130203")] == ["he-c"]
