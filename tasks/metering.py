"""The meter every paid call of a batch goes through: reserve the worst case, call, settle the real cost.

A handler wraps each provider call::

    with ctx.meter.call(provider, worst_case_nanousd) as bill:
        completion = client.complete(messages)
        bill.add(ctx.meter.llm_entry(company_id, completion))

Entering reserves the worst case against every budget (``core.spend``) and raises ``BudgetReachedError``
instead of calling when a budget could be passed; leaving settles what ``bill`` recorded (the call was billed)
or gives the reservation back (it failed before the provider billed it).  Calls that cannot cost anything
(local providers) skip the database entirely.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from threading import Lock

from prefect.runtime import flow_run as current_flow_run

from blocks.database import CompanyDatabase
from blocks.spend import SpendPolicy, load_spend_policy
from core.pricing import PriceBook, UnpricedModelError
from core.schema import BulkAction, utcnow
from core.spend import (
    Charge,
    LedgerEntry,
    account_state,
    action_account,
    creator_account,
    month_of,
    provider_account,
    release,
    reserve,
    settle,
)


@dataclass
class Bill:
    """What one call cost, company by company (empty: the provider billed nothing)."""

    entries: list[LedgerEntry] = field(default_factory=list)

    def add(self, *entries: LedgerEntry) -> None:
        self.entries.extend(entries)


@dataclass
class Meter:
    """Spend control for one batch of one bulk action."""

    database: CompanyDatabase
    bulk_action_id: int
    action: str
    created_by: str
    action_limit: int | None
    policy: SpendPolicy
    allow_unpriced: bool = False
    flow_run_id: str | None = None
    spent_nanousd: int = 0
    _lock: Lock = field(default_factory=Lock)

    @classmethod
    def for_batch(cls, database: CompanyDatabase, bulk_action_id: int, action: str) -> Meter:
        with database.read_session() as session:
            record = session.get(BulkAction, bulk_action_id)
            parameters = dict(record.parameters or {}) if record is not None else {}
            created_by = record.created_by if record is not None else "unknown"
            account = account_state(session, action_account(bulk_action_id))
        flow_run_id = current_flow_run.id
        return cls(
            database=database,
            bulk_action_id=bulk_action_id,
            action=action,
            created_by=created_by,
            action_limit=account.limit_nanousd if account is not None else None,
            policy=load_spend_policy(),
            allow_unpriced=bool(parameters.get("allow_unpriced", False)),
            flow_run_id=str(flow_run_id) if flow_run_id else None,
        )

    @property
    def prices(self) -> PriceBook:
        return self.policy.price_book()

    def charge(self, provider: str) -> Charge:
        """The accounts a call to ``provider`` (``groq``, ``parallel``...) charges this month."""
        month = month_of(utcnow())
        creator, provider_key = creator_account(self.created_by, month), provider_account(provider, month)
        return Charge(
            {
                action_account(self.bulk_action_id): self.action_limit,
                creator: self.policy.creator_limit(self.created_by),
                provider_key: self.policy.provider_limit(provider),
            },
            follow=frozenset({creator, provider_key}),
        )

    @contextmanager
    def call(self, provider: str, worst_case_nanousd: int) -> Iterator[Bill]:
        """Reserve, let the caller make the call and fill the bill, then settle (or release on failure)."""
        charge = self.charge(provider)
        reservation: int | None = None
        if worst_case_nanousd > 0:
            with self.database.session() as session:
                reservation = reserve(
                    session,
                    charge,
                    worst_case_nanousd,
                    bulk_action_id=self.bulk_action_id,
                    flow_run_id=self.flow_run_id,
                )
        bill = Bill()
        try:
            yield bill
        finally:
            self._close(charge, reservation, bill)

    def _close(self, charge: Charge, reservation: int | None, bill: Bill) -> None:
        billed = [entry for entry in bill.entries if entry.cost_nanousd or entry.unpriced]
        if not billed and reservation is None:
            return
        with self.database.session() as session:
            if billed:
                cost = settle(
                    session,
                    reservation,
                    charge.keys,
                    billed,
                    bulk_action_id=self.bulk_action_id,
                    action=self.action,
                    created_by=self.created_by,
                )
                with self._lock:
                    self.spent_nanousd += cost
            elif reservation is not None:
                release(session, [reservation])

    def llm_cost(self, provider: str, model: str, input_tokens: int, output_tokens: int) -> tuple[int, bool]:
        """The call's cost and whether it is unpriced (only with ``allow_unpriced``)."""
        try:
            return self.prices.llm_cost(provider, model, input_tokens, output_tokens), False
        except UnpricedModelError:
            if not self.allow_unpriced:
                raise
            return 0, True
