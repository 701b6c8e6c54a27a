"""Every prefect.yaml entrypoint imports as a Prefect flow, and every deployment's parameters validate."""

from __future__ import annotations

import pytest
from prefect import Flow
from prefect.utilities.callables import parameter_schema

from deployments.definitions import read_deployments

SPECS = read_deployments()


def test_prefect_yaml_defines_every_action_and_the_three_scheduled_flows() -> None:
    names = {spec.name for spec in SPECS}
    actions = {"generate-embeddings", "enrich-companies", "score-llm-adoption", "update-status", "bulk-action"}
    assert actions | {"import-companies", "export-companies", "process-file"} <= names
    scheduled = {spec.name for spec in SPECS if spec.schedules}
    assert scheduled == {"enrichment-cron", "dead-job-review", "cleanup", "operations-report"}
    for spec in SPECS:
        if spec.schedules:
            assert spec.concurrency_limit is not None and spec.concurrency_limit.limit == 1, spec.name
        assert spec.enforce_parameter_schema, spec.name


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_entrypoint_is_a_flow_whose_parameters_validate(spec: object) -> None:
    from deployments.definitions import DeploymentSpec

    assert isinstance(spec, DeploymentSpec)
    flow = spec.load_flow()
    assert isinstance(flow, Flow)
    schema = parameter_schema(flow).model_dump_for_openapi()
    assert schema["type"] == "object"
    # values for required parameters a form would ask for
    sample = {"action": "generate_embeddings", "source": "imports/companies.csv", "bulk_action_id": 1, "retry_of": 1}
    required = schema.get("required", [])
    parameters = {**{name: sample[name] for name in required}, **spec.parameters}
    flow.validate_parameters(parameters)
    for name in required:
        with pytest.raises(Exception, match=name):
            flow.validate_parameters({k: v for k, v in parameters.items() if k != name})
    if "company_ids" in schema["properties"]:
        with pytest.raises(Exception, match="company_ids"):
            flow.validate_parameters({**parameters, "company_ids": ["not-an-id"]})


def test_every_action_of_the_catalog_runs_by_name_through_bulk_action() -> None:
    from core.catalog import ACTIONS
    from flows.bulk_action import ACTION_FLOWS, action_flow

    assert set(ACTION_FLOWS) == set(ACTIONS)
    for action in ACTIONS:
        assert callable(action_flow(action))
