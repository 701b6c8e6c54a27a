"""Why an uploaded table file (CSV, NDJSON, JSON, Parquet; maybe gzip) cannot be read.

One branch of the project's error tree (``core.errors``), so the flows treat a bad file like any other bad
request: nothing was imported, and the message tells the user what to change::

    InputError                          (core.errors; a ValueError)
    └── FileFormatError                 the file as a whole cannot be read as asked
        ├── UnknownFormatError          neither the name nor the first bytes say which format it is
        ├── FileTooLargeError           more than max_bytes, counted after decompression (a gzip bomb stops here)
        ├── EncodingError               bytes that do not decode in the file's (given or detected) encoding
        ├── EmptyFileError              no bytes at all, or a header / an empty array but no rows
        ├── HeaderError                 too many columns, a column without a name, a name used twice
        └── MissingColumnsError         a column the caller needs is not in the file (raised by the caller)

A single bad row is not an error: it lands in ``Chunk.problems`` with its row number and a reason, and the
rest of the file is read.  Messages never echo a cell's content beyond a short, truncated preview.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.errors import InputError

__all__ = [
    "EmptyFileError",
    "EncodingError",
    "FileFormatError",
    "FileTooLargeError",
    "HeaderError",
    "MissingColumnsError",
    "UnknownFormatError",
]


class FileFormatError(InputError):
    """The file cannot be read as asked; the message says what was seen and what to change."""


class UnknownFormatError(FileFormatError):
    pass


class FileTooLargeError(FileFormatError):
    def __init__(self, max_bytes: int, *, compressed: bool) -> None:
        self.max_bytes = max_bytes
        what = "decompresses to more than" if compressed else "is larger than"
        super().__init__(f"the file {what} max_bytes={max_bytes:,} bytes; split it or raise the limit")


class EncodingError(FileFormatError):
    def __init__(self, encoding: str, offset: int, byte: int | None, row: int | None) -> None:
        self.encoding = encoding
        self.offset = offset
        self.row = row
        what = f"byte 0x{byte:02x}" if byte is not None else "a truncated character"
        where = " (in the header)" if row == 0 else f" (data row {row:,})" if row is not None else ""
        super().__init__(
            f"the file is not valid {encoding}: {what} at byte offset {offset:,}{where} cannot be decoded; "
            'if it was saved by Excel or an older system, pass encoding="latin-1" (or "cp1252")'
        )


class EmptyFileError(FileFormatError):
    pass


class HeaderError(FileFormatError):
    pass


class MissingColumnsError(FileFormatError):
    def __init__(self, missing: Sequence[str], columns: Sequence[str]) -> None:
        self.missing = list(missing)
        self.columns = list(columns)
        shown = ", ".join(repr(c) for c in columns[:50]) + (", …" if len(columns) > 50 else "")
        super().__init__(
            f"the file has no column {', '.join(repr(m) for m in missing)}; its columns are: {shown or '(none)'}"
        )
