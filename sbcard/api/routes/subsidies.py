"""Subsidy batches (惠民惠农“一卡通”) over HTTP: upload, show, failures, approve, reject, pay, reverse.

The same use cases as ``sbcard subsidy …`` (``sbcard.services.subsidies``), with the keys of its
``--json``. The maker uploads the department's file (a finance maker of the batch's region);
a second authenticated person, a finance checker or a supervisor, approves or rejects it (the
use case itself refuses the maker as the checker, whatever their role is now); paying runs as a
background job (``sbcard.api.jobs``) polled at ``/api/v1/jobs/{id}``. Staff act only on their
own region's batches. Docs: docs/api/finance.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from sbcard.api.auth import staff_call
from sbcard.api.calls import Call
from sbcard.api.fields import api_fields
from sbcard.api.errors import ApiError
from sbcard.api.jobs import Job, Jobs
from sbcard.clock import BEIJING
from sbcard.domain.errors import InvalidInput, RuleRefused, SbcardError
from sbcard.domain.masking import mask_middle
from sbcard.domain.money import parse_yuan
from sbcard.domain.regions import node_of, validate_region_code
from sbcard.domain.staff import AUDITOR, FINANCE_CHECKER, FINANCE_MAKER, SUPERVISOR
from sbcard.services.subsidies import batch_import, payment

router = APIRouter(prefix="/subsidies", tags=["subsidy batches"])

MAKERS = (FINANCE_MAKER,)
CHECKERS = (FINANCE_CHECKER, SUPERVISOR)
PAYERS = (FINANCE_MAKER, FINANCE_CHECKER, SUPERVISOR)
READERS = (FINANCE_MAKER, FINANCE_CHECKER, SUPERVISOR, AUDITOR)
MAX_UPLOAD = 256 * 1024 * 1024  # a province's batch of a few million rows, as CSV
PAY_JOB = "subsidy.pay"
_BLOCK = 1 << 20  # an upload is copied to disk a MiB at a time
_SAFE_NAME = re.compile(r"[^\w.\-\u4e00-\u9fff]+")


class Reason(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="Why, in words the maker (or the audit) can act on.")


class Generate(BaseModel):
    item: str = Field(max_length=40, description="The item's code or name, e.g. GLJT or 高龄津贴.")
    region: str = Field(max_length=6, description="The district (or city) whose residents it pays.")
    as_of: str | None = Field(default=None, max_length=10, description="YYYY-MM-DD: the day ages are taken on; "
                              "the period is the month (or year) it falls in. Default: today.")


class PayRequest(BaseModel):
    chunk: int = Field(default=payment.DEFAULT_CHUNK, ge=1, le=payment.MAX_CHUNK, description="Rows per transaction.")


def jobs_of(call: Call) -> Jobs:
    return call.request.app.state.jobs


def _region(region: str, field: str = "region") -> tuple[str, str]:
    """(region code, its node), or InvalidInput naming ``field``."""
    try:
        code = validate_region_code(region)
        return code, node_of(code)
    except SbcardError as e:
        raise InvalidInput(e.code, e.message, field) from None


def _batch_node(call: Call, batch: str) -> str:
    """The batch's region's node (404 for no such batch), which must be the caller's (403)."""
    node = call.read(lambda world: batch_import.locate(world, batch)[0])
    call.require_scope(node=node)
    return node


def _upload_name(filename: str | None) -> str:
    """The uploaded file's own name (what the batch records), without any folder and made safe for a path."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    base = _SAFE_NAME.sub("_", base).strip("._")[:120]
    return base or "batch.csv"


# ----------------------------------------------------------------------------- the maker's side


@router.post("/batches", status_code=201, summary="Upload a department's batch file (finance maker)")
@api_fields
def upload(file: UploadFile = File(description="The batch file: CSV (UTF-8 or GBK) or .xlsx."),
                 region: str = Form(description="The district (or city) whose batch this is."),
                 count: int | None = Form(default=None, ge=0, description="Declared rows (with total), when the "
                                          "file has no #TOTAL trailer."),
                 total: str | None = Form(default=None, description="Declared total in yuan, e.g. 1234.50 "
                                          "(with count)."),
                 call: Call = Depends(staff_call(*MAKERS))) -> JSONResponse:
    code, node = _region(region)
    call.require_scope(node=node)
    total_fen = parse_yuan(total, "total") if total is not None else None
    name = _upload_name(file.filename)
    with tempfile.TemporaryDirectory(prefix="sbcard-upload-") as folder:
        path = Path(folder) / name
        sha256 = _save_capped(file, path)
        payload = {"region": code, "count": count, "total_fen": total_fen, "file_name": name, "sha256": sha256}
        # Read, checked and judged whole outside the write lock (reads only; the verdicts are staged on this
        # thread's connection, the one ``call.write`` writes with); only the batch's one insert is under it.
        with ExitStack() as stack:
            try:
                checked = stack.enter_context(batch_import.checked_file(
                    call.world(), path, region=code, operator=call.operator, now=call.now, count=count,
                    total_fen=total_fen))
            except SbcardError as refusal:  # still the answer under the caller's key (a replay comes first)
                def refuse(_world) -> None:
                    raise refusal

                return call.write(refuse, payload=payload, status=201)
            return call.write(lambda _world: checked.store(), payload=payload, status=201)


def _save_capped(upload: UploadFile, path: Path) -> str:
    """Copy the uploaded file to ``path`` a block at a time, never whole in memory, refusing it (413) past
    ``MAX_UPLOAD``; its SHA-256."""
    digest = hashlib.sha256()
    size = 0
    with path.open("wb") as out:
        while block := upload.file.read(_BLOCK):
            size += len(block)
            if size > MAX_UPLOAD:
                raise ApiError(413, "subsidy_file.too_large", f"a batch file is at most "
                               f"{MAX_UPLOAD // (1024 * 1024)} MiB: split it into several batches", "file")
            digest.update(block)
            out.write(block)
    if not size:
        raise InvalidInput("subsidy_file.empty", "the uploaded file is empty", "file")
    return digest.hexdigest()


@router.post("/batches/generate", status_code=201, summary="Build a batch from the registry by the item's rules "
             "(免申即享), to approve and pay like a file's (finance maker)")
@api_fields
def generate(body: Generate, call: Call = Depends(staff_call(*MAKERS))) -> JSONResponse:
    code, node = _region(body.region)
    call.require_scope(node=node)
    if body.as_of is None:
        day = call.now.astimezone(BEIJING).date()
    else:
        try:
            day = dt.date.fromisoformat(body.as_of.strip())
        except ValueError:
            raise InvalidInput("date.invalid", f"{body.as_of!r} is not a date YYYY-MM-DD", "as_of") from None
    return call.write(lambda world: batch_import.generate_batch(world, item=body.item.strip(), as_of=day, region=code,
                                                                operator=call.operator, now=call.now),
                      payload={"item": body.item.strip(), "region": code, "as_of": day.isoformat()}, status=201)


@router.get("/items", summary="The subsidy catalogue: code, name, department, period, cap per person and period")
@api_fields
def items(call: Call = Depends(staff_call(*READERS))) -> dict[str, Any]:
    region = call.principal.region
    return {"items": call.read(lambda world: batch_import.items(world, region=region))}


@router.get("/batches", summary="The region's subsidy batches, oldest first")
@api_fields
def list_batches(region: str | None = Query(default=None, description="A district, city or province."),
                 status: Literal["imported", "approved", "rejected", "paying", "paid"] | None = None,
                 call: Call = Depends(staff_call(*READERS))) -> dict[str, Any]:
    if region is not None:
        region, node = _region(region)
        call.require_scope(node=node)
    mine = call.principal.node

    def do(world):
        return [b for b in batch_import.batches(world, region=region, status=status) if b["node"] == mine]

    return {"batches": call.read(do)}


@router.get("/batches/{batch}", summary="A batch: origin, maker and checker, status, totals, rows by reason")
@api_fields
def show(batch: str, call: Call = Depends(staff_call(*READERS))) -> dict[str, Any]:
    _batch_node(call, batch)
    return call.read(lambda world: batch_import.show(world, batch))


@router.get("/batches/{batch}/failures", summary="The rows not paid, as the CSV to correct and resubmit",
            response_class=Response,
            responses={200: {"content": {"text/csv": {}}, "description": "UTF-8 with BOM, with reason_code, reason"}})
@api_fields
def failures(batch: str, call: Call = Depends(staff_call(*READERS))) -> Response:
    _batch_node(call, batch)
    with tempfile.TemporaryDirectory(prefix="sbcard-failures-") as folder:
        with call.service.worlds.writing() as world:  # the download is audited: a write
            data = batch_import.failures(world, batch, Path(folder) / "failures.csv", operator=call.operator,
                                         now=call.now)
        content = Path(data["out"]).read_bytes()
    filename = f"{data['batch_id']}-failures.csv"
    return Response(content, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "Cache-Control": "no-store, private",  # holders' IDs and names: never kept on the way
                             "X-Rows": str(data["rows"]), "X-Amount-Fen": str(data["amount_fen"])})


# ----------------------------------------------------------------------------- the checker's side


@router.post("/batches/{batch}/approve", summary="Approve an imported batch (a second person: finance checker "
             "or supervisor, not its maker)")
@api_fields
def approve(batch: str, call: Call = Depends(staff_call(*CHECKERS))) -> JSONResponse:
    _batch_node(call, batch)
    return call.write(lambda world: payment.approve(world, batch, operator=call.operator, now=call.now),
                      payload={"batch": batch})


@router.post("/batches/{batch}/reject", summary="Reject an imported batch with a reason; it is never paid")
@api_fields
def reject(batch: str, body: Reason, call: Call = Depends(staff_call(*CHECKERS))) -> JSONResponse:
    _batch_node(call, batch)
    return call.write(lambda world: payment.reject(world, batch, operator=call.operator, reason=body.reason,
                                                   now=call.now), payload=body)


# ----------------------------------------------------------------------------- paying


@router.post("/batches/{batch}/pay", status_code=202, summary="Pay an approved batch, as a background job (202: "
             "poll the job's URL)")
@api_fields
def pay(batch: str, body: PayRequest | None = None, call: Call = Depends(staff_call(*PAYERS))) -> JSONResponse:
    node = _batch_node(call, batch)
    chunk = (body or PayRequest()).chunk
    shown = call.read(lambda world: batch_import.show(world, batch))
    batch_id = shown["batch_id"]
    if shown["status"] == "imported":
        raise RuleRefused("subsidy.not_approved", f"batch {batch_id} is not approved yet: a second person must "
                          f"check it first (POST /api/v1/subsidies/batches/{batch_id}/approve)", "batch")
    if shown["status"] == "rejected":
        raise RuleRefused("subsidy.rejected", f"batch {batch_id} was rejected by {shown['checker']} at "
                          f"{shown['approved_at']} ({shown['reject_reason']}): it is never paid", "batch")
    jobs = jobs_of(call)
    operator = call.operator

    def work(world, job: Job, between) -> dict[str, Any]:
        uow, stored = payment.locate(world, batch_id)
        job.total = payment.summary(uow, stored)["to_pay"]

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total
            between()

        clock = call.service.config.clock
        result = payment.pay(world, batch_id, now=clock.now(), chunk=chunk, progress=progress, operator=operator,
                             clock=clock.now)
        job.done = result["this_run"]["paid"] + result["this_run"]["failed"]
        return result

    def submit(_world) -> dict[str, Any]:
        job, new = jobs.submit(PAY_JOB, batch_id, node=node, operator=operator, work=work)
        return {**job.to_dict(), "batch_id": batch_id, "already_running": not new}

    answer = call.write(submit, payload={"batch": batch_id, "chunk": chunk}, status=202)
    answer.headers["Location"] = f"/api/v1/jobs/{_job_id(answer)}"
    return answer


def _job_id(answer: JSONResponse) -> str:
    return json.loads(bytes(answer.body))["job_id"]


@router.post("/batches/{batch}/rows/{seq}/reverse", summary="Reverse one row's payment made in error (a new "
             "ledger entry, never an edit)")
@api_fields
def reverse(batch: str, seq: int, body: Reason, call: Call = Depends(staff_call(*PAYERS))) -> JSONResponse:
    if seq < 1:
        raise InvalidInput("subsidy.seq", f"a row's sequence number is 1 or more, got {seq}", "seq")
    _batch_node(call, batch)

    def do(world) -> dict[str, Any]:
        done = payment.reverse(world, batch, seq, operator=call.operator, reason=body.reason, now=call.now)
        return {**done, "account_no": mask_middle(done["account_no"], 6, 4)}

    return call.write(do, payload=body)
