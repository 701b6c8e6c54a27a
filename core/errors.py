"""One error tree for the whole project.

Drawn here so that every layer agrees on what may be retried::

    BulkAIError
    ├── InputError                      bad request: nothing was created, nothing was lost
    │   ├── UnknownActionError
    │   ├── EmptyCompanyListError
    │   ├── DuplicateCompanyIdsError
    │   ├── UnknownCompanyIdsError
    │   ├── TooManyCompaniesError
    │   ├── EmptySelectionError         a selection (filter, another action's outcomes) matched no company
    │   └── UnknownBulkActionError      a selection names a bulk action that does not exist
    ├── InvalidInputError               one company's own data is unfit for a provider (empty name, a website that
    │                                   is not a public http(s) URL): permanent, failed before any provider call
    ├── ConfigurationError              the deployment is not set up (e.g. a provider limit is missing)
    │   └── MissingProviderLimitError
    ├── ActionStopError                 the batch stops and the action pauses; the companies stay pending
    │   ├── BudgetReachedError          (core.spend) the next call could pass a budget
    │   └── ProviderOutageError         a provider's circuit breaker stayed open too long
    └── ProviderError                   a provider call went wrong
        ├── RetryableProviderError      worth another try: 429, 5xx, timeouts, dropped connections
        │   ├── RateLimitedError        carries the provider's ``retry-after``
        │   ├── ProviderServerError
        │   ├── ProviderTimeoutError
        │   ├── ProviderConnectionError
        │   ├── MalformedResponseError  a 2xx body that is not the JSON it should be (truncated, garbled)
        │   └── ModelWorkerLostError    a local model's worker process died (killed, out of memory)
        └── PermanentProviderError      trying again gives the same answer: 4xx, output that does not parse
            ├── ProviderRequestError
            ├── InvalidProviderOutputError
            └── TaskRunFailedError      an asynchronous provider job (a Parallel task run) ended failed

Retries have one owner per layer: provider clients retry ``RetryableProviderError`` (tenacity); the batch task
isolates companies and turns what still fails into dead jobs; Prefect's task retries only cover our own
infrastructure (the database), never provider errors.  Messages never carry secrets: clients build them from
status codes and provider error bodies, never from request headers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class BulkAIError(Exception):
    """Root of every error this project raises on purpose."""


class InputError(BulkAIError, ValueError):
    """The request of a bulk action is invalid; raised before anything is written."""


class UnknownActionError(InputError):
    def __init__(self, action: str, known: Iterable[str]) -> None:
        self.action = action
        super().__init__(f"unknown action {action!r}; known actions: {', '.join(sorted(known))}")


class EmptyCompanyListError(InputError):
    def __init__(self) -> None:
        super().__init__("the company list is empty: select at least one company")


class DuplicateCompanyIdsError(InputError):
    def __init__(self, duplicates: list[int]) -> None:
        self.duplicates = duplicates
        super().__init__(f"{len(duplicates)} company id(s) appear more than once: {_preview(duplicates)}")


class UnknownCompanyIdsError(InputError):
    def __init__(self, unknown: list[int]) -> None:
        self.unknown = unknown
        super().__init__(f"{len(unknown)} company id(s) are not in the database: {_preview(unknown)}")


class TooManyCompaniesError(InputError):
    def __init__(self, count: int, maximum: int) -> None:
        self.count = count
        self.maximum = maximum
        super().__init__(f"{count} companies exceed the maximum of {maximum} per bulk action; split the selection")


class ConfigurationError(BulkAIError):
    """The deployment is missing something it needs (a block, a limit)."""


class MissingProviderLimitError(ConfigurationError):
    def __init__(self, tag: str) -> None:
        self.tag = tag
        super().__init__(
            f"no concurrency limit for provider tag {tag!r}: refusing to run unlimited. "
            "Provision the limits with `make limits` (python -m deployments.provision_limits)."
        )


class ActionStopError(BulkAIError):
    """The batch must stop and the bulk action pause: not a provider error and not the company's fault.

    The companies not yet done stay pending for the resumed action, no dead job is written, and the engine pauses
    the action with this message as its reason.  A budget that the next call could pass (``BudgetReachedError``)
    and a provider outage longer than its breaker allows (``ProviderOutageError``) both stop this way.
    """

    def __init__(self, message: str) -> None:
        #: outcomes a handler had finished before the stop (``tasks.batch`` records them before stopping)
        self.completed: list[Any] = []
        #: how the stopped batch moved the outcome counts before it stopped (``tasks.batch``)
        self.count_changes: dict[str, int] = {}
        super().__init__(message)


class ProviderOutageError(ActionStopError):
    """A provider's circuit breaker has stayed open longer than its ``pause_after_seconds``."""

    def __init__(self, tag: str, outage_seconds: float) -> None:
        self.tag = tag
        self.outage_seconds = outage_seconds
        super().__init__(
            f"provider {tag!r} unavailable: its circuit breaker has been open for {outage_seconds:.0f} s; "
            "resume the action once the provider is back"
        )


class ProviderError(BulkAIError):
    """A provider call failed. ``provider`` names who failed, never how we authenticated."""

    retryable: bool = False
    #: how many calls were made before giving up (set by the retrying layer)
    attempts: int = 1

    def __init__(self, message: str, *, provider: str = "", status_code: int | None = None) -> None:
        self.provider = provider
        self.status_code = status_code
        prefix = f"{provider}: " if provider else ""
        super().__init__(f"{prefix}{message}")


class RetryableProviderError(ProviderError):
    retryable = True


class RateLimitedError(RetryableProviderError):
    def __init__(self, message: str, *, provider: str = "", retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message, provider=provider, status_code=429)


class ProviderServerError(RetryableProviderError):
    pass


class ProviderTimeoutError(RetryableProviderError):
    pass


class ProviderConnectionError(RetryableProviderError):
    pass


class MalformedResponseError(RetryableProviderError):
    pass


class ModelWorkerLostError(RetryableProviderError):
    """A local model's worker process died mid-call; the next call starts a fresh one."""

    def __init__(self, message: str, *, provider: str = "local-minilm") -> None:
        super().__init__(message, provider=provider)


class PermanentProviderError(ProviderError):
    retryable = False


class ProviderRequestError(PermanentProviderError):
    pass


class InvalidProviderOutputError(PermanentProviderError):
    pass


class TaskRunFailedError(PermanentProviderError):
    """The provider ran the job and it failed: not billed, and trying again fails the same way."""

    def __init__(self, message: str, *, run_id: str, ref_id: str | None = None, provider: str = "") -> None:
        self.run_id = run_id
        self.ref_id = ref_id
        super().__init__(message, provider=provider, status_code=424)


def _preview(ids: list[int], limit: int = 20) -> str:
    shown = ", ".join(str(i) for i in ids[:limit])
    return shown + (f", … (+{len(ids) - limit} more)" if len(ids) > limit else "")


class EmptySelectionError(InputError):
    """A selection matched no company; ``selection`` says what was asked, so the engine can report it and stop."""

    def __init__(self, selection: str) -> None:
        self.selection = selection
        super().__init__(f"no company matches the selection: {selection}")


class UnknownBulkActionError(InputError):
    def __init__(self, bulk_action_id: int) -> None:
        self.bulk_action_id = bulk_action_id
        super().__init__(f"bulk action {bulk_action_id} does not exist: a selection can only name an existing one")


class InvalidInputError(BulkAIError):
    """One company's data is unfit to send to a provider (``core.company_checks``): an empty name, a website that is
    not a public http(s) URL, a missing website an action needs.

    Raised per company while an action runs (not a bad request: the other companies go on).  Permanent: the same
    data fails the same way until someone fixes the company, which is flagged for review.  No provider call was
    made, so nothing was paid.  The message is the check's reason and never carries secrets.
    """

    retryable = False
    #: provider calls made for this company: none
    attempts = 0

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
