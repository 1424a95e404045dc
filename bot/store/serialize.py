"""A Job as a plain, JSON-ready dict and back, for any store backend.

Every field of `Job` is written, so nothing is lost on the way through the database.
Reading is tolerant: keys a newer field list expects but old data lacks take the
field's default, and keys this code does not know are ignored.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

from bot.domain import Action, Cost, Job, JobError, JobStatus, Operation

_REQUIRED = ("id", "operation", "provider")


def _optional_list(value: list[Any] | None) -> list[Any] | None:
    # A copy, and None kept apart from []: "no tiles yet" differs from "no tiles".
    return None if value is None else list(value)


# Fields that are not JSON values as they stand. Anything else (str, int, float, None)
# passes through unchanged.
_ENCODERS: dict[str, Callable[[Any], Any]] = {
    "operation": lambda op: op.to_dict(),
    "status": lambda status: status.value,
    # Deep copy: the dict is the job's live state and may be mutated after this call.
    "provider_data": lambda data: copy.deepcopy(dict(data)),
    "delivery_hint": lambda data: dict(data),
    "tiles": _optional_list,
    "prompts": _optional_list,
    "actions": lambda actions: [action.to_dict() for action in actions],
    "cost": lambda cost: None if cost is None else cost.to_dict(),
    "error": lambda error: None if error is None else error.to_dict(),
}

_DECODERS: dict[str, Callable[[Any], Any]] = {
    "operation": Operation.from_dict,
    "status": JobStatus,
    "provider_data": lambda data: dict(data or {}),
    "delivery_hint": lambda data: dict(data or {}),
    "tiles": _optional_list,
    "prompts": _optional_list,
    "actions": lambda actions: [Action.from_dict(a) for a in actions or ()],
    "cost": lambda cost: None if cost is None else Cost.from_dict(cost),
    "error": lambda error: None if error is None else JobError.from_dict(error),
}

_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(Job))


def job_to_dict(job: Job) -> dict[str, Any]:
    """Every field of `job` as JSON-ready values (no Decimal, enum or dataclass left)."""
    return {name: _ENCODERS.get(name, _identity)(getattr(job, name)) for name in _JOB_FIELDS}


def job_from_dict(data: dict[str, Any]) -> Job:
    """The inverse of `job_to_dict`; missing optional keys take the field's default."""
    missing = [name for name in _REQUIRED if data.get(name) is None]
    if missing:
        raise ValueError(f"stored job lacks required field(s): {', '.join(missing)}")
    kwargs = {
        name: _DECODERS.get(name, _identity)(data[name]) for name in _JOB_FIELDS if name in data
    }
    return Job(**kwargs)


def _identity(value: Any) -> Any:
    return value
