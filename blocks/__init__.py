"""Prefect Blocks: configuration and secrets for the database, storage and every provider.

Each block hands out its own client (``get_client()``/``get_engine()``); flows and tasks pass block *names*
around and load them where they are used, so cache keys stay stable and nothing live crosses a process boundary.
"""

from blocks.database import CompanyDatabase
from blocks.embeddings import (
    EMBEDDING_BLOCK_TYPES,
    LocalMiniLMEmbeddings,
    OpenAICompatibleEmbeddings,
    WorkersAIEmbeddings,
)
from blocks.loading import load_block, load_database, load_embedding_block

__all__ = [
    "EMBEDDING_BLOCK_TYPES",
    "CompanyDatabase",
    "LocalMiniLMEmbeddings",
    "OpenAICompatibleEmbeddings",
    "WorkersAIEmbeddings",
    "load_block",
    "load_database",
    "load_embedding_block",
]
