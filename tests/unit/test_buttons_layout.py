from __future__ import annotations

import logging
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.discord.buttons_layout import (
    MAX_ACTION_LENGTH,
    ButtonSpec,
    custom_id_for,
    describe_action,
    humanise,
    layout_buttons,
    parse_custom_id,
)

JOB = "0123456789ab"
GRID = [
    "pick:1",
    "pick:2",
    "pick:3",
    "pick:4",
    "reroll",
    "vary_grid:1",
    "vary_grid:2",
    "vary_grid:3",
    "vary_grid:4",
]
UPSCALED = [
    "upscale_subtle",
    "upscale_creative",
    "vary_subtle",
    "vary_strong",
    "vary_region",
    "zoom_out_2x",
    "zoom_out_1_5x",
    "zoom_custom",
    "make_square",
    "pan_left",
    "pan_right",
    "pan_up",
    "pan_down",
]


def rows(buttons: list[ButtonSpec]) -> list[list[tuple[str | None, str | None]]]:
    """Buttons as rows of (label, emoji), the way a member sees them."""
    out: list[list[tuple[str | None, str | None]]] = []
    for b in buttons:
        while len(out) <= b.row:
            out.append([])
        out[b.row].append((b.label, b.emoji))
    return out


def test_grid_rows_match_midjourney_whatever_the_provider_order() -> None:
    shuffled = GRID[:]
    random.Random(7).shuffle(shuffled)
    expected = [
        [("U1", None), ("U2", None), ("U3", None), ("U4", None), (None, "🔄")],
        [("V1", None), ("V2", None), ("V3", None), ("V4", None)],
    ]
    assert rows(layout_buttons(GRID)) == expected
    assert rows(layout_buttons(shuffled)) == expected
    assert [b.action for b in layout_buttons(shuffled)] == GRID


def test_upscaled_rows_match_midjourney_and_make_square_only_when_not_square() -> None:
    provider_order = list(reversed(UPSCALED))
    assert rows(layout_buttons(provider_order, square=False)) == [
        [("Upscale (Subtle)", None), ("Upscale (Creative)", None)],
        [("Vary (Subtle)", "🪄"), ("Vary (Strong)", "🪄"), ("Vary (Region)", "🖌️")],
        [
            ("Zoom Out 2x", "🔍"),
            ("Zoom Out 1.5x", "🔍"),
            ("Custom Zoom", "🔍"),
            ("Make Square", "↔️"),
        ],
        [(None, "⬅️"), (None, "➡️"), (None, "⬆️"), (None, "⬇️")],
    ]
    square = layout_buttons(provider_order, square=True)
    assert "make_square" not in {b.action for b in square}
    assert len(square) == len(UPSCALED) - 1


def test_upscale_family_labels() -> None:
    labels = [
        b.label
        for b in layout_buttons(
            ["redo_upscale_creative", "upscale_4x", "redo_upscale_subtle", "upscale_2x"]
        )
    ]
    assert labels == [
        "Redo Upscale (Subtle)",
        "Redo Upscale (Creative)",
        "Upscale (2x)",
        "Upscale (4x)",
    ]


def test_extras_edit_beside_vary_and_seed_in_last_row_with_unknowns() -> None:
    buttons = layout_buttons(
        [*UPSCALED, "provider:foo_bar_2x"], square=False, extra=["seed", "edit"]
    )
    by_action = {b.action: b for b in buttons}
    assert [b.label for b in buttons if b.row == by_action["vary_region"].row] == [
        "Vary (Subtle)",
        "Vary (Strong)",
        "Vary (Region)",
        "Edit",
    ]
    assert (by_action["edit"].emoji, by_action["seed"].emoji) == ("✏️", "🌱")
    last = max(b.row for b in buttons)
    assert last == 4
    assert [(b.label, b.emoji) for b in buttons if b.row == last] == [
        ("Seed", "🌱"),
        ("Foo Bar 2x", None),
    ]


def test_unknown_actions_are_humanised_kept_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.discord.buttons_layout")
    name = "provider:describe_all_unique_for_log_test"
    buttons = layout_buttons(["pick:1", "provider:describe_all", name])
    assert [b.label for b in buttons] == ["U1", "Describe All", "Describe All Unique For Log Test"]
    assert buttons[1].row == buttons[2].row == 1  # a last row of their own
    layout_buttons([name])
    assert sum(name in r.getMessage() for r in caplog.records) == 1


def test_humanise() -> None:
    assert humanise("provider:foo_bar_2x") == "Foo Bar 2x"
    assert humanise("provider:describe_all") == "Describe All"
    assert humanise("provider:___") == "Action"
    long = humanise("provider:" + "x" * 200)
    assert len(long) == 80 and long.endswith("…")


def test_raw_provider_spellings_use_the_families() -> None:
    labels = {
        b.action: (b.label, b.emoji)
        for b in layout_buttons(
            [
                "provider:upscale5",
                "provider:outpaint_3x",
                "provider:pan_left",
                "provider:outpaint_1x",
            ],
            square=False,
        )
    }
    assert labels == {
        "provider:upscale5": ("U5", None),
        "provider:outpaint_3x": ("Zoom Out 3x", "🔍"),
        "provider:pan_left": (None, "⬅️"),
        "provider:outpaint_1x": ("Make Square", "↔️"),
    }


def test_describe_row() -> None:
    actions = ["describe_reroll", "describe_pick:3", "describe_pick:1", "describe_pick:2"]
    actions.append("describe_pick:4")
    assert rows(layout_buttons(actions)) == [
        [("1", None), ("2", None), ("3", None), ("4", None), (None, "🔄")]
    ]


def test_overflow_wraps_into_the_next_row() -> None:
    unknown = [f"provider:thing_{i}" for i in range(7)]
    buttons = layout_buttons(["pick:1", *unknown])
    assert [b.row for b in buttons] == [0, 1, 1, 1, 1, 1, 2, 2]


def test_more_than_five_families_are_packed_into_five_rows() -> None:
    buttons = layout_buttons([*GRID, *UPSCALED], square=False)  # 22 buttons, 6 families
    assert len(buttons) == 22
    assert max(b.row for b in buttons) == 4
    assert max(Counter(b.row for b in buttons).values()) <= 5
    assert [b.action for b in buttons][:9] == GRID  # order is kept


def test_beyond_25_the_lowest_priority_family_goes(caplog: pytest.LogCaptureFixture) -> None:
    unknown = [f"provider:extra_{i}" for i in range(5)]
    buttons = layout_buttons([*GRID, *UPSCALED, *unknown], square=False, extra=["seed"])
    actions = [b.action for b in buttons]
    assert len(actions) == 23
    assert not set(unknown) & set(actions)
    assert "seed" in actions
    assert "dropped" in caplog.text


def test_a_single_family_larger_than_25_keeps_25() -> None:
    buttons = layout_buttons([f"provider:n{i}" for i in range(40)])
    assert len(buttons) == 25
    assert buttons[-1].action == "provider:n24"
    assert max(b.row for b in buttons) == 4


def test_used_turns_primary_or_success_with_remix() -> None:
    buttons = layout_buttons(GRID, used=frozenset({"pick:2"}))
    assert {b.action for b in buttons if b.style == "primary"} == {"pick:2"}
    assert {b.style for b in buttons if b.action != "pick:2"} == {"secondary"}
    remixed = layout_buttons(GRID, used=frozenset({"vary_grid:1"}), remix=True)
    assert [b.action for b in remixed if b.style == "success"] == ["vary_grid:1"]


def test_stale_disables_every_follow_up() -> None:
    assert all(b.disabled for b in layout_buttons(UPSCALED, stale=True, extra=["seed"]))
    assert not any(b.disabled for b in layout_buttons(UPSCALED))


def test_custom_id_round_trip_with_colons_in_the_action() -> None:
    for action in ("pick:2", "provider:foo_bar", "reroll", "provider:a:b:c"):
        cid = custom_id_for(action, JOB)
        assert cid == f"mj:{action}:{JOB}"
        assert parse_custom_id(cid) == (action, JOB)


@pytest.mark.parametrize(
    "bad", ["", "mj", "mj:", "mj::abc", "xx:pick:1:abc", "mj:pick:1:", "mj:pick:ABC", "x" * 101]
)
def test_parse_custom_id_rejects_foreign_ids(bad: str) -> None:
    assert parse_custom_id(bad) is None


def test_custom_id_limit() -> None:
    fits = "provider:" + "r" * 70
    cid = custom_id_for(fits, JOB)
    assert len(cid) == 95 and parse_custom_id(cid) == (fits, JOB)
    assert len(custom_id_for("a" * MAX_ACTION_LENGTH, JOB)) == 100
    with pytest.raises(ValueError):
        custom_id_for("a" * (MAX_ACTION_LENGTH + 1), JOB)
    with pytest.raises(ValueError):
        custom_id_for("", JOB)
    with pytest.raises(ValueError):
        custom_id_for("reroll", "bad:id")


def test_layout_skips_and_logs_actions_too_long_for_a_custom_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    too_long = "provider:" + "z" * 90
    buttons = layout_buttons(["reroll", too_long, "provider:" + "r" * 70])
    assert [b.action for b in buttons] == ["reroll", "provider:" + "r" * 70]
    assert "too long" in caplog.text


def test_describe_action_for_messages() -> None:
    assert describe_action("upscale_subtle") == ("Upscale (Subtle)", None)
    assert describe_action("vary_strong") == ("Vary (Strong)", "🪄")
    assert describe_action("reroll") == ("Reroll", "🔄")
    assert describe_action("pan_left") == ("Pan Left", "⬅️")
    assert describe_action("pick:2") == ("U2", None)
    assert describe_action("provider:foo_bar_2x") == ("Foo Bar 2x", None)


def test_duplicates_become_one_button() -> None:
    buttons = layout_buttons(["reroll", "reroll"], extra=["reroll"])
    assert [b.action for b in buttons] == ["reroll"]


ACTION_NAMES = st.one_of(
    st.sampled_from([*GRID, *UPSCALED, "seed", "edit", "describe_reroll", "describe_pick:2"]),
    st.text(min_size=0, max_size=120),
    st.text(min_size=0, max_size=100).map(lambda s: "provider:" + s),
)


@settings(max_examples=300, deadline=None)
@given(
    actions=st.lists(ACTION_NAMES, max_size=60),
    extra=st.lists(ACTION_NAMES, max_size=5),
    square=st.booleans(),
    stale=st.booleans(),
)
def test_layout_always_within_discord_limits(
    actions: list[str], extra: list[str], square: bool, stale: bool
) -> None:
    buttons = layout_buttons(actions, extra=extra, square=square, stale=stale)
    assert len(buttons) <= 25
    assert all(0 <= b.row < 5 for b in buttons)
    assert max(Counter(b.row for b in buttons).values(), default=0) <= 5
    for b in buttons:
        assert b.label or b.emoji
        assert b.label is None or 0 < len(b.label) <= 80
    ids = [custom_id_for(b.action, JOB) for b in buttons]
    assert all(len(i) <= 100 for i in ids)
    assert len(set(ids)) == len(ids)
    assert all(parse_custom_id(i) == (b.action, JOB) for i, b in zip(ids, buttons, strict=True))
    # nothing silently lost: every action that fits a custom id is there unless >25
    fitting = {a for a in [*actions, *extra] if 0 < len(a) <= MAX_ACTION_LENGTH}
    if square:
        fitting -= {"make_square", "provider:outpaint_1x"}
    if len(fitting) <= 25:
        assert {b.action for b in buttons} == fitting
