"""Serve every deployment of prefect.yaml from this one process, with no work pool or worker.

    make serve            # or: python -m deployments.serve

Schedules fire while it runs; `prefect deployment run NAME/DEPLOYMENT` works against it.  When it stops,
Prefect pauses the served deployments' schedules.
"""

from __future__ import annotations

from prefect import serve

from deployments.definitions import read_deployments
from deployments.provision_limits import provision_limits
from deployments.register_blocks import register_blocks


def main() -> None:
    register_blocks()
    provision_limits()
    deployments = [
        spec.load_flow().to_deployment(
            name=spec.name,
            description=spec.description,
            tags=spec.tags,
            parameters=spec.parameters,
            schedules=spec.schedules or None,
            concurrency_limit=spec.concurrency_limit,
            enforce_parameter_schema=spec.enforce_parameter_schema,
        )
        for spec in read_deployments()
    ]
    serve(*deployments)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
