"""Background jobs: where a 202's job is polled (``sbcard.api.jobs``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from sbcard.api.auth import staff_call
from sbcard.api.calls import Call
from sbcard.api.fields import api_fields
from sbcard.domain.errors import NotFound
from sbcard.domain.staff import AUDITOR, FINANCE_CHECKER, FINANCE_MAKER, SUPERVISOR

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("/{job_id}", summary="A job's state (queued, running, done, failed), progress, and result or error")
@api_fields
def show(job_id: str, call: Call = Depends(staff_call(FINANCE_MAKER, FINANCE_CHECKER, SUPERVISOR,
                                                       AUDITOR))) -> dict[str, Any]:
    job = call.request.app.state.jobs.get(job_id)
    if job is None:
        raise NotFound("job.unknown", f"no job {job_id} in this process (jobs live in its memory and do not "
                       "survive a restart): the batch's own record is the truth (GET /api/v1/subsidies/batches/"
                       "{batch}: its status, counts and lease); to finish a pay, ask to pay the batch again — it "
                       "continues where it stopped and never pays anyone twice", "job_id")
    call.require_scope(node=job.node)
    return job.to_dict()
