"""No job is left "queued" or "running" for ever: whatever ends its run (a stop before it started, a thread torn
down, a pool shut down as it is submitted), the job ends failed with a code that says which."""

from __future__ import annotations

import threading

import pytest
from world_template import NOW

from sbcard.api.config import ServiceConfig, Worlds
from sbcard.api.errors import ApiError
from sbcard.api.jobs import Jobs
from sbcard.clock import SimClock


@pytest.fixture
def jobs(api_home):  # type: ignore[no-untyped-def]
    clock = SimClock(NOW)
    worlds = Worlds(ServiceConfig(home=api_home, clock=clock))
    made = Jobs(worlds, clock)
    yield made
    made.close()
    worlds.close()


def _finished(job, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.01)):
        if not job.active:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"job still {job.state}")


def test_a_run_torn_down_by_a_base_exception_is_interrupted_not_left_running(jobs):
    def torn(world, job, between) -> None:  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    job, _ = jobs.submit("test.torn", "a", node="bj", operator="test", work=torn)
    _finished(job)
    assert (job.state, job.error["code"]) == ("failed", "job.interrupted")
    assert "KeyboardInterrupt" in job.error["message"] and job.finished_at


def test_a_job_submitted_as_the_pool_shuts_down_fails_not_started_and_the_caller_gets_503(jobs, monkeypatch):
    def shut(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("cannot schedule new futures after shutdown")

    monkeypatch.setattr(jobs._pool, "submit", shut)
    with pytest.raises(ApiError) as refused:
        jobs.submit("test.late", "b", node="bj", operator="test", work=lambda *a: None)
    assert (refused.value.status, refused.value.code) == (503, "job.not_started")
    [job] = [j for j in jobs._jobs.values() if j.subject == "b"]
    assert (job.state, job.error["code"], job.started_at) == ("failed", "job.not_started", None)
    assert not jobs._active[("test.late", "b")].active  # the subject is free for a new job


def test_jobs_queued_at_close_never_start_and_say_so(jobs):
    release = threading.Event()
    started = threading.Event()

    def hold(world, job, between) -> None:  # type: ignore[no-untyped-def]
        started.set()
        while not release.wait(0.01):
            between()

    running, _ = jobs.submit("test.hold", "c", node="bj", operator="test", work=hold)
    queued, _ = jobs.submit("test.hold", "d", node="bj", operator="test", work=hold)
    assert started.wait(10)
    jobs.close()
    assert (running.state, running.error["code"]) == ("failed", "job.interrupted")
    assert (queued.state, queued.error["code"], queued.started_at) == ("failed", "job.not_started", None)
