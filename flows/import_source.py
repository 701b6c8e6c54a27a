"""The import's source file, opened from its storage block: format detected, header read, chunks streamed.

Kept apart from the flow because it owns the open file (and so its lifetime) and the one place that knows how
far through the file the import is, which drives the progress artifact.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from blocks.storage import open_file
from core.file_reader import Chunk, TableReader, detect_format, open_table

#: bytes read to detect the format (decompressed when the file is gzipped)
HEAD_BYTES = 64 * 1024


@dataclass
class ImportSource:
    """An open source file: its columns, its chunks, and how much of it has been read."""

    stream: BinaryIO
    table: TableReader
    size: int | None

    @property
    def columns(self) -> list[str]:
        return list(self.table.columns)

    def chunks(self) -> Iterator[Chunk]:
        return iter(self.table.chunks())

    def percent_read(self) -> float:
        """How far through the file (as stored, compressed or not) the reader is, 0-100."""
        if not self.size:
            return 0.0
        try:
            return round(min(100.0, 100.0 * self.stream.tell() / self.size), 1)
        except (OSError, ValueError):
            return 0.0


@contextmanager
def open_source(settings: dict[str, Any]) -> Iterator[ImportSource]:
    """The source named by an import's settings, open for reading (closed on exit)."""
    with open_file(settings["storage"], settings["source"], "rb") as stream:
        size = _size(stream)
        head = stream.read(HEAD_BYTES)
        stream.seek(0)
        fmt = detect_format(
            settings["source"],
            head,
            kind=None if settings["file_format"] == "auto" else settings["file_format"],
            encoding=None if settings["encoding"] == "auto" else settings["encoding"],
            delimiter=settings["delimiter"] or None,
        )
        table = open_table(stream, fmt, chunk_rows=settings["chunk_rows"], max_bytes=settings["max_bytes"])
        yield ImportSource(stream=stream, table=table, size=size)


def _size(stream: BinaryIO) -> int | None:
    size = getattr(stream, "size", None)
    if isinstance(size, int):
        return size
    try:
        position = stream.tell()
        end = stream.seek(0, 2)
        stream.seek(position)
        return end
    except (OSError, ValueError):
        return None
