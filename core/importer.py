"""Applying one chunk of normalised import rows to the company table: match, insert or update, record.

Duplicates are found within the file and against the database with one rule (``Matcher``):

* two companies with a registrable domain are the same company exactly when the domains are equal;
* otherwise (one of them has no domain) they are the same when their name keys (``core.company_rows``: legal
  form stripped, casefolded, punctuation folded) and countries are equal (``NL`` and ``Netherlands`` alike).

So ``Acme B.V.`` at ``acme.nl`` and ``ACME BV`` at ``https://www.acme.nl/contact`` match, a row without a
website matches ``Acme BV, NL`` already in the database, and two shops called ``Acme`` in the same country
with different websites stay two companies.  Merged companies never match (their survivor does).

Rows are taken in file order.  The first occurrence of a company is inserted; a later one (in the file, or a
company already in the database) is a duplicate: skipped in ``skip`` mode, or in ``update`` mode applied
field by field as ``update_fields`` says (``fill``: only where the stored value is empty; ``overwrite``:
whenever it differs), with one ``company_history`` row per changed field.

A chunk is applied in one transaction, together with the import's outcome rows (one per company the file
touched, at the row number that first named it), so a chunk is either wholly in the database or not at all.
A chunk applied twice (its process died after the commit, before Prefect stored the checkpoint) inserts
nothing the second time: its companies are found as duplicates, and the outcome rows already written say they
were inserted by this import, so the counts come out the same.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, cast

import polars as pl
from sqlalchemy import Table, and_, func, insert, select
from sqlalchemy.orm import Session

from core.column_mapping import ColumnMap
from core.company_rows import NormalisedCompany, normalise_row
from core.dedup_keys import match_country
from core.history import FieldChange, apply_changes
from core.schema import BulkActionOutcome, Company, CompanyStatus, EnrichmentStatus, OutcomeStatus, utcnow
from core.store import chunked, insert_rows

Mode = Literal["skip", "update"]
UpdateRule = Literal["fill", "overwrite"]
#: an import names the company it inserted in its outcome's detail; a rerun of the chunk reads it back
INSERTED = "inserted"

_MATCH_COLUMNS = (
    Company.id,
    Company.domain,
    Company.name_key,
    Company.country,
    Company.name,
    Company.website,
    Company.industry,
    Company.nace_code,
    Company.activity_description,
    Company.ownership_type,
    Company.priority,
)
#: the names of ``_MATCH_COLUMNS`` after the id, as a known company's values hold them
_KNOWN_FIELDS = tuple(column.key for column in _MATCH_COLUMNS[1:])
_LOOKUP_CHUNK = 900  # under SQLite's historic 999-variable limit, with room to spare


@dataclass
class _Known:
    """A company the matcher can match rows against: in the database, or inserted earlier in this chunk."""

    values: dict[str, Any]
    company_id: int | None = None  # None until the chunk's inserts run
    row_number: int | None = None  # the row that inserted it, when it came from this file

    @property
    def domain(self) -> str | None:
        return self.values.get("domain")


class Matcher:
    """The duplicate rule of the module docstring over a set of known companies."""

    def __init__(self) -> None:
        self._by_domain: dict[str, _Known] = {}
        self._by_name: dict[tuple[str, str | None], list[_Known]] = {}

    def add(self, known: _Known) -> None:
        domain = known.domain
        if domain and domain not in self._by_domain:
            self._by_domain[domain] = known
        key = (known.values["name_key"], match_country(known.values.get("country")))
        self._by_name.setdefault(key, []).append(known)

    def match(self, company: NormalisedCompany) -> _Known | None:
        if company.domain:
            found = self._by_domain.get(company.domain)
            if found is not None:
                return found
        for known in self._by_name.get((company.name_key, match_country(company.country)), ()):
            if not company.domain or not known.domain:
                return known
        return None


#: a rejected row as the rejected-rows file shows it: (row number, reason, the row's original values)
Rejected = tuple[int, str, dict[str, str | None]]


@dataclass
class PreparedChunk:
    """A chunk's rows normalised: the companies to match (with their row numbers) and the rows refused."""

    read: int
    accepted: list[tuple[int, NormalisedCompany]]
    rejected: list[Rejected]


@contextmanager
def collection_paused() -> Iterator[None]:
    """Python's cyclic garbage collector held off while a chunk is normalised or matched.

    A chunk allocates hundreds of thousands of small objects that all stay alive until it ends, and each
    allocation burst triggers collections that scan them again: a third of the time normalising 100,000 rows
    (6.4 s against 4.3 s, measured).  Reference counting still frees everything as usual; the pause lasts one
    chunk (about a second) and the collector is back on when it ends, even on an error.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def prepare_chunk(
    column_map: ColumnMap, rows: Sequence[tuple[int, Mapping[str, str | None]]], problems: Sequence[Rejected]
) -> PreparedChunk:
    """Map and normalise a chunk's (row number, row) pairs; the reader's problem rows are rejected as they are.

    Pure and picklable both ways, so the import can run it in a process of its own for the next chunk while
    this one is written.
    """
    accepted: list[tuple[int, NormalisedCompany]] = []
    rejected: list[Rejected] = list(problems)
    with collection_paused():
        for number, row in rows:
            company = normalise_row(column_map.apply(row), number)
            if isinstance(company, NormalisedCompany):
                accepted.append((number, company))
            else:
                rejected.append((number, company.reason, dict(row)))
    rejected.sort(key=lambda r: r[0])
    return PreparedChunk(read=len(rows) + len(problems), accepted=accepted, rejected=rejected)


def prepare_frame(
    column_map: ColumnMap, frame: pl.DataFrame, row_numbers: Sequence[int], problems: Sequence[Rejected]
) -> PreparedChunk:
    """:func:`prepare_chunk` of a chunk as the reader gives it (a frame of strings and its row numbers).

    A frame crosses to another process as Arrow buffers, far cheaper than ten thousand dicts.
    """
    columns = [series.to_list() for series in frame.iter_columns()]
    names = frame.columns
    numbered = zip(row_numbers, *columns, strict=True)
    rows = [(number, dict(zip(names, values, strict=True))) for number, *values in numbered]
    return prepare_chunk(column_map, rows, problems)


@dataclass
class ChunkResult:
    """What one chunk did, in counts (the checkpoint holds this, never the rows)."""

    inserted: int = 0
    updated: int = 0
    duplicates: int = 0
    unchanged: int = 0  # duplicates in update mode whose fields were already as the file says
    fields_changed: int = 0


def apply_chunk(
    session: Session,
    import_id: int,
    rows: Sequence[tuple[int, NormalisedCompany]],
    *,
    mode: Mode = "skip",
    update_fields: Mapping[str, UpdateRule] | None = None,
    dry_run: bool = False,
) -> ChunkResult:
    """Insert, update or skip each row (see the module docstring), in the caller's transaction.

    ``dry_run`` matches and counts exactly as a real run would, and writes nothing.
    """
    result = ChunkResult()
    matcher = Matcher()
    candidates = _candidates(session, rows, mode=mode)
    for known in candidates:
        matcher.add(known)
    already = _outcomes_of(session, import_id, [k.company_id for k in candidates if k.company_id is not None])
    new: list[_Known] = []
    changes: dict[int, dict[str, Any]] = {}
    outcomes: dict[int, tuple[int, OutcomeStatus, str]] = {}  # company id → (row number, status, detail)
    pending_updates: list[tuple[_Known, int]] = []
    for row_number, company in rows:
        values = company.fields()
        found = matcher.match(company)
        if found is None:
            known = _Known(values=values, row_number=row_number)
            matcher.add(known)
            new.append(known)
            continue
        recorded = already.get(found.company_id) if found.company_id is not None else None
        if recorded is not None and recorded[0] == row_number:
            _count_recorded(result, recorded[1])  # this very row, applied by an earlier attempt of the chunk
            continue
        if recorded is not None and recorded[1] == INSERTED and found.row_number is None:
            found.row_number = recorded[0]  # inserted by an earlier chunk of this import: a duplicate of that row
        wanted = _update(found.values, values, update_fields) if mode == "update" else {}
        if not wanted:
            result.duplicates += 1
            if found.company_id is not None:
                outcomes.setdefault(found.company_id, (row_number, OutcomeStatus.SKIPPED, _duplicate(found)))
            continue
        found.values.update(wanted)
        if found.company_id is None:  # a company this chunk inserts: the insert carries the merged values
            result.duplicates += 1
            continue
        changes.setdefault(found.company_id, {}).update(wanted)
        pending_updates.append((found, row_number))
    result.inserted += len(new)
    if dry_run:
        result.updated += len(changes)
        return result
    _insert(session, new)
    for known in new:
        assert known.company_id is not None and known.row_number is not None
        outcomes[known.company_id] = (known.row_number, OutcomeStatus.SUCCEEDED, INSERTED)
    done = apply_changes(session, changes, import_id)
    changed_ids = {c.company_id for c in done}
    for known, row_number in pending_updates:
        assert known.company_id is not None
        if known.company_id in changed_ids:
            outcomes.setdefault(known.company_id, (row_number, OutcomeStatus.SUCCEEDED, _updated(done, known)))
        else:
            outcomes.setdefault(known.company_id, (row_number, OutcomeStatus.SKIPPED, "unchanged"))
    result.updated += len(changed_ids)
    result.unchanged += len(changes) - len(changed_ids)
    result.fields_changed += len(done)
    _record_outcomes(session, import_id, outcomes, already)
    return result


def _count_recorded(result: ChunkResult, detail: str) -> None:
    if detail == INSERTED:
        result.inserted += 1
    elif detail.startswith("updated"):
        result.updated += 1
    elif detail == "unchanged":
        result.unchanged += 1
    else:
        result.duplicates += 1


def _candidates(session: Session, rows: Sequence[tuple[int, NormalisedCompany]], *, mode: Mode) -> list[_Known]:
    """The database companies any row of the chunk could match (see the rule in the module docstring).

    Three lookups on indexed columns: the rows' domains; the name keys of rows without a domain (which match
    a company with or without one); the name keys of rows with a domain, among companies *without* one (the
    only ones a name can match for them).  The last two keep the answer small where a name is common (a
    hundred "Jansen Bakkerij" across Europe with websites of their own are no candidates for a row that has
    a website).  The fields a duplicate can update are read in ``update`` mode only.
    """
    domains = sorted({c.domain for _, c in rows if c.domain})
    bare_names = sorted({c.name_key for _, c in rows if not c.domain})
    named = sorted({c.name_key for _, c in rows if c.domain} - set(bare_names))
    columns = _MATCH_COLUMNS if mode == "update" else _MATCH_COLUMNS[:4]
    live = Company.status != CompanyStatus.MERGED
    found: dict[int, _Known] = {}
    lookups = (
        (Company.domain, domains, live),
        (Company.name_key, bare_names, live),
        (Company.name_key, named, and_(live, Company.domain.is_(None))),
    )
    for column, values, condition in lookups:
        for part in chunked(values, _LOOKUP_CHUNK):
            for row in session.execute(select(*columns).where(column.in_(part), condition)):
                if row[0] not in found:
                    found[row[0]] = _Known(values=dict(zip(_KNOWN_FIELDS, row[1:], strict=False)), company_id=row[0])
    return [found[k] for k in sorted(found)]  # oldest first: a row matches the longest-known company


def _outcomes_of(session: Session, import_id: int, company_ids: Sequence[int]) -> dict[int, tuple[int, str]]:
    """What this import already recorded for these companies, as (row number, detail): from earlier chunks,
    or from an earlier attempt of this one."""
    recorded: dict[int, tuple[int, str]] = {}
    outcome = BulkActionOutcome
    for part in chunked(sorted(set(company_ids)), _LOOKUP_CHUNK):
        stmt = select(outcome.company_id, outcome.position, outcome.detail).where(
            outcome.bulk_action_id == import_id, outcome.company_id.in_(part)
        )
        recorded.update({cid: (position, detail or "") for cid, position, detail in session.execute(stmt)})
    return recorded


def _update(
    stored: Mapping[str, Any], incoming: Mapping[str, Any], rules: Mapping[str, UpdateRule] | None
) -> dict[str, Any]:
    """The fields an update-mode duplicate changes; derived keys follow the name and website.

    Without ``rules`` every field the file gives is filled where the stored one is empty; with rules, only the
    fields they name change, each as its rule says.  An empty value in the file never erases a stored one.
    """
    wanted: dict[str, Any] = {}
    for name, value in incoming.items():
        if name in ("domain", "name_key") or value is None:
            continue
        if rules is None:
            rule: UpdateRule = "fill"
        elif name in rules:
            rule = rules[name]
        else:
            continue
        current = stored.get(name)
        if (rule == "fill" and current in (None, "")) or (rule == "overwrite" and current != value):
            wanted[name] = value
    if "website" in wanted:
        wanted["domain"] = incoming.get("domain")
    if "name" in wanted:
        wanted["name_key"] = incoming["name_key"]
    return wanted


#: the columns an import writes for a new company, besides the constants of ``_insert``
_INSERTED_FIELDS = (
    "name",
    "website",
    "domain",
    "name_key",
    "industry",
    "nace_code",
    "country",
    "activity_description",
    "ownership_type",
    "priority",
)


def _insert(session: Session, new: Sequence[_Known]) -> None:
    """Insert the chunk's new companies and give each its id.

    On SQLite, one driver executemany (``core.store.insert_rows``): SQLAlchemy would insert row by row to
    return ids in order (SQLite has no insert sentinel), and its per-row processing doubles the cost.  SQLite
    gives a row without an id the largest id plus one, and this transaction is the only writer from its first
    write to its commit, so the new ids are the last ``len(new)`` ones, in order.  PostgreSQL returns them in
    order in batches (``sort_by_parameter_order``, with its implicit sentinel).
    """
    if not new:
        return
    table = cast(Table, Company.__table__)
    now = utcnow()
    constants = {
        "status": CompanyStatus.ACTIVE,
        "enrichment_status": EnrichmentStatus.NEVER,
        "needs_review": False,
        "created_at": now,
        "updated_at": now,
    }
    rows = [[*(k.values.get(f) for f in _INSERTED_FIELDS[:-1]), k.values.get("priority", 0)] for k in new]
    if session.get_bind().dialect.name == "sqlite":
        insert_rows(session, table, constants, _INSERTED_FIELDS, rows)
        last = int(session.scalar(select(func.max(table.c.id))) or 0)
        ids: Sequence[int] = range(last - len(new) + 1, last + 1)
    else:
        stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        ids = session.scalars(
            stmt, [{**constants, **dict(zip(_INSERTED_FIELDS, row, strict=True))} for row in rows]
        ).all()
    for known, company_id in zip(new, ids, strict=True):
        known.company_id = company_id


def _record_outcomes(
    session: Session,
    import_id: int,
    outcomes: Mapping[int, tuple[int, OutcomeStatus, str]],
    already: Mapping[int, tuple[int, str]],
) -> None:
    """One outcome row per company the chunk touched (the import's companies, for later selections)."""
    rows = [
        (cid, row_number, status, detail)
        for cid, (row_number, status, detail) in outcomes.items()
        if cid not in already  # an earlier chunk (or attempt) named it first
    ]
    # each company appears once in ``outcomes`` and those recorded before are left out: a plain INSERT
    insert_rows(
        session,
        cast(Table, BulkActionOutcome.__table__),
        {"bulk_action_id": import_id, "attempts": 1, "updated_at": utcnow()},
        ("company_id", "position", "status", "detail"),
        rows,
    )


def _duplicate(found: _Known) -> str:
    if found.row_number is not None:
        return f"duplicate of row {found.row_number}"
    return f"duplicate of company {found.company_id}"


def _updated(done: Sequence[FieldChange], known: _Known) -> str:
    fields = sorted({c.field for c in done if c.company_id == known.company_id} - {"domain", "name_key"})
    return "updated: " + ", ".join(fields)
