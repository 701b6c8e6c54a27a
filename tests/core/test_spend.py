"""Budgets in the shared database: reservations never let concurrent callers pass a limit (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, func, select

from blocks.database import CompanyDatabase
from core.schema import SpendAccount, SpendEntry, SpendReservation
from core.spend import (
    BudgetReachedError,
    Charge,
    LedgerEntry,
    account_state,
    action_account,
    creator_account,
    month_of,
    release_abandoned,
    reserve,
    set_limits,
    settle,
    spend_by,
)

COST = 1_000  # nano-dollars per call
WORST = 1_500  # reserved per call


@pytest.fixture
def accounts(db: CompanyDatabase) -> Iterator[dict[str, str]]:
    """Fresh account keys per test (the database is shared by the session)."""
    stamp = f"{datetime.now(UTC).timestamp():.6f}"
    fake_action = 10**9 + int(datetime.now(UTC).timestamp() * 1000) % 10**6  # no such bulk action: no ledger rows
    keys = {"action": action_account(fake_action), "creator": creator_account(f"tester-{stamp}", "2026-11")}
    yield keys
    with db.session() as session:
        session.execute(delete(SpendAccount).where(SpendAccount.key.in_(list(keys.values()))))
        session.execute(delete(SpendEntry).where(SpendEntry.created_by == f"tester-{stamp}"))


def call(db: CompanyDatabase, charge: Charge, creator: str, run: str = "run-a") -> int:
    """Reserve, 'call', settle: what the meter does around one provider call."""
    with db.session() as session:
        reservation = reserve(session, charge, WORST, bulk_action_id=None, flow_run_id=run)
    with db.session() as session:
        return settle(
            session,
            reservation,
            charge.keys,
            [LedgerEntry(company_id=None, provider="groq", model="m", cost_nanousd=COST)],
            bulk_action_id=None,
            action="score_llm_adoption",
            created_by=creator,
        )


def test_a_call_whose_worst_case_could_pass_the_limit_is_refused(db: CompanyDatabase, accounts: dict[str, str]) -> None:
    charge = Charge({accounts["action"]: 10 * COST, accounts["creator"]: None})
    creator = accounts["creator"].rsplit(":", 1)[1]
    made = 0
    with pytest.raises(BudgetReachedError, match="limit of") as stopped:
        while True:
            call(db, charge, creator)
            made += 1
    # 9 calls spent 9,000; a 10th could cost 1,500 at worst and 9,000 + 1,500 > 10,000
    assert made == 9 and stopped.value.account == accounts["action"]
    with db.read_session() as session:
        action = account_state(session, accounts["action"])
        creator_row = account_state(session, accounts["creator"])
        assert action is not None and creator_row is not None
        assert (action.spent_nanousd, action.reserved_nanousd) == (9 * COST, 0)
        # the refused call reserved nothing anywhere: the transaction rolled the creator's reservation back
        assert (creator_row.spent_nanousd, creator_row.reserved_nanousd) == (9 * COST, 0)
        assert spend_by(session, "created_by")[creator] == 9 * COST


def test_racing_workers_never_pass_the_limit_together(db: CompanyDatabase, accounts: dict[str, str]) -> None:
    limit = 40 * COST
    charge = Charge({accounts["action"]: limit})
    creator = accounts["creator"].rsplit(":", 1)[1]
    made: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        while True:
            try:
                call(db, charge, creator, run=f"run-{index}")
            except BudgetReachedError:
                with lock:
                    refused.append(index)
                return
            with lock:
                made.append(index)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with db.read_session() as session:
        action = account_state(session, accounts["action"])
        assert action is not None
        assert action.spent_nanousd == len(made) * COST <= limit
        assert action.reserved_nanousd == 0
        # the budget was used up to within one worst case: nothing was left that a call could have fit in
        assert limit - action.spent_nanousd < WORST
    assert len(refused) == 8


def test_a_raised_limit_lets_calls_through_again(db: CompanyDatabase, accounts: dict[str, str]) -> None:
    charge = Charge({accounts["action"]: COST})
    creator = accounts["creator"].rsplit(":", 1)[1]
    with pytest.raises(BudgetReachedError):
        call(db, charge, creator)
    with db.session() as session:
        set_limits(session, {accounts["action"]: 5 * COST})
    assert call(db, Charge({accounts["action"]: 5 * COST}), creator) == COST


def test_reservations_of_a_dead_run_are_given_back(db: CompanyDatabase, accounts: dict[str, str]) -> None:
    from core.schema import BulkAction

    with db.session() as session:
        record = BulkAction(action="score_llm_adoption", created_by="tester")
        session.add(record)
        session.flush()
        bulk_action_id = record.id
        key = action_account(bulk_action_id)
        set_limits(session, {key: 10 * WORST})
        reserve(session, Charge({key: 10 * WORST}), WORST, bulk_action_id=bulk_action_id, flow_run_id="dead")
        reserve(session, Charge({key: 10 * WORST}), WORST, bulk_action_id=bulk_action_id, flow_run_id="alive")
    with db.session() as session:
        assert release_abandoned(session, bulk_action_id, ["dead"]) == WORST
    with db.read_session() as session:
        account = account_state(session, key)
        assert account is not None and account.reserved_nanousd == WORST
        left = session.scalar(
            select(func.count()).select_from(SpendReservation).where(SpendReservation.bulk_action_id == bulk_action_id)
        )
        assert left == 1
    with db.session() as session:
        session.execute(delete(SpendAccount).where(SpendAccount.key == key))
        session.execute(delete(BulkAction).where(BulkAction.id == bulk_action_id))


def test_a_monthly_budget_set_mid_month_counts_the_months_earlier_spend(
    db: CompanyDatabase, accounts: dict[str, str]
) -> None:
    creator = accounts["creator"].rsplit(":", 1)[1]
    call(db, Charge({accounts["action"]: None}), creator)  # spent before any creator budget existed
    key = creator_account(creator, month_of(datetime.now(UTC)))
    with db.session() as session:
        set_limits(session, {key: 10 * COST})
    with db.read_session() as session:
        account = account_state(session, key)
        assert account is not None and account.spent_nanousd == COST
    with db.session() as session:
        session.execute(delete(SpendAccount).where(SpendAccount.key == key))


def test_only_reservations_no_call_can_settle_are_idle(db: CompanyDatabase) -> None:
    from core.schema import BulkAction, BulkActionStatus
    from core.spend import idle_reservations, release

    ids: dict[BulkActionStatus, int] = {}
    with db.session() as session:
        for status in (BulkActionStatus.RUNNING, BulkActionStatus.PAUSED, BulkActionStatus.FAILED):
            record = BulkAction(action="score_llm_adoption", created_by="tester", status=status)
            session.add(record)
            session.flush()
            key = action_account(record.id)
            reserve(session, Charge({key: None}), WORST, bulk_action_id=record.id, flow_run_id="run")
            ids[status] = record.id
    with db.session() as session:
        idle = idle_reservations(session)
        held = dict(session.execute(select(SpendReservation.id, SpendReservation.bulk_action_id)).tuples().all())
        assert {held[r] for r in idle} >= {ids[BulkActionStatus.PAUSED], ids[BulkActionStatus.FAILED]}
        assert ids[BulkActionStatus.RUNNING] not in {held[r] for r in idle}
        assert release(session, idle) == WORST * len(idle)
        paused = account_state(session, action_account(ids[BulkActionStatus.PAUSED]))
        assert paused is not None and paused.reserved_nanousd == 0
    with db.session() as session:
        session.execute(delete(SpendReservation).where(SpendReservation.bulk_action_id.in_(list(ids.values()))))
        session.execute(delete(SpendAccount).where(SpendAccount.key.in_([action_account(i) for i in ids.values()])))
        session.execute(delete(BulkAction).where(BulkAction.id.in_(list(ids.values()))))
