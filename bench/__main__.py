"""Run benchmarks and merge their figures into bench/results/latest.json.

make bench                      # the default benchmarks (DEFAULT_MODULES)
make bench-scale                # the scale benchmark alone (a million companies: long; see bench/bench_scale.py)
python -m bench engine resume   # only some (the names of MODULES)

A run updates the keys it measured and keeps every other key of latest.json as it was; ``measured`` says when
each key was last measured, so a figure from an older run is never taken for a new one.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.environment import prefect_environment, wait_for_quiet_server

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"

#: key → (comparison, target): what each figure must reach
TARGETS: dict[str, tuple[str, float | tuple[float, float]]] = {
    "engine_ms_per_company": ("<=", 2.0),
    "embed_pipeline_vs_raw": (">=", 0.95),
    "invalid_input_provider_calls": ("==", 0.0),
    "resume_recomputed_fraction": ("<=", 0.05),
    "resume_provider_calls_for_completed": ("==", 0.0),
    "score_requests_per_min_vs_limit": (">=", 0.9),
    "score_429s": ("==", 0.0),
    "score_peak_window_vs_limit": ("<=", 1.0),
    "enrich_throughput_vs_ideal": (">=", 0.85),
    "scale_ms_per_company": ("<=", 0.5),
    "scale_growth_1m_vs_100k": ("<=", 1.3),
    "scale_peak_rss_mb": ("<=", 1024.0),
    "scale_task_runs": ("<=", 20_000.0),
    "shard_duplicate_calls": ("==", 0.0),
    "shard_workers_used": ("==", 2.0),
    "import_rows_per_second": (">=", 20_000.0),
    "import_vs_bare_insert": (">=", 0.5),
    "import_peak_rss_mb": ("<=", 500.0),
    "import_resume_duplicates": ("==", 0.0),
    "import_dedup_precision": (">=", 0.99),
    "import_dedup_recall": (">=", 0.98),
    "export_rows_per_second": (">=", 100_000.0),
    "export_vs_bare_dump": (">=", 0.8),
    "export_peak_rss_mb": ("<=", 300.0),
    "cost_vs_list_price": ("in", (0.999, 1.001)),
    "budget_overspend_usd": ("==", 0.0),
    "budget_unused_fraction": ("<=", 0.05),
    "pause_resume_repeated_paid_calls": ("==", 0.0),
    "tiered_cost_vs_premium": ("<=", 0.4),
    "tiered_agreement": (">=", 0.95),
    "estimate_vs_actual_cost": ("in", (0.8, 1.25)),
    "reclassify_local_per_second": (">=", 5_000.0),
    "rollback_exact": ("==", 1.0),
    "reclassify_llm_requests_per_company": ("==", 1.0),
    "reclassify_llm_resubmitted_after_crash": ("==", 0.0),
    "reclassify_llm_staged_per_second": (">=", 1_000.0),
    "dedup_precision": (">=", 0.98),
    "dedup_recall": (">=", 0.95),
    "dedup_precision_100k": (">=", 0.98),
    "dedup_recall_100k": (">=", 0.95),
    "dedup_seconds_100k": ("<=", 30.0),
    "merge_rollback_exact": ("==", 1.0),
    "alert_latency_seconds": ("<=", 60.0),
    "priority_inversions": ("==", 0.0),
    "breaker_calls_while_open": ("<=", 1.0),
    "breaker_dead_jobs_from_outage": ("==", 0.0),
    "breaker_recovery_seconds": ("<=", 15.0),
}
MODULES = {
    "engine": "bench.bench_engine",
    "embeddings": "bench.bench_embeddings",
    "resume": "bench.bench_resume",
    "scoring": "bench.bench_scoring",
    "enrichment": "bench.bench_enrichment",
    "invalid_input": "bench.bench_invalid_input",
    "scale": "bench.bench_scale",
    "shards": "bench.bench_shards",
    "import": "bench.bench_import",
    "export": "bench.bench_export",
    "spend": "bench.bench_spend",
    "reclassify": "bench.bench_reclassify",
    "reclassify_llm": "bench.bench_reclassify_llm",
    "dedup": "bench.bench_dedup",
    "alerts": "bench.bench_alerts",
    "priority": "bench.bench_priority",
    "breaker": "bench.bench_breaker",
}
#: what `make bench` (no names) runs: the scale benchmark takes long and has its own target, `make bench-scale`
DEFAULT_MODULES = [
    "engine",
    "embeddings",
    "resume",
    "scoring",
    "enrichment",
    "invalid_input",
    "import",
    "spend",
    "reclassify",
    "reclassify_llm",
    "dedup",
    "alerts",
    "priority",
    "breaker",
]


def _meets(value: float, comparison: str, target: float | tuple[float, float]) -> bool:
    if isinstance(target, tuple):
        low, high = target
        return low <= value <= high
    return {"<=": value <= target, ">=": value >= target, "==": value == target}[comparison]


def _previous_report() -> dict[str, Any]:
    """latest.json as the last run left it (empty if there is none or it is unreadable)."""
    try:
        report = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        return {}
    return report if isinstance(report, dict) else {}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _merged_report(
    results: dict[str, float],
    measured_now: dict[str, str],
    timings: dict[str, float],
    errors: dict[str, str],
    chosen: list[str],
) -> dict[str, Any]:
    """The latest.json on disk now with this run's keys replaced; this run's modules' old errors go, new ones come.

    Read just before writing, so keys another run merged in meanwhile are kept.
    """
    previous = _previous_report()
    old_results = dict(previous.get("results") or {})
    measured = dict(previous.get("measured") or {})
    if old_results and not previous.get("measured") and previous.get("when"):
        measured = dict.fromkeys(old_results, previous["when"])  # a report from before keys carried their time
    old_errors = {k: v for k, v in (previous.get("errors") or {}).items() if k not in chosen}
    merged_results = {**old_results, **{k: round(v, 4) for k, v in results.items()}}
    return {
        "when": _now(),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "results": merged_results,
        "measured": {**measured, **measured_now},
        "targets": {k: f"{c} {t}" for k, (c, t) in TARGETS.items()},
        "seconds": {**(previous.get("seconds") or {}), **timings},
        "errors": {**old_errors, **errors},
    }


def main(argv: list[str]) -> int:
    chosen = argv or list(DEFAULT_MODULES)
    unknown = [name for name in chosen if name not in MODULES]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; the names are {', '.join(MODULES)}")
        return 2
    results: dict[str, float] = {}
    timings: dict[str, float] = {}
    errors: dict[str, str] = {}
    measured: dict[str, str] = {}  # key → when the benchmark that measured it finished
    with prefect_environment():
        for name in chosen:
            try:
                module = importlib.import_module(MODULES[name])
            except ModuleNotFoundError as exc:
                print(f"{name}: not available ({exc})")
                continue
            runner: Callable[[], dict[str, float]] = module.run
            wait_for_quiet_server()  # each benchmark starts with the server done with the previous one's events
            started = time.perf_counter()
            print(f"running {name} …", flush=True)
            figures: dict[str, float] = {}
            try:
                figures = runner()
            except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
                traceback.print_exc()
                errors[name] = f"{type(exc).__name__}: {exc}"
                partial = getattr(exc, "partial_results", None)  # what it measured before it broke
                figures = dict(partial) if isinstance(partial, dict) else {}
            results.update(figures)
            measured.update(dict.fromkeys(figures, _now()))
            timings[name] = round(time.perf_counter() - started, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(_merged_report(results, measured, timings, errors, chosen), indent=2) + "\n")
    print(f"\n{'key':40s} {'value':>12s}  target     ok")
    failed = 0
    for key, value in results.items():
        if key in TARGETS:
            comparison, target = TARGETS[key]
            ok = _meets(value, comparison, target)
            failed += not ok
            shown = f"{target[0]:g}-{target[1]:g}" if isinstance(target, tuple) else f"{comparison} {target:<6g}"
            print(f"{key:40s} {value:12.4f}  {shown:9s}  {'yes' if ok else 'NO'}")
        else:
            print(f"{key:40s} {value:12.4f}")
    for name, error in errors.items():
        print(f"{name}: FAILED ({error})")
    print(f"\nmerged into {RESULTS}")
    return 1 if failed or errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
