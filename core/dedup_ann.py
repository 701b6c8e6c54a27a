"""Near-duplicate vector pairs beyond the exact matmul's reach: a faiss inverted-file index (IVF), range search.

The sweep needs every pair of companies at cosine >= the vector threshold (0.95), not each company's top ``k``:
faiss's ``range_search`` gives exactly that, with no ``k`` to tune.  The index is ``IndexIVFScalarQuantizer``:

* the vectors are split into ``lists = round(sqrt(n))`` cells by spherical k-means (trained on a fixed sample,
  so the same vectors give the same cells), and a query looks into its ``probes`` nearest cells;
* stored vectors are 8-bit scalar-quantized (4x less memory than float32, and faster to scan), which blurs a
  cosine by up to ~0.01: the search asks for ``min_cosine - MARGIN`` and every pair it returns is scored again
  exactly here, so the result is the pairs at exactly >= ``min_cosine`` that the probed cells hold.

Measured on 100,000 synthetic companies' MiniLM vectors (``bench/dedup_quality.py``'s cache; 2 cores on a machine
shared with other work, so the times are rough): the pairs at >= 0.95 found, against the exact all-pairs matmul,
and the wall time to build and search the index::

    faiss IVF-SQ8, 316 lists, 4 probes, margin 0.02, range search   recall 1.0000   11 s (5 s when quiet)
    faiss IVF-SQ8, the same without the margin                      recall 0.9936   11 s
    faiss IVF-Flat, 316 lists, 4 probes, range search               recall 1.0000   21 s
    faiss HNSW-Flat, M 16, efSearch 32, top 10                      recall 0.9947   22 s
    usearch HNSW f16, M 16, top 10                                  recall 0.9975   40 s
    hnswlib HNSW, M 16, ef 32, top 10 (no wheel: compiled at install)  recall 0.9950   16 s
    exact matmul in row blocks                                      recall 1        ~95 s

On 20,000 / 50,000 of those vectors this index takes 0.6 s / 1.8 s and finds every pair the exact matmul finds
(1.3 s / 8 s); the sweep still uses the exact matmul up to 50,000 (``core.dedup_candidates.EXACT_LIMIT``), which
cannot miss a pair.
On a million vectors (the 100,000 and nine noisy copies) the index took 276 s.  faiss runs its own OpenMP threads
(one per core).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = ["MARGIN", "PROBES", "ann_pairs"]

Rows = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]

#: cells a query looks into
PROBES: Final = 4
#: how much lower than the cut the quantized search looks (then every pair is scored exactly)
MARGIN: Final = 0.02
#: vectors per cell the k-means is trained on (a sample: training on everything costs more and finds the same cells)
_TRAIN_PER_LIST: Final = 40
_SEED: Final = 20_240_515


def ann_pairs(vectors: F32, min_cosine: float, probes: int = PROBES) -> tuple[Rows, Rows]:
    """Pairs of rows ``(left < right)`` at cosine >= ``min_cosine``, found through a faiss IVF-SQ8 index.

    ``vectors`` are unit-norm float32 rows.  Approximate: a pair whose rows fall in cells further apart than
    ``probes`` is missed (none was at 100,000 companies; see the module docstring).
    """
    import faiss  # imported here: a sweep small enough for the exact matmul never loads it

    n, dim = vectors.shape
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    lists = max(1, round(math.sqrt(n)))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    sample = np.random.default_rng(_SEED).choice(n, size=min(n, lists * _TRAIN_PER_LIST), replace=False)
    index.cp.seed = _SEED
    index.train(matrix[np.sort(sample)])
    index.add(matrix)
    index.nprobe = min(probes, lists)
    limits, _, neighbours = index.range_search(matrix, float(min_cosine) - MARGIN)
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(limits).astype(np.int64))
    cols = neighbours.astype(np.int64)
    other = cols != rows
    # a pair may be found from one side only (the other row's probes miss the first's cell): keep it either way
    codes = np.unique(np.minimum(rows[other], cols[other]) * n + np.maximum(rows[other], cols[other]))
    left, right = codes // n, codes % n
    exact = np.einsum("ij,ij->i", matrix[left], matrix[right]) >= np.float32(min_cosine)
    return left[exact], right[exact]
