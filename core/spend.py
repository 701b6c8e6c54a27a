"""Budgets that are never exceeded: reserve a call's worst case first, settle its real cost after.

Every paid call charges up to three accounts (``SpendAccount``): its bulk action's (``budget_usd``), its
creator's month and its provider's month (the ``spend-policy`` block).  Before the call, ``reserve`` adds the
call's worst-case cost to each account's ``reserved`` in one transaction whose every UPDATE carries the
condition ``spent + reserved + amount <= limit``; if any account refuses, nothing is reserved and the call is
not made (``BudgetReachedError``).  After the call, ``settle`` moves the real cost from reserved to spent and
writes the ledger rows in the same transaction.  Because the check and the reservation are one conditional
UPDATE in the shared company database, batches in flight side by side and workers on other machines see each
other's reservations: the sum of what can still be charged never passes a limit.

The ledger (``SpendEntry``) is the source of every spend figure: per bulk action, company, creator, provider.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.errors import ActionStopError, InputError
from core.pricing import format_usd
from core.schema import BulkAction, BulkActionStatus, SpendAccount, SpendEntry, SpendReservation, utcnow


class BudgetReachedError(ActionStopError):
    """A call was not made: its worst case would take an account past its limit.

    Not a provider error and not the company's fault: the batch stops, the company stays pending, and the bulk
    action pauses with this message as its reason.
    """

    def __init__(self, account: str, limit_nanousd: int, committed_nanousd: int, wanted_nanousd: int) -> None:
        self.account = account
        self.limit_nanousd = limit_nanousd
        super().__init__(
            f"budget reached: {describe_account(account)} has a limit of {format_usd(limit_nanousd)}, "
            f"{format_usd(committed_nanousd)} is spent or reserved, and the next call may cost up to "
            f"{format_usd(wanted_nanousd)}"
        )


def action_account(bulk_action_id: int) -> str:
    return f"action:{bulk_action_id}"


def month_of(when: datetime) -> str:
    return when.strftime("%Y-%m")


def creator_account(creator: str, month: str) -> str:
    return f"creator:{month}:{creator}"


def provider_account(provider: str, month: str) -> str:
    return f"provider:{month}:{provider}"


def describe_account(key: str) -> str:
    kind, _, rest = key.partition(":")
    if kind == "action":
        return f"bulk action {rest}"
    month, _, name = rest.partition(":")
    return f"{kind} {name!r} in {month}"


@dataclass(frozen=True)
class Charge:
    """The accounts one call charges, with the limit each should have (None: counted, not capped).

    ``follow`` names the accounts whose limit the caller holds the truth for (the monthly budgets of the
    spend-policy block, which an operator may edit at any time): their stored limit is brought up to date at
    each reservation.  Other accounts (a bulk action's own budget, set when it starts or is resumed) keep the
    limit stored in the database, so a batch that started before a raise never lowers it back.
    """

    limits: Mapping[str, int | None]
    follow: frozenset[str] = frozenset()

    @property
    def keys(self) -> list[str]:
        return sorted(self.limits)  # one lock order on PostgreSQL: two reservations never deadlock


def check_budget_usd(budget_usd: float | None) -> None:
    if budget_usd is not None and not budget_usd >= 0:  # also refuses NaN
        raise InputError(f"budget_usd must be zero or more (got {budget_usd}); leave it empty for no budget")


def set_limits(session: Session, limits: Mapping[str, int | None]) -> None:
    """Set every account's limit, creating the accounts that do not exist (a raised budget takes effect here)."""
    for key, limit in limits.items():
        _ensure_account(session, key, limit)
        session.execute(
            update(SpendAccount).where(SpendAccount.key == key).values(limit_nanousd=limit, updated_at=utcnow())
        )


def _ensure_account(session: Session, key: str, limit: int | None) -> None:
    """Create the account if it is new, starting from what the ledger already holds for its scope (a monthly
    budget set mid-month counts the month's earlier spend)."""
    if session.scalar(select(SpendAccount.key).where(SpendAccount.key == key)) is not None:
        return
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    row = {
        "key": key,
        "limit_nanousd": limit,
        "spent_nanousd": _ledger_total(session, key),
        "reserved_nanousd": 0,
        "updated_at": utcnow(),
    }
    session.execute(module.insert(SpendAccount).values(row).on_conflict_do_nothing(index_elements=["key"]))


def _ledger_total(session: Session, key: str) -> int:
    kind, _, rest = key.partition(":")
    stmt = select(func.coalesce(func.sum(SpendEntry.cost_nanousd), 0))
    if kind == "action":
        stmt = stmt.where(SpendEntry.bulk_action_id == int(rest))
    elif kind not in ("creator", "provider"):
        return 0
    else:
        month, _, name = rest.partition(":")
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
        end = (start + timedelta(days=32)).replace(day=1)
        column = SpendEntry.created_by if kind == "creator" else SpendEntry.provider
        stmt = stmt.where(column == name, SpendEntry.created_at >= start, SpendEntry.created_at < end)
    return int(session.scalar(stmt) or 0)


def reserve(
    session: Session, charge: Charge, amount_nanousd: int, *, bulk_action_id: int | None, flow_run_id: str | None
) -> int:
    """Reserve ``amount_nanousd`` in every account of ``charge``, or raise ``BudgetReachedError`` (nothing held).

    Run it in a transaction of its own: on refusal the caller's transaction must roll back the accounts
    already reserved.  Returns the reservation's id for ``settle``.
    """
    if amount_nanousd < 0:
        raise ValueError("a reservation is never negative")
    for key in charge.keys:
        _ensure_account(session, key, charge.limits[key])
        if key in charge.follow:
            session.execute(
                update(SpendAccount)
                .where(SpendAccount.key == key, SpendAccount.limit_nanousd.is_distinct_from(charge.limits[key]))
                .values(limit_nanousd=charge.limits[key])
            )
    for key in charge.keys:
        result = session.execute(
            update(SpendAccount)
            .where(SpendAccount.key == key)
            .where(
                (SpendAccount.limit_nanousd.is_(None))
                | (
                    SpendAccount.spent_nanousd + SpendAccount.reserved_nanousd + amount_nanousd
                    <= SpendAccount.limit_nanousd
                )
            )
            .values(reserved_nanousd=SpendAccount.reserved_nanousd + amount_nanousd, updated_at=utcnow())
        )
        if not int(getattr(result, "rowcount", 0) or 0):
            account = session.get(SpendAccount, key, populate_existing=True)
            assert account is not None and account.limit_nanousd is not None
            raise BudgetReachedError(
                key, account.limit_nanousd, account.spent_nanousd + account.reserved_nanousd, amount_nanousd
            )
    reservation_id = session.execute(
        insert(SpendReservation)
        .values(
            bulk_action_id=bulk_action_id,
            flow_run_id=flow_run_id,
            accounts=charge.keys,
            amount_nanousd=amount_nanousd,
            created_at=utcnow(),
        )
        .returning(SpendReservation.id)
    ).scalar_one()
    return int(reservation_id)


@dataclass(frozen=True)
class LedgerEntry:
    """One company's share of one settled call."""

    company_id: int | None
    provider: str
    model: str
    cost_nanousd: int
    calls: int = 1
    input_tokens: int = 0
    output_tokens: int = 0
    input_bytes: int = 0
    unpriced: bool = False
    tier: int | None = None


def settle(
    session: Session,
    reservation_id: int | None,
    accounts: Sequence[str],
    entries: Sequence[LedgerEntry],
    *,
    bulk_action_id: int | None,
    action: str,
    created_by: str,
) -> int:
    """Turn a reservation into spend: release it, add the real cost to every account, write the ledger rows.

    ``reservation_id`` None settles a call that had nothing to reserve against (no account has a limit: the
    engine still counts spend).  Returns the cost settled.
    """
    cost = sum(entry.cost_nanousd for entry in entries)
    reserved = 0
    if reservation_id is not None:
        reserved = (
            session.execute(
                delete(SpendReservation)
                .where(SpendReservation.id == reservation_id)
                .returning(SpendReservation.amount_nanousd)
            ).scalar_one_or_none()
            or 0
        )  # a reservation already given back (its run was declared dead) releases nothing twice
    for key in sorted(accounts):
        session.execute(
            update(SpendAccount)
            .where(SpendAccount.key == key)
            .values(
                spent_nanousd=SpendAccount.spent_nanousd + cost,
                reserved_nanousd=SpendAccount.reserved_nanousd - reserved,
                updated_at=utcnow(),
            )
        )
    if entries:
        now = utcnow()
        session.execute(
            insert(SpendEntry),
            [
                {
                    "bulk_action_id": bulk_action_id,
                    "company_id": entry.company_id,
                    "action": action,
                    "provider": entry.provider,
                    "model": entry.model,
                    "created_by": created_by,
                    "calls": entry.calls,
                    "input_tokens": entry.input_tokens,
                    "output_tokens": entry.output_tokens,
                    "input_bytes": entry.input_bytes,
                    "cost_nanousd": entry.cost_nanousd,
                    "unpriced": entry.unpriced,
                    "tier": entry.tier,
                    "created_at": now,
                }
                for entry in entries
            ],
        )
    return cost


def release(session: Session, reservation_ids: Iterable[int]) -> int:
    """Give reservations back without spending (a call that was not made or was not billed)."""
    released = 0
    for row in session.execute(
        delete(SpendReservation)
        .where(SpendReservation.id.in_(list(reservation_ids)))
        .returning(SpendReservation.accounts, SpendReservation.amount_nanousd)
    ).all():
        released += _unreserve(session, row.accounts, row.amount_nanousd)
    return released


def release_abandoned(session: Session, bulk_action_id: int, flow_run_ids: Iterable[str | None]) -> int:
    """Give back what flow runs that are gone had reserved for ``bulk_action_id`` (a crash mid-call)."""
    runs = [run for run in flow_run_ids if run is not None]
    if not runs:
        return 0
    ids = session.scalars(
        select(SpendReservation.id).where(
            SpendReservation.bulk_action_id == bulk_action_id, SpendReservation.flow_run_id.in_(runs)
        )
    ).all()
    return release(session, ids)


def idle_reservations(session: Session) -> list[int]:
    """Reservations no call can settle anymore: their bulk action is paused, has ended, or is gone.

    A paused action has no call in flight (it pauses once its batches finish), so whatever it still holds was
    left by a process that died mid-call; the cleanup gives it back, as a resume would.
    """
    idle = [status.value for status in BulkActionStatus if status.finished or status is BulkActionStatus.PAUSED]
    stmt = (
        select(SpendReservation.id)
        .outerjoin(BulkAction, BulkAction.id == SpendReservation.bulk_action_id)
        .where(or_(BulkAction.id.is_(None), BulkAction.status.in_(idle)))
    )
    return list(session.scalars(stmt))


def _unreserve(session: Session, accounts: Sequence[str], amount: int) -> int:
    for key in sorted(accounts):
        session.execute(
            update(SpendAccount)
            .where(SpendAccount.key == key)
            .values(reserved_nanousd=SpendAccount.reserved_nanousd - amount, updated_at=utcnow())
        )
    return amount


def action_spend(session: Session, bulk_action_id: int) -> int:
    """What a bulk action has spent so far (settled calls)."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(SpendEntry.cost_nanousd), 0)).where(
                SpendEntry.bulk_action_id == bulk_action_id
            )
        )
        or 0
    )


def account_state(session: Session, key: str) -> SpendAccount | None:
    return session.get(SpendAccount, key, populate_existing=True)


def spend_by(
    session: Session, column: str, *, bulk_action_id: int | None = None, since: datetime | None = None
) -> dict[str, int]:
    """Spend grouped by a ledger column (``provider``, ``created_by``, ``model``, ``company_id``, ``tier``)."""
    group = getattr(SpendEntry, column)
    stmt = select(group, func.sum(SpendEntry.cost_nanousd)).group_by(group)
    if bulk_action_id is not None:
        stmt = stmt.where(SpendEntry.bulk_action_id == bulk_action_id)
    if since is not None:
        stmt = stmt.where(SpendEntry.created_at >= since)
    return {str(key): int(total or 0) for key, total in session.execute(stmt).all()}
