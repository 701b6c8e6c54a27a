"""The operations policy block: circuit-breaker settings per provider and the thresholds alerts fire on.

Operators edit the document named ``default`` in the UI (Blocks → Operations Policy).  With none saved, every
figure is the default below.  The engine and the provider guard read it once per process and flow run; the
alert automations ``make deploy`` creates read it when they are created (``deployments.automations``).
"""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import BaseModel, Field

DEFAULT_OPERATIONS_POLICY = "default"


class BreakerSettings(BaseModel):
    """When one provider's circuit breaker opens, how long it stays open, and when a long outage pauses."""

    consecutive_failures: int = Field(
        default=5,
        ge=1,
        description="Open after this many failed attempts in a row (5xx, timeouts, connection errors), counted "
        "across every worker; any answer resets the run. Above one call's attempts (3 by default), so one "
        "company the provider always fails on does not open it by itself.",
    )
    error_rate: float = Field(
        default=0.5, gt=0, le=1, description="Open when this share of one process's calls in the window failed."
    )
    window_seconds: float = Field(default=60.0, gt=0, description="The error-rate window.")
    window_min_calls: int = Field(default=20, ge=1, description="No error-rate verdict on fewer calls than this.")
    cooldown_seconds: float = Field(default=15.0, gt=0, description="Open this long before half-open probes.")
    probes: int = Field(default=1, ge=1, description="Calls let through while half-open; one success closes it.")
    pause_after_seconds: float = Field(
        default=600.0,
        gt=0,
        description="An outage longer than this pauses the actions waiting on it (resume them when it is over).",
    )


class AlertThresholds(BaseModel):
    """What the alert automations fire on (the engine emits the events; ``make deploy`` builds the triggers)."""

    failure_ratio: float = Field(
        default=0.2, gt=0, le=1, description="A bulk action whose failed share of processed companies passes this."
    )
    failure_min_processed: int = Field(
        default=20, ge=1, description="No failure-ratio alert before this many companies are processed."
    )
    stall_minutes: float = Field(default=10.0, gt=0, description="A running action with no progress event this long.")
    slow_factor: float = Field(default=2.0, gt=1, description="A run taking this many times its estimate.")
    dead_jobs_open: int = Field(default=100, ge=1, description="Open dead jobs past this count.")
    progress_event_seconds: float = Field(
        default=30.0, gt=0, description="At most one progress event per action this often (plus one at the end)."
    )


class OperationsPolicy(Block):
    """Circuit breakers per provider and alert thresholds."""

    _block_type_name: ClassVar[str] = "Operations Policy"
    _block_type_slug: ClassVar[str] = "operations-policy"
    _description: ClassVar[str] = (
        "Circuit-breaker settings for every provider (with per-tag overrides) and the thresholds the alert "
        "automations fire on."
    )

    breaker: BreakerSettings = Field(default_factory=BreakerSettings, description="Every provider's breaker.")
    breaker_by_tag: dict[str, BreakerSettings] = Field(
        default_factory=dict, description="Overrides keyed by the provider block's concurrency tag (e.g. 'groq')."
    )
    alerts: AlertThresholds = Field(default_factory=AlertThresholds, description="Alert thresholds.")
    notification_block: str = Field(
        default="bulkai-alerts",
        description="The notification block (by default a Webhook block) alert automations send to.",
    )

    def breaker_for(self, tag: str) -> BreakerSettings:
        return self.breaker_by_tag.get(tag, self.breaker)


def load_operations_policy(name: str = DEFAULT_OPERATIONS_POLICY) -> OperationsPolicy:
    """The named policy, or the defaults when it does not exist."""
    from blocks.loading import load_or_default

    return load_or_default(OperationsPolicy, name)
