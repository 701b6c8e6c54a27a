"""The values a bulk action's flow run is asked for and answers with."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from core.catalog import DEFAULT_MAX_COMPANIES
from core.selection import Selection


class BulkActionFailedError(RuntimeError):
    """Raised at the end of a bulk action whose failures passed its threshold (the flow run ends Failed)."""


@dataclass(frozen=True)
class BulkActionRequest:
    action: str
    selection: Selection | None
    provider: str
    database: str = "default"
    created_by: str = "unknown"
    priority: int = 0
    bulk_action_id: int | None = None
    parent_id: int | None = None
    max_companies: int = DEFAULT_MAX_COMPANIES
    progress_every: int = 5
    failure_threshold: float = 0.5
    cancel_check_seconds: float = 2.0
    takeover: bool = False
    dry_run: bool = False
    shards: int = 1
    shard_index: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    #: the action's spend cap in USD (None: no cap; spend is counted either way); a rerun's raises the cap
    budget_usd: float | None = None
    #: run paid models that have no price, recording their calls at $0 (otherwise such a run is refused)
    allow_unpriced: bool = False
    #: the bulk action whose failed companies this one retries (``retry_errors``), recorded on the new action
    retry_of: int | None = None


@dataclass(frozen=True)
class DryRunReport:
    """What a dry run found: the selection's size, a sample, and what running it would take (``core.estimates``).

    Nothing was written and no provider was called.  ``skipped`` and ``invalid_input`` are scaled from a sample
    of at most 200 companies (exact for smaller selections); ``assumptions`` says what every estimate rests on.
    """

    action: str
    count: int
    sample: list[dict[str, Any]]
    skipped: int = 0
    invalid_input: int = 0
    provider_calls: int = 0
    estimated_cost_nanousd: int = 0
    estimated_cost_usd: float = 0.0
    expected_seconds: float = 0.0
    assumptions: list[str] = field(default_factory=list)


S = TypeVar("S", bound="BulkActionSummary")


@dataclass(frozen=True)
class BulkActionSummary:
    bulk_action_id: int
    action: str
    status: str
    total: int
    succeeded: int
    skipped: int
    failed: int
    batches: int
    batches_from_checkpoint: int
    provider_calls: int
    seconds: float
    errors: dict[str, int]
    invalid_input: int = 0
    shards: int = 1
    #: settled spend of the whole action so far, USD (every flow run of it, retries included)
    spend_usd: float = 0.0
    budget_usd: float | None = None
    status_reason: str | None = None

    def extended(self, kind: type[S], **extra: Any) -> S:
        """This summary as ``kind``, a subclass that adds an action's own figures (``extra``)."""
        base = {f.name: getattr(self, f.name) for f in fields(BulkActionSummary)}
        return kind(**base, **extra)

    def as_rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [
            {"metric": name, "value": getattr(self, name)}
            for name in (
                "bulk_action_id",
                "action",
                "status",
                "total",
                "succeeded",
                "skipped",
                "failed",
                "batches",
                "batches_from_checkpoint",
                "provider_calls",
                "invalid_input",
                "shards",
                "spend_usd",
                "budget_usd",
                "status_reason",
            )
        ]
        rows.append({"metric": "seconds", "value": round(self.seconds, 2)})
        rows.extend({"metric": f"dead jobs: {cls}", "value": n} for cls, n in sorted(self.errors.items()))
        return rows
