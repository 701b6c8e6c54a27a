"""Fault injection: which configured rule, if any, fires for a request.

Each provider has its own ``random.Random`` seeded from its config, so a given sequence of requests always
meets the same faults (a flaky test can be replayed); rules are tried in order and at most one fires per
request (or per batch item). The mechanics of each kind live where they act: the gateway drops connections,
holds responses and truncates bodies; the provider handlers make model output invalid and make runs fail.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass, field

from sandbox.config import PROVIDERS, FaultKind, FaultRule, Provider, ProviderConfig, SandboxConfig

# Acted on by the gateway, for any endpoint.
TRANSPORT_FAULTS: frozenset[FaultKind] = frozenset({"5xx", "timeout", "drop", "malformed_json"})
# Acted on by a provider handler, for the endpoints that produce model output or jobs: these are the kinds an
# Anthropic batch item can meet (`expire` and `cancel` only exist there: the item's result is `expired` or
# `canceled`); which kinds other endpoints act on is their route's `item_faults`.
ITEM_FAULTS: frozenset[FaultKind] = frozenset({"invalid_output", "fail_run", "expire", "cancel"})


@dataclass
class _ProviderRules:
    rules: list[FaultRule]
    rng: random.Random
    fired: list[int] = field(default_factory=list)


class FaultEngine:
    """Rules, fire counters and RNG of every provider."""

    def __init__(self, config: SandboxConfig) -> None:
        self._providers: dict[Provider, _ProviderRules] = {}
        for provider in PROVIDERS:
            self.load(provider, config.section(provider))

    def load(self, provider: Provider, section: ProviderConfig) -> None:
        """(Re)start a provider's rules: counters at zero and the RNG reseeded, so runs are reproducible."""
        rules = [rule.model_copy() for rule in section.faults]
        self._providers[provider] = _ProviderRules(rules, random.Random(section.seed), [0] * len(rules))

    def pick(self, provider: Provider, endpoint: str, text: str, kinds: Collection[str]) -> FaultRule | None:
        """Return the first rule that applies to this request and wins its draw, counting it as fired.

        A rule applies when its kind is one the caller can act on, its endpoint (if any) is this one, its
        ``match`` (if any) occurs in ``text`` and it has not yet fired ``times`` times. Only applicable rules
        draw from the RNG, so a rule scoped to one company consumes no randomness for the others.
        """
        state = self._providers[provider]
        for index, rule in enumerate(state.rules):
            if rule.kind not in kinds:
                continue
            if rule.endpoint is not None and rule.endpoint != endpoint:
                continue
            if rule.match is not None and rule.match not in text:
                continue
            if rule.times is not None and state.fired[index] >= rule.times:
                continue
            if state.rng.random() >= rule.rate:
                continue
            state.fired[index] += 1
            return rule
        return None

    def fired(self, provider: Provider) -> list[int]:
        """How often each of the provider's rules has fired, in rule order."""
        return list(self._providers[provider].fired)
