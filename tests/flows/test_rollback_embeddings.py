"""A rollback embeds again the companies whose restored text no longer matches their vectors, per model.

The path that changes embedding text with history is an import in update mode (``reclassify`` and
``update_status`` never touch the name, industry, activity or country).  Three companies are imported and two
embedded; a second import rewrites all three descriptions; one company is embedded again on its new text.  Rolling
the second import back must embed that one again, with both models it has vectors of and on the blocks that made
them, and pay nothing for the company whose vector still matches its restored text or for the one never embedded.
"""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import numpy as np
from sqlalchemy import select

from blocks.database import CompanyDatabase
from blocks.embeddings import WorkersAIEmbeddings
from blocks.loading import clear_block_cache, load_embedding_block
from blocks.storage import DEFAULT_STORAGE, open_file
from core.history import changes_by_action
from core.schema import BulkActionOutcome, Company, CompanyEmbedding
from core.stale_embeddings import embedding_providers, stale_embeddings
from core.text import embedding_text, text_sha256
from flows.generate_embeddings import DEFAULT_EMBEDDING_PROVIDER, generate_embeddings
from flows.import_companies import import_companies
from flows.rollback import RollbackSummary, rollback
from sandbox.server import SandboxServer
from tests.helpers import bulk_action

BGE = "workers-ai-embeddings/rollback-sandbox"


def _put_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = f"imports/{uuid.uuid4().hex[:8]}/companies.csv"
    with open_file(DEFAULT_STORAGE, path, "wb") as stream:
        stream.write(out.getvalue().encode())
    return path


def _imported(db: CompanyDatabase, import_id: int) -> list[int]:
    with db.read_session() as session:
        return list(
            session.scalars(
                select(BulkActionOutcome.company_id)
                .where(BulkActionOutcome.bulk_action_id == import_id)
                .order_by(BulkActionOutcome.position)
            )
        )


def _vectors(db: CompanyDatabase, ids: list[int]) -> dict[tuple[int, str], tuple[str, np.ndarray, Any]]:
    """(company, model) → (text hash, vector, updated_at) of every stored vector of ``ids``."""
    with db.read_session() as session:
        rows = session.execute(
            select(
                CompanyEmbedding.company_id,
                CompanyEmbedding.model_id,
                CompanyEmbedding.text_sha256,
                CompanyEmbedding.vector,
                CompanyEmbedding.updated_at,
            ).where(CompanyEmbedding.company_id.in_(ids))
        ).all()
    return {(c, m): (sha, np.frombuffer(vector, dtype=np.float32), at) for c, m, sha, vector, at in rows}


def _text_hash(db: CompanyDatabase, company_id: int) -> str:
    with db.read_session() as session:
        company = session.get(Company, company_id)
        assert company is not None
        return text_sha256(embedding_text(company))


def test_a_rollback_re_embeds_what_its_restores_made_stale_with_every_model_on_its_own_block(
    db: CompanyDatabase, database_name: str, provider_sandbox: SandboxServer
) -> None:
    provider_sandbox.reset(config=True)
    WorkersAIEmbeddings(account_id="acct-rb", api_token="cf-token", base_url=provider_sandbox.url).save(
        BGE.split("/")[1], overwrite=True
    )
    clear_block_cache()
    minilm = load_embedding_block(DEFAULT_EMBEDDING_PROVIDER).get_client().model_id
    bge = load_embedding_block(BGE).get_client().model_id
    brand = f"rbemb{uuid.uuid4().hex[:6]}"
    rows = [
        {"name": f"{brand} {n} BV", "website": f"{brand}{n}.nl", "country": "NL", "industry": "Bakery",
         "description": f"Bakes bread and cakes in shop {n}"}
        for n in range(3)
    ]  # fmt: skip
    created = import_companies(source=_put_csv(rows), database=database_name)
    a, b, c = _imported(db, created.bulk_action_id or 0)
    generate_embeddings(company_ids=[a, b], database=database_name)
    generate_embeddings(company_ids=[a], provider=BGE, database=database_name)
    original = _vectors(db, [a, b, c])
    assert set(original) == {(a, minilm), (a, bge), (b, minilm)}

    rewritten = [{**row, "description": f"Sells bicycles, now {n}"} for n, row in enumerate(rows)]
    changed = import_companies(
        source=_put_csv(rewritten),
        database=database_name,
        mode="update",
        update_fields={"activity_description": "overwrite"},
    )
    assert changed.updated == 3
    generate_embeddings(company_ids=[a], database=database_name)  # a's vectors follow its new text; b's do not
    generate_embeddings(company_ids=[a], provider=BGE, database=database_name)
    moved = _vectors(db, [a])
    assert all(moved[(a, m)][0] != original[(a, m)][0] for m in (minilm, bge))

    undo = rollback(rollback_of=changed.bulk_action_id, database=database_name)

    assert isinstance(undo, RollbackSummary)
    assert (undo.status, undo.succeeded) == ("completed", 3)
    with db.read_session() as session:
        assert {(h.field, h.kind) for h in changes_by_action(session, undo.bulk_action_id)} == {
            ("activity_description", "rolled_back")
        }
    # only a was stale (b's vector matches its restored text; c has none), with both its models
    assert (undo.embeddings_stale, undo.reembedded, undo.embeddings_left_stale) == (1, 1, 0)
    assert len(undo.embedding_actions) == 2
    providers = {str((bulk_action(db, i).parameters or {})["provider"]) for i in undo.embedding_actions}
    assert providers == {DEFAULT_EMBEDDING_PROVIDER, BGE}
    assert all(bulk_action(db, i).succeeded == 1 for i in undo.embedding_actions)
    after = _vectors(db, [a, b, c])
    assert set(after) == set(original)
    restored = _text_hash(db, a)
    for model in (minilm, bge):
        sha, vector, _ = after[(a, model)]
        assert sha == restored == original[(a, model)][0]
        assert np.allclose(vector, original[(a, model)][1], atol=1e-5)  # the vector of the restored text again
        assert not np.allclose(vector, moved[(a, model)][1], atol=1e-3)
    assert after[(b, minilm)][0] == original[(b, minilm)][0]
    assert after[(b, minilm)][2] == original[(b, minilm)][2]  # b's vector was not written again

    # the redo puts the import's text back; asked not to embed, it only counts what it left stale
    redo = rollback(rollback_of=undo.bulk_action_id, database=database_name, regenerate_embeddings=False)
    assert isinstance(redo, RollbackSummary)
    assert (redo.embeddings_stale, redo.reembedded, redo.embeddings_left_stale) == (2, 0, 3)
    assert redo.embedding_actions == []
    assert _vectors(db, [a, b, c]).keys() == after.keys()
    with db.read_session() as session:
        assert stale_embeddings(session, redo.bulk_action_id) == {minilm: [a, b], bge: [a]}
        providers_of = embedding_providers(session, [minilm, bge, "no-such-model"])
    # the blocks that made each model, latest first (other tests' actions on this database may follow)
    assert (providers_of[minilm][0], providers_of[bge][0]) == (DEFAULT_EMBEDDING_PROVIDER, BGE)
    assert "no-such-model" not in providers_of
