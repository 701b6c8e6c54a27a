"""rollback end to end: undo reclassify and update_status from the history; conflicts kept; undo of an undo.

The restores are history rows of kind ``rolled_back`` under the rollback's own bulk action; the changes they undo
stay ``change`` rows.  (Embeddings after a rollback: ``test_rollback_embeddings.py``.)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from blocks.database import CompanyDatabase
from core.history import changes_by_action
from core.schema import BulkActionOutcome, Company
from flows.reclassify import reclassify
from flows.rollback import rollback
from flows.update_status import update_status
from tests.helpers import seed


def values(db: CompanyDatabase, ids: list[int], *fields: str) -> dict[int, tuple[Any, ...]]:
    columns = [Company.__table__.c[f] for f in fields]
    with db.read_session() as session:
        return {
            row[0]: tuple(row[1:]) for row in session.execute(select(Company.id, *columns).where(Company.id.in_(ids)))
        }


def details(db: CompanyDatabase, bulk_action_id: int) -> dict[int, str]:
    with db.read_session() as session:
        rows = session.execute(
            select(BulkActionOutcome.company_id, BulkActionOutcome.detail).where(
                BulkActionOutcome.bulk_action_id == bulk_action_id
            )
        ).all()
    return {cid: detail or "" for cid, detail in rows}


def kinds(db: CompanyDatabase, bulk_action_id: int) -> dict[str, int]:
    """How many history rows of each kind the bulk action wrote."""
    counted: dict[str, int] = {}
    with db.read_session() as session:
        for row in changes_by_action(session, bulk_action_id):
            counted[row.kind] = counted.get(row.kind, 0) + 1
    return counted


def test_a_reclassify_rolls_back_and_the_rollback_rolls_back_into_a_redo(
    database_name: str, db: CompanyDatabase
) -> None:
    ids = seed(db, 12, 1501)
    fields = ("sector", "subsector", "business_model", "taxonomy_version", "classification_input_sha256")
    before = values(db, ids, *fields)
    classified = reclassify(company_ids=ids, database=database_name)
    after = values(db, ids, *fields)
    assert after != before

    undo = rollback(rollback_of=classified.bulk_action_id, database=database_name)

    assert undo.status == "completed" and undo.succeeded == 12
    assert values(db, ids, *fields) == before
    changed = kinds(db, classified.bulk_action_id)
    assert set(changed) == {"change"}
    # every field the reclassify changed is restored once, as a rolled_back row (no change row of the rollback)
    assert kinds(db, undo.bulk_action_id) == {"rolled_back": changed["change"]}
    redo = rollback(rollback_of=undo.bulk_action_id, database=database_name)
    assert redo.succeeded == 12 and values(db, ids, *fields) == after
    # a rollback of a rollback reads the rolled_back rows like any others: it redoes, and is itself rolled_back
    assert kinds(db, redo.bulk_action_id) == {"rolled_back": changed["change"]}


def test_fields_changed_again_are_kept_and_reported_unless_forced(database_name: str, db: CompanyDatabase) -> None:
    ids = seed(db, 6, 1502)
    first = update_status(company_ids=ids, database=database_name, needs_review=True, review_reason="first look")
    later, outside = ids[0], ids[1]
    update_status(company_ids=[later], database=database_name, needs_review=True, review_reason="second look")
    with db.session() as session:
        session.execute(update(Company).where(Company.id == outside).values(review_reason="edited by hand"))

    undo = rollback(rollback_of=first.bulk_action_id, database=database_name)

    state = values(db, ids, "needs_review", "review_reason")
    # conflicts are per field: the later action only changed the reason (the flag was already set), so the flag
    # is restored and the reason kept; the same for the reason edited outside any action
    assert state[later] == (False, "second look")
    assert state[outside] == (False, "edited by hand")
    assert all(state[c] == (False, None) for c in ids[2:])
    notes = details(db, undo.bulk_action_id)
    assert "review_reason: changed again by bulk action" in notes[later]
    assert "review_reason: changed outside any recorded action" in notes[outside]

    assert kinds(db, first.bulk_action_id) == {"change": 12}
    assert set(kinds(db, undo.bulk_action_id)) == {"rolled_back"}

    forced = rollback(rollback_of=first.bulk_action_id, database=database_name, force=True)
    assert forced.status == "completed"
    # the forced pass writes only the two reasons kept before: every other field is already as before the action
    assert kinds(db, forced.bulk_action_id) == {"rolled_back": 2}
    assert values(db, [later, outside], "needs_review", "review_reason") == {
        later: (False, None),
        outside: (False, None),
    }
