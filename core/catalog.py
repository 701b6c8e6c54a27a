"""The action catalog: every bulk action, its batch size and the kind of provider it calls.

The call size is the provider call unit as the product defines it (10 texts per embedding request, 5 websites,
3 companies to score); how many calls one checkpointed task run covers is the provider block's
``calls_per_batch`` (``core.batching``).  The concurrency tag comes from the provider block chosen at run time,
so the same action can run against the local model or a paid API.  ``website_required`` says whether a company
without a website is invalid input for the action (``core.company_checks``).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import UnknownActionError


@dataclass(frozen=True)
class ActionSpec:
    name: str
    call_size: int
    provider_kind: str
    description: str
    default_provider: str
    website_required: bool = False
    #: whether companies are checked for fitness before the batch (``core.company_checks``): actions that send
    #: companies to a provider do; ``update_status`` does not (a company with an empty name can still be deleted)
    checks_input: bool = True


ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec(
            "generate_embeddings",
            10,
            "embeddings",
            "384-d vectors of each company's profile text",
            "local-minilm-embeddings/default",
        ),
        ActionSpec(
            "enrich_companies",
            5,
            "enrichment",
            "website research through Parallel task runs",
            "parallel-enrichment/default",
            website_required=True,
        ),
        ActionSpec(
            "score_llm_adoption",
            3,
            "llm",
            "10-criterion LLM adoption score through an LLM",
            "local-rules-llm/default",
            website_required=True,  # the rubric judges a company's web presence: no website, nothing to judge
        ),
        ActionSpec(
            "reclassify",
            50,
            "database",
            "sector, subsector and business model from the versioned taxonomy (local rules), with history",
            "local-database-writes/default",
            checks_input=False,
        ),
        ActionSpec(
            "rollback",
            50,
            "database",
            "restore what another bulk action changed, from the change history (conflicts reported)",
            "local-database-writes/default",
            checks_input=False,
        ),
        ActionSpec(
            "merge_companies",
            10,  # clusters per call: one outcome per cluster, on its winner
            "database",
            "merge reviewed duplicate clusters of a dedup sweep: fill the winner, mark the losers merged, with history",
            "local-database-writes/default",
            checks_input=False,
        ),
        ActionSpec(
            "dedup_sweep",
            500,
            "database",
            "near-duplicate pairs and clusters from the vectors of one model, the registrable domain and the name",
            "local-database-writes/default",
            checks_input=False,
        ),
        ActionSpec(
            "update_status",
            50,
            "database",
            "set status, priority or needs-review on a selection, with the change history",
            "local-database-writes/default",
            checks_input=False,
        ),
    )
}

DEFAULT_MAX_COMPANIES = 100_000


def get_action(name: str) -> ActionSpec:
    try:
        return ACTIONS[name]
    except KeyError:
        raise UnknownActionError(name, ACTIONS) from None
