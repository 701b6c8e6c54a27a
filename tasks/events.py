"""Emitting bulkai's Prefect events (names and shapes: ``core.events``).

An event is advisory: failing to send one never fails a batch or a run, it is logged and dropped.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect.events import emit_event

from core import events
from core.events import rounded

_logger = logging.getLogger("bulkai.events")


def emit(
    name: str, resource: dict[str, str], payload: dict[str, Any], related: list[dict[str, str]] | None = None
) -> None:
    try:
        emit_event(name, resource=resource, payload=rounded(payload), related=related or [])
    except Exception as error:  # noqa: BLE001 - an event is advisory
        _logger.warning("event %s not emitted: %s", name, error)


def emit_action_event(
    name: str,
    *,
    bulk_action_id: int,
    action: str,
    priority: int = 0,
    created_by: str = "",
    flow_run_id: str | None = None,
    **payload: Any,
) -> None:
    """One bulk-action event (``core.events``): the action as resource, its flow run as related."""
    emit(
        name,
        events.bulk_action_resource(bulk_action_id, action, priority, created_by),
        {"action": action, "priority": priority, "created_by": created_by, **payload},
        events.flow_run_related(flow_run_id),
    )
