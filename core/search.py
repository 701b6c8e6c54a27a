"""Semantic search over stored vectors, one model at a time.

Brute force in numpy: vectors are unit-norm float32, so cosine similarity is a matrix product (10k vectors answer
a query in well under a millisecond).  An index holds vectors of exactly one model id: vectors of different
models live in different spaces and are never compared.  The dedup sweep reuses ``VectorIndex``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.schema import Company, CompanyEmbedding, CompanyStatus

FloatMatrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class SearchHit:
    company_id: int
    name: str
    score: float


@dataclass
class VectorIndex:
    model_id: str
    company_ids: npt.NDArray[np.int64]
    names: list[str]
    matrix: FloatMatrix

    @classmethod
    def load(cls, session: Session, model_id: str) -> VectorIndex:
        rows = session.execute(
            select(CompanyEmbedding.company_id, Company.name, CompanyEmbedding.vector, CompanyEmbedding.dimension)
            .join(Company, Company.id == CompanyEmbedding.company_id)
            .where(CompanyEmbedding.model_id == model_id, Company.status == CompanyStatus.ACTIVE)
            .order_by(CompanyEmbedding.company_id)
        ).all()
        dims = {int(r.dimension) for r in rows}
        if len(dims) > 1:
            raise ValueError(f"model {model_id!r} has vectors of several dimensions: {sorted(dims)}")
        dim = dims.pop() if dims else 0
        matrix = np.frombuffer(b"".join(r.vector for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return cls(
            model_id=model_id,
            company_ids=np.array([r.company_id for r in rows], dtype=np.int64),
            names=[r.name for r in rows],
            matrix=matrix,
        )

    def __len__(self) -> int:
        return len(self.company_ids)

    def top_k(self, query: FloatMatrix, k: int = 5, *, query_model_id: str) -> list[SearchHit]:
        if query_model_id != self.model_id:
            raise ValueError(f"query vector of {query_model_id!r} cannot be compared with vectors of {self.model_id!r}")
        if len(self) == 0:
            return []
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.matrix.shape[1]:
            raise ValueError(f"query has {q.shape[0]} dimensions, index has {self.matrix.shape[1]}")
        scores = self.matrix @ (q / (np.linalg.norm(q) or 1.0))
        k = min(k, len(scores))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [SearchHit(int(self.company_ids[i]), self.names[i], float(scores[i])) for i in best]


def vector_to_bytes(vector: npt.NDArray[np.floating]) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()
