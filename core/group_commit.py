"""Group commit: batches' writes to one SQLite database share transactions, led by whichever batch gets there first.

SQLite admits one writer at a time.  When a flow's batch threads each open their own write transaction they
queue on the database, and under a busy GIL every hand-over costs milliseconds: measured on 10,000 companies,
the write lock was held for 60-70% of the run and eight threads spent 80 s waiting for it.  Here the classic
database remedy applies: a batch queues its writes; if no commit is under way it becomes the *leader* and
commits, in its own thread, everything queued at that moment in one transaction; batches that arrive meanwhile
wait, and when the leader is done the first of them leads the next group.  The per-transaction cost (begin,
commit, session set-up) is paid once per group, only one thread ever waits on SQLite, and an uncontended batch
commits directly, with no hand-over to another thread (each hand-over is a wake-up that queues for the GIL
behind the model's threads).

A caller returns only after its writes are committed, so a batch's checkpoint is never written before its
outcomes are.  If a group's transaction fails, each of its members is replayed in a transaction of its own, so
one batch's bad write is that batch's error alone.  PostgreSQL has row-level locking and real concurrent
writers: there each caller commits its own transaction directly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.db import session_scope

Write = Callable[[Session], None]

#: the most batches one transaction commits; bounds the work lost to one failed group replay
MAX_GROUP = 64


class _Entry:
    """One caller's writes and how they ended; ``event`` fires when they are committed or the caller must lead."""

    __slots__ = ("writes", "event", "done", "error", "lead")

    def __init__(self, writes: Sequence[Write]) -> None:
        self.writes = writes
        self.event = threading.Event()
        self.done = False
        self.error: BaseException | None = None
        self.lead = False


class _GroupCommitter:
    """The queue of one SQLite engine's pending writes and who is committing them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._pending: list[_Entry] = []
        self._leading = False

    @property
    def pending(self) -> int:
        """Callers queued behind the commit under way (for tests and diagnostics)."""
        with self._lock:
            return len(self._pending)

    @property
    def leading(self) -> bool:
        """Whether a commit is under way."""
        with self._lock:
            return self._leading

    def commit(self, writes: Sequence[Write]) -> None:
        entry = _Entry(writes)
        with self._lock:
            self._pending.append(entry)
            if not self._leading:
                self._leading = entry.lead = True
        while not entry.lead:
            entry.event.wait()
            entry.event.clear()
            if entry.done:
                break
        if entry.lead:
            self._lead()
        if entry.error is not None:
            raise entry.error

    def _lead(self) -> None:
        """Commit the queued group (which holds this caller's entry), then hand the lead to the next in line."""
        with self._lock:
            group = self._pending[:MAX_GROUP]
            del self._pending[:MAX_GROUP]
        _commit_group(self.engine, group)
        with self._lock:
            successor = self._pending[0] if self._pending else None
            if successor is None:
                self._leading = False
            else:
                successor.lead = True
        for entry in group:
            entry.done = True
            entry.event.set()
        if successor is not None:
            successor.event.set()


def _commit_group(engine: Engine, group: list[_Entry]) -> None:
    """Run the group in one transaction; if it fails, replay each member alone so a bad write fails only its own."""
    try:
        with session_scope(engine) as session:
            for entry in group:
                for write in entry.writes:
                    write(session)
    except BaseException as error:  # noqa: BLE001 - replayed one by one below, or handed to the caller
        if len(group) == 1:
            group[0].error = error
            return
        for entry in group:
            _commit_group(engine, [entry])


_committers: dict[int, _GroupCommitter] = {}
_committers_lock = threading.Lock()


def _committer(engine: Engine) -> _GroupCommitter:
    with _committers_lock:
        committer = _committers.get(id(engine))
        if committer is None or committer.engine is not engine:
            committer = _committers[id(engine)] = _GroupCommitter(engine)
        return committer


def commit(engine: Engine, writes: Sequence[Write]) -> None:
    """Run ``writes`` in one transaction (shared with other batches' on SQLite); return once committed."""
    if engine.dialect.name != "sqlite":
        with session_scope(engine) as session:
            for write in writes:
                write(session)
        return
    _committer(engine).commit(writes)
