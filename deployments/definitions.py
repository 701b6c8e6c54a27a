"""prefect.yaml as data: the one list of deployments, read by `serve` and by the definitions test.

Keeping prefect.yaml the single source means `prefect deploy --all` (workers) and `make serve` (one process, no
worker) run exactly the same deployments, schedules and overlap rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.flows import load_flow_from_entrypoint
from prefect.schedules import Cron, Schedule

from core.db import REPO_ROOT

PREFECT_YAML = REPO_ROOT / "prefect.yaml"


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    entrypoint: str
    description: str = ""
    tags: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: list[Schedule] = field(default_factory=list)
    concurrency_limit: ConcurrencyLimitConfig | None = None
    enforce_parameter_schema: bool = True

    def load_flow(self) -> Flow[..., Any]:
        return load_flow_from_entrypoint(str(REPO_ROOT / self.entrypoint))


def read_deployments(path: Path = PREFECT_YAML) -> list[DeploymentSpec]:
    document = yaml.safe_load(path.read_text())
    specs = []
    for entry in document["deployments"]:
        limit = entry.get("concurrency_limit")
        specs.append(
            DeploymentSpec(
                name=entry["name"],
                entrypoint=entry["entrypoint"],
                description=entry.get("description", ""),
                tags=list(entry.get("tags") or []),
                parameters=dict(entry.get("parameters") or {}),
                schedules=[Cron(s["cron"], timezone=s.get("timezone", "UTC")) for s in entry.get("schedules") or []],
                concurrency_limit=ConcurrencyLimitConfig(
                    limit=limit["limit"],
                    collision_strategy=ConcurrencyLimitStrategy(limit.get("collision_strategy", "ENQUEUE")),
                )
                if isinstance(limit, dict)
                else None,
                enforce_parameter_schema=bool(entry.get("enforce_parameter_schema", True)),
            )
        )
    return specs
