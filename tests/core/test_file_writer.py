"""Writing exports page by page, and reading them back with the import reader."""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile

import polars as pl
import pytest

from core.file_format import detect_format
from core.file_reader import read_chunks
from core.file_writer import neutralize_formulas, open_writer

COLUMNS = ["id", "name", "score", "note"]


def pages() -> list[pl.DataFrame]:
    frame = pl.DataFrame(
        {
            "id": list(range(1, 8)),
            "name": ["Acme", "Müller & Söhne", 'Say "hi"', "two\nlines", "a,b;c|d", "", "Zed"],
            "score": [0.5, 1.0, None, 2.25, 3.0, 4.5, 5.0],
            "note": [None, "x", "y", None, "z", "w", "v"],
            "ignored": [0] * 7,
        }
    )
    return [frame.slice(0, 3), frame.slice(3, 0), frame.slice(3, 4)]


def export(kind: str, *, gzip_: bool, frames: list[pl.DataFrame] | None = None) -> bytes:
    out = io.BytesIO()
    with open_writer(out, kind, gzip=gzip_, columns=COLUMNS) as writer:  # type: ignore[arg-type]
        for frame in pages() if frames is None else frames:
            writer.write(frame)
    assert writer.rows_written == sum(f.height for f in (pages() if frames is None else frames))
    return out.getvalue()


@pytest.mark.parametrize("zipped", [False, True])
@pytest.mark.parametrize(
    ("kind", "suffix"), [("csv", ".csv"), ("ndjson", ".ndjson"), ("json", ".json"), ("parquet", ".parquet")]
)
def test_every_format_round_trips(kind: str, suffix: str, zipped: bool) -> None:
    data = export(kind, gzip_=zipped)
    name = "export" + suffix + (".gz" if zipped else "")
    fmt = detect_format(name, data[: 64 * 1024])
    assert (fmt.kind, fmt.gzip) == (kind, zipped)
    chunks = list(read_chunks(io.BytesIO(data), fmt))
    rows = [r for c in chunks for r in c.rows]
    assert not [p for c in chunks for p in c.problems]
    assert [r["id"] for r in rows] == [str(i) for i in range(1, 8)]
    assert [r["name"] for r in rows] == ["Acme", "Müller & Söhne", 'Say "hi"', "two\nlines", "a,b;c|d", None, "Zed"]
    assert [r.get("score") for r in rows][:4] == ["0.5", "1.0", None, "2.25"]
    assert [r.get("note") for r in rows][:2] == [None, "x"]
    assert all(set(r) <= set(COLUMNS) for r in rows)


def test_csv_writes_the_header_once_and_null_as_an_empty_cell() -> None:
    text = export("csv", gzip_=False).decode()
    assert text.count("id,name,score,note") == 1 and text.startswith("id,name,score,note\n1,Acme,0.5,\n")


def test_gzip_output_is_one_valid_stream() -> None:
    assert gzip.decompress(export("csv", gzip_=True)) == export("csv", gzip_=False)


def test_json_is_one_array_across_pages_and_keeps_null() -> None:
    values = json.loads(export("json", gzip_=False))
    assert [v["id"] for v in values] == list(range(1, 8)) and values[0]["note"] is None
    assert [json.loads(line)["id"] for line in export("ndjson", gzip_=False).splitlines()] == list(range(1, 8))


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("csv", b"id,name,score,note\n"), ("json", b"[]\n"), ("ndjson", b"")],
)
def test_an_empty_export_is_still_a_valid_file(kind: str, expected: bytes) -> None:
    assert export(kind, gzip_=False, frames=[]) == expected
    assert gzip.decompress(export(kind, gzip_=True, frames=[])) == expected


def test_an_empty_parquet_export_has_the_columns() -> None:
    assert pl.read_parquet(io.BytesIO(export("parquet", gzip_=False, frames=[]))).columns == COLUMNS


def test_parquet_pages_with_all_null_columns_are_unified() -> None:
    first = pl.DataFrame({"id": [1], "name": [None], "score": [None], "note": [None]})
    second = pl.DataFrame({"id": [2], "name": ["B"], "score": [1.5], "note": ["n"]})
    out = pl.read_parquet(io.BytesIO(export("parquet", gzip_=False, frames=[first, second])))
    assert out.rows() == [(1, None, None, None), (2, "B", 1.5, "n")]


def test_csv_injection_is_neutralised_and_numbers_are_untouched() -> None:
    frame = pl.DataFrame(
        {
            "cmd": ["=cmd|' /C calc'!A0", "+33 1 23", "-minus", "@SUM(A1)", "\tx", "\rx", "a=b", None, "Plain"],
            "n": [-5, 1, 2, 3, 4, 5, 6, 7, 8],
            "x": [-1.5] * 9,
        }
    )
    out = io.BytesIO()
    with open_writer(out, "csv", gzip=False, columns=["cmd", "n", "x"]) as writer:
        writer.write(frame)
    back = pl.read_csv(io.BytesIO(out.getvalue()), infer_schema=False)
    assert back["cmd"].to_list() == [
        "'=cmd|' /C calc'!A0", "'+33 1 23", "'-minus", "'@SUM(A1)", "'\tx", "'\rx", "a=b", None, "Plain",
    ]  # fmt: skip
    assert back["n"].to_list()[0] == "-5" and back["x"].to_list()[0] == "-1.5"
    assert neutralize_formulas(pl.DataFrame({"a": ["safe", "Text"]})).equals(pl.DataFrame({"a": ["safe", "Text"]}))
    json_out = json.loads(
        export(
            "json",
            gzip_=False,
            frames=[frame.rename({"cmd": "name", "n": "id", "x": "score"}).with_columns(note=pl.lit(None))],
        )
    )
    assert json_out[0]["name"] == "=cmd|' /C calc'!A0"  # JSON is data, not a spreadsheet: left as is


def test_a_page_missing_a_column_is_refused() -> None:
    with (
        pytest.raises(ValueError, match="lacks column"),
        open_writer(io.BytesIO(), "csv", gzip=False, columns=["a", "b"]) as w,
    ):
        w.write(pl.DataFrame({"a": [1]}))


def test_an_aborted_parquet_export_leaves_no_spool() -> None:
    before = set(os.listdir(tempfile.gettempdir()))
    with pytest.raises(RuntimeError), open_writer(io.BytesIO(), "parquet", gzip=False, columns=COLUMNS) as writer:
        writer.write(pages()[0])
        raise RuntimeError("query failed")
    assert {n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("bulkai-export-")} == set()
