"""retry_errors end to end: the failed companies of an action rerun as a new, linked action on its provider."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from sqlalchemy import update

from blocks.llm import GroqLLM
from blocks.loading import clear_block_cache, load_database
from core.schema import Company
from deployments.provision_limits import provision_limits
from flows.retry_errors import retry_errors
from flows.rollback import rollback
from flows.score_llm_adoption import score_llm_adoption
from providers.pacing import window_limit_name
from sandbox.server import SandboxServer
from tests.helpers import bulk_action, seed

TAG = "groq-retry"


@pytest.fixture
def sandbox(provider_sandbox: SandboxServer) -> Iterator[SandboxServer]:
    provider_sandbox.reset(config=True)
    yield provider_sandbox
    provider_sandbox.reset(config=True)


@pytest.fixture(scope="module")
def groq(provider_sandbox: SandboxServer) -> str:
    provision_limits({TAG: 2})
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(window_limit_name(TAG), 6000)
    common: dict[str, Any] = {"api_key": "fake-groq-retry-key", "base_url": f"{provider_sandbox.url}/openai/v1"}
    GroqLLM(**common, requests_per_minute=6000, concurrency_tag=TAG).save("retry", overwrite=True)
    clear_block_cache()
    return "groq-llm/retry"


def test_the_failed_companies_rerun_as_a_linked_action_with_the_same_provider_and_options(
    sandbox: SandboxServer, groq: str
) -> None:
    db = load_database("default")
    ids = seed(db, 4, 1601)
    poison = ids[2]
    with db.session() as session:
        session.execute(update(Company).where(Company.id == poison).values(name="Flaky Answers Ltd"))
    # the model garbles this company's first three answers (one criterion's attempts), then recovers
    sandbox.configure("groq", faults=[{"kind": "invalid_output", "match": "Flaky Answers Ltd", "times": 3}])
    first = score_llm_adoption(company_ids=ids, provider=groq)
    assert (first.succeeded, first.failed) == (3, 1)

    retry = retry_errors(retry_of=first.bulk_action_id)

    assert (retry.total, retry.succeeded, retry.failed) == (1, 1, 0)
    record = bulk_action(db, retry.bulk_action_id)
    assert record.action == "score_llm_adoption" and record.parameters is not None
    assert record.parameters["retry_of"] == first.bulk_action_id
    assert record.parameters["provider"] == groq
    assert record.parameters["options"]["rescore"] is True  # forced, whatever the original said


def test_only_engine_actions_with_companies_to_redo_are_retried(groq: str) -> None:
    db = load_database("default")
    ids = seed(db, 2, 1602)
    undo = rollback(rollback_of=score_llm_adoption(company_ids=ids).bulk_action_id)
    state = retry_errors(retry_of=undo.bulk_action_id, return_state=True)
    assert state.is_failed() and "retry_errors reruns" in str(state.message)
    missing = retry_errors(retry_of=10**9, return_state=True)
    assert missing.is_failed() and "does not exist" in str(missing.message)
