"""Load blocks by reference, once per process.

A reference is ``"<block-type-slug>/<document-name>"`` (Prefect's own notation, e.g.
``local-minilm-embeddings/default``) or a bare document name for the database block.  Loading costs an API call
and building a client costs more (the local model loads its weights), so both are cached for the process.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar, cast

from prefect.blocks.core import Block
from prefect.utilities.dispatch import lookup_type

from blocks.database import CompanyDatabase
from blocks.embeddings import EMBEDDING_BLOCK_TYPES, EmbeddingBlock
from core.errors import ConfigurationError

B = TypeVar("B", bound=Block)
#: keyed by class, not slug: Prefect derives a slug by slugifying the class name on every call (~0.3 ms)
_cache: dict[tuple[type[Block], str], Block] = {}
_lock = threading.Lock()


def load_block(cls: type[B], name: str) -> B:
    key = (cls, name)
    with _lock:
        cached = _cache.get(key)
    if cached is None:
        try:
            loaded: B = cast(B, cls.load(name))
        except ValueError as exc:
            raise ConfigurationError(
                f"no {cls.get_block_type_slug()} block named {name!r}: run `make blocks` "
                "(python -m deployments.register_blocks) or create it in the Prefect UI"
            ) from exc
        with _lock:
            cached = _cache.setdefault(key, loaded)
    return cast(B, cached)


def load_database(name: str) -> CompanyDatabase:
    return load_block(CompanyDatabase, name)


def load_provider_block(reference: str, *, needs: str = "get_client") -> Any:
    """Load ``<block-type-slug>/<name>`` of any imported block type that offers ``needs``.

    Looked up in Prefect's registry of Block subclasses, so a new provider type only has to be imported.
    """
    slug, _, name = reference.partition("/")
    try:
        cls = lookup_type(Block, slug) if name else None
    except KeyError:
        cls = None
    if cls is None or not hasattr(cls, needs):
        known = sorted(c.get_block_type_slug() for c in EMBEDDING_BLOCK_TYPES)
        raise ConfigurationError(
            f"provider {reference!r} is not '<block-type>/<name>' of a provider block type (e.g. {known})"
        )
    return load_block(cls, name)


def load_embedding_block(reference: str) -> EmbeddingBlock:
    return cast(EmbeddingBlock, load_provider_block(reference))


def clear_block_cache() -> None:
    """Forget every loaded block, and every policy found missing (it may exist now)."""
    with _lock:
        _cache.clear()
        _missing.clear()


#: (class, name) of policy documents found not saved: asked once per process (every batch reads its policies)
_missing: set[tuple[type[Block], str]] = set()


def load_or_default(cls: type[B], name: str) -> B:
    """The named document of a policy block, or one with every default when none is saved.

    For blocks whose defaults are a working configuration (the spend and operations policies): a missing document
    is not an error, and is asked for once per process.
    """
    key = (cls, name)
    with _lock:
        if key in _missing:
            return cls()
    try:
        return load_block(cls, name)
    except ConfigurationError:
        with _lock:
            _missing.add(key)
        return cls()
