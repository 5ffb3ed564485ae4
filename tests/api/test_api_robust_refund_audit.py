"""A medical refund and its requester's audit entry are one transaction: a failure writing the audit leaves no
refund behind (before, the refund was committed first and the audit written after, separately)."""

from __future__ import annotations

from api_finance_world import finance, finance_template, key, server  # noqa: F401 - fixtures

from sbcard.services.outlets import audit
from sbcard.store.world import open_world

CLAIMS = "/api/v1/medical/claims"


def test_a_refund_whose_audit_fails_is_not_kept(server, finance, monkeypatch):  # noqa: F811
    real = audit.record

    def failing(db, *args, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs.get("action") == "medical.refund_requested":
            raise OSError("disk full, as the audit entry is written")
        return real(db, *args, **kwargs)

    monkeypatch.setattr(audit, "record", failing)
    supervisor = server.signed_in("BJ-SUP")
    answer = supervisor.post(f"{CLAIMS}/{finance.claim_id}/refund", headers=key())
    assert answer.status_code == 500, answer.text
    assert supervisor.get(f"{CLAIMS}/{finance.claim_id}").json()["status"] == "settled"
    with open_world(finance.home) as world:
        assert not list(world.region("bj").query("SELECT 1 FROM audit_log WHERE action = 'medical.refund'"))

    monkeypatch.setattr(audit, "record", real)
    done = supervisor.post(f"{CLAIMS}/{finance.claim_id}/refund", headers=key())
    assert done.status_code == 200, done.text
    with open_world(finance.home) as world:
        [asked] = world.region("bj").query("SELECT operator, subject, details FROM audit_log "
                                           "WHERE action = 'medical.refund_requested'")
    assert (asked["operator"], asked["subject"]) == ("BJ-SUP", finance.claim_id)
    assert '"refund_fen": 2500' in asked["details"]
