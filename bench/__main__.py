"""Run every benchmark and write bench/results/latest.json.

make bench                      # all of them
python -m bench engine resume   # only some (names: engine, embeddings, resume, scoring, enrichment)
"""

from __future__ import annotations

import importlib
import json
import platform
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.environment import prefect_environment, wait_for_quiet_server

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"

#: key → (comparison, target): what each figure must reach
TARGETS: dict[str, tuple[str, float]] = {
    "engine_ms_per_company": ("<=", 2.0),
    "embed_pipeline_vs_raw": (">=", 0.85),
    "resume_recomputed_fraction": ("<=", 0.05),
    "resume_provider_calls_for_completed": ("==", 0.0),
    "score_requests_per_min_vs_limit": (">=", 0.9),
    "score_429s": ("==", 0.0),
    "score_peak_window_vs_limit": ("<=", 1.0),
    "enrich_throughput_vs_ideal": (">=", 0.85),
}
MODULES = {
    "engine": "bench.bench_engine",
    "embeddings": "bench.bench_embeddings",
    "resume": "bench.bench_resume",
    "scoring": "bench.bench_scoring",
    "enrichment": "bench.bench_enrichment",
}


def _meets(value: float, comparison: str, target: float) -> bool:
    return {"<=": value <= target, ">=": value >= target, "==": value == target}[comparison]


def main(argv: list[str]) -> int:
    chosen = argv or list(MODULES)
    results: dict[str, float] = {}
    timings: dict[str, float] = {}
    errors: dict[str, str] = {}
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
            try:
                results.update(runner())
            except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others' figures
                traceback.print_exc()
                errors[name] = f"{type(exc).__name__}: {exc}"
            timings[name] = round(time.perf_counter() - started, 1)
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "results": {k: round(v, 4) for k, v in results.items()},
        "targets": {k: f"{c} {t}" for k, (c, t) in TARGETS.items()},
        "seconds": timings,
        "errors": errors,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{'key':40s} {'value':>12s}  target     ok")
    failed = 0
    for key, value in results.items():
        if key in TARGETS:
            comparison, target = TARGETS[key]
            ok = _meets(value, comparison, target)
            failed += not ok
            print(f"{key:40s} {value:12.4f}  {comparison} {target:<6g}  {'yes' if ok else 'NO'}")
        else:
            print(f"{key:40s} {value:12.4f}")
    for name, error in errors.items():
        print(f"{name}: FAILED ({error})")
    print(f"\nwritten to {RESULTS}")
    return 1 if failed or errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
