"""Parallel Task API: create a task run, poll its status, block on its result.

A run's output is generated at creation from the input and the requested output schema; the run then reports
``queued`` -> ``running`` -> ``completed`` (or ``failed`` under a ``fail_run`` fault) as ``job_duration_s``
passes.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from sandbox.gateway import FAULT_KEY, RUN_RESERVATION_KEY
from sandbox.generate import Company, basis_for, describe_company, schema_content
from sandbox.jobs import Clock, TaskRun, new_run_id
from sandbox.providers import error_response, new_ref_id, read_json
from sandbox.state import SandboxState, get_state

router = APIRouter(tags=["parallel"])
State = Annotated[SandboxState, Depends(get_state)]

DEFAULT_RESULT_TIMEOUT_S = 600.0
METADATA_KEY_CHARS = 16
METADATA_VALUE_CHARS = 512
WAKE_MARGIN_S = 0.001  # timers may fire a hair early; never report "still running" because of that


def _metadata_error(metadata: Any) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        return "metadata must be an object"
    for key, value in metadata.items():
        if len(key) > METADATA_KEY_CHARS:
            return f"metadata key {key!r} is longer than {METADATA_KEY_CHARS} characters"
        if isinstance(value, str) and len(value) > METADATA_VALUE_CHARS:
            return f"metadata value of {key!r} is longer than {METADATA_VALUE_CHARS} characters"
    return None


def build_output(task_spec: Any, company: Company, *, invalid: bool) -> dict[str, Any]:
    """The run's ``output``: JSON following the spec's schema when there is one, otherwise text."""
    output_schema = task_spec.get("output_schema") if isinstance(task_spec, dict) else None
    if isinstance(output_schema, dict) and output_schema.get("type") == "json":
        json_schema = output_schema.get("json_schema")
        if isinstance(json_schema, dict):
            content = schema_content(json_schema, company, invalid=invalid)
            fields = list(content) if isinstance(content, dict) else ["output"]
            return {"type": "json", "content": content, "basis": basis_for(fields, company)}
    text = "" if invalid else f"Sandbox research summary for {company.name} ({company.domain}); not researched."
    return {"type": "text", "content": text, "basis": basis_for(["output"], company)}


@router.post("/v1/tasks/runs", status_code=202)
async def create_run(request: Request, state: State) -> JSONResponse:
    payload = await read_json(request)
    if not isinstance(payload, dict):
        return error_response("parallel", 422, "invalid_request", "Request body must be a JSON object")
    if payload.get("input") in (None, "", {}):
        return error_response("parallel", 422, "invalid_request", "input is required")
    problem = _metadata_error(payload.get("metadata"))
    if problem is not None:
        return error_response("parallel", 422, "invalid_request", problem)

    fault = request.scope.pop(FAULT_KEY, None)
    company = describe_company(payload["input"])
    error = None
    if fault == "fail_run":
        error = {
            "message": "Sandbox injected run failure",
            "ref_id": new_ref_id(),
            "detail": {"sandbox": True, "company": company.name},
        }
    output = None if error else build_output(payload.get("task_spec"), company, invalid=fault == "invalid_output")
    now = time.monotonic()
    run = TaskRun(
        run_id=new_run_id(),
        processor=str(payload.get("processor") or "base"),
        metadata=payload.get("metadata"),
        started=Clock(now, time.time()),
        duration_s=state.config.parallel.job_duration_s,
        output=output,
        error=error,
    )
    state.runs.add(run, now, reserved=bool(request.scope.pop(RUN_RESERVATION_KEY, False)))
    return JSONResponse(run.to_json(now), status_code=202)


@router.get("/v1/tasks/runs/{run_id}")
async def get_run(run_id: str, state: State) -> JSONResponse:
    run = state.runs.runs.get(run_id)
    if run is None:
        return error_response("parallel", 404, "not_found", f"Run {run_id} not found")
    return JSONResponse(run.to_json(time.monotonic()))


@router.get("/v1/tasks/runs/{run_id}/result")
async def get_result(run_id: str, state: State, timeout: float = DEFAULT_RESULT_TIMEOUT_S) -> JSONResponse:
    """Block until the run ends or ``timeout`` passes (408), as the real endpoint does.

    A failed run answers 424 with the run's error in the error body (``detail.run``); the status endpoint
    shows the same error on the run object.
    """
    run = state.runs.runs.get(run_id)
    if run is None:
        return error_response("parallel", 404, "not_found", f"Run {run_id} not found")
    now = time.monotonic()
    deadline = now + max(0.0, timeout)
    while not run.is_done(now) and now < deadline and not state.shutting_down:
        await state.sleep(min(run.ends_at, deadline) - now + WAKE_MARGIN_S)
        now = time.monotonic()
    if not run.is_done(now):
        return error_response("parallel", 408, "timeout", f"Run {run_id} is still active after {timeout:g}s")
    run_json = run.to_json(now)
    if run.error is not None:
        message = f"Run {run_id} failed: {run.error['message']}"
        error = {"message": message, "ref_id": run.error["ref_id"], "detail": {"run": run_json}}
        return JSONResponse({"type": "error", "error": error}, status_code=424)
    return JSONResponse({"run": run_json, "output": run.output})
