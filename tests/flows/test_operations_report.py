"""The operations report as a real flow run on the session's server, every figure checked against the data.

Each test gets a company database of its own (a fresh SQLite file, or a fresh PostgreSQL database), fills it with
rows whose timestamps are set relative to one instant ``NOW``, runs ``operations-report`` with ``as_of=NOW`` and
reads the artifact back.  The expected figures are computed here from the rows as inserted (plain Python over
the lists below), never with the queries the report uses.
"""

from __future__ import annotations

import base64
import html
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterId
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.settings import get_current_settings
from sqlalchemy import update

from blocks.database import CompanyDatabase
from blocks.loading import clear_block_cache, load_database
from core.catalog import ACTIONS
from core.operations_tables import ProviderCircuit, SlotRequest
from core.pricing import format_usd
from core.schema import (
    BulkAction,
    BulkActionOutcome,
    BulkActionStatus,
    Company,
    CompanyStatus,
    DeadJob,
    DeadJobStatus,
    OutcomeStatus,
    SpendEntry,
)
from flows.operations_report import operations_report
from tests.conftest import POSTGRES_ADMIN_URL
from tests.helpers import seed

NOW = datetime(2026, 11, 15, 10, 30, tzinfo=UTC)
M = timedelta(minutes=1)
H = timedelta(hours=1)


@pytest.fixture(params=["sqlite", "postgres"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, CompanyDatabase]]:
    """A company database of the test's own, saved as a block, on each backend."""
    name = f"ops-{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'companies.db'}"
    else:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    CompanyDatabase(url=url).save(name, overwrite=True)  # type: ignore[arg-type]
    clear_block_cache()
    yield name, load_database(name)
    if request.param == "postgres":
        load_database(name).get_engine().dispose()
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Prepared:
    actions: dict[str, dict[str, Any]]  # key -> action, status, provider parameter, id
    outcomes: list[tuple[str, OutcomeStatus, datetime]]  # action key, status, updated_at
    dead_jobs: list[tuple[str, str, str, DeadJobStatus]]  # action key, class, message, status
    review: dict[str, int]  # reason -> companies flagged with it
    spend: list[tuple[str, str, int, int, datetime]]  # provider, creator, nanousd, calls, created_at


ACTIONS_PLAN = {
    "a1": ("generate_embeddings", BulkActionStatus.RUNNING, "local-minilm-embeddings/default"),
    "a2": ("score_llm_adoption", BulkActionStatus.PAUSED, None),
    "a3": ("generate_embeddings", BulkActionStatus.COMPLETED, None),
    "a4": ("enrich_companies", BulkActionStatus.FAILED, "parallel/sandbox"),
    "a5": ("score_llm_adoption", BulkActionStatus.COMPLETED, None),
    "a6": ("reclassify", BulkActionStatus.WAITING, "anthropic/default"),
}
P, S, F, K = OutcomeStatus.PENDING, OutcomeStatus.SUCCEEDED, OutcomeStatus.FAILED, OutcomeStatus.SKIPPED
OUTCOMES = [
    *[("a1", P, NOW - 5 * M)] * 3,  # pending, touched recently: not finished, never counted
    *[("a1", S, NOW - 10 * M)] * 4,
    ("a1", F, NOW - 20 * M),
    ("a1", S, NOW - H),  # exactly an hour ago: inside [now - 1 h, now)
    ("a1", S, NOW),  # at now: outside (a window is half-open)
    ("a1", K, NOW - 2 * H - 30 * M),
    ("a1", F, NOW - 30 * H),  # older than the chart's day
    *[("a2", P, NOW - 7 * H)] * 2,
    ("a2", S, NOW - 5 * H - 15 * M),
    *[("a2", F, NOW - 59 * M)] * 2,
    *[("a3", S, NOW - 3 * H - 10 * M)] * 4,
    ("a4", F, NOW - 23 * H - 59 * M),
    *[("a5", S, NOW - 50 * M)] * 2,
    ("a6", P, NOW - 2 * H),
]
DEAD_JOBS = [
    ("a4", "ProviderTimeoutError", "timed out after 30 s", DeadJobStatus.OPEN),
    ("a4", "ProviderTimeoutError", "timed out after 45 s", DeadJobStatus.OPEN),
    ("a4", "InvalidOutputError", "the answer is not JSON", DeadJobStatus.OPEN),
    ("a1", "ProviderServerError", "server error", DeadJobStatus.OPEN),
    ("a1", "ProviderServerError", "server error", DeadJobStatus.RESOLVED),  # closed: not in the report
]
#: the patterns the dead-job review shows for these messages (numbers collapse to <n>)
DEAD_PATTERNS = {
    "timed out after 30 s": "ProviderTimeoutError: timed out after <n> s",
    "timed out after 45 s": "ProviderTimeoutError: timed out after <n> s",
    "the answer is not JSON": "InvalidOutputError: the answer is not JSON",
    "server error": "ProviderServerError: server error",
}
REVIEW = {"manual check requested": 3, "duplicate suspected": 1}
SPEND = [
    ("groq/default", "alice", 1_500_000_000, 1, NOW - H),  # today
    ("groq/default", "alice", 2_000_000, 2, datetime(2026, 11, 2, 8, 0, tzinfo=UTC)),  # this month
    ("groq/default", "bob", 700_000, 1, NOW - 2 * M),  # today
    ("groq/default", "alice", 5_000_000, 1, datetime(2026, 10, 31, 23, 59, tzinfo=UTC)),  # last month
    ("groq/default", "alice", 9_000_000, 1, NOW + H),  # after as_of: not yet
    ("parallel/sandbox", "bob", 300_000, 3, datetime(2026, 11, 15, 0, 0, tzinfo=UTC)),  # midnight: today
    ("parallel/sandbox", "carol", 400_000, 4, datetime(2026, 11, 14, 23, 59, 59, tzinfo=UTC)),  # yesterday
]


def prepare(db: CompanyDatabase) -> Prepared:
    company_ids = seed(db, len(OUTCOMES) + 10, 71)
    with db.session() as session:  # the seed flags some companies for review; this test flags its own
        session.execute(update(Company).values(needs_review=False, review_reason=None))
    free = iter(company_ids)
    actions: dict[str, dict[str, Any]] = {}
    with db.session() as session:
        for key, (action, action_status, provider) in ACTIONS_PLAN.items():
            record = BulkAction(
                action=action,
                status=action_status,
                parameters={"provider": provider} if provider else {},
                created_by="ops-test",
                flow_run_id=str(uuid.uuid4()),
            )
            session.add(record)
            session.flush()
            actions[key] = {"action": action, "status": action_status.value, "provider": provider, "id": record.id}
        for position, (key, outcome_status, at) in enumerate(OUTCOMES):
            session.add(
                BulkActionOutcome(
                    bulk_action_id=actions[key]["id"],
                    company_id=next(free),
                    position=position,
                    status=outcome_status,
                    updated_at=at,
                )
            )
        for i, (key, error_class, message, status) in enumerate(DEAD_JOBS):
            session.add(
                DeadJob(
                    bulk_action_id=actions[key]["id"],
                    action=actions[key]["action"],
                    company_id=company_ids[i],
                    error_class=error_class,
                    error_message=message,
                    status=status,
                )
            )
        flagged = iter(company_ids[-5:])
        for reason, n in REVIEW.items():
            for _ in range(n):
                company = session.get(Company, next(flagged))
                assert company is not None
                company.needs_review, company.review_reason, company.status = True, reason, CompanyStatus.ACTIVE
        for provider, creator, nano, calls, at in SPEND:
            session.add(
                SpendEntry(
                    action="score_llm_adoption",
                    provider=provider,
                    model="m",
                    created_by=creator,
                    calls=calls,
                    cost_nanousd=nano,
                    created_at=at,
                )
            )
        session.add(
            ProviderCircuit(
                tag="groq",
                state="open",
                consecutive_failures=5,
                opened_count=2,
                opened_at=NOW - 2 * M,
                outage_started_at=NOW - 10 * M,
                changed_at=NOW - 2 * M,
            )
        )
        a1 = actions["a1"]["id"]
        session.add_all(
            [
                SlotRequest(tag="groq", flow_run_id="r1", priority=0, wanted=2, held=2, waiting_since=None),
                SlotRequest(tag="groq", flow_run_id="r2", bulk_action_id=a1, priority=5, wanted=3, held=0,
                            waiting_since=NOW - 5 * M),
                SlotRequest(tag="groq", flow_run_id="r3", priority=1, wanted=2, held=1, waiting_since=NOW - 20 * M),
                SlotRequest(tag="parallel", flow_run_id="r4", priority=0, wanted=1, held=1, waiting_since=None),
            ]
        )  # fmt: skip
    return Prepared(actions, list(OUTCOMES), list(DEAD_JOBS), dict(REVIEW), list(SPEND))


def section(markdown: str, title: str) -> str:
    start = markdown.index(f"## {title}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end >= 0 else None]


def tables(text: str) -> list[list[list[str]]]:
    """Every markdown table of ``text``, as rows of cells (header row first, separator dropped)."""
    found: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            cells = [html.unescape(c.strip()) for c in line.strip().strip("|").split(" | ")]
            if not all(set(c) <= set("-:") for c in cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def finished(at: datetime, start: datetime, end: datetime, status: OutcomeStatus) -> bool:
    return status is not P and start <= at < end


def test_every_figure_of_the_report_matches_the_database(fresh: tuple[str, CompanyDatabase]) -> None:
    name, db = fresh
    data = prepare(db)
    ids = {key: a["id"] for key, a in data.actions.items()}
    unfinished = {k for k, a in data.actions.items() if not BulkActionStatus(a["status"]).finished}

    with get_client(sync_client=True) as client:
        limits = [lim for lim in client.read_global_concurrency_limits(limit=200) if lim.name.startswith("tag:")]
        assert limits, "the session's server has provider limits (provision_limits)"
        held = limits[0]
        lease = client.increment_concurrency_slots_with_lease(
            names=[held.name],
            slots=1,
            mode="concurrency",
            lease_duration=120,
            holder=ConcurrencyLeaseHolder(type="flow_run", id=uuid.uuid4()),
        ).json()["lease_id"]
        try:
            expected_slots = {
                lim.name.removeprefix("tag:"): (lim.active_slots, lim.limit)
                for lim in client.read_global_concurrency_limits(limit=200)
                if lim.name.startswith("tag:")
            }
            flow_runs_before = client.count_flow_runs()
            result = operations_report(database=name, as_of=NOW)
            flow_runs_after = client.count_flow_runs()
        finally:
            client.release_concurrency_slots_with_lease(UUID(lease))
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(id=ArtifactFilterId(any_=[UUID(result["artifact_id"])]))
        )
    assert len(artifacts) == 1 and artifacts[0].key == "operations-report"
    md = str(artifacts[0].data)

    # bulk actions by type and status
    rows = tables(section(md, "Bulk actions by type and status"))[0][1:]
    expected_types: dict[tuple[str, str], int] = {}
    for a in data.actions.values():
        expected_types[(a["action"], a["status"])] = expected_types.get((a["action"], a["status"]), 0) + 1
    assert {(r[0], r[1]): int(r[2]) for r in rows} == expected_types

    # throughput: the chart's 24 hourly bars, its text twin, and the last hour per action
    edges = [NOW - H * (24 - i) for i in range(25)]
    hourly = [sum(finished(at, edges[i], edges[i + 1], s) for _, s, at in data.outcomes) for i in range(24)]
    svg = base64.b64decode(re.search(r"data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", md).group(1)).decode()  # type: ignore[union-attr]
    bars = [(label, int(n)) for label, n in re.findall(r"<title>(\d\d:\d\d): (\d+)</title>", svg)]
    assert bars == [(e.strftime("%H:%M"), n) for e, n in zip(edges, hourly, strict=False)]
    assert sum(hourly) == 17 and hourly[-1] == 10  # the prepared data does reach the chart, last hour included
    assert result["finished_last_hour"] == hourly[-1]
    throughput = section(md, "Throughput")
    rows = tables(throughput)[0][1:]
    expected_throughput = {}
    for key in data.actions:
        n = sum(k == key and finished(at, NOW - H, NOW, s) for k, s, at in data.outcomes)
        if n:
            expected_throughput[ids[key]] = n
    assert {int(r[0]): int(r[2]) for r in rows} == expected_throughput == {ids["a1"]: 6, ids["a2"]: 2, ids["a5"]: 2}

    # companies waiting, per unfinished action with its provider (catalog default when started without one)
    rows = tables(section(md, "Companies waiting"))[0][1:]
    expected_waiting = {}
    for key in unfinished:
        n = sum(k == key and s is P for k, s, _ in data.outcomes)
        if n:
            a = data.actions[key]
            provider = a["provider"] or ACTIONS[a["action"]].default_provider
            expected_waiting[ids[key]] = (a["action"], provider, a["status"], n)
    assert {int(r[0]): (r[1], r[2], r[3], int(r[4])) for r in rows} == expected_waiting
    assert result["companies_waiting"] == 6
    assert f"{sum(v[3] for v in expected_waiting.values())} companies waiting" in section(md, "Companies waiting")

    # error rate of unfinished actions: failed / processed, last hour and overall
    rows = tables(section(md, "Error rate of unfinished actions"))[0][1:]
    expected_rates = {}
    for key in unfinished:
        mine = [(s, at) for k, s, at in data.outcomes if k == key and s is not P]
        recent = [(s, at) for s, at in mine if NOW - H <= at < NOW]
        if not mine:
            continue
        fh, ph = sum(s is F for s, _ in recent), len(recent)
        f, p = sum(s is F for s, _ in mine), len(mine)
        expected_rates[ids[key]] = (
            f"{fh} / {ph}",
            f"{100 * fh / ph:.1f}%" if ph else "-",
            f"{f} / {p}",
            f"{100 * f / p:.1f}%",
        )
    assert {int(r[0]): (r[3], r[4], r[5], r[6]) for r in rows} == expected_rates
    assert expected_rates[ids["a1"]] == ("1 / 6", "16.7%", "2 / 9", "22.2%")

    # open dead jobs by action and error pattern
    rows = tables(section(md, "Open dead jobs by action and error pattern"))[0][1:]
    expected_dead: dict[tuple[str, str], int] = {}
    for key, _, message, status in data.dead_jobs:
        if status is DeadJobStatus.OPEN:
            group = (data.actions[key]["action"], DEAD_PATTERNS[message])
            expected_dead[group] = expected_dead.get(group, 0) + 1
    assert {(r[0], r[1]): int(r[2]) for r in rows} == expected_dead
    assert "4 open dead jobs." in md

    # the review queue by reason
    rows = tables(section(md, "Review queue by reason"))[0][1:]
    assert {r[0]: int(r[1]) for r in rows} == data.review
    assert f"{sum(data.review.values())} companies flagged" in md

    # spend today and this month (UTC), by provider and by creator
    day, month = datetime(2026, 11, 15, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)
    provider_rows, creator_rows = tables(section(md, "Spend (UTC)"))
    for rows, index in ((provider_rows, 0), (creator_rows, 1)):
        expected_spend: dict[str, list[int]] = {}
        for entry in data.spend:
            who, nano, calls, at = str(entry[index]), entry[2], entry[3], entry[4]
            if not month <= at <= NOW:
                continue
            line = expected_spend.setdefault(who, [0, 0, 0, 0])
            line[2] += nano
            line[3] += calls
            if at >= day:
                line[0] += nano
                line[1] += calls
        assert {r[0]: r[1:] for r in rows[1:]} == {
            who: [format_usd(v[0]), str(v[1]), format_usd(v[2]), str(v[3])] for who, v in expected_spend.items()
        }
    assert {r[0] for r in creator_rows[1:]} == {"alice", "bob", "carol"}

    # circuits
    rows = tables(section(md, "Provider circuits"))[0][1:]
    assert rows == [["groq", "open", "5", "2", when(NOW - 2 * M), when(NOW - 10 * M), when(NOW - 2 * M)]]

    # provider slots: the server's limits (one slot held by this test), then the slot requests
    slot_rows, request_rows = tables(section(md, "Provider slots"))
    assert {r[0]: (int(r[1]), int(r[2])) for r in slot_rows[1:]} == {
        f"tag:{tag}": v for tag, v in expected_slots.items()
    }
    assert expected_slots[held.name.removeprefix("tag:")][0] >= 1
    assert {r[0]: r[1:] for r in request_rows[1:]} == {
        "groq": ["3", "2", "3", str((3 - 0) + (2 - 1)), when(NOW - 20 * M), "5"],
        "parallel": ["1", "0", "1", "0", "-", "-"],
    }

    # Prefect's own history: the run counts and the size of the server's database
    history = {r[0]: r[1] for r in tables(section(md, "Prefect's own history"))[0][1:]}
    assert flow_runs_before < int(history["flow runs"]) <= flow_runs_after
    assert int(history["task runs"]) == result["task_runs"] >= 0
    harness_db = Path(get_current_settings().server.database.connection_url.get_secret_value().split(":///", 1)[1])  # type: ignore[union-attr]
    assert harness_db.is_file()
    assert result["prefect_database_bytes"] is not None and result["prefect_database_bytes"] > 0
    assert f"({result['prefect_database_bytes']} bytes)" in history["database size (sqlite)"]
    assert "named by the Prefect database setting" in md
