"""The dedup sweep's quality and speed against the synthetic ground truth (issue #15's domain core).

    PYTHONPATH=. .venv/bin/python -m bench.dedup_quality            # 10,000 (seed 11) and 100,000 (seed 12)
    PYTHONPATH=. .venv/bin/python -m bench.dedup_quality --sizes 10000 --variants

For each size: the synthetic companies (``core.synthetic.generate_companies``), their MiniLM vectors (computed
once in a child process and cached under ``.data/dedup_bench``; 100,000 take ~30 minutes on 2 cores), then:

* ``baseline``: the product's method, every pair at cosine >= 0.95 (exact matmul; skipped above 20,000 unless
  ``--baseline``, as it is quadratic);
* ``sweep``: ``core.dedup_decision.find_duplicates`` with default parameters, then ``build_clusters``; timed
  from the stored keys (``companies.name_key``/``domain``/``country``, what the flow reads) to the clusters, the
  vectors being loaded beforehand;
* with ``--variants``: the candidates scored once, then each decision variant of the report's table;
* the sweep again with websites removed from a share of companies (``--no-website``, default 0.3 and 1.0): how
  the decision holds up where the domain, the strongest signal on synthetic data, is missing.

Truth: two companies are a true pair when they are in the same ``duplicate_of`` tree (one is the other's
original, or both near-duplicate one original).  Precision and recall count distinct pairs, and a cluster counts
for all its pairs (a chain A~B~C claims A~C too).  Timings are wall time on a shared machine: expect noise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from itertools import combinations
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".data" / "dedup_bench"
SIZES = {10_000: 11, 100_000: 12}
BASELINE_LIMIT = 20_000

F32 = npt.NDArray[np.float32]


# ----------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------


def _embed(texts: list[str]) -> F32:
    """MiniLM vectors (runs in a child process: the encoder pins BLAS to one thread for the whole process)."""
    from providers.local_minilm import MiniLMEncoder

    encoder = MiniLMEncoder.load()
    return np.concatenate([encoder.encode(texts[s : s + 5_000]) for s in range(0, len(texts), 5_000)])


def vectors_for(companies: Sequence[Any], n: int, seed: int) -> F32:
    """The companies' MiniLM vectors, from the cache or computed (and cached) in a child process."""
    from core.text import embedding_text

    texts = [embedding_text(c) for c in companies]
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"minilm_{n}_{seed}_{digest}.npy"
    if path.exists():
        return np.load(path)
    print(f"  embedding {n:,} texts (cached afterwards in {path.relative_to(ROOT)}) ...", flush=True)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        vectors = pool.submit(_embed, texts).result()
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    print(f"  embedded in {time.perf_counter() - started:.0f} s", flush=True)
    return vectors


def truth_pairs(companies: Sequence[Any]) -> set[tuple[int, int]]:
    """Every pair in one ``duplicate_of`` tree."""
    groups: dict[int, list[int]] = {}
    for index in range(len(companies)):
        root = index
        while companies[root].duplicate_of is not None:
            root = companies[root].duplicate_of
        groups.setdefault(root, []).append(index)
    return {pair for members in groups.values() for pair in combinations(sorted(members), 2)}


def facts_for(n: int, seed: int) -> list[Any]:
    """Made-up winner facts (the synthetic data has none): completeness, enrichment, scores, age."""
    from core.dedup_clusters import MemberFacts

    rng = random.Random(seed)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    return [
        MemberFacts(
            company_id=1_000 + row,
            filled_fields=rng.randint(4, 9),
            enriched=rng.random() < 0.3,
            scored=rng.random() < 0.5,
            created_at=start + timedelta(minutes=row),
        )
        for row in range(n)
    ]


# ----------------------------------------------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------------------------------------------


def _cluster_pairs(groups: Sequence[Sequence[int]]) -> set[tuple[int, int]]:
    return {pair for members in groups for pair in combinations(sorted(members), 2)}


def quality(found: set[tuple[int, int]], truth: set[tuple[int, int]]) -> dict[str, float]:
    hits = len(found & truth)
    return {
        "pairs": len(found),
        "precision": hits / len(found) if found else 1.0,
        "recall": hits / len(truth) if truth else 1.0,
    }


def _line(label: str, q: dict[str, float], extra: str = "") -> str:
    return f"  {label:<44} pairs {q['pairs']:>6,}  precision {q['precision']:.4f}  recall {q['recall']:.4f}{extra}"


def baseline(vectors: F32, truth: set[tuple[int, int]], thresholds: Sequence[float]) -> dict[float, dict[str, float]]:
    """The product's method: every pair at cosine >= t (the pairs themselves, as the issue counts them)."""
    from core.dedup_candidates import exact_vector_pairs

    left, right = exact_vector_pairs(vectors, min(thresholds))
    sims = np.einsum("ij,ij->i", vectors[left], vectors[right])
    return {t: quality(_pairs(left, right, sims >= np.float32(t)), truth) for t in thresholds}


def _pairs(left: npt.NDArray[np.int64], right: npt.NDArray[np.int64], mask: Any) -> set[tuple[int, int]]:
    return set(zip(left[mask].tolist(), right[mask].tolist(), strict=True))


def variants(vectors: F32, signals: Any, truth: set[tuple[int, int]]) -> list[tuple[str, dict[str, float]]]:
    """Decision variants over one set of candidates (vector floor 0.90, so lower vector thresholds can be seen);
    each variant's accepted pairs are clustered (connected components) and scored like the sweep."""
    from core.dedup_candidates import BY_DOMAIN, BY_NAME, BY_VECTOR, candidate_pairs
    from core.dedup_clusters import connected_components
    from core.dedup_decision import score_pairs
    from core.dedup_signals import AGREE, DIFFER, UNKNOWN

    s = score_pairs(vectors, signals, candidate_pairs(vectors, signals, 0.90))
    everything = set(zip(s.left.tolist(), s.right.tolist(), strict=True))
    out = [("candidates: all blocking rules", quality(everything, truth))]
    for label, bit in (("vector >= 0.90", BY_VECTOR), ("same domain", BY_DOMAIN), ("names one edit apart", BY_NAME)):
        out.append((f"  found by {label}", quality(_pairs(s.left, s.right, (s.sources & bit) > 0), truth)))

    country_ok = s.same_country != DIFFER
    same_domain = s.same_domain == AGREE
    no_domain = s.same_domain == UNKNOWN
    domains_agree_or_unknown = s.same_domain != DIFFER

    def cos(t: float) -> npt.NDArray[np.bool_]:
        return s.cosine >= np.float32(t)

    def name(t: float) -> npt.NDArray[np.bool_]:
        return s.name_score >= np.float32(t)

    def run(label: str, mask: npt.NDArray[np.bool_]) -> None:
        pairs = list(zip(s.left[mask].tolist(), s.right[mask].tolist(), strict=True))
        out.append((label, quality(_cluster_pairs(connected_components(pairs)), truth)))

    for t in (0.95, 0.93, 0.90):
        run(f"cosine >= {t}", cos(t))
    for t in (0.95, 0.93, 0.90):
        run(f"name >= 0.85 & cosine >= {t}", name(0.85) & cos(t))
    run("same domain", same_domain)
    for t in (0.70, 0.80, 0.85, 0.90):
        run(f"A: same domain & name >= {t}", same_domain & name(t) & country_ok)
    for t in (0.80, 0.85, 0.90, 0.95):
        run(
            f"B: name >= {t} & cos >= 0.95 & domains not different",
            name(t) & cos(0.95) & domains_agree_or_unknown & country_ok,
        )
    rule_c = same_domain & cos(0.95)
    for t in (0.80, 0.85, 0.90):
        rule_a = same_domain & name(t)
        rule_b = name(t) & cos(0.95) & domains_agree_or_unknown
        marker = "  <- default" if t == 0.85 else ""
        run(f"A|B, name {t}, country veto{marker}", (rule_a | rule_b) & country_ok)
        if t == 0.85:
            run("A|B, name 0.85, no country veto", rule_a | rule_b)
            run("A|B|C (C: same domain & cos >= 0.95)", (rule_a | rule_b | rule_c) & country_ok)
            for tn, tc in ((0.90, 0.90), (0.90, 0.85), (0.93, 0.80)):
                rule_d = no_domain & name(tn) & cos(tc)
                run(f"A|B|D (D: no domain & name >= {tn} & cos >= {tc})", (rule_a | rule_b | rule_d) & country_ok)
    return out


# ----------------------------------------------------------------------------------------------------------------
# The sweep
# ----------------------------------------------------------------------------------------------------------------


def timed_sweep(
    vectors: F32,
    names: Sequence[str],
    keys: Sequence[dict[str, Any]],
    countries: Sequence[str | None],
    facts: Sequence[Any],
) -> tuple[set[tuple[int, int]], set[tuple[int, int]], dict[str, float], Any]:
    """The sweep from stored columns to clusters (``find_duplicates`` step by step, each step timed).

    Returns the clusters' pairs, the accepted pairs, seconds per step, and the clusters.
    """
    from core.dedup_candidates import candidate_pairs
    from core.dedup_clusters import build_clusters
    from core.dedup_decision import DedupParams, decide, score_pairs
    from core.dedup_signals import signals_from_keys

    params = DedupParams()
    seconds: dict[str, float] = {}
    clock = started = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[step] = now - clock
        clock = now

    signals = signals_from_keys([k["name_key"] for k in keys], [k["domain"] for k in keys], countries)
    lap("signals")
    cands = candidate_pairs(vectors, signals, params.vector_threshold, exact_limit=params.exact_limit)
    lap("candidates")
    accepted = decide(score_pairs(vectors, signals, cands), params).accepted()
    lap("decision")
    clusters = build_clusters(accepted.evidence(), facts)
    lap("clusters")
    seconds["total"] = time.perf_counter() - started
    seconds["candidates_n"] = len(cands)
    row_of = {f.company_id: row for row, f in enumerate(facts)}
    in_clusters = _cluster_pairs([[row_of[m] for m in c.members] for c in clusters])
    return in_clusters, _pairs(accepted.left, accepted.right, slice(None)), seconds, clusters


def run_size(n: int, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    from core.dedup_keys import keys_of
    from core.dedup_signals import signals_from_keys
    from core.synthetic import generate_companies

    print(f"\n== {n:,} companies, seed {seed}", flush=True)
    companies = generate_companies(n, seed=seed)
    truth = truth_pairs(companies)
    print(f"  true pairs {len(truth):,}", flush=True)
    vectors = np.ascontiguousarray(vectors_for(companies, n, seed), dtype=np.float32)
    names = [c.name for c in companies]
    keys = [keys_of(c.name, c.website) for c in companies]  # stored on every company (companies.name_key, .domain)
    countries = [c.country for c in companies]
    facts = facts_for(n, seed)
    result: dict[str, Any] = {"n": n, "seed": seed, "true_pairs": len(truth)}

    if n <= BASELINE_LIMIT or args.baseline:
        for t, q in baseline(vectors, truth, (0.95, 0.93, 0.90)).items():
            print(_line(f"baseline: cosine >= {t}, all pairs", q), flush=True)
            result[f"baseline_{t}"] = q

    runs = []
    for _ in range(args.repeat):
        found, accepted, seconds, clusters = timed_sweep(vectors, names, keys, countries, facts)
        runs.append(seconds)
    q = quality(found, truth)
    print(_line("sweep, default parameters: clusters' pairs", q), flush=True)
    print(_line("sweep, default parameters: accepted pairs", quality(accepted, truth)), flush=True)
    best = min(runs, key=lambda r: r["total"])
    steps = ", ".join(f"{k} {v:.2f}" for k, v in best.items() if k not in ("total", "candidates_n"))
    totals = ", ".join(f"{r['total']:.2f}" for r in runs)
    print(f"  sweep seconds: {best['total']:.2f} best of {len(runs)} (runs {totals}; {steps})")
    sizes = sorted((len(c.members) for c in clusters), reverse=True)
    chained = sum(not c.fully_linked for c in clusters)
    candidates = int(best["candidates_n"])
    print(f"  {candidates:,} candidate pairs; {len(clusters):,} clusters, largest {sizes[:3]}, {chained} chained")
    result.update(sweep=q, seconds=best, seconds_runs=[r["total"] for r in runs])
    if args.show_misses:
        _show_misses(companies, vectors, truth, found)

    rng = random.Random(seed)
    for share in args.no_website:
        blind = [k if rng.random() >= share else {**k, "domain": None} for k in keys]
        blind_found, _, _, _ = timed_sweep(vectors, names, blind, countries, facts)
        q = quality(blind_found, truth)
        print(_line(f"sweep, websites removed from {share:.0%}", q), flush=True)
        result[f"no_website_{share}"] = q

    if args.variants:
        for label, domains in (
            ("variants", [k["domain"] for k in keys]),
            ("variants, no websites at all", [None] * n),
        ):
            signals = signals_from_keys([k["name_key"] for k in keys], domains, countries)
            print(f"  {label}:")
            for line, q in variants(vectors, signals, truth):
                print(_line(line, q), flush=True)
    return result


def _show_misses(
    companies: Sequence[Any], vectors: F32, truth: set[tuple[int, int]], found: set[tuple[int, int]]
) -> None:
    for label, pairs in (("missed", truth - found), ("false", found - truth)):
        for a, b in sorted(pairs)[:20]:
            cos = float(vectors[a] @ vectors[b])
            one, other = companies[a], companies[b]
            print(f"  {label}: {cos:.3f} {one.name!r} {one.website} | {other.name!r} {other.website}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=list(SIZES), help="of 10000 (seed 11), 100000 (seed 12)"
    )
    parser.add_argument("--seed", type=int, default=None, help="override the size's seed")
    parser.add_argument("--repeat", type=int, default=3, help="timed sweeps per size (the best is reported)")
    parser.add_argument("--baseline", action="store_true", help="the all-pairs baseline above 20,000 too")
    parser.add_argument("--variants", action="store_true", help="the decision variants table")
    parser.add_argument("--no-website", type=float, nargs="*", default=[0.3, 1.0], help="shares of websites removed")
    parser.add_argument("--show-misses", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    results = [run_size(n, args.seed if args.seed is not None else SIZES.get(n, 11), args) for n in args.sizes]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
