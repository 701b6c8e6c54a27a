"""NDJSON and JSON-array tables, streamed: memory holds one chunk of rows, never the file.

NDJSON is one object per line; blank lines are skipped and not numbered, so row ``n`` is the ``n``-th
non-blank line.  A JSON array is parsed element by element with ``json.JSONDecoder.raw_decode`` over a
sliding text buffer (never ``json.load`` of the whole file); row ``n`` is its ``n``-th element.  A line or
element that is not an object becomes a problem row and the rest is read; a JSON syntax error *inside* an
array cannot be skipped (where the next element starts is unknown), so it stops the file.

Values become the strings a CSV would have given: strings as they are (``""`` -> None), numbers as their
JSON text (integers exactly, floats as Python's shortest repr, so ``1.10`` -> ``"1.1"``), ``true``/``false``,
``null`` -> None, nested objects and arrays as compact JSON text.  The columns of a chunk are the union of its
rows' keys in first-seen order; a later chunk may bring keys the first did not have (see
``TableReader.extra_columns``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import chain

import polars as pl

from core.file_errors import EmptyFileError, EncodingError, FileFormatError, HeaderError
from core.file_format import (
    BLOCK_BYTES,
    ByteSource,
    FileFormat,
    Limits,
    Piece,
    Problem,
    TextDecoder,
    preview,
    read_first_block,
)

_WS = re.compile(r"[ \t\n\r]*")
_TYPES = {str: "string", bool: "boolean", int: "number", float: "number", list: "array", dict: "object"}


def _cell(value: object) -> str | None:
    if type(value) is str:
        return value or None
    if value is None:
        return None
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _Batch:
    """The rows of one chunk as they are parsed."""

    def __init__(self, first_row: int, limits: Limits) -> None:
        self.first_row = first_row
        self._limits = limits
        self._rows: list[dict[str, str | None]] = []
        self._numbers: list[int] = []
        self.problems: list[Problem] = []

    def add(self, row: int, value: object) -> None:
        if not isinstance(value, dict):
            kind = "null" if value is None else _TYPES.get(type(value), type(value).__name__)
            self.problems.append(
                Problem(row, f"row {row} is a JSON {kind}, not an object", preview({"value": _cell(value)}))
            )
            return
        if not value:
            self.problems.append(Problem(row, f"row {row} is an empty JSON object", {}))
            return
        cells = {str(k): _cell(v) for k, v in value.items()}
        longest = max(map(len, filter(None, cells.values())), default=0)
        if longest > self._limits.max_cell_chars:
            name = next(k for k, v in cells.items() if v is not None and len(v) == longest)
            reason = (
                f"row {row}: column {name!r} has {longest:,} characters, "
                f"more than max_cell_chars={self._limits.max_cell_chars:,}"
            )
            self.problems.append(Problem(row, reason, preview(cells)))
            return
        self._rows.append(cells)
        self._numbers.append(row)

    def piece(self, last_row: int) -> Piece:
        keys = list(dict.fromkeys(chain.from_iterable(self._rows)))
        if len(keys) > self._limits.max_columns:
            raise HeaderError(
                f"rows {self.first_row:,}-{last_row:,} have {len(keys):,} distinct keys, "
                f"more than max_columns={self._limits.max_columns:,}"
            )
        rows = self._rows
        frame = pl.DataFrame({k: [r.get(k) for r in rows] for k in keys}, schema=dict.fromkeys(keys, pl.String))
        return Piece(frame, pl.Series(self._numbers, dtype=pl.Int64), self.problems, last_row)


def ndjson_pieces(source: ByteSource, fmt: FileFormat, limits: Limits, chunk_rows: int) -> Iterator[Piece]:
    encoding = "utf-8" if fmt.encoding == "utf-8-sig" else fmt.encoding
    first, base = read_first_block(source, fmt.encoding)
    row, batch = 0, _Batch(1, limits)
    for offset, line in _lines(source, first, base, limits):
        if not line.strip():
            continue
        row += 1
        try:
            text = line.decode(encoding)
        except UnicodeDecodeError as e:
            raise EncodingError(encoding, offset + e.start, line[e.start], row) from None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            reason = f"row {row} is not valid JSON: {e.msg} at character {e.pos + 1}"
            batch.problems.append(Problem(row, reason, preview({"line": text})))
        except RecursionError:
            batch.problems.append(Problem(row, f"row {row} is nested too deeply", preview({"line": text})))
        else:
            batch.add(row, value)
        if row - batch.first_row + 1 == chunk_rows:
            yield batch.piece(row)
            batch = _Batch(row + 1, limits)
    if row == 0:
        raise EmptyFileError("the file is empty")
    if row >= batch.first_row:
        yield batch.piece(row)


def _lines(source: ByteSource, data: bytes, offset: int, limits: Limits) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line without its newline) for every line of the file."""
    carry = b""
    while data:
        *lines, rest = (carry + data).split(b"\n")
        for line in lines:
            yield offset, line
            offset += len(line) + 1
        carry = rest
        if len(carry) > limits.max_record_chars:
            raise FileFormatError(
                f"the line at byte offset {offset:,} is longer than {limits.max_record_chars:,} bytes"
            )
        data = source.read(BLOCK_BYTES)
    if carry:
        yield offset, carry


class _ArrayText:
    """A sliding window of decoded text over the file: ``buf[pos:]`` is what is left to parse."""

    def __init__(self, source: ByteSource, fmt: FileFormat, limits: Limits) -> None:
        self._source = source
        self._limits = limits
        self._decoder = TextDecoder(fmt.encoding)
        first, self._offset = read_first_block(source, fmt.encoding)
        self.buf = ""
        self.pos = 0
        self._eof = False
        self._append(first)

    def _append(self, data: bytes) -> None:
        text = self._decoder.decode(data, self._offset, final=not data)
        self._offset += len(data)
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        self._eof = not data

    def more(self) -> bool:
        """Read on (at least as much again as is buffered); False at the end of the file."""
        if self._eof:
            return False
        if len(self.buf) - self.pos > self._limits.max_record_chars:
            raise FileFormatError(f"a JSON array element is longer than {self._limits.max_record_chars:,} characters")
        self._append(self._source.read(max(BLOCK_BYTES, len(self.buf) - self.pos)))
        return True

    def next_char(self) -> str | None:
        """The next non-whitespace character (not consumed), None at the end of the file."""
        while True:
            match = _WS.match(self.buf, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return None

    def element(self, decoder: json.JSONDecoder, number: int) -> object:
        while True:
            try:
                value, end = decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as e:
                truncated = e.pos >= len(self.buf) - 16 or e.msg.startswith("Unterminated string")
                if truncated and self.more():
                    continue
                raise FileFormatError(f"element {number:,} of the JSON array is not valid JSON: {e.msg}") from None
            except RecursionError:
                raise FileFormatError(f"element {number:,} of the JSON array is nested too deeply") from None
            if end == len(self.buf) and self.more():  # a number may go on in the next block
                continue
            self.pos = end
            return value


def json_pieces(source: ByteSource, fmt: FileFormat, limits: Limits, chunk_rows: int) -> Iterator[Piece]:
    text = _ArrayText(source, fmt, limits)
    decoder = json.JSONDecoder()
    char = text.next_char()
    if char is None:
        raise EmptyFileError("the file is empty")
    if char != "[":
        hint = " (one object per line is NDJSON: name the file .ndjson or pass kind='ndjson')" if char == "{" else ""
        seen = "an object" if char == "{" else f"{char!r}"
        raise FileFormatError(f"the top level of the JSON file is {seen}, not an array of objects{hint}")
    text.pos += 1
    row, batch = 0, _Batch(1, limits)
    char = text.next_char()
    if char == "]":
        raise EmptyFileError("the JSON array is empty: there are no rows")
    while True:
        if char is None:
            raise FileFormatError(f"the JSON array is not closed: the file ends after {row:,} element(s)")
        row += 1
        batch.add(row, text.element(decoder, row))
        if row - batch.first_row + 1 == chunk_rows:
            yield batch.piece(row)
            batch = _Batch(row + 1, limits)
        char = text.next_char()
        if char == "]":
            break
        if char is None:
            raise FileFormatError(f"the JSON array is not closed: the file ends after {row:,} element(s)")
        if char != ",":
            raise FileFormatError(f"expected ',' or ']' after element {row:,} of the JSON array, found {char!r}")
        text.pos += 1
        char = text.next_char()
    text.pos += 1
    if text.next_char() is not None:
        raise FileFormatError("the file goes on after the JSON array's closing ']'")
    if row >= batch.first_row:
        yield batch.piece(row)
