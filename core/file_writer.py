"""Exporting a table page by page: CSV / NDJSON / JSON array / Parquet, optionally gzip, memory bounded.

The export query hands over pages (polars DataFrames of e.g. 50,000 rows); each is serialised by polars and
written at once, so memory holds a page or two, never the export::

    with open_writer(stream, "csv", gzip=True, columns=columns) as writer:
        for page in pages:
            writer.write(page)

* CSV writes the header once (also for an empty export); null is an empty cell.  JSON writes one valid array
  across pages (``[`` ... ``,`` ... ``]``; an empty export is ``[]``); NDJSON one object per line; null stays
  null in both.
* CSV injection (OWASP): a string cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return is
  prefixed with ``'`` so a spreadsheet shows it as text instead of running it as a formula.  Vectorised: one
  cheap range test per string column (only cells that sort in ``["\\t", "A")`` can start with one of those)
  and a regex only on columns that may hold one.  Numeric columns are not strings, so ``-5`` stays ``-5``.
  JSON and Parquet are left as they are: they are typed data formats that no spreadsheet evaluates, and
  rewriting values there would corrupt them for the programs that do read them.
* gzip streams through ``gzip.GzipFile`` on a helper thread: polars serialises page k+1 while zlib compresses
  page k (both release the GIL), which hides the per-page overhead.  Level 3 by default.  Measured here, 1M rows
  x 20 columns to CSV in 50k-row pages, best of 3 against one bare ``write_csv`` into a ``GzipFile`` at the same
  level: level 3 ~350-500k rows/s, 0.98-1.01x of bare; level 1 ~610-820k rows/s but 0.89-0.95x (less to hide);
  level 6 ~80k rows/s, under the 100k needed.  Level 3 files are no larger than level 1's on this data.
* Parquet cannot be appended to across calls on a file object, so pages are spooled to temporary Arrow IPC
  files (lz4) and ``close()`` streams them into one Parquet file with ``pl.concat(scans).sink_parquet``:
  memory stays at a page, disk holds the export once more until ``close()``.
"""

from __future__ import annotations

import contextlib
import gzip as gzip_module
import io
import os
import queue
import shutil
import tempfile
import threading
from types import TracebackType
from typing import IO, BinaryIO, Literal, Protocol, cast

import polars as pl

__all__ = ["DEFAULT_GZIP_LEVEL", "TableWriter", "neutralize_formulas", "open_writer"]

Kind = Literal["csv", "ndjson", "json", "parquet"]
DEFAULT_GZIP_LEVEL = 3
_FORMULA = r"^[=+\-@\t\r]"


def neutralize_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Prefix ``'`` to every string cell that a spreadsheet would take for a formula (OWASP CSV injection)."""
    text = [n for n, d in frame.schema.items() if d == pl.String or isinstance(d, (pl.Categorical, pl.Enum))]
    if not text or frame.height == 0:
        return frame
    may = frame.select(pl.col(text).cast(pl.String).is_between(pl.lit("\t"), pl.lit("A"), closed="left").any())
    suspects = [n for n, hit in zip(text, may.row(0), strict=True) if hit]
    if not suspects:
        return frame
    exprs = []
    for name in suspects:
        col = pl.col(name).cast(pl.String)
        exprs.append(pl.when(col.str.contains(_FORMULA)).then(pl.lit("'") + col).otherwise(col).alias(name))
    return frame.with_columns(exprs)


class _Sink(Protocol):
    def write(self, data: bytes | memoryview) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class _Plain:
    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def write(self, data: bytes | memoryview) -> None:
        self._stream.write(data)

    def close(self) -> None:
        self._stream.flush()

    def abort(self) -> None:
        pass


class _GzipThread:
    """gzip on a helper thread, at most two pages queued; the caller's stream is never closed."""

    def __init__(self, stream: IO[bytes], level: int) -> None:
        self._gzip = gzip_module.GzipFile(filename="", fileobj=stream, mode="wb", compresslevel=level, mtime=0)
        self._queue: queue.Queue[bytes | memoryview | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bulkai-export-gzip", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._gzip.write(data)
                except BaseException as e:  # handed to the writing thread by write() / close()
                    self._error = e

    def write(self, data: bytes | memoryview) -> None:
        self._raise()
        self._queue.put(data)

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def close(self) -> None:
        self._stop()
        self._raise()
        self._gzip.close()

    def abort(self) -> None:
        self._stop()
        with contextlib.suppress(Exception):
            self._gzip.close()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error


class TableWriter:
    """Writes pages of ``columns`` (in that order) to a stream; ``close()`` finishes the file."""

    def __init__(self, stream: BinaryIO, kind: Kind, *, gzip: bool, columns: list[str], compresslevel: int) -> None:
        if kind not in ("csv", "ndjson", "json", "parquet"):
            raise ValueError(f"unknown export format {kind!r}; supported: csv, ndjson, json, parquet")
        self.kind = kind
        self.columns = list(columns)
        self.rows_written = 0
        self._stream = stream
        self._gzip = gzip
        self._level = compresslevel
        self._closed = False
        self._spool: str | None = None
        self._pages: list[str] = []
        self._sink: _Sink | None = None
        if kind == "parquet":
            self._spool = tempfile.mkdtemp(prefix="bulkai-export-")
        else:
            self._sink = _GzipThread(stream, compresslevel) if gzip else _Plain(stream)

    def write(self, frame: pl.DataFrame) -> None:
        if self._closed:
            raise ValueError("the writer is closed")
        missing = [c for c in self.columns if c not in frame.schema]
        if missing:
            raise ValueError(f"the page lacks column(s) {', '.join(map(repr, missing))}")
        page = frame.select(self.columns)
        if page.height == 0:
            return
        if self._spool is not None:
            path = os.path.join(self._spool, f"{len(self._pages):08d}.arrow")
            page.write_ipc(path, compression="lz4")
            self._pages.append(path)
        else:
            self._write_text(page)
        self.rows_written += page.height

    def _write_text(self, page: pl.DataFrame) -> None:
        assert self._sink is not None
        buf = io.BytesIO()
        if self.kind == "csv":
            neutralize_formulas(page).write_csv(buf, include_header=self.rows_written == 0)
            self._sink.write(buf.getbuffer())
        elif self.kind == "ndjson":
            page.write_ndjson(buf)
            self._sink.write(buf.getbuffer())
        else:  # one array across pages: JSON text has no raw newlines, so each "\n" ends an object
            page.write_ndjson(buf)
            self._sink.write(b"[\n" if self.rows_written == 0 else b",\n")
            self._sink.write(buf.getvalue().rstrip(b"\n").replace(b"\n", b",\n"))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._spool is not None:
                self._write_parquet()
            else:
                assert self._sink is not None
                if self.kind == "csv" and self.rows_written == 0:
                    self._sink.write(pl.DataFrame(schema=dict.fromkeys(self.columns, pl.String)).write_csv().encode())
                elif self.kind == "json":
                    self._sink.write(b"\n]\n" if self.rows_written else b"[]\n")
                self._sink.close()
        except BaseException:
            self.abort()
            raise
        finally:
            self._drop_spool()

    def abort(self) -> None:
        """Stop without finishing the file (after an error): the output is incomplete, temporary files go."""
        self._closed = True
        if self._sink is not None:
            self._sink.abort()
        self._drop_spool()

    def _write_parquet(self) -> None:
        zipped = None
        if self._gzip:
            zipped = gzip_module.GzipFile(
                filename="", fileobj=self._stream, mode="wb", compresslevel=self._level, mtime=0
            )
        target = self._stream if zipped is None else cast(IO[bytes], zipped)
        if self._pages:
            pl.concat([pl.scan_ipc(p) for p in self._pages], how="vertical_relaxed").sink_parquet(target)
        else:
            pl.DataFrame(schema=dict.fromkeys(self.columns, pl.String)).write_parquet(target)
        if zipped is not None:
            zipped.close()
        self._stream.flush()

    def _drop_spool(self) -> None:
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)
            self._spool = None

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def open_writer(
    stream: BinaryIO,
    kind: Kind,
    *,
    gzip: bool,
    columns: list[str],
    compresslevel: int = DEFAULT_GZIP_LEVEL,
) -> TableWriter:
    """A writer of ``kind`` onto ``stream`` (which stays open: the caller owns it)."""
    return TableWriter(stream, kind, gzip=gzip, columns=columns, compresslevel=compresslevel)
