"""A local alert receiver: ``POST /alerts`` records what a notification block sent, ``GET /alerts`` lists it.

Not a provider: it stands in for the Slack channel or incident tool an operator would point the alert
automations' webhook at (``deployments/automations.py``), so the offline demo, the end-to-end tests and the
alert benchmark have somewhere to send.  Each delivery is kept with the time it arrived (epoch seconds, this
machine's clock) and its body (JSON when it parses, else text); ``DELETE /alerts`` forgets them.  Outside the
gateway's provider routes: never limited, faulted or billed.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from fastapi import APIRouter, Request

router = APIRouter(tags=["alert receiver"])


class AlertInbox:
    """What the receiver got, in arrival order (appended from the server's loop, read from any thread)."""

    def __init__(self) -> None:
        self._received: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, body: bytes, content_type: str) -> dict[str, Any]:
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = body.decode(errors="replace")
        entry = {"received_at": time.time(), "content_type": content_type, "body": parsed}
        with self._lock:
            entry["index"] = len(self._received)
            self._received.append(entry)
        return entry

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._received)

    def clear(self) -> None:
        with self._lock:
            self._received.clear()


def inbox(request: Request) -> AlertInbox:
    found = request.app.state.alerts
    assert isinstance(found, AlertInbox)
    return found


@router.post("/alerts")
async def receive(request: Request) -> dict[str, Any]:
    entry = inbox(request).add(await request.body(), request.headers.get("content-type", ""))
    return {"received": entry["index"]}


@router.get("/alerts")
async def received(request: Request) -> list[dict[str, Any]]:
    return inbox(request).list()


@router.delete("/alerts")
async def forget(request: Request) -> dict[str, str]:
    inbox(request).clear()
    return {"status": "cleared"}
