"""Sandbox configuration: one section per provider, validated with pydantic.

The same models validate the JSON config file, the CLI's ``--set`` overrides and the admin endpoint's partial
updates, so a typo in a test ("requests_per_min") fails loudly instead of silently meaning "no limit".
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Provider = Literal["parallel", "groq", "anthropic", "workers_ai", "openai"]
PROVIDERS: tuple[Provider, ...] = get_args(Provider)

FaultKind = Literal["5xx", "timeout", "drop", "malformed_json", "invalid_output", "fail_run", "expire", "cancel"]
FAULT_KINDS: tuple[FaultKind, ...] = get_args(FaultKind)

_DATED_SNAPSHOT = re.compile(r"-\d{8}$")


def model_alias(model: str) -> str:
    """A dated snapshot's undated alias ("claude-haiku-4-5-20251001" -> "claude-haiku-4-5"); prices and noise
    rates are listed under aliases, clients often send snapshots."""
    return _DATED_SNAPSHOT.sub("", model)


NoiseRate = Annotated[float, Field(ge=0.0, le=1.0)]

# Cheaper models answer level questions one step off the truth at these rates (see sandbox.truth); models not
# listed are premium and answer the truth. A section that does not name `model_noise` gets its provider's map.
DEFAULT_MODEL_NOISE: Mapping[Provider, Mapping[str, float]] = {
    "groq": {"llama-3.1-8b-instant": 0.2, "openai/gpt-oss-20b": 0.1},
    "anthropic": {"claude-haiku-4-5": 0.1},
}


class ConfigError(ValueError):
    """A configuration that cannot be applied; the message says which provider and field."""


class FaultRule(BaseModel):
    """One fault-injection rule of a provider.

    ``rate`` draws from the provider's seeded RNG, so a given sequence of requests always sees the same
    faults. ``match`` must appear in the request body (for GET requests: in the path), which lets a test
    poison one chosen company; ``times`` caps how often the rule fires ("fail twice, then succeed");
    ``endpoint`` restricts the rule to one endpoint name (as shown in the stats), e.g. ``create_run``.
    """

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    match: str | None = None
    times: int | None = Field(default=None, ge=0)
    endpoint: str | None = None
    status: int = Field(default=500, ge=500, le=599, description="HTTP status of a 5xx fault")


class ProviderConfig(BaseModel):
    """How one provider behaves: latency, job duration, limits and faults."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(default=0.0, ge=0.0, description="added to every request of this provider")
    job_duration_s: float = Field(default=1.0, ge=0.0, description="Parallel task runs and Anthropic batches")
    requests_per_minute: int | None = Field(default=None, ge=1, description="None means unlimited")
    max_concurrency: int | None = Field(
        default=None, ge=1, description="in-flight requests; for Parallel: active (queued/running) task runs"
    )
    rate_window_s: float = Field(
        default=60.0, gt=0.0, description="length of the requests_per_minute window; only tests shorten it"
    )
    timeout_s: float = Field(default=60.0, ge=0.0, description="how long a `timeout` fault holds the response")
    seed: int = Field(default=0, description="seed of this provider's fault RNG")
    faults: list[FaultRule] = Field(default_factory=list)
    model_noise: dict[str, NoiseRate] = Field(
        default_factory=dict, description="model -> rate (0..1) at which its level answers are one step off the truth"
    )

    def noise_for(self, model: str) -> float:
        """The noise rate of ``model`` (or of its undated alias); 0 for models not listed."""
        return self.model_noise.get(model, self.model_noise.get(model_alias(model), 0.0))


class SandboxConfig(BaseModel):
    """The whole sandbox configuration: one :class:`ProviderConfig` per provider."""

    model_config = ConfigDict(extra="forbid")

    parallel: ProviderConfig = Field(default_factory=ProviderConfig)
    groq: ProviderConfig = Field(default_factory=ProviderConfig)
    anthropic: ProviderConfig = Field(default_factory=ProviderConfig)
    workers_ai: ProviderConfig = Field(default_factory=ProviderConfig)
    openai: ProviderConfig = Field(default_factory=ProviderConfig)

    @model_validator(mode="before")
    @classmethod
    def _default_model_noise(cls, data: Any) -> Any:
        """Give each section that does not set ``model_noise`` its provider's default map.

        A field default cannot differ per provider (all sections share one model), and a partial section such
        as ``{"groq": {"requests_per_minute": 30}}`` must not silently make GROQ's cheap models exact.
        """
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        for provider, noise in DEFAULT_MODEL_NOISE.items():
            section = data.get(provider)
            if section is None:
                data[provider] = {"model_noise": dict(noise)}
            elif isinstance(section, Mapping) and "model_noise" not in section:
                data[provider] = {**section, "model_noise": dict(noise)}
            elif isinstance(section, ProviderConfig) and "model_noise" not in section.model_fields_set:
                data[provider] = {**section.model_dump(exclude_unset=True), "model_noise": dict(noise)}
        return data

    def section(self, provider: Provider) -> ProviderConfig:
        """Return the configuration of ``provider``."""
        section = getattr(self, provider)
        assert isinstance(section, ProviderConfig)
        return section

    def patched(self, patch: Mapping[str, Any]) -> SandboxConfig:
        """Return a copy with ``patch`` (``{provider: {field: value}}``) applied field by field.

        A provider's fields not named in the patch keep their value; ``faults`` and ``model_noise`` are replaced
        as a whole.
        Raises :class:`ConfigError` on an unknown provider or an invalid value.
        """
        if not isinstance(patch, Mapping):
            raise ConfigError("a config update is an object {provider: {field: value}}")
        data = self.model_dump()
        for provider, fields in patch.items():
            if provider not in PROVIDERS:
                raise ConfigError(f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}")
            if not isinstance(fields, Mapping):
                raise ConfigError(f"settings of {provider!r} must be an object")
            data[provider] = {**data[provider], **fields}
        return validate_config(data)


def validate_config(data: Any) -> SandboxConfig:
    """Validate raw data into a :class:`SandboxConfig`, turning pydantic errors into :class:`ConfigError`."""
    try:
        return SandboxConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(str(exc)) from exc


def load_config(path: str | Path) -> SandboxConfig:
    """Read a JSON config file (``{provider: {field: value}}``; missing providers get defaults)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from exc
    return validate_config(data)


def as_config(config: SandboxConfig | Mapping[str, Any] | None) -> SandboxConfig:
    """Accept a ready config, a plain mapping or nothing (all defaults)."""
    if config is None:
        return SandboxConfig()
    if isinstance(config, SandboxConfig):
        return config.model_copy(deep=True)
    return validate_config(dict(config))
