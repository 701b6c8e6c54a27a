"""Reading uploaded table files: format detection, exact row numbers and problems, limits, streaming."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import zlib
from typing import Any

import polars as pl
import pytest

import core.file_csv
import core.file_format
import core.file_json
from core.file_errors import (
    EmptyFileError,
    EncodingError,
    FileFormatError,
    FileTooLargeError,
    HeaderError,
    UnknownFormatError,
)
from core.file_format import FileFormat, Problem, detect_format
from core.file_reader import Chunk, open_table, read_chunks


def read(data: bytes, name: str = "t.csv", **limits: Any) -> tuple[list[str], list[dict[str, Any]], list[Problem]]:
    """columns, good rows (with their row number under "#"), problems of a whole file."""
    fmt = detect_format(name, data[: 64 * 1024])
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    with open_table(io.BytesIO(data), fmt, **limits) as table:
        for chunk in table.chunks():
            numbers = chunk.row_numbers.to_list()
            rows += [{"#": n, **r} for n, r in zip(numbers, chunk.rows, strict=True)]
            problems += chunk.problems
        return table.columns, rows, problems


# --- detection --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "head", "kind"),
    [
        ("a.csv", b"a,b\n1,2\n", "csv"),
        ("a.TSV", b"a\tb\n", "csv"),
        ("a.txt", b"a;b\n", "csv"),
        ("a.ndjson", b'{"a":1}\n', "ndjson"),
        ("a.jsonl", b'{"a":1}\n', "ndjson"),
        ("a.json", b' [{"a":1}]', "json"),
        ("a.json", b'{"a":1}\n{"a":2}\n', "ndjson"),
        ("upload", b"\xef\xbb\xbf\n [{}]", "json"),
        ("upload", b'{"a": 1}', "ndjson"),
        ("a.csv", b"PAR1\x15\x04", "parquet"),
        ("a.parquet", b"PAR1\x15\x04", "parquet"),
    ],
)
def test_detect_format_from_name_and_first_bytes(name: str, head: bytes, kind: str) -> None:
    fmt = detect_format(name, head)
    assert (fmt.kind, fmt.gzip) == (kind, False)
    zipped = detect_format(name + ".gz", gzip.compress(head))
    assert (zipped.kind, zipped.gzip) == (kind, True)


def test_gzip_is_told_by_magic_not_name() -> None:
    assert detect_format("a.csv.gz", b"a,b\n1,2\n").gzip is False  # already decompressed by the transport
    assert detect_format("a.csv", gzip.compress(b"a,b\n1,2\n")).gzip is True


def test_unknown_format_names_what_was_seen_and_what_is_supported() -> None:
    with pytest.raises(UnknownFormatError, match=r"extension '\.xls'.*supported: \.csv .*\.parquet"):
        detect_format("book.xls", b"\xd0\xcf\x11\xe0 not text")
    with pytest.raises(UnknownFormatError, match="ZIP archive"):
        detect_format("book.csv", b"PK\x03\x04....")
    with pytest.raises(UnknownFormatError, match="PAR1"):
        detect_format("a.parquet", b"a,b\n")
    assert detect_format("book.xls", b"a;b\n1;2\n", kind="csv").delimiter == ";"  # an override wins
    with pytest.raises(UnknownFormatError, match="unknown kind 'xlsx'"):
        detect_format("a.csv", b"a\n", kind="xlsx")


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed(delimiter: str) -> None:
    text = delimiter.join(["name", "city", "note"]) + "\n"
    text += "".join(
        delimiter.join([f"Firm {i}", "Paris, FR" if delimiter != "," else "Paris", "x"]) + "\n" for i in range(20)
    )
    data = text.encode()
    fmt = detect_format("t.csv", data)
    assert fmt.delimiter == delimiter
    columns, rows, problems = read(data)
    assert columns == ["name", "city", "note"] and len(rows) == 20 and not problems
    assert detect_format("t.csv", data, delimiter=",").delimiter == ","  # a given delimiter wins


def test_encoding_detection_bom_utf8_latin1() -> None:
    assert detect_format("t.csv", b"\xef\xbb\xbfname\nx\n").encoding == "utf-8-sig"
    assert detect_format("t.csv", "name\nCafé\n".encode()).encoding == "utf-8"
    assert detect_format("t.csv", "name\nCafé\n".encode("latin-1")).encoding == "latin-1"
    assert detect_format("t.csv", b"name\n", encoding="latin1").encoding == "latin-1"  # a given one wins
    with pytest.raises(FileFormatError, match="unsupported encoding"):
        detect_format("t.csv", b"name\n", encoding="klingon")


def test_bom_is_stripped_and_latin1_is_decoded() -> None:
    columns, rows, _ = read(b"\xef\xbb\xbfname,city\nA,B\n")
    assert columns == ["name", "city"] and rows == [{"#": 1, "name": "A", "city": "B"}]
    columns, rows, _ = read("name;city\nCafé;Zürich\n".encode("latin-1"))
    assert rows == [{"#": 1, "name": "Café", "city": "Zürich"}]


def test_undecodable_bytes_with_a_given_encoding_say_where_and_suggest_latin1() -> None:
    data = "name,city\nA,B\nC,D\nCafé,E\n".encode("latin-1")
    fmt = detect_format("t.csv", data, encoding="utf-8")
    with pytest.raises(EncodingError, match=r'byte 0xe9 at byte offset 21 \(data row 3\).*encoding="latin-1"') as e:
        list(read_chunks(io.BytesIO(data), fmt))
    assert e.value.offset == data.index(b"\xe9") and e.value.row == 3


def test_undecodable_bytes_after_the_sniffed_head_are_an_encoding_error() -> None:
    good = b"name,n\n" + b"".join(b"caf\xc3\xa9 %d,%d\n" % (i, i) for i in range(20_000))
    data = good + b"bad \xe9,1\n"
    fmt = detect_format("t.csv", data[: 64 * 1024])
    assert fmt.encoding == "utf-8"
    with pytest.raises(EncodingError, match=r"data row 20,001"):
        list(read_chunks(io.BytesIO(data), fmt))


# --- CSV parsing ------------------------------------------------------------------------------------------


def test_values_are_strings_and_empty_is_none() -> None:
    _, rows, _ = read(b'id,zip,note\n1,00123,""\n2,,x\n')
    assert rows == [{"#": 1, "id": "1", "zip": "00123", "note": None}, {"#": 2, "id": "2", "zip": None, "note": "x"}]


def test_quoted_fields_with_newlines_delimiters_and_doubled_quotes() -> None:
    data = b'name,desc\r\n"Acme, Inc.","line one\r\nline ""two"""\r\nB,plain\r\n'
    _, rows, problems = read(data)
    assert not problems
    assert rows == [
        {"#": 1, "name": "Acme, Inc.", "desc": 'line one\r\nline "two"'},
        {"#": 2, "name": "B", "desc": "plain"},
    ]


def test_wrong_field_counts_are_problems_with_exact_row_numbers_and_the_rest_is_read() -> None:
    lines = ["a,b,c,d,e"] + [f"{i},x,y,z,w" for i in range(1, 40_001)]
    lines[17] = "17,x,y"  # data row 17
    lines[30_000] = "30000,x,y,z,w,extra,more"
    lines[39_999] = "39999"
    _, rows, problems = read(("\n".join(lines) + "\n").encode(), chunk_rows=7_000)
    assert [p.row_number for p in problems] == [17, 30_000, 39_999]
    assert problems[0].reason == "row 17 has 3 fields, the header has 5"
    assert problems[0].values == {"a": "17", "b": "x", "c": "y"}
    assert problems[1].values["_extra_2"] == "more"
    assert len(rows) == 40_000 - 3 and rows[-1] == {"#": 40_000, "a": "40000", "b": "x", "c": "y", "d": "z", "e": "w"}


def test_blank_lines_are_skipped_and_not_numbered() -> None:
    _, rows, _ = read(b"a,b\n\n1,2\n\n\n3,4")
    assert rows == [{"#": 1, "a": "1", "b": "2"}, {"#": 2, "a": "3", "b": "4"}]


def test_too_many_columns_are_refused() -> None:
    header = ",".join(f"c{i}" for i in range(10_000)).encode()
    with pytest.raises(HeaderError, match=r"10,000 columns, more than max_columns=1,000"):
        read(header + b"\n" + b"1," * 9_999 + b"1\n")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"a,b,a\n", r"repeats column names: 'a' \(columns 1, 3\)"),
        (b"a,,c\n", r"column\(s\) 2 of the header have no name"),
    ],
)
def test_duplicate_or_unnamed_columns_are_refused(header: bytes, message: str) -> None:
    with pytest.raises(HeaderError, match=message):
        read(header + b"1,2,3\n")


def test_a_huge_cell_makes_a_problem_row_without_echoing_it() -> None:
    huge = "x" * 5_000_000
    data = f'name,desc\nA,short\nB,"{huge}"\nC,short\n'.encode()
    _, rows, problems = read(data)
    assert [r["name"] for r in rows] == ["A", "C"] and [r["#"] for r in rows] == [1, 3]
    assert len(problems) == 1 and problems[0].row_number == 2
    assert problems[0].reason == "row 2: column 'desc' has 5,000,000 characters, more than max_cell_chars=100,000"
    assert len(problems[0].values["desc"] or "") <= 201 and huge not in str(problems[0])


def test_empty_and_header_only_files() -> None:
    with pytest.raises(EmptyFileError, match="the file is empty"):
        read(b"")
    with pytest.raises(EmptyFileError, match="the file is empty"):
        read(gzip.compress(b""), name="t.csv.gz")
    with pytest.raises(EmptyFileError, match="has a header but no rows"):
        read(b"name,city\n\n")


def test_chunks_have_chunk_rows_rows_and_stable_numbers() -> None:
    data = b"n\n" + b"".join(b"%d\n" % i for i in range(1, 26))
    chunks = list(read_chunks(io.BytesIO(data), detect_format("t.csv", data), chunk_rows=10))
    assert [(c.index, c.first_row_number, c.row_count) for c in chunks] == [(0, 1, 10), (1, 11, 10), (2, 21, 5)]
    assert chunks[1].rows[0] == {"n": "11"} and chunks[2].row_numbers.to_list() == [21, 22, 23, 24, 25]
    later = list(read_chunks(io.BytesIO(data), detect_format("t.csv", data), chunk_rows=10, skip_chunks=2))
    assert [(c.index, c.first_row_number, c.rows[0]) for c in later] == [(2, 21, {"n": "21"})]


def test_columns_are_known_before_rows_are_read() -> None:
    data = b"name,city\n" + b"A,B\n" * 100
    with open_table(io.BytesIO(data), detect_format("t.csv", data)) as table:
        assert table.columns == ["name", "city"]
        chunks = table.chunks()
        assert isinstance(next(chunks), Chunk)


def _csv_expectation(text: str, delimiter: str) -> tuple[list[str], list[tuple[int, list[str]]], list[int]]:
    records = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if r]
    header, good, bad = records[0], [], []
    for number, record in enumerate(records[1:], 1):
        if len(record) == len(header):
            good.append((number, record))
        else:
            bad.append(number)
    return header, good, bad


def _random_csv(rng: random.Random, rows: int, delimiter: str, stray_quotes: bool) -> str:
    pieces = ["plain", "with space", "", "Ünïcödé €", "a" + delimiter + "b", 'say "hi"', "two\nlines", "cr\r\nlf", " "]
    ncol = rng.randint(1, 6)
    out = [delimiter.join(f"col{i}" for i in range(ncol))]
    for _ in range(rows):
        n = ncol if rng.random() > 0.03 else rng.randint(1, ncol + 2)
        cells = []
        for _ in range(n):
            v = rng.choice(pieces) + str(rng.randint(0, 99)) * rng.randint(0, 1)
            needs = any(ch in v for ch in (delimiter, '"', "\n", "\r")) or (ncol == 1 and v == "")
            cells.append('"' + v.replace('"', '""') + '"' if needs or rng.random() < 0.1 else v)
        if stray_quotes and rng.random() < 0.02:
            cells[0] = rng.choice(['5" screen', '"quoted"tail', 'x"'])
        out.append(delimiter.join(cells))
        if rng.random() < 0.02:
            out.append("")
    return rng.choice(["\n", "\r\n"]).join(out) + rng.choice(["", "\n"])


@pytest.mark.parametrize("seed", range(12))
def test_csv_matches_the_stdlib_reader_whatever_the_block_boundaries(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fast polars blocks, csv fallbacks and the record-by-record mode must give what ``csv.reader`` gives."""
    rng = random.Random(seed)
    block = rng.choice([64, 300, 4096])
    monkeypatch.setattr(core.file_csv, "BLOCK_BYTES", block)
    monkeypatch.setattr(core.file_format, "BLOCK_BYTES", block)
    monkeypatch.setattr(core.file_csv, "MAX_BLOCK_BYTES", 8192)
    delimiter = rng.choice(",;\t|")
    text = _random_csv(rng, 400, delimiter, stray_quotes=seed % 3 == 0)
    header, good, bad = _csv_expectation(text, delimiter)
    fmt = FileFormat("csv", gzip=seed % 2 == 0, delimiter=delimiter)
    data = text.encode()
    stream = io.BytesIO(gzip.compress(data) if fmt.gzip else data)
    with open_table(stream, fmt, chunk_rows=rng.choice([1, 7, 100])) as table:
        assert table.columns == [h.strip() for h in header]
        chunks = list(table.chunks())
    got = [(n, list(r.values())) for c in chunks for n, r in zip(c.row_numbers.to_list(), c.rows, strict=True)]
    assert got == [(n, [v or None for v in record]) for n, record in good]
    assert [p.row_number for c in chunks for p in c.problems] == bad


# --- limits -----------------------------------------------------------------------------------------------


def _gzip_bomb(prefix: bytes, unit: bytes, total: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(prefix)]
    block = unit * (1_000_000 // len(unit))
    for _ in range(total // len(block)):
        parts.append(packer.compress(block))
    return b"".join(parts) + packer.flush()


@pytest.mark.parametrize(("prefix", "unit"), [(b"a,b\n", b"\0"), (b"a,b\n", b"1,2\n")])
def test_a_gzip_bomb_is_refused_at_max_bytes(prefix: bytes, unit: bytes) -> None:
    bomb = _gzip_bomb(prefix, unit, 200_000_000)
    assert len(bomb) < 1_000_000
    with pytest.raises(FileTooLargeError, match="decompresses to more than max_bytes=5,000,000"):
        list(read_chunks(io.BytesIO(bomb), FileFormat("csv", gzip=True, delimiter=","), max_bytes=5_000_000))


def test_max_bytes_applies_to_plain_files_too() -> None:
    data = b"a,b\n" + b"1,2\n" * 100_000
    with pytest.raises(FileTooLargeError, match="larger than max_bytes=100,000 bytes"):
        read(data, max_bytes=100_000)


def test_corrupt_gzip_is_a_format_error() -> None:
    data = gzip.compress(b"a,b\n" + b"1,2\n" * 10_000)
    with pytest.raises(FileFormatError, match="gzip data is corrupt or truncated"):
        read(data[: len(data) // 2], name="t.csv.gz")


# --- NDJSON and JSON --------------------------------------------------------------------------------------


def test_ndjson_values_and_bad_lines() -> None:
    lines = [
        '{"name": "A", "n": 1, "x": 1.5, "ok": true, "none": null, "tags": ["a", 1], "geo": {"lat": 1}}',
        "",
        "not json",
        '["an", "array"]',
        '{"name": "B", "extra": ""}',
        "{}",
    ]
    columns, rows, problems = read("\n".join(lines).encode(), name="t.ndjson")
    assert columns == ["name", "n", "x", "ok", "none", "tags", "geo", "extra"]
    assert rows[0] == {
        "#": 1, "name": "A", "n": "1", "x": "1.5", "ok": "true", "none": None, "tags": '["a",1]',
        "geo": '{"lat":1}', "extra": None,
    }  # fmt: skip
    assert rows[1]["#"] == 4 and rows[1]["name"] == "B"
    assert [(p.row_number, p.reason.split(":")[0]) for p in problems] == [
        (2, "row 2 is not valid JSON"),
        (3, "row 3 is a JSON array, not an object"),
        (5, "row 5 is an empty JSON object"),
    ]


def test_json_array_is_streamed_and_later_keys_are_reported() -> None:
    items = [{"name": f"n{i}", "city": "c"} for i in range(2_500)] + [{"name": "late", "phone": "+1"}, 7]
    data = json.dumps(items, indent=1).encode()
    with open_table(io.BytesIO(data), detect_format("t.json", data), chunk_rows=1_000) as table:
        assert table.columns == ["name", "city"]
        chunks = list(table.chunks())
        assert table.extra_columns == ["phone"]
    assert [c.row_count for c in chunks] == [1_000, 1_000, 502]
    assert chunks[2].rows[-1] == {"name": "late", "city": None, "phone": "+1"}
    assert chunks[2].problems == [Problem(2_502, "row 2502 is a JSON number, not an object", {"value": "7"})]


def test_json_array_elements_spanning_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core.file_json, "BLOCK_BYTES", 7)
    monkeypatch.setattr(core.file_format, "BLOCK_BYTES", 7)
    items = [{"name": "x" * 50, "n": 1234567890123}, {"name": "y", "n": 2.5}]
    _, rows, _ = read(json.dumps(items).encode(), name="t.json")
    assert [(r["name"], r["n"]) for r in rows] == [("x" * 50, "1234567890123"), ("y", "2.5")]


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b'{"a": 1}', FileFormatError, "top level of the JSON file is an object, not an array"),
        (b'"text"', FileFormatError, "top level of the JSON file is '\"'"),
        (b"[]", EmptyFileError, "the JSON array is empty"),
        (b'[{"a": 1}, {"a": }]', FileFormatError, "element 2 of the JSON array is not valid JSON"),
        (b'[{"a": 1}', FileFormatError, "not closed"),
        (b'[{"a": 1}] [', FileFormatError, "goes on after"),
    ],
)
def test_json_errors(data: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        list(read_chunks(io.BytesIO(data), FileFormat("json")))


# --- Parquet ----------------------------------------------------------------------------------------------


def test_parquet_columns_become_text_and_are_read_in_batches() -> None:
    frame = pl.DataFrame(
        {
            "id": list(range(2_500)),
            "name": [f"n{i}" if i % 10 else "" for i in range(2_500)],
            "score": [0.5] * 2_500,
            "tags": [["a", "b"]] * 2_499 + [None],
            "ok": [True] * 2_500,
        }
    )
    buf = io.BytesIO()
    frame.write_parquet(buf, row_group_size=700)
    columns, rows, problems = read(buf.getvalue(), name="t.parquet", chunk_rows=1_000)
    assert columns == ["id", "name", "score", "tags", "ok"] and not problems
    assert rows[1] == {"#": 2, "id": "1", "name": "n1", "score": "0.5", "tags": '["a","b"]', "ok": "true"}
    assert rows[0]["name"] is None and rows[-1]["tags"] is None and len(rows) == 2_500


def test_parquet_without_rows_is_empty() -> None:
    buf = io.BytesIO()
    pl.DataFrame(schema={"a": pl.String}).write_parquet(buf)
    with pytest.raises(EmptyFileError, match="columns but no rows"):
        read(buf.getvalue(), name="t.parquet")
    with pytest.raises(FileFormatError, match="not a readable Parquet file"):
        read(b"PAR1 garbage", name="t.parquet")
