"""Group commit: batches' writes share SQLite transactions, yet each batch's failure stays its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import group_commit
from core.db import _sqlite_lock, create_db_engine

metadata = MetaData()
items = Table("items", metadata, Column("id", Integer, primary_key=True), Column("name", String, nullable=False))


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'group.db'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def add(item_id: int, name: str | None = "ok") -> group_commit.Write:
    def write(session: Session) -> None:
        session.execute(insert(items), [{"id": item_id, "name": name}])

    return write


def stored_ids(engine: Engine) -> set[int]:
    with engine.connect() as connection:
        return set(connection.scalars(select(items.c.id)))


def test_concurrent_batches_all_land_and_each_caller_returns_after_its_commit(sqlite_engine: Engine) -> None:
    seen_after_return: list[bool] = []

    def batch(n: int) -> None:
        group_commit.commit(sqlite_engine, [add(n * 10 + k) for k in range(10)])
        seen_after_return.append({n * 10 + k for k in range(10)} <= stored_ids(sqlite_engine))

    threads = [threading.Thread(target=batch, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stored_ids(sqlite_engine) == set(range(80))
    assert seen_after_return == [True] * 8


def test_an_uncontended_batch_commits_in_its_own_thread(sqlite_engine: Engine) -> None:
    threads: list[threading.Thread] = []
    group_commit.commit(sqlite_engine, [add(1), lambda session: threads.append(threading.current_thread())])
    assert threads == [threading.current_thread()]
    assert stored_ids(sqlite_engine) == {1}
    assert not group_commit._committer(sqlite_engine).leading  # the lead was given up


def test_a_failing_batch_in_a_group_fails_alone(sqlite_engine: Engine) -> None:
    outcomes: dict[str, BaseException | None] = {}

    def batch(label: str, writes: list[group_commit.Write]) -> None:
        try:
            group_commit.commit(sqlite_engine, writes)
            outcomes[label] = None
        except BaseException as error:  # noqa: BLE001
            outcomes[label] = error

    committer = group_commit._committer(sqlite_engine)
    lock = _sqlite_lock(sqlite_engine)
    assert lock is not None
    deadline = time.monotonic() + 10
    first = threading.Thread(target=batch, args=("first", [add(1)]))
    with lock:  # the first batch leads and blocks on the database, so the next three queue up as one group
        first.start()
        while not (committer.leading and committer.pending == 0) and time.monotonic() < deadline:  # it has its group
            time.sleep(0.001)
        rest = [
            threading.Thread(target=batch, args=("good", [add(2), add(3)])),
            threading.Thread(target=batch, args=("bad", [add(4), add(5, name=None)])),  # NOT NULL violated
            threading.Thread(target=batch, args=("also good", [add(6)])),
        ]
        for thread in rest:
            thread.start()
        while committer.pending < 3 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert committer.pending == 3
    for thread in rest:
        thread.join()
    first.join()
    assert outcomes["first"] is None
    assert outcomes["good"] is None and outcomes["also good"] is None
    assert isinstance(outcomes["bad"], IntegrityError)
    assert stored_ids(sqlite_engine) == {1, 2, 3, 6}  # the bad batch's good row went with it


def test_postgresql_commits_in_the_callers_transaction(postgres_url: str) -> None:
    engine = create_db_engine(postgres_url)
    table = Table("group_commit_items", MetaData(), Column("id", Integer, primary_key=True))
    table.create(engine)
    try:
        group_commit.commit(engine, [lambda s: s.execute(insert(table), [{"id": 1}, {"id": 2}])])
        with pytest.raises(IntegrityError):
            group_commit.commit(engine, [lambda s: s.execute(insert(table), [{"id": 3}, {"id": 1}])])
        with engine.connect() as connection:
            assert connection.scalar(select(func.count()).select_from(table)) == 2
        assert id(engine) not in group_commit._committers
    finally:
        table.drop(engine)
        engine.dispose()
