"""The Parallel Task API client against the sandbox over real HTTP: success, limits, faults, failed and slow runs.

Retries use the production policy's shape (2 retries, exponential) with a short first delay so the suite stays
quick; ``retry-after`` is honoured whatever the delay.  Every error is checked for the API key.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from blocks.enrichment import ParallelEnrichment
from core.errors import (
    InvalidProviderOutputError,
    MalformedResponseError,
    PermanentProviderError,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeoutError,
)
from providers.http import RetryPolicy
from providers.parallel import (
    ENRICHMENT_OUTPUT_SCHEMA,
    ParallelClient,
    TaskRunFailedError,
    enrichment_input,
    parse_enrichment,
)
from sandbox.server import SandboxServer

API_KEY = "par-sandbox-secret-9876543210"
ACME = enrichment_input("Acme Tooling B.V.", "https://www.acme-tooling.nl", "Netherlands")


@pytest.fixture
def sandbox(provider_sandbox: SandboxServer) -> Iterator[SandboxServer]:
    provider_sandbox.reset(config=True)
    provider_sandbox.configure("parallel", job_duration_s=0.2)
    yield provider_sandbox
    provider_sandbox.reset(config=True)


@contextmanager
def make_client(sandbox: SandboxServer, **options: Any) -> Iterator[ParallelClient]:
    http = httpx.Client(base_url=sandbox.url, headers={"x-api-key": API_KEY})
    settings: dict[str, Any] = {
        "poll_slice_s": 1,
        "request_timeout_s": 5.0,
        "retry": RetryPolicy(retries=2, initial_delay=0.05),
    }
    with http:
        yield ParallelClient(http=http, **{**settings, **options})


@pytest.fixture
def client(sandbox: SandboxServer) -> Iterator[ParallelClient]:
    with make_client(sandbox) as made:
        yield made


def parallel_stats(sandbox: SandboxServer) -> dict[str, Any]:
    stats: dict[str, Any] = sandbox.stats(log=False)["providers"]["parallel"]
    return stats


def no_secret(error: BaseException) -> None:
    assert API_KEY not in str(error) and API_KEY not in repr(error.args)


def test_a_run_is_created_and_its_result_validated(sandbox: SandboxServer, client: ParallelClient) -> None:
    run_id = client.create_run(ACME, ENRICHMENT_OUTPUT_SCHEMA, metadata={"company_id": "42", "bulk_action_id": "7"})
    result = client.wait_result(run_id)

    assert run_id.startswith("trun_") and result.run_id == run_id
    assert result.raw["run"]["status"] == "completed"
    assert result.raw["run"]["metadata"] == {"company_id": "42", "bulk_action_id": "7"}
    assert result.raw["run"]["processor"] == "base"
    enrichment = parse_enrichment(result.content)
    assert enrichment.ownership_type == "family-owned"  # the sandbox answers an enum with its first value
    assert enrichment.products and enrichment.contacts and enrichment.contacts[0].email.endswith("acme-tooling.nl")
    assert set(enrichment.outreach_emails) == {"en", "nl"} and enrichment.outreach_emails["nl"].body
    assert {b["field"] for b in result.basis} >= {"products", "contacts"}
    assert parallel_stats(sandbox)["runs_created"] == 1


def test_waiting_goes_in_slices_until_the_run_ends(sandbox: SandboxServer, client: ParallelClient) -> None:
    sandbox.configure("parallel", job_duration_s=1.5)
    result = client.wait_result(client.create_run(ACME, ENRICHMENT_OUTPUT_SCHEMA))
    assert result.raw["run"]["status"] == "completed"
    results = [r for r in sandbox.requests(provider="parallel") if r["endpoint"] == "get_result"]
    assert [r["status"] for r in results] == [408, 200]  # one full 1 s slice "still running", then the answer
    assert 900 <= results[0]["duration_ms"] < 5000  # a 1 s slice, not the 60 s default


def test_the_active_run_cap_answers_429_and_the_client_waits_retry_after(
    sandbox: SandboxServer, client: ParallelClient
) -> None:
    sandbox.configure("parallel", job_duration_s=0.4, max_concurrency=1)
    first = client.create_run(ACME, ENRICHMENT_OUTPUT_SCHEMA)
    second = client.create_run(ACME, ENRICHMENT_OUTPUT_SCHEMA)  # refused until the first run ends

    stats = parallel_stats(sandbox)
    assert stats["endpoints"]["create_run"]["rate_limited"] >= 1
    assert stats["runs_created"] == 2 and stats["peak_active_runs"] == 1
    for run_id in (first, second):
        assert client.wait_result(run_id).raw["run"]["status"] == "completed"


def test_server_errors_are_retried_on_every_endpoint(sandbox: SandboxServer, client: ParallelClient) -> None:
    sandbox.configure(
        "parallel",
        faults=[
            {"kind": "5xx", "status": 503, "endpoint": "create_run", "times": 2},
            {"kind": "5xx", "status": 502, "endpoint": "get_result", "times": 1},
        ],
    )
    result = client.wait_result(client.create_run(ACME, ENRICHMENT_OUTPUT_SCHEMA))
    assert result.raw["run"]["status"] == "completed"
    stats = parallel_stats(sandbox)
    assert stats["faults"] == {"5xx": 3} and stats["runs_created"] == 1


def test_server_errors_that_persist_end_retryable_after_two_retries(
    sandbox: SandboxServer, client: ParallelClient
) -> None:
    sandbox.configure("parallel", faults=[{"kind": "5xx", "status": 503, "endpoint": "create_run"}])
    with pytest.raises(ProviderServerError) as caught:
        client.create_run(ACME, ENRICHMENT_OUTPUT_SCHEMA)
    assert caught.value.retryable and caught.value.attempts == 3 and caught.value.status_code == 503
    no_secret(caught.value)


def test_a_dropped_connection_on_create_is_retried(sandbox: SandboxServer, client: ParallelClient) -> None:
    sandbox.configure("parallel", faults=[{"kind": "drop", "endpoint": "create_run", "times": 1}])
    client.wait_result(client.create_run(ACME, ENRICHMENT_OUTPUT_SCHEMA))
    assert parallel_stats(sandbox)["runs_created"] == 1


def test_malformed_json_is_retried_and_reported_when_it_persists(
    sandbox: SandboxServer, client: ParallelClient
) -> None:
    sandbox.configure("parallel", faults=[{"kind": "malformed_json", "endpoint": "get_result", "times": 1}])
    run_id = client.create_run(ACME, ENRICHMENT_OUTPUT_SCHEMA)
    assert client.wait_result(run_id).run_id == run_id

    sandbox.configure("parallel", faults=[{"kind": "malformed_json", "endpoint": "get_result"}])
    with pytest.raises(MalformedResponseError) as caught:
        client.wait_result(run_id)
    assert caught.value.retryable and caught.value.attempts == 3
    no_secret(caught.value)


def test_a_held_answer_times_out_and_the_slice_is_asked_again(sandbox: SandboxServer) -> None:
    sandbox.configure("parallel", timeout_s=10, faults=[{"kind": "timeout", "endpoint": "get_result", "times": 1}])
    with make_client(sandbox, request_timeout_s=0.5) as client:
        run_id = client.create_run(ACME, ENRICHMENT_OUTPUT_SCHEMA)
        assert client.wait_result(run_id).run_id == run_id
    stats = parallel_stats(sandbox)
    assert stats["faults"] == {"timeout": 1} and stats["endpoints"]["get_result"]["received"] == 2


def test_a_failed_run_is_a_permanent_error_with_the_providers_reason(
    sandbox: SandboxServer, client: ParallelClient
) -> None:
    sandbox.configure("parallel", faults=[{"kind": "fail_run", "match": "acme-tooling.nl"}])
    run_id = client.create_run(ACME, ENRICHMENT_OUTPUT_SCHEMA)
    with pytest.raises(TaskRunFailedError) as caught:
        client.wait_result(run_id)

    error = caught.value
    assert isinstance(error, PermanentProviderError) and not error.retryable
    assert error.run_id == run_id and error.ref_id and "Sandbox injected run failure" in str(error)
    endpoints = parallel_stats(sandbox)["endpoints"]
    assert endpoints["get_result"]["received"] == 1  # never retried
    assert endpoints["get_run"]["received"] == 1  # the reason comes from the status endpoint
    no_secret(error)


def test_a_run_that_outlives_its_deadline_is_a_retryable_timeout(
    sandbox: SandboxServer, client: ParallelClient
) -> None:
    sandbox.configure("parallel", job_duration_s=30)
    run_id = client.create_run(ACME, ENRICHMENT_OUTPUT_SCHEMA)
    with pytest.raises(ProviderTimeoutError) as caught:
        client.wait_result(run_id, timeout_s=1.0)
    assert caught.value.retryable and run_id in str(caught.value) and "deadline" in str(caught.value)
    assert parallel_stats(sandbox)["endpoints"]["get_result"]["received"] == 1
    no_secret(caught.value)


def test_output_missing_required_fields_is_invalid(sandbox: SandboxServer, client: ParallelClient) -> None:
    sandbox.configure("parallel", faults=[{"kind": "invalid_output", "endpoint": "create_run"}])
    result = client.wait_result(client.create_run(ACME, ENRICHMENT_OUTPUT_SCHEMA))
    with pytest.raises(InvalidProviderOutputError) as caught:
        parse_enrichment(result.content)
    assert "products (missing)" in str(caught.value) and "outreach_email_nl (missing)" in str(caught.value)
    assert not caught.value.retryable


def test_mistyped_fields_are_all_named() -> None:
    content = {
        "products": "one product",
        "ownership_type": "family-owned",
        "owner_names": [],
        "activity_description": "Makes tools.",
        "contacts": [{"name": "A", "role": "CEO", "email": "a@x.nl"}],
        "outreach_email_en": {"subject": "Hi", "body": "Hello"},
        "outreach_email_nl": {"subject": "Hoi"},
    }
    with pytest.raises(InvalidProviderOutputError) as caught:
        parse_enrichment(content)
    message = str(caught.value)
    assert "products (not a list)" in message
    assert "contacts[0].phone (missing)" in message and "outreach_email_nl.body (missing)" in message


def test_metadata_limits_are_checked_before_any_request(sandbox: SandboxServer, client: ParallelClient) -> None:
    with pytest.raises(ValueError, match="1-16 characters"):
        client.create_run(ACME, ENRICHMENT_OUTPUT_SCHEMA, metadata={"bulk_action_identifier": "1"})
    with pytest.raises(ValueError, match="longer than 512"):
        client.create_run(ACME, ENRICHMENT_OUTPUT_SCHEMA, metadata={"note": "x" * 513})
    assert parallel_stats(sandbox)["received"] == 0


def test_a_key_echoed_by_the_provider_is_masked() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        key = request.headers["x-api-key"]
        return httpx.Response(400, json={"type": "error", "error": {"message": f"bad key {key}", "ref_id": "r"}})

    with httpx.Client(
        base_url="http://parallel.test", headers={"x-api-key": API_KEY}, transport=httpx.MockTransport(echo)
    ) as http:
        with pytest.raises(ProviderRequestError) as caught:
            ParallelClient(http=http).create_run(ACME, ENRICHMENT_OUTPUT_SCHEMA)
    assert "bad key ***" in str(caught.value)
    no_secret(caught.value)


def test_the_output_schema_follows_parallels_rules() -> None:
    """Object root; every object lists all its properties as required and allows no others."""

    def objects(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if schema.get("type") == "object":
            yield schema
            for sub in schema["properties"].values():
                yield from objects(sub)
        elif schema.get("type") == "array":
            yield from objects(schema["items"])

    found = list(objects(ENRICHMENT_OUTPUT_SCHEMA))
    assert len(found) == 4  # root, contact, two emails
    for schema in found:
        assert sorted(schema["required"]) == sorted(schema["properties"])
        assert schema["additionalProperties"] is False


def test_the_block_builds_a_client_with_the_documented_defaults() -> None:
    block = ParallelEnrichment(api_key=API_KEY)  # type: ignore[arg-type]
    client = block.get_client()
    assert (client.processor, client.run_timeout_s, client.poll_slice_s) == ("base", 3600.0, 60)
    assert client._retry == RetryPolicy(retries=2, initial_delay=0.5, guard_tag="parallel")  # its breaker: its tag
    assert block.concurrency_tag == "parallel" and API_KEY not in repr(block)


def test_max_active_runs_holds_creations_below_the_providers_cap(sandbox: SandboxServer) -> None:
    sandbox.configure("parallel", max_concurrency=4)
    with make_client(sandbox, max_active_runs=4) as client:

        def enrich(i: int) -> str:
            task_input = enrichment_input(f"Company {i}", f"https://company-{i}.nl", None)
            return client.wait_result(client.create_run(task_input, ENRICHMENT_OUTPUT_SCHEMA)).run_id

        with ThreadPoolExecutor(max_workers=12) as pool:
            run_ids = list(pool.map(enrich, range(12)))
        assert len(set(run_ids)) == 12 and client.active_runs == 0
    stats = parallel_stats(sandbox)
    assert stats["runs_created"] == 12 and stats["peak_active_runs"] == 4 and stats["rate_limited"] == 0


def test_batches_starting_together_share_one_client() -> None:
    block = ParallelEnrichment(api_key=API_KEY, max_active_runs=3)  # type: ignore[arg-type]
    with ThreadPoolExecutor(max_workers=8) as pool:
        clients = set(map(id, pool.map(lambda _: block.get_client(), range(8))))
    assert len(clients) == 1  # one client, so one set of run slots per process
