"""bot.actions.parse_action is the one grammar for action names: every name a backend or the
bot itself puts on a button parses and gives its name back, and the rest is refused."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot import video
from bot.actions import ParsedAction, kind_of, parse_action
from bot.discord import buttons_layout
from bot.domain import Operation, OperationKind, PanDirection
from bot.providers import legnext_family, mjproxy, piapi
from bot.providers.base import Capabilities

H = "3dbbd469-36af-4a0f-8f02-df6c579e7011"


def _legnext_names() -> set[str]:
    caps = Capabilities(operations=frozenset(OperationKind))
    names: set[str] = set()
    for op, count, picked in [
        (Operation(OperationKind.IMAGINE, prompt="a cat --draft"), 4, False),
        (Operation(OperationKind.UPSCALE, index=1, prompt="a cat --draft"), 1, True),
    ]:
        actions = legnext_family.synthesize_actions(
            op=op, image_count=count, capabilities=caps, picked=picked
        )
        names |= {a.name for a in actions}
    return names


def _piapi_names() -> set[str]:
    raws = [f"upscale{n}" for n in range(1, 5)] + [f"variation{n}" for n in range(1, 5)]
    raws += ["reroll", "high_variation", "low_variation", "inpaint", "outpaint_2x"]
    raws += ["outpaint_1.5x", "outpaint_custom", "outpaint_1x", "upscale_subtle"]
    raws += ["redo_upscale_creative", "upscale_2x", "upscale_4x", "pan_left", "pan_down"]
    return {piapi.neutral_action(raw) for raw in raws}


def _mjproxy_names() -> set[str]:
    ids = [f"MJ::JOB::upsample::{n}::{H}" for n in range(1, 5)]
    ids += [f"MJ::JOB::variation::{n}::{H}" for n in range(1, 5)]
    ids += [f"MJ::JOB::reroll::0::{H}::SOLO", f"MJ::JOB::upsample_v7_2x_creative::1::{H}::SOLO"]
    ids += [f"MJ::JOB::upsample_v5_4x::1::{H}::SOLO", f"MJ::JOB::low_variation::1::{H}::SOLO"]
    ids += [f"MJ::Inpaint::1::{H}::SOLO", f"MJ::Outpaint::50::1::{H}::SOLO"]
    ids += [f"MJ::Outpaint::75::1::{H}::SOLO", f"MJ::Outpaint::100::1::{H}::SOLO"]
    ids += [f"MJ::CustomZoom::{H}", f"MJ::JOB::pan_up::1::{H}::SOLO"]
    ids += [f"MJ::JOB::animate_high::1::{H}::SOLO", f"MJ::JOB::animate_low_extend::1::{H}"]
    ids += ["MJ::Job::PicReader::3", f"MJ::JOB::something_new::1::{H}::SOLO"]
    names = {mjproxy.neutral_action(cid) for cid in ids}
    return {n for n in names if n is not None}


def _bot_names() -> set[str]:
    """What the bot offers itself: the layout's exact table, videos, and the prompt lists
    of /describe (up to 9 keycaps) and /shorten (5)."""
    names = set(buttons_layout._EXACT)
    names |= {a.name for a in video.video_actions(video.MAX_VIDEOS, hd=True)}
    names |= {a.name for a in video.animate_actions()}
    names |= {f"describe_pick:{n}" for n in range(1, 10)}
    names |= {f"shorten_pick:{n}" for n in range(1, 6)}
    names |= {f"redo_upscale_{v}" for v in ("subtle", "creative", "2x", "4x")}
    return names


SHOWN = sorted(_legnext_names() | _piapi_names() | _mjproxy_names() | _bot_names())


def test_the_collection_covers_every_family() -> None:
    families = {p.family for p in map(parse_action, SHOWN) if p is not None}
    assert families >= {
        "pick", "vary_grid", "edit", "enhance", "upscale", "pan", "zoom_out", "animate",
        "extend", "video_hd", "describe_pick", "shorten_pick", "provider", "reroll", "seed",
    }  # fmt: skip


@pytest.mark.parametrize("name", SHOWN)
def test_every_shown_action_parses_and_round_trips(name: str) -> None:
    parsed = parse_action(name)
    assert parsed is not None, name
    assert parsed.name == name


@pytest.mark.parametrize(
    "name",
    [
        "", "pick:0", "pick:5", "pick:99", "pick:", "pick:1 ", "pick:01", "vary_grid:0",
        "edit:5", "enhance:0", "zoom_out_x", "zoom_out_3x", "zoom_out_1x", "zoom_out_02x",
        "upscale_foo", "redo_upscale_", "pan_sideways", "animate_mid:1", "extend_low:5",
        "video_hd:0", "describe_pick:0", "describe_pick:10", "shorten_pick:", "provider:",
        "Reroll", "reroll\n", "mj:reroll:abc",
    ],
)  # fmt: skip
def test_garbage_is_refused(name: str) -> None:
    assert parse_action(name) is None
    assert kind_of(name) is None


def test_fields_are_typed() -> None:
    assert parse_action("pick:3") == ParsedAction("pick", index=3)
    assert parse_action("redo_upscale_2x") == ParsedAction("upscale", redo=True, variant="2x")
    assert parse_action("pan_down") == ParsedAction("pan", direction=PanDirection.DOWN)
    assert parse_action("zoom_out_1_5x") == ParsedAction("zoom_out", zoom=Decimal("1.5"))
    assert parse_action("extend_high:2") == ParsedAction("extend", index=2, motion="high")
    assert parse_action("provider:MJ::x:y") == ParsedAction("provider", raw="MJ::x:y")


def test_prompt_list_picks_are_not_follow_ups_of_a_job() -> None:
    # The cogs answer describe_pick / shorten_pick themselves; no Operation starts from them.
    assert parse_action("describe_pick:2") is not None
    assert kind_of("describe_pick:2") is None and kind_of("shorten_pick:1") is None
