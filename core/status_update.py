"""What ``update_status`` may set on a selection of companies, validated before anything is written.

The action changes three things people manage by hand at scale: whether a company is live (``active``) or
``deleted`` (soft: the row, its history and its results stay), its ``priority`` (scheduled work runs the highest
first), and the review flag with its reason.  ``merged`` is not settable here: a merge has a surviving company
and its own history, and is undone by rollback, so merged companies are refused one by one with that reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import InputError
from core.schema import CompanyStatus

PRIORITY_RANGE = (-1000, 1000)


class StatusUpdate(BaseModel):
    """The fields to set; at least one.  ``needs_review=true`` needs a ``review_reason``; ``false`` clears it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["active", "deleted"] | None = Field(default=None, description="active or deleted (soft delete).")
    priority: int | None = Field(
        default=None, ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1], description="Higher runs first in scheduled work."
    )
    needs_review: bool | None = Field(default=None, description="Flag (true) or clear (false) for human review.")
    review_reason: str | None = Field(default=None, max_length=2000, description="Why; required with true.")

    @model_validator(mode="after")
    def _consistent(self) -> StatusUpdate:
        if self.review_reason is not None and self.needs_review is not True:
            raise ValueError("review_reason goes with needs_review=true")
        if self.status is None and self.priority is None and self.needs_review is None:
            raise ValueError("say what to set: status, priority or needs_review")
        if self.needs_review is True and not (self.review_reason or "").strip():
            raise ValueError("needs_review=true needs a review_reason saying why")
        return self

    def column_values(self) -> dict[str, Any]:
        """The company columns this update sets."""
        values: dict[str, Any] = {}
        if self.status is not None:
            values["status"] = CompanyStatus(self.status)
        if self.priority is not None:
            values["priority"] = self.priority
        if self.needs_review is not None:
            values["needs_review"] = self.needs_review
            values["review_reason"] = (self.review_reason or "").strip() if self.needs_review else None
        return values


def parse_status_update(values: Mapping[str, Any]) -> StatusUpdate:
    """``values`` as a :class:`StatusUpdate`, or an ``InputError`` that says what is wrong in one line."""
    try:
        return StatusUpdate.model_validate(dict(values))
    except ValidationError as exc:
        problems = "; ".join(_problem(e["loc"], str(e["msg"])) for e in exc.errors())
        raise InputError(f"invalid update_status: {problems}") from None


def _problem(location: tuple[int | str, ...], message: str) -> str:
    where = ".".join(str(part) for part in location)
    message = message.removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
