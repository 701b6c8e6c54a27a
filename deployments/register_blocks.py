"""Register this project's block types with the Prefect server and save the default documents.

    python -m deployments.register_blocks

Saves ``company-database/default`` (SQLite under ./.data unless BULKAI_DATABASE_URL is set),
``local-minilm-embeddings/default``, ``local-rules-llm/default`` and ``local-database-writes/default``.
Existing documents are left as they are (pass ``--overwrite`` to reset them), so secrets an operator entered in
the UI are never clobbered.  Blocks for paid providers are registered as types only: create their documents in
the UI (Blocks → +) or with a few lines of Python, as the README shows.
"""

from __future__ import annotations

import argparse

from prefect.blocks.core import Block

from blocks.database import CompanyDatabase
from blocks.embeddings import EMBEDDING_BLOCK_TYPES, LocalMiniLMEmbeddings
from blocks.enrichment import ENRICHMENT_BLOCK_TYPES
from blocks.llm import LLM_BLOCK_TYPES, LocalRulesLLM
from blocks.local_database import LocalDatabaseWrites

BLOCK_TYPES: tuple[type[Block], ...] = (
    CompanyDatabase,
    *EMBEDDING_BLOCK_TYPES,
    *LLM_BLOCK_TYPES,
    *ENRICHMENT_BLOCK_TYPES,
    LocalDatabaseWrites,
)


def register_blocks(*, overwrite: bool = False, database_url: str | None = None) -> list[str]:
    """Register every block type and save the defaults; returns the references saved."""
    for block_type in BLOCK_TYPES:
        block_type.register_type_and_schema()
    saved: list[str] = []
    documents: list[Block] = [
        CompanyDatabase(url=database_url) if database_url else CompanyDatabase(),  # type: ignore[arg-type]
        LocalMiniLMEmbeddings(),
        LocalRulesLLM(),
        LocalDatabaseWrites(),
    ]
    for document in documents:
        slug = document.get_block_type_slug()
        if not overwrite and _exists(type(document), "default"):
            continue
        document.save("default", overwrite=True)
        saved.append(f"{slug}/default")
    return saved


def _exists(block_type: type[Block], name: str) -> bool:
    try:
        block_type.load(name)
    except ValueError:
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--overwrite", action="store_true", help="replace existing default documents")
    parser.add_argument("--database-url", help="URL for company-database/default (else the SQLite default)")
    args = parser.parse_args(argv)
    saved = register_blocks(overwrite=args.overwrite, database_url=args.database_url)
    print("registered block types:", ", ".join(b.get_block_type_slug() for b in BLOCK_TYPES))
    print("saved:", ", ".join(saved) if saved else "nothing (defaults already exist)")


if __name__ == "__main__":
    main()
