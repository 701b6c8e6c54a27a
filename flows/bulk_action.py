"""bulk-action: one entry point for every action, chosen by name (handy in the UI and for scripted runs).

It checks the action name first (an unknown one fails with the list of known actions, before anything is
written) and then runs that action's own flow as a subflow, so the run shows up under its real name too.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from prefect import Flow, flow

from core.catalog import DEFAULT_MAX_COMPANIES, get_action
from core.errors import InputError
from core.selection import Selection

ACTION_FLOWS: dict[str, str] = {
    "generate_embeddings": "flows.generate_embeddings:generate_embeddings",
    "enrich_companies": "flows.enrich_companies:enrich_companies",
    "score_llm_adoption": "flows.score_llm_adoption:score_llm_adoption",
    "update_status": "flows.update_status:update_status",
    "reclassify": "flows.reclassify:reclassify",
    "rollback": "flows.rollback:rollback",
    "dedup_sweep": "flows.dedup_sweep:dedup_sweep",
    "merge_companies": "flows.merge_companies:merge_companies",
}


def action_flow(action: str) -> Flow[..., Any]:
    get_action(action)  # raises UnknownActionError naming the known actions
    module, _, name = ACTION_FLOWS[action].partition(":")
    target: Flow[..., Any] = getattr(importlib.import_module(module), name)
    return target


@flow(name="bulk-action", validate_parameters=True)
def bulk_action(
    action: str,
    selection: Selection | None = None,
    company_ids: list[int] | None = None,
    provider: str | None = None,
    database: str = "default",
    created_by: str = "prefect",
    priority: int = 0,
    bulk_action_id: int | None = None,
    takeover: bool = False,
    failure_threshold: float = 0.5,
    progress_every: int = 5,
    max_companies: int = DEFAULT_MAX_COMPANIES,
    dry_run: bool = False,
    shards: int = 1,
    budget_usd: float | None = None,
    allow_unpriced: bool = False,
    action_parameters: dict[str, Any] | None = None,
) -> Any:
    """Run any action of the catalog by name (its own parameters in ``action_parameters``).

    Args:
        action: the action's name.
        provider: provider block as ``<block-type>/<name>``; empty for the action's default.
        budget_usd: the most the action may spend, USD; reaching it pauses the action (the paid actions:
            generate_embeddings, enrich_companies, score_llm_adoption).  With ``bulk_action_id``, a new budget.
        allow_unpriced: run a paid model without a price, recording its calls at $0 (otherwise refused).
        action_parameters: the action's own parameters (``rescore``, ``status``...), as its flow names them.
        Other arguments: as in each action's flow; those an action does not take (``shards`` for
            ``update_status``) must be left at their defaults.
    """
    parameters: dict[str, Any] = {
        "selection": selection,
        "company_ids": company_ids,
        "database": database,
        "created_by": created_by,
        "priority": priority,
        "bulk_action_id": bulk_action_id,
        "takeover": takeover,
        "failure_threshold": failure_threshold,
        "progress_every": progress_every,
        "max_companies": max_companies,
        "dry_run": dry_run,
        "shards": shards,
        "budget_usd": budget_usd,
        "allow_unpriced": allow_unpriced,
    }
    if provider:
        parameters["provider"] = provider
    target = action_flow(action)
    accepted = set(inspect.signature(target.fn).parameters)
    defaults = inspect.signature(bulk_action.fn).parameters
    unsupported = sorted(
        name for name, value in parameters.items() if name not in accepted and value != defaults[name].default
    )
    if unsupported:
        raise InputError(f"{action} does not take {', '.join(unsupported)}")
    own = dict(action_parameters or {})
    clashing = sorted(set(own) & set(parameters))
    unknown = sorted(set(own) - accepted)
    if clashing or unknown:
        raise InputError(f"action_parameters for {action}: unknown or duplicated {', '.join(clashing + unknown)}")
    return target(**{k: v for k, v in parameters.items() if k in accepted}, **own)
