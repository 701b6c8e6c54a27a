"""Text templates: what a provider sees of a company."""

from __future__ import annotations

import hashlib
from typing import Protocol

EMBEDDING_TEMPLATE = "Company: {name}. Industry: {industry}. Business: {activity}. Location: {country}."


class EmbeddingFields(Protocol):
    """What the template reads: a ``Company``, or a row of just these columns (``core.store.embedding_inputs``)."""

    @property
    def name(self) -> str: ...
    @property
    def industry(self) -> str | None: ...
    @property
    def activity_description(self) -> str | None: ...
    @property
    def country(self) -> str | None: ...


def embedding_text(company: EmbeddingFields) -> str:
    """The design's template; missing fields read 'unknown' so the sentence stays well formed."""
    return EMBEDDING_TEMPLATE.format(
        name=company.name.strip(),
        industry=(company.industry or "unknown").strip(),
        activity=(company.activity_description or "unknown").strip().rstrip("."),
        country=(company.country or "unknown").strip(),
    )


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
