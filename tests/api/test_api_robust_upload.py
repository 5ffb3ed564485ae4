"""A subsidy file is read and checked outside the service's write lock (only the batch's one insert is under it),
copied to disk a block at a time with a size cap, and nothing of it is stored when a later step fails."""

from __future__ import annotations

from api_finance_world import finance, finance_template, key, server, standard_batch, upload  # noqa: F401

from sbcard.api.routes import subsidies as subsidy_routes
from sbcard.services.outlets import audit
from sbcard.services.subsidies import batch_import
from sbcard.store.world import open_world


def _batches(home) -> int:  # type: ignore[no-untyped-def]
    with open_world(home) as world:
        return world.region("bj").execute("SELECT count(*) FROM subsidy_batches").fetchone()[0]


def test_the_file_is_checked_outside_the_write_lock_and_stored_under_it(server, finance, monkeypatch):  # noqa: F811
    lock = server.server.config.app.state.service.worlds._locks["bj"]  # the maker's region's write lock
    seen = {}
    stage, store = batch_import._Checker.stage, batch_import.CheckedFile.store

    def staging(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen["checking"] = lock.locked()
        return stage(self, *args, **kwargs)

    def storing(self):  # type: ignore[no-untyped-def]
        seen["storing"] = lock.locked()
        return store(self)

    monkeypatch.setattr(batch_import._Checker, "stage", staging)
    monkeypatch.setattr(batch_import.CheckedFile, "store", storing)
    answer = upload(server.signed_in("BJ-FM"), standard_batch(finance))
    assert answer.status_code == 201, answer.text
    assert seen == {"checking": False, "storing": True}


def test_a_file_over_the_cap_is_413_and_nothing_is_stored(server, finance, monkeypatch):  # noqa: F811
    content = standard_batch(finance)
    monkeypatch.setattr(subsidy_routes, "MAX_UPLOAD", len(content) - 1)
    monkeypatch.setattr(subsidy_routes, "_BLOCK", 64)  # the cap is met part-way through the copy
    answer = upload(server.signed_in("BJ-FM"), content)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "subsidy_file.too_large"
    assert _batches(finance.home) == 0


def test_a_failure_while_storing_leaves_no_batch_and_the_file_may_be_sent_again(server, finance,  # noqa: F811
                                                                                monkeypatch):
    real = audit.record

    def failing(db, *args, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs.get("action") == "subsidy.import":
            raise OSError("disk full")
        return real(db, *args, **kwargs)

    monkeypatch.setattr(audit, "record", failing)
    maker = server.signed_in("BJ-FM")
    assert upload(maker, standard_batch(finance)).status_code == 500
    assert _batches(finance.home) == 0
    with open_world(finance.home) as world:
        assert world.region("bj").execute("SELECT count(*) FROM subsidy_rows").fetchone()[0] == 0
    monkeypatch.setattr(audit, "record", real)
    again = upload(maker, standard_batch(finance), headers=key())
    assert again.status_code == 201, again.text
    assert _batches(finance.home) == 1
