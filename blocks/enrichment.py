"""The enrichment-provider block: Parallel task runs, plus where their results are stored.

Sizing.  ``concurrency_tag`` names the Prefect limit ``tag:<tag>`` that caps enrichment *batches* in flight, and
each batch runs up to 5 Parallel task runs at once (the catalog's batch size).  So, by default, set
``tag:<tag>`` = ``floor(active-run cap of the key / 5)``: a cap of 80 active runs gives 16 batches.

That leaves the cap idle while a batch is between runs (Prefect task start and finish, storage and database
writes): negligible for real runs (15 s to 25 min) but not for short ones.  ``max_active_runs`` fixes it: the
client then holds at most that many runs active per process, a run creation waits for a free slot, and
``tag:<tag>`` can be set *above* cap / 5 (e.g. + 2 batches) so the extra batches do their overhead while
others' runs are active.  It is a per-process cap: with several workers give each its share of the key's cap
(past the cap the provider answers 429 + ``retry-after``, which the client honours, but with 2 retries only).
"""

from __future__ import annotations

import threading
from typing import ClassVar

import httpx
from prefect.blocks.core import Block
from pydantic import Field, PrivateAttr, SecretStr

from blocks.batching import PAID_CALLS_PER_BATCH, calls_per_batch_field
from blocks.storage import DEFAULT_STORAGE
from providers.http import RetryPolicy
from providers.parallel import ParallelClient

_client_lock = threading.Lock()


class ParallelEnrichment(Block):
    """Company research through the Parallel Task API; raw results and profiles go to ``storage_block``."""

    _block_type_name: ClassVar[str] = "Parallel Enrichment"
    _block_type_slug: ClassVar[str] = "parallel-enrichment"
    _description: ClassVar[str] = (
        "Parallel Task API key and options for enrich_companies, and the filesystem block its files go to."
    )

    api_key: SecretStr = Field(description="Parallel API key (sent as x-api-key).")
    base_url: str = Field(default="https://api.parallel.ai", description="API origin (the sandbox in tests).")
    processor: str = Field(
        default="base", description="lite, base, core, pro or ultra: slower processors research deeper."
    )
    run_timeout_seconds: float = Field(
        default=3600.0, gt=0, description="How long one task run may take before it counts as timed out."
    )
    poll_slice_seconds: int = Field(
        default=60, ge=1, le=60, description="Longest single blocking wait for a result (?timeout=)."
    )
    request_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of every request, on top of the blocking wait."
    )
    retries: int = Field(default=2, ge=0, le=10, description="Application retries of a failed request.")
    max_active_runs: int | None = Field(
        default=None,
        ge=1,
        description="Cap on this process's active runs (creations wait for a slot); lets tag:<tag> exceed cap / 5.",
    )
    concurrency_tag: str = Field(
        default="parallel", description="Prefect concurrency tag; its limit counts batches of 5 runs."
    )
    calls_per_batch: int = calls_per_batch_field(PAID_CALLS_PER_BATCH)
    storage_block: str = Field(
        default=DEFAULT_STORAGE,
        description="Filesystem block for companies/{id}/*.json, as <block-type>/<name> "
        "(local-file-system/... or remote-file-system/... with an s3:// URL for several machines).",
    )

    _client: ParallelClient | None = PrivateAttr(default=None)

    def get_client(self) -> ParallelClient:
        """One client per block document and process: every batch thread shares its connection pool and its
        ``max_active_runs`` slots (hence the lock: batches start side by side and must not build two)."""
        with _client_lock:
            return self._build_client()

    def _build_client(self) -> ParallelClient:
        if self._client is None:
            http = httpx.Client(
                base_url=self.base_url,
                headers={"x-api-key": self.api_key.get_secret_value()},
                timeout=self.request_timeout_seconds,
                # blocking result waits each hold a connection; batches in flight are capped by Prefect
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
            )
            self._client = ParallelClient(
                http=http,
                processor=self.processor,
                run_timeout_s=self.run_timeout_seconds,
                poll_slice_s=self.poll_slice_seconds,
                request_timeout_s=self.request_timeout_seconds,
                retry=RetryPolicy(retries=self.retries, guard_tag=self.concurrency_tag),
                max_active_runs=self.max_active_runs,
            )
        return self._client


ENRICHMENT_BLOCK_TYPES: tuple[type[Block], ...] = (ParallelEnrichment,)
