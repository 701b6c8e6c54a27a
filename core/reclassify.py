"""What a reclassify changes on one company: outdated or not, and the new classification fields.

A company is *outdated* when it was never classified, was classified under another taxonomy version, or the
text it was classified from (``core.classify_rules.input_text_sha256``: NACE code, industry, activity, name)
has changed since.  Without ``force`` only outdated companies are reclassified, so rerunning a reclassify over
the same companies changes nothing; with ``force`` every company is classified again (and still only the
fields that come out different are written, each with its history row).

``target_column`` (column mode) reclassifies one field; the others keep their values, and the bookkeeping
fields (version, mode, model, input hash) are written with it, since they describe the latest classification.
A company no rule can place (no usable NACE code, no keyword) is flagged ``needs_review`` with the reason,
as the product does with an LLM answer it cannot use.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from core.classify_rules import Classification, classify, input_text_sha256
from core.schema import Company
from core.taxonomy import TAXONOMY_VERSION

#: what local mode records as its model: the rules are versioned with the taxonomy
RULES_MODEL = f"local-rules-{TAXONOMY_VERSION}"
CLASSIFIED_FIELDS = ("sector", "subsector", "business_model")
UNPLACED_REASON = "reclassify: no usable NACE code and no keyword rule matched; classify by hand"


#: the columns a reclassify reads of a company, in :class:`ClassifyInput`'s field order
CLASSIFY_COLUMNS = (
    Company.id,
    Company.name,
    Company.industry,
    Company.nace_code,
    Company.activity_description,
    Company.sector,
    Company.subsector,
    Company.business_model,
    Company.taxonomy_version,
    Company.classification_input_sha256,
)


@dataclass(frozen=True)
class ClassifyInput:
    """The columns a reclassify reads of one company."""

    id: int
    name: str | None
    industry: str | None
    nace_code: str | None
    activity_description: str | None
    sector: str | None
    subsector: str | None
    business_model: str | None
    taxonomy_version: str | None
    classification_input_sha256: str | None

    @cached_property  # read twice per company (outdated? and what to record)
    def input_sha256(self) -> str:
        return input_text_sha256(self.nace_code, self.industry, self.activity_description, self.name)

    def outdated(self) -> bool:
        return self.taxonomy_version != TAXONOMY_VERSION or self.classification_input_sha256 != self.input_sha256


def check_target_column(target_column: str | None) -> None:
    if target_column is not None and target_column not in CLASSIFIED_FIELDS:
        from core.errors import InputError

        raise InputError(f"target_column must be one of {', '.join(CLASSIFIED_FIELDS)} (got {target_column!r})")


def local_classification(row: ClassifyInput) -> Classification:
    return classify(row.nace_code, row.industry, row.activity_description, row.name)


def wanted_values(
    row: ClassifyInput, found: Classification, *, mode: str, model: str, target_column: str | None
) -> dict[str, Any]:
    """The fields to set: the classification (or its one ``target_column``) and how it was made."""
    values: dict[str, Any] = {
        "sector": found.sector,
        "subsector": found.subsector,
        "business_model": found.business_model,
    }
    if target_column is not None:
        values = {target_column: values[target_column]}
    values.update(
        taxonomy_version=TAXONOMY_VERSION,
        classification_mode=mode,
        classification_model=model,
        classification_input_sha256=row.input_sha256,
    )
    if found.sector is None and (target_column in (None, "sector", "subsector")):
        values.update(needs_review=True, review_reason=UNPLACED_REASON)
    return values
