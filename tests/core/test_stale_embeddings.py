"""The fields whose change makes a vector stale are exactly those the embedding template reads."""

from __future__ import annotations

from core.history import TRACKED_FIELDS
from core.schema import Company
from core.stale_embeddings import EMBEDDING_TEXT_FIELDS
from core.text import embedding_text


def test_embedding_text_fields_are_exactly_what_the_template_reads() -> None:
    base = {"name": "Acme BV", "industry": "Bakery", "activity_description": "Bakes bread", "country": "NL"}
    text = embedding_text(Company(**base))
    for column in Company.__table__.columns.keys():
        other = Company(**base)
        setattr(other, column, "Changed")
        assert (embedding_text(other) != text) == (column in EMBEDDING_TEXT_FIELDS), column
    assert EMBEDDING_TEXT_FIELDS <= TRACKED_FIELDS  # a rollback can restore every one of them
