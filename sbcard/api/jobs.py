"""Background jobs of the service: long state changes (a subsidy batch's pay) run beside the requests.

A job is accepted at once (``202`` with its id and URL) and runs in the service's one job
thread, which takes the process's write lock (``Worlds.writing``) for the whole run and
lets it go for a moment between the run's transactions (``Worlds.let_others_write``), so
a job never races another write and the requests waiting to write get in between its
chunks. Its state is polled: ``queued`` → ``running`` → ``done`` (with the use case's
answer) or ``failed`` (with the error, as ``{"code", "field", "message"}``), and
``done``/``total`` count its progress.

Jobs live in the process's memory: they do not survive a restart. That is safe for what
they run: a batch's pay is exactly once and resumable (the use case's own rule), so the
same request again after a restart continues where the stopped run left off and pays
nobody twice; the batch's own record in the database (its status, counters and lease) is
the truth, the job only a view of one run. One job per subject at a time: asking again
while one runs gets that one.

No job is ever left ``queued`` or ``running`` for ever: one the service stopped before it
started ends ``failed`` with ``job.not_started``; one stopped (or whose thread ended) while
it ran ends ``failed`` with ``job.interrupted``; a job submitted while the service stops is
refused (503, nothing done). Each future's end is watched (``_settled``) whatever ended it.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import attrs
from fastapi.encoders import jsonable_encoder

from sbcard.api.config import Worlds
from sbcard.api.errors import ApiError
from sbcard.api.fields import api_field
from sbcard.clock import Clock
from sbcard.domain.errors import SbcardError
from sbcard.store.migrations import timestamp
from sbcard.store.world import World

log = logging.getLogger("sbcard.api.jobs")

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
STATES: tuple[str, ...] = (QUEUED, RUNNING, DONE, FAILED)
KEEP_FINISHED = 1000  # finished jobs remembered (the oldest forgotten first)


class Stopping(SbcardError):
    """The service is stopping: the job stops between two transactions (what it committed stays)."""

    def __init__(self) -> None:
        super().__init__("job.interrupted", "the service stopped while the job ran: what was committed stays; "
                         "ask again to continue (it never does anything twice)")


class NotStarted(SbcardError):
    """The service stopped before the job started: nothing of it was done."""

    def __init__(self) -> None:
        super().__init__("job.not_started", "the service stopped before the job started: nothing of it was done; "
                         "ask again once the service is back")


class Vanished(SbcardError):
    """The job's thread ended without the job finishing (neither an answer nor an error of its own)."""

    def __init__(self, why: str) -> None:
        super().__init__("job.interrupted", f"the job's run ended unexpectedly ({why}): what was committed stays; "
                         "ask again to continue (it never does anything twice)")


@attrs.define
class Job:
    id: str
    kind: str  # e.g. "subsidy.pay"
    subject: str  # what it works on, e.g. the batch id
    node: str  # the region whose staff may see it
    operator: str  # who asked for it
    created_at: str
    state: str = QUEUED
    done: int = 0
    total: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    result: Any = None
    error: dict[str, Any] | None = None

    @property
    def active(self) -> bool:
        return self.state in (QUEUED, RUNNING)

    def to_dict(self, prefix: str = "/api/v1") -> dict[str, Any]:
        return {"job_id": self.id, "url": f"{prefix}/jobs/{self.id}", "kind": self.kind, "subject": self.subject,
                "node": self.node, "operator": self.operator, "state": self.state, "done": self.done,
                "total": self.total, "created_at": self.created_at, "started_at": self.started_at,
                "finished_at": self.finished_at, "result": self.result, "error": self.error}


# What a job runs: (the world, under the write lock; the job, to report progress into; a check to call
# between transactions, which raises Stopping when the service stops) → the answer.
Work = Callable[[World, Job, Callable[[], None]], Any]


class Jobs:
    """The process's jobs: one worker thread (so one world of its own), runs in order of submission."""

    def __init__(self, worlds: Worlds, clock: Clock) -> None:
        self._worlds = worlds
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._active: dict[tuple[str, str], Job] = {}
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sbcard-job")

    def submit(self, kind: str, subject: str, *, node: str, operator: str, work: Work) -> tuple[Job, bool]:
        """(the job, True) when a new one was queued; (the running one, False) when ``subject`` has one already."""
        with self._lock:
            running = self._active.get((kind, subject))
            if running is not None and running.active:
                return running, False
            if self._stopping.is_set():
                raise Stopping()
            job = Job(id=f"job-{secrets.token_hex(8)}", kind=kind, subject=subject, node=node, operator=operator,
                      created_at=timestamp(self._clock.now()))
            self._jobs[job.id] = job
            self._active[(kind, subject)] = job
            self._forget_old()
        try:
            future = self._pool.submit(self._run, job, work)
        except RuntimeError:  # the pool was shut down between the check above and here: the service stops
            with self._lock:
                self._fail(job, NotStarted())
            raise ApiError(503, "job.not_started", "the service is stopping: nothing was started; ask again once "
                           "it is back", headers={"Retry-After": "5"}) from None
        future.add_done_callback(lambda done: self._settled(job, done))
        return job, True

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def close(self) -> None:
        """Stop: the running job stops at its next pause between transactions, the queued ones never start."""
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for job in self._jobs.values():
                if job.state == QUEUED:
                    self._fail(job, NotStarted())
                elif job.state == RUNNING:  # cannot be after the wait above; said rather than left running
                    self._fail(job, Stopping())

    def _run(self, job: Job, work: Work) -> None:
        if self._stopping.is_set():  # its turn came as the service stops: it never starts
            with self._lock:
                self._fail(job, NotStarted())
            return
        job.state, job.started_at = RUNNING, timestamp(self._clock.now())
        try:
            with self._worlds.writing() as world:
                result = work(world, job, self._between)
            job.result = jsonable_encoder(result)
            job.finished_at = timestamp(self._clock.now())
            job.state = DONE
        except SbcardError as exc:
            self._fail(job, exc)
        except Exception as exc:  # noqa: BLE001 - a job's failure is its state; the traceback goes to the log
            log.error("job %s (%s %s) failed: %s", job.id, job.kind, job.subject, type(exc).__name__, exc_info=exc)
            self._fail(job, SbcardError("internal.error", f"internal error ({type(exc).__name__}); job {job.id}"))
        except BaseException as exc:  # the thread is being torn down (KeyboardInterrupt, SystemExit): said, then on
            self._fail(job, Vanished(type(exc).__name__))
            raise

    def _settled(self, job: Job, future: Future[None]) -> None:
        """Whatever ended the job's future, the job is not left queued or running: cancelled before it ran (the
        service stopped), or ended without settling its own state."""
        with self._lock:
            if not job.active:
                return
            if future.cancelled():
                self._fail(job, NotStarted())
            else:
                exc = future.exception()
                self._fail(job, Vanished(type(exc).__name__ if exc is not None else "no answer"))

    def _fail(self, job: Job, exc: SbcardError) -> None:
        job.error = {"code": exc.code, "field": api_field(exc.field), "message": " ".join(str(exc.message).splitlines())}
        job.finished_at = timestamp(self._clock.now())
        job.state = FAILED

    def _checkpoint(self) -> None:
        if self._stopping.is_set():
            raise Stopping()

    def _between(self) -> None:
        """Between two of the job's transactions: stop if the service stops, else let waiting writers in."""
        self._checkpoint()
        self._worlds.let_others_write()

    def _forget_old(self) -> None:
        finished = [job for job in self._jobs.values() if not job.active]
        for job in finished[:max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job.id]
            if self._active.get((job.kind, job.subject)) is job:
                del self._active[(job.kind, job.subject)]
