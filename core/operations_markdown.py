"""The operations report as markdown: tables of ``core.operations_stats`` and Prefect's own figures, one chart.

Pure formatting: the flow (``flows.operations_report``) gathers the figures, this module lays them out, so what
the artifact shows is exactly what the dataclasses hold and the tests can read it back.  Money is shown with
``core.pricing.format_usd``, rates as percentages with one decimal, times as UTC ``YYYY-MM-DD HH:MM``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core.charts import bar_chart_svg, markdown_image, unicode_bars
from core.operations_stats import OperationsStats, SpendLine
from core.pricing import format_usd

#: rows shown per table (the totals above each table always count everything)
ROWS = 50


@dataclass(frozen=True)
class SlotUsage:
    """One provider's concurrency limit on the Prefect server: ``tag:<tag>``, slots in use of the limit."""

    tag: str
    limit: int
    active_slots: int
    active: bool


@dataclass(frozen=True)
class PrefectDatabaseSize:
    """The size of the Prefect server's database; ``size_bytes`` None when it cannot be known from here."""

    backend: str
    size_bytes: int | None
    how: str


@dataclass(frozen=True)
class PrefectFigures:
    slots: list[SlotUsage] = field(default_factory=list)
    database: PrefectDatabaseSize = PrefectDatabaseSize("unknown", None, "not measured")
    flow_runs: int | None = None
    task_runs: int | None = None


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"


def percent(value: float | None) -> str:
    return f"{value * 100:.1f}%" if value is not None else "-"


def size(value: int | None) -> str:
    if value is None:
        return "unknown"
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if value >= scale:
            return f"{value / scale:.1f} {unit} ({value} bytes)"
    return f"{value} bytes"


def cell(text: object, limit: int = 100) -> str:
    """A table cell: one line, ``|`` escaped, and ``<``/``>`` as entities (the UI would take ``<n>`` for a tag)."""
    value = " ".join(str(text).split())
    value = value if len(value) <= limit else value[: limit - 1] + "…"
    return value.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _table(header: list[str], align: str, rows: list[list[object]], empty: str) -> list[str]:
    if not rows:
        return [empty, ""]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows[:ROWS]]
    if len(rows) > ROWS:
        lines.append(f"\n… and {len(rows) - ROWS} more rows.")
    return [*lines, ""]


def _spend_rows(lines: list[SpendLine]) -> list[list[object]]:
    return [
        [s.name, format_usd(s.today_nanousd), s.today_calls, format_usd(s.month_nanousd), s.month_calls] for s in lines
    ]


def report_markdown(stats: OperationsStats, prefect: PrefectFigures) -> str:
    s = stats
    out = [f"# Operations report, {when(s.now)} UTC", ""]

    out += ["## Bulk actions by type and status", ""]
    out += _table(
        ["action", "status", "count"], "llr", [[c.action, c.status, c.count] for c in s.by_type_and_status], "None."
    )

    out += ["## Throughput", ""]
    labels = [b.start.strftime("%H:%M") for b in s.hourly]
    values = [b.finished for b in s.hourly]
    title = f"Companies finished per hour, last 24 h to {when(s.now)} UTC (total {sum(values)})"
    out += [markdown_image(bar_chart_svg(values, labels, title), title), ""]
    out += ["```", f"{labels[0]} {unicode_bars(values)} {when(s.now)[-5:]}  max {max(values, default=0)}/h", "```", ""]
    out += ["Finished in the last hour, per action:", ""]
    out += _table(
        ["bulk action", "action", "companies finished"],
        "rlr",
        [[t.bulk_action_id, t.action, t.finished_last_hour] for t in s.throughput],
        "No company finished in the last hour.",
    )

    out += ["## Companies waiting", ""]
    pending = sum(w.pending for w in s.waiting)
    out += [f"{pending} companies waiting in {len(s.waiting)} unfinished actions.", ""]
    out += _table(
        ["bulk action", "action", "provider", "status", "companies waiting"],
        "rlllr",
        [[w.bulk_action_id, w.action, w.provider, w.status, w.pending] for w in s.waiting],
        "",
    )

    out += ["## Error rate of unfinished actions", ""]
    out += _table(
        ["bulk action", "action", "status", "failed / processed, 1 h", "rate, 1 h", "failed / processed", "rate"],
        "rllrrrr",
        [
            [e.bulk_action_id, e.action, e.status, f"{e.failed_last_hour} / {e.processed_last_hour}",
             percent(e.rate_last_hour), f"{e.failed} / {e.processed}", percent(e.rate)]
            for e in s.error_rates
        ],
        "No unfinished action has processed a company.",
    )  # fmt: skip
    out += ["Error rate = failed ÷ processed (succeeded + failed + skipped) outcomes; last hour: outcomes finished in "
            "the last hour.", ""]  # fmt: skip

    out += ["## Open dead jobs by action and error pattern", ""]
    out += [f"{sum(g.count for g in s.dead_jobs)} open dead jobs.", ""]
    out += _table(
        ["action", "error pattern", "count", "transient"],
        "llrl",
        [[g.action, g.pattern, g.count, g.transient] for g in s.dead_jobs],
        "",
    )

    out += ["## Review queue by reason", ""]
    out += [f"{sum(g.count for g in s.review_queue)} companies flagged `needs_review`.", ""]
    out += _table(["reason pattern", "count"], "lr", [[g.pattern, g.count] for g in s.review_queue], "")

    out += ["## Spend (UTC)", ""]
    header = ["provider", "today", "calls today", "this month", "calls this month"]
    out += _table(header, "lrrrr", _spend_rows(s.spend_by_provider), "No spend this month.")
    out += _table(["creator", *header[1:]], "lrrrr", _spend_rows(s.spend_by_creator), "")

    out += ["## Provider circuits", ""]
    out += _table(
        ["provider tag", "state", "failures in a row", "opened (times)", "opened at", "outage since", "changed"],
        "llrrlll",
        [
            [c.tag, c.state, c.consecutive_failures, c.opened_count, when(c.opened_at), when(c.outage_started_at),
             when(c.changed_at)]
            for c in s.circuits
        ],
        "No circuit recorded yet (every provider closed).",
    )  # fmt: skip

    out += ["## Provider slots", ""]
    out += _table(
        ["limit", "in use", "of", "active"],
        "lrrl",
        [[f"tag:{u.tag}", u.active_slots, u.limit, u.active] for u in prefect.slots],
        "No provider limit on the server.",
    )
    out += _table(
        ["provider tag", "requests", "waiting", "held", "wanted by waiters", "waiting since", "top priority"],
        "lrrrrlr",
        [
            [q.tag, q.requests, q.waiting, q.held, q.slots_wanted_waiting, when(q.oldest_waiting_since),
             "-" if q.top_waiting_priority is None else q.top_waiting_priority]
            for q in s.slot_queues
        ],
        "No slot requests.",
    )  # fmt: skip

    out += ["## Prefect's own history", ""]
    db = prefect.database
    out += [
        "| figure | value |",
        "| --- | ---: |",
        f"| database size ({db.backend}) | {size(db.size_bytes)} |",
        f"| flow runs | {'unknown' if prefect.flow_runs is None else prefect.flow_runs} |",
        f"| task runs | {'unknown' if prefect.task_runs is None else prefect.task_runs} |",
        "",
        f"Database size: {db.how}.",
    ]
    return "\n".join(out) + "\n"
