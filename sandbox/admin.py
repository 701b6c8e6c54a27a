"""Admin endpoints under ``/_sandbox``: health, configuration, stats, reset. Never limited or faulted."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from sandbox.config import ConfigError
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
