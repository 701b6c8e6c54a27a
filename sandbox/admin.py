"""Admin endpoints under ``/_sandbox``: health, configuration, stats, reset. Never limited or faulted."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from sandbox.config import PROVIDERS, ConfigError
from sandbox.providers import read_json
from sandbox.state import SandboxState, get_state

router = APIRouter(prefix="/_sandbox", tags=["sandbox admin"])
State = Annotated[SandboxState, Depends(get_state)]


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/config")
async def get_config(state: State) -> dict[str, Any]:
    return state.config.model_dump()


@router.post("/config")
async def update_config(request: Request, state: State) -> JSONResponse:
    """Partial update ``{provider: {field: value}}``; answers the whole new configuration, or 422."""
    patch = await read_json(request)
    try:
        if not isinstance(patch, dict):
            raise ConfigError("body must be a JSON object {provider: {field: value}}")
        config = state.update_config(patch)
    except ConfigError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=422)
    return JSONResponse(config.model_dump())


@router.get("/stats")
async def get_stats(
    state: State, log: bool = True, provider: str | None = None, contains: str | None = None
) -> dict[str, Any]:
    """Counters per provider and endpoint; ``log`` adds the request log, filtered by provider / match_key."""
    return state.snapshot(log=log, provider=provider, contains=contains)


@router.post("/reset")
async def reset(request: Request, state: State) -> dict[str, Any]:
    """Clear stats, runs, batches, windows and fault counters; ``{"config": true}`` also restores the
    config."""
    body = await read_json(request)
    restore = bool(body.get("config")) if isinstance(body, dict) else False
    state.reset(config=restore)
    return {"status": "reset", "config_restored": restore}


@router.post("/outage")
async def start_outage(request: Request, state: State) -> JSONResponse:
    """``{"provider": "groq", "seconds": 30, "status": 503}``: every request of the provider answers that 5xx
    from now for ``seconds`` (``sandbox.outages``); answers the window with its epoch start and end."""
    body = await read_json(request)
    if not isinstance(body, dict) or body.get("provider") not in PROVIDERS:
        return JSONResponse({"detail": f"provider must be one of {sorted(PROVIDERS)}"}, status_code=422)
    try:
        seconds = float(body.get("seconds", 30))
        status = int(body.get("status", 503))
    except (TypeError, ValueError):
        return JSONResponse({"detail": "seconds and status must be numbers"}, status_code=422)
    if seconds <= 0 or not 500 <= status <= 599:
        return JSONResponse({"detail": "seconds must be positive and status a 5xx"}, status_code=422)
    outage = state.outages.start(str(body["provider"]), seconds, status)
    return JSONResponse(asdict(outage))


@router.get("/outages")
async def list_outages(state: State) -> list[dict[str, Any]]:
    return state.outages.listed()
