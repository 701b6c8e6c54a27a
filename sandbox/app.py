"""Wiring: the FastAPI app with every provider's routes behind the gateway."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI

from sandbox import admin, alerts, anthropic_api, openai_compat, parallel, workers_ai
from sandbox.config import SandboxConfig, as_config
from sandbox.gateway import Gateway
from sandbox.state import SandboxState


def create_app(config: SandboxConfig | Mapping[str, Any] | None = None) -> FastAPI:
    """A fresh sandbox app with its own state (``app.state.sandbox``); nothing is shared between apps."""
    state = SandboxState(as_config(config))
    app = FastAPI(
        title="Provider sandbox",
        description="Local stand-in for Parallel, GROQ, Anthropic, Workers AI and OpenAI embeddings.",
        docs_url="/_sandbox/docs",
        redoc_url=None,
        openapi_url="/_sandbox/openapi.json",
    )
    app.state.sandbox = state
    app.state.alerts = alerts.AlertInbox()  # the local alert receiver (sandbox/alerts.py)
    for module in (parallel, openai_compat, anthropic_api, workers_ai, admin, alerts):
        app.include_router(module.router)
    app.add_middleware(Gateway, state=state)
    return app


def app_state(app: FastAPI) -> SandboxState:
    """The state of an app made by :func:`create_app`."""
    state = app.state.sandbox
    assert isinstance(state, SandboxState)
    return state
