"""Parallel Task API client (enrichment): create a task run, wait for its result, validate what came back.

Runs last from seconds to an hour, so waiting uses the blocking result endpoint in *slices*
(``GET .../result?timeout=S`` with S ≤ ``poll_slice_s``): no request is held open longer than a proxy or load
balancer tolerates, yet the answer arrives the moment the run ends (no polling interval to lose).  An answer
of 408 means "still running" and the loop goes on until the run's own deadline (``run_timeout_s``, default
1 h); a run that outlives it raises ``ProviderTimeoutError`` (retryable: the next attempt may be faster).

A run that *failed* (result endpoint 424, or ``status: failed``) is billed nothing and would fail the same
way again, so it raises ``TaskRunFailedError`` (permanent), with the reason read from the status endpoint.

``max_active_runs`` (optional) caps the runs this process has active: a creation waits for a slot, freed when
``wait_result`` sees a run end.  It lets the caller keep more batches in flight than ``cap / 5`` without ever
being refused by the provider's active-run cap (see ``blocks.enrichment``).

Every call goes through ``providers.http.send_json`` (error mapping) and ``RetryPolicy`` (2 retries,
exponential from 500 ms, retryable errors only, ``retry-after`` honoured on 429).  One caveat the API
imposes: run creation has no idempotency key, so a create whose answer is lost (timeout, dropped or garbled
response) and is retried may start a second, billed run; callers journal run ids to avoid that on reruns.

Prefect-free: the block in ``blocks.enrichment`` builds this client.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx

from core.errors import (
    InvalidProviderOutputError,
    ProviderError,
    ProviderRequestError,
    ProviderServerError,
    ProviderTimeoutError,
    TaskRunFailedError,
)
from providers.http import RetryPolicy, send_json

PROVIDER = "parallel"
METADATA_KEY_CHARS = 16
METADATA_VALUE_CHARS = 512
#: the result endpoint's "still running after ``timeout``" and "the run failed" answers
STILL_RUNNING = 408
RUN_FAILED = 424


@dataclass(frozen=True)
class TaskRunResult:
    """A completed run: its JSON ``content``, the per-field ``basis`` and the whole response body."""

    run_id: str
    content: dict[str, Any]
    basis: list[Any]
    raw: dict[str, Any]


class ParallelClient:
    """The three Task API calls this project needs, over one shared ``httpx.Client`` (thread-safe)."""

    provider = PROVIDER

    def __init__(
        self,
        *,
        http: httpx.Client,
        processor: str = "base",
        run_timeout_s: float = 3600.0,
        poll_slice_s: int = 60,
        request_timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        max_active_runs: int | None = None,
    ) -> None:
        if poll_slice_s < 1:
            raise ValueError("poll_slice_s must be at least 1 (the API takes whole seconds)")
        self._http = http
        self.processor = processor
        self.run_timeout_s = run_timeout_s
        self.poll_slice_s = poll_slice_s
        self.request_timeout_s = request_timeout_s
        self._retry = retry or RetryPolicy()
        # Runs this process has created and not yet seen end, capped when ``max_active_runs`` is set.
        self._run_slots = threading.BoundedSemaphore(max_active_runs) if max_active_runs else None
        self._slot_holders: set[str] = set()
        self._slot_lock = threading.Lock()
        # Only used to scrub it from error text, should a provider ever echo it back.
        self._secret = http.headers.get("x-api-key") or ""

    # --- the API ---------------------------------------------------------------------------------------

    def create_run(
        self,
        task_input: str | Mapping[str, Any],
        output_schema: Mapping[str, Any],
        *,
        processor: str | None = None,
        metadata: Mapping[str, str | int | float | bool] | None = None,
    ) -> str:
        """Start a task run and return its ``run_id`` (the run is billed from here on).

        With ``max_active_runs``, first waits for one of this process's runs to end if that many are active;
        the slot is given back when ``wait_result`` sees the run end (or gives up on it).
        """
        check_metadata(metadata)
        body: dict[str, Any] = {
            "processor": processor or self.processor,
            "input": task_input if isinstance(task_input, str) else dict(task_input),
            "task_spec": {"output_schema": {"type": "json", "json_schema": dict(output_schema)}},
        }
        if metadata:
            body["metadata"] = dict(metadata)
        if self._run_slots is not None:
            self._run_slots.acquire()
        try:
            with self._scrubbed():
                answer = self._retry.call(
                    lambda: send_json(
                        self._http,
                        "POST",
                        "/v1/tasks/runs",
                        provider=PROVIDER,
                        json_body=body,
                        timeout=self.request_timeout_s,
                    )
                )
            run_id = answer.get("run_id") if isinstance(answer, dict) else None
            if not isinstance(run_id, str) or not run_id:
                raise InvalidProviderOutputError("create answered without a run_id", provider=PROVIDER)
        except BaseException:
            if self._run_slots is not None:
                self._run_slots.release()
            raise
        if self._run_slots is not None:
            with self._slot_lock:
                self._slot_holders.add(run_id)
        return run_id

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run object: ``status``, ``is_active``, ``error`` ..."""
        with self._scrubbed():
            answer = self._retry.call(
                lambda: send_json(
                    self._http, "GET", f"/v1/tasks/runs/{run_id}", provider=PROVIDER, timeout=self.request_timeout_s
                )
            )
        if not isinstance(answer, dict):
            raise InvalidProviderOutputError("run status is not an object", provider=PROVIDER)
        return answer

    def wait_result(self, run_id: str, timeout_s: float | None = None) -> TaskRunResult:
        """Block until the run completes (slice by slice), fails, or outlives ``timeout_s``."""
        limit = self.run_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit
        try:
            with self._scrubbed():
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise ProviderTimeoutError(
                            f"run {run_id} still active after {limit:g}s (the run's deadline)", provider=PROVIDER
                        )
                    slice_s = max(1, min(self.poll_slice_s, math.ceil(remaining)))
                    body = self._retry.call(partial(self._result_slice, run_id, slice_s))
                    if body is not None:
                        return _completed(run_id, body)
        finally:
            self._release_slot(run_id)

    @property
    def active_runs(self) -> int:
        """Runs created here whose end has not been seen yet (tracked only with ``max_active_runs``)."""
        with self._slot_lock:
            return len(self._slot_holders)

    def abandon(self, run_id: str) -> None:
        """Give back the run slot of a run nobody will wait for (idempotent; ``wait_result`` does it itself)."""
        self._release_slot(run_id)

    # --- internals -------------------------------------------------------------------------------------

    def _result_slice(self, run_id: str, slice_s: int) -> dict[str, Any] | None:
        """One blocking result request: the body when done, ``None`` while the run is still active."""
        try:
            body = send_json(
                self._http,
                "GET",
                f"/v1/tasks/runs/{run_id}/result",
                provider=PROVIDER,
                params={"timeout": slice_s},
                # the server holds the request up to ``slice_s``: the read timeout must outlast it
                timeout=httpx.Timeout(self.request_timeout_s, read=slice_s + self.request_timeout_s),
            )
        except ProviderServerError as error:
            if error.status_code == STILL_RUNNING:
                return None
            raise
        except ProviderRequestError as error:
            if error.status_code == RUN_FAILED:
                raise self._failure(run_id, str(error)) from None
            raise
        if not isinstance(body, dict):
            raise InvalidProviderOutputError("result is not an object", provider=PROVIDER)
        status = (body.get("run") or {}).get("status") if isinstance(body.get("run"), dict) else None
        if status in ("failed", "cancelled"):
            raise self._failure(run_id, f"run ended {status}")
        return body

    def _release_slot(self, run_id: str) -> None:
        if self._run_slots is None:
            return
        with self._slot_lock:
            if run_id not in self._slot_holders:
                return
            self._slot_holders.discard(run_id)
        self._run_slots.release()

    def _failure(self, run_id: str, fallback: str) -> TaskRunFailedError:
        """Why the run failed, from the status endpoint (the authoritative ``error``), else ``fallback``."""
        try:
            error = self.get_run(run_id).get("error")
        except ProviderError:
            error = None
        if isinstance(error, dict) and error.get("message"):
            ref = error.get("ref_id")
            return TaskRunFailedError(
                f"run {run_id} failed: {str(error['message'])[:300]}",
                run_id=run_id,
                ref_id=str(ref) if ref else None,
                provider=PROVIDER,
            )
        return TaskRunFailedError(f"run {run_id} failed: {fallback[:300]}", run_id=run_id, provider=PROVIDER)

    @contextmanager
    def _scrubbed(self) -> Iterator[None]:
        """Belt and braces: error text is built from status codes and provider bodies, never from our
        headers, but should a provider ever echo the key back, it is masked before anything can log it."""
        try:
            yield
        except ProviderError as error:
            if self._secret and any(self._secret in str(arg) for arg in error.args):
                error.args = tuple(str(arg).replace(self._secret, "***") for arg in error.args)
            raise


def check_metadata(metadata: Mapping[str, Any] | None) -> None:
    """The API's metadata limits, checked before paying for a request that would be refused."""
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not 0 < len(key) <= METADATA_KEY_CHARS:
            raise ValueError(f"metadata key {key!r} must be 1-{METADATA_KEY_CHARS} characters")
        if not isinstance(value, str | int | float | bool):
            raise ValueError(f"metadata value of {key!r} must be a string, number or boolean")
        if isinstance(value, str) and len(value) > METADATA_VALUE_CHARS:
            raise ValueError(f"metadata value of {key!r} is longer than {METADATA_VALUE_CHARS} characters")


def _completed(run_id: str, body: dict[str, Any]) -> TaskRunResult:
    output = body.get("output")
    if not isinstance(output, dict) or output.get("type") != "json" or not isinstance(output.get("content"), dict):
        raise InvalidProviderOutputError(f"run {run_id} returned no JSON object output", provider=PROVIDER)
    basis = output.get("basis")
    return TaskRunResult(
        run_id=run_id, content=output["content"], basis=basis if isinstance(basis, list) else [], raw=body
    )


# --- the enrichment task: input, output schema, validation ------------------------------------------------

#: ownership labels, the same vocabulary the company table already uses
OWNERSHIP_TYPES: tuple[str, ...] = (
    "family-owned",
    "founder-led",
    "private equity",
    "publicly listed",
    "cooperative",
    "subsidiary",
    "state-owned",
    "other",
    "unknown",
)


def _text(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


def _email(language: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": (
            f"A short first-contact sales email written in {language} to this company's decision maker: it "
            "refers to what the company actually does, invents no facts, stays under 120 words and is signed "
            "with the placeholder {{sender_name}}."
        ),
        "properties": {
            "subject": _text(f"Subject line in {language}, under 80 characters."),
            "body": _text(f"Plain-text email body in {language}."),
        },
        "required": ["subject", "body"],
        "additionalProperties": False,
    }


#: The output JSON Schema.  Parallel asks for an object root, every property required, no additional
#: properties and shallow nesting; instructions live in the field descriptions (its "prompt").
ENRICHMENT_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "products": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The company's main products or services, most important first, at most 10, "
            "each a short noun phrase in English. Empty if none can be found.",
        },
        "ownership_type": {
            "type": "string",
            "enum": list(OWNERSHIP_TYPES),
            "description": "Who owns the company, as one of the listed labels; 'unknown' when no source says.",
        },
        "owner_names": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Names of the owners (families, persons, parent company, investors) as published. "
            "Empty if unknown.",
        },
        "activity_description": _text(
            "One or two sentences in English on what the company does, for whom and where, from its own website first."
        ),
        "contacts": {
            "type": "array",
            "description": "Up to 5 decision makers or general contacts published by the company or in "
            "public registers. Use an empty string for an unpublished email or phone; never guess them.",
            "items": {
                "type": "object",
                "properties": {
                    "name": _text("Full name of the person, or the department for a general contact."),
                    "role": _text("Job title or function, in English."),
                    "email": _text("Published email address, or an empty string."),
                    "phone": _text("Published phone number in international format, or an empty string."),
                },
                "required": ["name", "role", "email", "phone"],
                "additionalProperties": False,
            },
        },
        "outreach_email_en": _email("English"),
        "outreach_email_nl": _email("Dutch"),
    },
    "required": [
        "products",
        "ownership_type",
        "owner_names",
        "activity_description",
        "contacts",
        "outreach_email_en",
        "outreach_email_nl",
    ],
    "additionalProperties": False,
}


def enrichment_input(name: str, website: str | None, country: str | None) -> dict[str, str]:
    """The run's input: the fewest fields that identify the company (name *and* website disambiguate)."""
    task_input = {"company_name": name}
    if website:
        task_input["company_website"] = website
    if country:
        task_input["country"] = country
    return task_input


@dataclass(frozen=True)
class Contact:
    name: str
    role: str
    email: str
    phone: str


@dataclass(frozen=True)
class OutreachEmail:
    subject: str
    body: str


@dataclass(frozen=True)
class CompanyEnrichment:
    """The validated content of an enrichment run: only what the rest of the project relies on."""

    products: list[str]
    ownership_type: str
    owner_names: list[str]
    activity_description: str
    contacts: list[Contact]
    outreach_emails: dict[str, OutreachEmail]  # "en", "nl"

    def to_json(self) -> dict[str, Any]:
        """The profile's enrichment part (nested where the schema had to stay flat)."""
        return {
            "products": list(self.products),
            "ownership": {"type": self.ownership_type, "owners": list(self.owner_names)},
            "activity_description": self.activity_description,
            "contacts": [vars(c).copy() for c in self.contacts],
            "outreach_emails": {lang: vars(e).copy() for lang, e in self.outreach_emails.items()},
        }


def parse_enrichment(content: Mapping[str, Any]) -> CompanyEnrichment:
    """Check a run's content against what we store; any missing or mistyped field is a permanent error.

    Messages name the fields, never their values (those are company data, not for dead-job text).
    """
    reader = _Reader(content)
    enrichment = CompanyEnrichment(
        products=reader.strings("products"),
        ownership_type=reader.string("ownership_type"),
        owner_names=reader.strings("owner_names"),
        activity_description=reader.string("activity_description"),
        contacts=[
            Contact(**{k: reader.string(k, item, f"contacts[{i}]") for k in ("name", "role", "email", "phone")})
            for i, item in enumerate(reader.objects("contacts"))
        ],
        outreach_emails={lang: reader.email(f"outreach_email_{lang}") for lang in ("en", "nl")},
    )
    if reader.problems:
        raise InvalidProviderOutputError(
            "enrichment output is missing or mistypes: " + ", ".join(reader.problems), provider=PROVIDER
        )
    return enrichment


class _Reader:
    """Typed access that collects every problem (so one error names all bad fields) instead of stopping."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.problems: list[str] = []

    def _get(self, key: str, where: Mapping[str, Any] | None, path: str, kind: type, label: str) -> Any:
        source = self.root if where is None else where
        value = source.get(key) if isinstance(source, Mapping) else None
        if not isinstance(value, kind):
            name = f"{path}.{key}" if path else key
            self.problems.append(f"{name} ({'missing' if value is None else 'not ' + label})")
            return None
        return value

    def string(self, key: str, where: Mapping[str, Any] | None = None, path: str = "") -> str:
        value = self._get(key, where, path, str, "a string")
        return value if isinstance(value, str) else ""

    def strings(self, key: str) -> list[str]:
        value = self._get(key, None, "", list, "a list")
        if value is None:
            return []
        if not all(isinstance(v, str) for v in value):
            self.problems.append(f"{key} (not a list of strings)")
        return [v for v in value if isinstance(v, str)]

    def email(self, key: str) -> OutreachEmail:
        found = self._get(key, None, "", dict, "an object")
        if found is None:  # already recorded as a problem; do not report its fields again
            return OutreachEmail("", "")
        return OutreachEmail(self.string("subject", found, key), self.string("body", found, key))

    def objects(self, key: str) -> list[Mapping[str, Any]]:
        value = self._get(key, None, "", list, "a list")
        if value is None:
            return []
        if not all(isinstance(v, dict) for v in value):
            self.problems.append(f"{key} (not a list of objects)")
        return [v for v in value if isinstance(v, dict)]
