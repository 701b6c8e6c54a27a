"""Anthropic Message Batches through the official SDK: create, poll, stream results, cancel, list.

The one call that is never retried is ``create``: a POST whose answer was lost (a timeout, a dropped
connection, a 5xx after the batch was made) may have created a batch, and retrying it blind would create a
second one.  ``create`` raises and the caller, which recorded its intent before the POST, finds out what happened
with ``recent`` (``core.message_batches``).  Reads and cancels are idempotent and retried with ``RetryPolicy``.

Result lines come back as plain :class:`ResultLine` values (the text of the answer, its usage, or the error),
so nothing above this module touches SDK types.  As everywhere in ``providers``, SDK exceptions are not chained
(their request objects carry the API key header).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

import anthropic

from core.errors import MalformedResponseError, ProviderConnectionError, ProviderTimeoutError
from providers.http import RetryPolicy
from providers.llm import anthropic_error

PROVIDER = "anthropic"


@dataclass(frozen=True)
class BatchState:
    """What a poll says of one batch."""

    batch_id: str
    processing_status: str  # in_progress, canceling, ended
    request_counts: dict[str, int]
    created_at: datetime | None = None

    @property
    def ended(self) -> bool:
        return self.processing_status == "ended"

    @property
    def total(self) -> int:
        return sum(self.request_counts.values())


@dataclass(frozen=True)
class ResultLine:
    """One line of a batch's results: ``kind`` is succeeded, errored, canceled or expired."""

    custom_id: str
    kind: str
    text: str = ""
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    web_search_requests: int = 0
    error_type: str = ""
    error_message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _line(item: Any) -> ResultLine:
    result = item.result
    kind = str(result.type)
    if kind == "succeeded":
        message = result.message
        usage = message.usage
        server = getattr(usage, "server_tool_use", None)
        return ResultLine(
            custom_id=item.custom_id,
            kind=kind,
            text="".join(block.text for block in message.content if block.type == "text"),
            model=str(message.model or ""),
            input_tokens=int(usage.input_tokens or 0),
            output_tokens=int(usage.output_tokens or 0),
            web_search_requests=int(getattr(server, "web_search_requests", 0) or 0),
        )
    if kind == "errored":
        inner = getattr(result.error, "error", None)
        return ResultLine(
            custom_id=item.custom_id,
            kind=kind,
            error_type=str(getattr(inner, "type", "") or "error"),
            error_message=str(getattr(inner, "message", "") or "")[:500],
        )
    return ResultLine(custom_id=item.custom_id, kind=kind)


class MessageBatchesClient:
    """The Message Batches endpoints one reclassify needs (the SDK client is built with ``max_retries=0``)."""

    provider = PROVIDER

    def __init__(self, sdk: anthropic.Anthropic, retry: RetryPolicy | None = None) -> None:
        if sdk.max_retries != 0:
            raise ValueError("build the Anthropic SDK client with max_retries=0: RetryPolicy owns retries")
        self._sdk = sdk
        self._retry = retry or RetryPolicy(retries=3, initial_delay=1.0)

    def create(self, requests: Sequence[dict[str, Any]]) -> BatchState:
        """POST one batch, once; see the module docstring for why this is never retried."""
        batch = self._call(lambda: self._sdk.messages.batches.create(requests=list(requests)))  # type: ignore[arg-type]
        return self._state(batch)

    def retrieve(self, batch_id: str) -> BatchState:
        return self._state(self._retry.call(lambda: self._call(lambda: self._sdk.messages.batches.retrieve(batch_id))))

    def cancel(self, batch_id: str) -> BatchState:
        return self._state(self._retry.call(lambda: self._call(lambda: self._sdk.messages.batches.cancel(batch_id))))

    def results(self, batch_id: str) -> list[ResultLine]:
        """Every result line of an ended batch, read to the end (a broken stream raises, nothing half-read)."""

        def read() -> list[ResultLine]:
            return [_line(item) for item in self._sdk.messages.batches.results(batch_id)]

        lines: list[ResultLine] = self._retry.call(lambda: self._call(read))
        return lines

    def recent(self, since: datetime) -> Iterator[BatchState]:
        """The workspace's batches created at or after ``since``, newest first (pages fetched as needed)."""
        page = self._retry.call(lambda: self._call(lambda: self._sdk.messages.batches.list(limit=100)))
        while True:
            for batch in page.data:
                if batch.created_at < since:
                    return
                yield self._state(batch)
            if not page.has_next_page():
                return
            page = self._retry.call(partial(self._call, page.get_next_page))

    @staticmethod
    def _state(batch: Any) -> BatchState:
        counts = batch.request_counts
        return BatchState(
            batch_id=str(batch.id),
            processing_status=str(batch.processing_status),
            request_counts={
                name: int(getattr(counts, name, 0) or 0)
                for name in ("processing", "succeeded", "errored", "canceled", "expired")
            },
            created_at=batch.created_at,
        )

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except anthropic.APIStatusError as exc:
            raise anthropic_error(exc, self.provider) from None
        except anthropic.APITimeoutError:
            raise ProviderTimeoutError("timed out", provider=self.provider) from None
        except anthropic.APIConnectionError:
            raise ProviderConnectionError("connection failed", provider=self.provider) from None
        except (anthropic.APIResponseValidationError, json.JSONDecodeError, ValueError):
            raise MalformedResponseError("a 2xx body that is not a message batch", provider=self.provider) from None
