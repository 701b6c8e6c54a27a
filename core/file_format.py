"""Which format an uploaded table file is in, and the plumbing every format's reader shares.

``detect_format`` decides from the name *and* the first bytes, because names lie in both directions: a
``.csv.gz`` that a transport already decompressed has no gzip magic, an Excel ``.xlsx`` renamed ``.csv`` starts
with ``PK``.  Binary magic (gzip ``1f8b``, Parquet ``PAR1``) wins over the name, the name wins for text
formats (a CSV may well start with ``[``), and explicit overrides win over both.

``ByteSource`` is the only way the readers see a file's bytes: it decompresses gzip in bounded steps and
counts the *decompressed* bytes against ``max_bytes``, so a gzip bomb (1 GB of zeros in 1 MB) is refused
after reading ``max_bytes`` of it, never allocated.  Offsets in error messages are offsets into these
decompressed bytes.
"""

from __future__ import annotations

import codecs
import csv
import gzip as gzip_module
import zlib
from dataclasses import dataclass
from typing import IO, BinaryIO, Literal, NamedTuple, cast, get_args

import polars as pl

from core.file_errors import EncodingError, FileFormatError, FileTooLargeError, HeaderError, UnknownFormatError

Kind = Literal["csv", "ndjson", "json", "parquet"]
KINDS: tuple[str, ...] = get_args(Kind)
#: canonical name -> what ``codecs.lookup(...).name`` calls it
ENCODINGS = {"utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "latin-1": "iso8859-1", "cp1252": "cp1252"}
DELIMITERS = ",;\t|"
EXTENSIONS: dict[str, Kind] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "json",
    ".parquet": "parquet",
}
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
ZIP_MAGIC = b"PK\x03\x04"
BOM = codecs.BOM_UTF8
HEAD_BYTES = 64 * 1024
#: the decompressed bytes a reader asks for at a time
BLOCK_BYTES = 4 << 20
#: raw values of a problem row are cut to this many characters each: reports stay small, cells are not echoed
PREVIEW_CHARS = 200


@dataclass(frozen=True)
class FileFormat:
    kind: Kind
    gzip: bool = False
    encoding: str = "utf-8"
    #: CSV only: the field delimiter (None: ",")
    delimiter: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UnknownFormatError(f"unknown kind {self.kind!r}; supported: {', '.join(KINDS)}")
        object.__setattr__(self, "encoding", normalize_encoding(self.encoding))
        if self.delimiter is not None and (
            len(self.delimiter) != 1 or self.delimiter in '"\r\n' or not self.delimiter.isascii()
        ):
            raise FileFormatError(f"invalid delimiter {self.delimiter!r}: one ASCII character, not a quote or newline")


def normalize_encoding(encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        name = ""
    for canonical, codec_name in ENCODINGS.items():
        if name == codec_name:
            return canonical
    raise FileFormatError(f"unsupported encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")


def detect_format(
    name: str,
    head: bytes,
    *,
    kind: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
) -> FileFormat:
    """The format of a file called ``name`` whose stored bytes start with ``head`` (~64 KiB, maybe gzip)."""
    is_gzip = head[:2] == GZIP_MAGIC
    text = _gunzip_prefix(head) if is_gzip else head
    lower = name.lower()
    stem = lower[:-3] if lower.endswith(".gz") else lower
    ext = stem[stem.rfind(".") :] if "." in stem.rsplit("/", 1)[-1] else ""
    if kind is not None:
        if kind not in KINDS:
            raise UnknownFormatError(f"unknown kind {kind!r}; supported: {', '.join(KINDS)}")
        found: str = kind
    elif text.startswith(PARQUET_MAGIC):
        found = "parquet"
    elif text.startswith(ZIP_MAGIC):
        raise UnknownFormatError(f"{name!r} is a ZIP archive (an Excel workbook?): export it as CSV and upload that")
    elif ext == ".parquet":
        raise UnknownFormatError(f"{name!r} is named .parquet but does not start with the Parquet magic bytes PAR1")
    else:
        found = _kind_of_text(ext, text, name)
    if found == "parquet":
        return FileFormat("parquet", gzip=is_gzip)
    if text[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise FileFormatError(f"{name!r} is UTF-16 text: save it as UTF-8 (Excel: 'CSV UTF-8') and upload that")
    if b"\x00" in text[:4096]:
        raise UnknownFormatError(f"{name!r} looks binary (NUL bytes near the start), not {found} text")
    enc = normalize_encoding(encoding) if encoding is not None else _detect_encoding(text)
    sep = None
    if found == "csv":
        sep = delimiter if delimiter is not None else ("\t" if ext == ".tsv" else _sniff_delimiter(text, enc))
    return FileFormat(cast(Kind, found), gzip=is_gzip, encoding=enc, delimiter=sep)


def _gunzip_prefix(head: bytes) -> bytes:
    try:
        return zlib.decompressobj(wbits=31).decompress(head, HEAD_BYTES)
    except zlib.error as e:
        raise FileFormatError(f"the file starts like gzip but is corrupt ({e})") from None


def _kind_of_text(ext: str, text: bytes, name: str) -> str:
    stripped = text.removeprefix(BOM).lstrip()
    if ext == ".json" and stripped[:1] == b"{":
        # a .json file whose first line is a whole object is NDJSON; otherwise the JSON reader explains the error
        line = stripped.split(b"\n", 1)[0]
        return "ndjson" if line.rstrip().endswith(b"}") and b"\n" in stripped else "json"
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
    if stripped[:1] == b"[":
        return "json"
    if stripped[:1] == b"{":
        return "ndjson"
    seen = f"extension {ext!r}" if ext else "no extension"
    raise UnknownFormatError(
        f"cannot tell the format of {name!r} ({seen}, first bytes {text[:16]!r}); supported: "
        ".csv .tsv .txt .ndjson .jsonl .json .parquet, each optionally .gz; or pass kind="
    )


def _detect_encoding(text: bytes) -> str:
    if text.startswith(BOM):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(text, final=False)
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


def _sniff_delimiter(text: bytes, encoding: str) -> str:
    sample = text.decode(encoding, errors="replace").removeprefix("\ufeff")
    cut = sample.rfind("\n", 0, 32 * 1024)
    sample = sample[: cut + 1] if cut > 0 else sample[: 32 * 1024]
    header = sample.split("\n", 1)[0]
    try:
        found = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        found = ""
    if found and found in header:
        return found
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 2_000_000_000
    max_columns: int = 1_000
    max_cell_chars: int = 100_000

    @property
    def hard_cell_chars(self) -> int:
        """A cell this long cannot be a cell (an unclosed quote swallowing the file): reading stops."""
        return max(10_000_000, 10 * self.max_cell_chars)

    @property
    def max_record_chars(self) -> int:
        """One line / one JSON element may not be longer (bounds memory for files without line breaks)."""
        return max(64 << 20, 2 * self.hard_cell_chars)


class Problem(NamedTuple):
    """A row that could not be parsed: its 1-based row number, why, and its values as far as known."""

    row_number: int
    reason: str
    values: dict[str, str | None]


@dataclass
class Piece:
    """Parsed rows of one stretch of the file, before they are cut into chunks of ``chunk_rows``."""

    frame: pl.DataFrame  # all String columns, the good rows only
    row_numbers: pl.Series  # Int64, aligned with ``frame``
    problems: list[Problem]
    last_row: int  # the number of the last row (good or not) this piece covers


def check_columns(names: list[str], limits: Limits) -> list[str]:
    """The column names, or a ``HeaderError`` saying what is wrong with them."""
    if len(names) > limits.max_columns:
        raise HeaderError(f"the file has {len(names):,} columns, more than max_columns={limits.max_columns:,}")
    unnamed = [i + 1 for i, n in enumerate(names) if not n]
    if unnamed:
        shown = ", ".join(map(str, unnamed[:20])) + (", …" if len(unnamed) > 20 else "")
        raise HeaderError(f"column(s) {shown} of the header have no name: every column needs one")
    seen: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        seen.setdefault(n, []).append(i + 1)
    twice = [f"{n!r} (columns {', '.join(map(str, at))})" for n, at in seen.items() if len(at) > 1]
    if twice:
        raise HeaderError(f"the header repeats column names: {'; '.join(twice[:20])}")
    return names


def read_first_block(source: ByteSource, encoding: str) -> tuple[bytes, int]:
    """The first block without a UTF-8 byte order mark, and the offset it starts at."""
    first = source.read(BLOCK_BYTES)
    if encoding in ("utf-8", "utf-8-sig") and first.startswith(BOM):
        return first[len(BOM) :], len(BOM)
    return first, 0


def preview(values: dict[str, str | None]) -> dict[str, str | None]:
    return {k: v if v is None or len(v) <= PREVIEW_CHARS else v[:PREVIEW_CHARS] + "…" for k, v in values.items()}


class ByteSource:
    """The decompressed bytes of a file, read in bounded steps and counted against ``max_bytes``."""

    def __init__(self, stream: BinaryIO, *, gzip: bool, max_bytes: int) -> None:
        self._gzip = gzip
        self._raw: IO[bytes] | gzip_module.GzipFile = (
            gzip_module.GzipFile(fileobj=stream, mode="rb") if gzip else stream
        )
        self.max_bytes = max_bytes
        #: decompressed bytes handed out so far
        self.offset = 0
        self.eof = False

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; fewer only at the end of the file."""
        parts: list[bytes] = []
        got = 0
        while got < n and not self.eof:
            want = min(n - got, self.max_bytes - self.offset + 1)
            try:
                data = self._raw.read(want)
            except (OSError, EOFError, zlib.error) as e:
                if not self._gzip:
                    raise
                raise FileFormatError(f"the gzip data is corrupt or truncated ({e})") from None
            if not data:
                self.eof = True
                break
            self.offset += len(data)
            if self.offset > self.max_bytes:
                raise FileTooLargeError(self.max_bytes, compressed=self._gzip)
            parts.append(data)
            got += len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        """Closes the gzip reader, never the caller's stream."""
        if self._gzip:
            self._raw.close()


class TextDecoder:
    """Incremental decoding that reports the absolute byte offset of the first undecodable byte."""

    def __init__(self, encoding: str) -> None:
        self.encoding = "utf-8" if encoding == "utf-8-sig" else encoding
        self._decoder = codecs.getincrementaldecoder(self.encoding)("strict")

    def decode(self, data: bytes, offset: int, *, final: bool = False, row: int | None = None) -> str:
        """``offset``: where ``data`` starts in the decompressed file."""
        pending = len(self._decoder.getstate()[0])
        try:
            return self._decoder.decode(data, final)
        except UnicodeDecodeError as e:
            bad = e.object[e.start] if e.start < len(e.object) else None
            if e.reason == "unexpected end of data":
                bad = None
            raise EncodingError(self.encoding, offset - pending + e.start, bad, row) from None
