"""Small helpers shared by the flow tests."""

from __future__ import annotations

from sqlalchemy import func, select

from blocks.database import CompanyDatabase
from core.schema import BulkAction, Company, CompanyEmbedding, DeadJob
from core.synthetic import seed_companies


def seed(db: CompanyDatabase, n: int, seed_value: int) -> list[int]:
    with db.session() as session:
        return seed_companies(session, n, seed=seed_value)


def bulk_action(db: CompanyDatabase, bulk_action_id: int) -> BulkAction:
    with db.session() as session:
        record = session.get(BulkAction, bulk_action_id)
        assert record is not None
        session.expunge(record)
        return record


def latest_bulk_action(db: CompanyDatabase) -> BulkAction | None:
    with db.session() as session:
        record = session.scalars(select(BulkAction).order_by(BulkAction.id.desc()).limit(1)).first()
        if record is not None:
            session.expunge(record)
        return record


def embedding_rows(db: CompanyDatabase, ids: list[int]) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).where(CompanyEmbedding.company_id.in_(ids))) or 0)


def dead_jobs(db: CompanyDatabase, bulk_action_id: int) -> list[DeadJob]:
    with db.session() as session:
        rows = list(session.scalars(select(DeadJob).where(DeadJob.bulk_action_id == bulk_action_id)))
        session.expunge_all()
        return rows


def company_names(db: CompanyDatabase, ids: list[int]) -> dict[int, str]:
    with db.session() as session:
        return dict(session.execute(select(Company.id, Company.name).where(Company.id.in_(ids))).tuples().all())
