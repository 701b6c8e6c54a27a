"""JSON files in a storage block: what enrichment keeps next to the database (raw results, merged profiles).

A storage reference is ``"<block-type-slug>/<name>"`` of any Prefect filesystem block: ``local-file-system/...``
on one machine, ``remote-file-system/...`` with an fsspec URL (``s3://bucket/bulkai``, ``gcs://...``) when
several workers must see the same files.  The default reference falls back to a ``LocalFileSystem`` under
``$BULKAI_HOME/storage`` when no document of that name was saved, so a fresh machine works without setup;
any other reference that does not resolve is a configuration error (files silently landing on one worker's
disk would be worse than stopping).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, cast

from prefect.blocks.core import Block
from prefect.filesystems import LocalFileSystem, RemoteFileSystem, WritableFileSystem
from prefect.utilities.dispatch import lookup_type

from blocks.loading import load_block
from core.db import REPO_ROOT
from core.errors import ConfigurationError, InputError

DEFAULT_STORAGE = "local-file-system/bulkai-storage"

#: both slugs must be imported for ``lookup_type`` to find them
SUPPORTED: tuple[type[WritableFileSystem], ...] = (LocalFileSystem, RemoteFileSystem)

_fallback: dict[str, LocalFileSystem] = {}  # reference -> the local default standing in for it
_fallback_lock = threading.Lock()


def default_storage_path() -> Path:
    """``$BULKAI_HOME/storage`` (``BULKAI_HOME`` defaults to ``./.data``, as for the database)."""
    return Path(os.environ.get("BULKAI_HOME", REPO_ROOT / ".data")) / "storage"


def load_storage(reference: str) -> WritableFileSystem:
    """The filesystem block behind ``reference`` (cached for the process, like every block)."""
    with _fallback_lock:
        fallback = _fallback.get(reference)
    if fallback is not None:
        return fallback
    slug, _, name = reference.partition("/")
    try:
        cls = lookup_type(Block, slug) if name else None
    except KeyError:
        cls = None
    if cls is None or not issubclass(cls, WritableFileSystem):
        raise ConfigurationError(
            f"storage {reference!r} is not '<block-type>/<name>' of a filesystem block "
            "(e.g. local-file-system/bulkai-storage or remote-file-system/<name>)"
        )
    try:
        return cast(WritableFileSystem, load_block(cls, name))
    except ConfigurationError:
        if reference != DEFAULT_STORAGE:
            raise
    # decided once per process, like every block load, so the missing document is not asked for again
    with _fallback_lock:
        return _fallback.setdefault(reference, LocalFileSystem(basepath=str(default_storage_path())))


@contextmanager
def open_file(reference: str, path: str, mode: str = "rb") -> Iterator[BinaryIO]:
    """``path`` (relative to the storage block's base) opened in binary ``mode``, local or remote alike.

    Reading a file that is not there (or a bucket that does not exist) raises :class:`InputError` naming the
    storage and the full location looked at; writing creates the parent directories of a local file.
    """
    storage = load_storage(reference)
    where = file_location(reference, path)
    try:
        if isinstance(storage, LocalFileSystem):
            local = storage._resolve_path(path)  # noqa: SLF001 - Prefect's own containment check
            if "w" in mode:
                local.parent.mkdir(parents=True, exist_ok=True)
            handle: Any = open(local, mode)  # noqa: SIM115 - closed below
        else:
            remote = cast(RemoteFileSystem, storage)
            handle = remote.filesystem.open(remote._resolve_path(path), mode)  # noqa: SLF001
    except FileNotFoundError:
        raise InputError(f"no file {path!r} in storage {reference!r} (looked at {where})") from None
    except ValueError as error:  # a path outside the block's base
        raise InputError(f"{path!r} is not a path inside storage {reference!r}: {error}") from None
    with handle:
        yield cast(BinaryIO, handle)


def file_location(reference: str, path: str) -> str:
    """Where ``path`` of a storage block is, as a URL a person can follow (``file:///...``, ``s3://...``)."""
    storage = load_storage(reference)
    try:
        if isinstance(storage, LocalFileSystem):
            return storage._resolve_path(path).as_uri()  # noqa: SLF001
        return str(cast(RemoteFileSystem, storage)._resolve_path(path))  # noqa: SLF001
    except ValueError:
        return path


def write_json(reference: str, path: str, obj: Any) -> str:
    """Write ``obj`` as UTF-8 JSON at ``path`` (relative to the block's base); returns where it went."""
    content = json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, default=str).encode("utf-8")
    write: Any = load_storage(reference).write_path  # ``_sync=True``: never a coroutine, whatever the context
    return str(write(path, content, _sync=True))


def read_json(reference: str, path: str) -> Any | None:
    """The JSON at ``path``, or ``None`` when there is no such file."""
    read: Any = load_storage(reference).read_path
    try:
        content = read(path, _sync=True)
    except FileNotFoundError:
        return None
    except ValueError as error:  # LocalFileSystem says "Path ... does not exist." with a ValueError
        if "does not exist" in str(error):
            return None
        raise
    return json.loads(content)
