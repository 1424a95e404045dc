"""Whatever PiAPI sends, parsing ends in a snapshot or a ProviderError, never a crash."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain import JobStatus
from bot.providers.base import ProviderError
from bot.providers.piapi import _task_from_envelope, parse_task

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
# Shapes close to the real task, with every field free to be wrong.
tasks = st.fixed_dictionaries(
    {"task_id": st.one_of(st.text(min_size=1, max_size=12), st.integers())},
    optional={
        "status": st.one_of(
            st.sampled_from(["pending", "Processing", "COMPLETED", "failed", "staged", "?"]),
            json_values,
        ),
        "output": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {},
                optional={
                    "progress": json_values,
                    "task_progress": json_values,
                    "image_url": json_values,
                    "temporary_image_urls": json_values,
                    "intermediate_image_urls": json_values,
                    "actions": json_values,
                    "description": json_values,
                    "seed": json_values,
                    "error_messages": json_values,
                },
            ),
        ),
        "meta": st.one_of(
            json_values,
            st.fixed_dictionaries({"usage": st.dictionaries(st.text(max_size=8), json_values)}),
        ),
        "error": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {"code": json_values, "message": json_values, "raw_message": json_values}
            ),
        ),
    },
)
well_formed = st.fixed_dictionaries({"code": st.just(200), "data": tasks})
# Mostly task-shaped replies (where parsing has work to do), some of anything at all.
envelopes = st.one_of(
    well_formed,
    well_formed,
    well_formed,
    json_values,
    st.fixed_dictionaries({"code": json_values, "data": json_values}),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes)
def test_any_reply_parses_or_raises_a_provider_error(reply: Any) -> None:
    try:
        snapshot = parse_task(_task_from_envelope(reply))
    except ProviderError:
        return
    assert isinstance(snapshot.status, JobStatus)
    assert snapshot.progress is None or 0 <= snapshot.progress <= 100
    assert snapshot.status is not JobStatus.FAILED or snapshot.error is not None
    assert all(isinstance(a.name, str) and a.name for a in snapshot.actions or [])
