"""Every custom id the bot can put on a message reaches a handler in the running bot
(issue 14: "every custom id prefix has a handler"), end to end: the real bot process, the
fake Discord, the fake PiAPI.

What the bot can show is taken from the one collection of action names
(tests/unit/test_action_grammar.py `SHOWN`: every name a backend or the layout shows,
the layout's own table, videos, /describe's and /shorten's prompt picks), one name per
family of the grammar (bot.actions.parse_action), as the persistent custom id
`mj:<action>:<job id>` that old messages keep carrying (invariant 4: a button posted by an
earlier layout, or under another backend, still reaches the bot). Each is clicked on a
real finished job, with remix off and on; every form a click opens (`mjm:…` custom ids) is
submitted; and every custom id the bot itself posted during the run is clicked too when
its shape is not one of those, so a new kind of button is covered without a list here.

A custom id is handled when the bot answers the click (Discord otherwise tells the member
"This interaction failed") and the answer is neither "unknown action" nor the apology for
an unexpected error. A new prefix
without a handler fails here: discord.py matches no template and nothing answers, or the
catch-all button answers that it does not know the action; the calibration at the start
checks that both are caught.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import pytest

from bot.actions import parse_action
from tests.e2e.conftest import World, button_ids, open_world
from tests.e2e.test_community import admin
from tests.e2e.test_modals import slash_prefs
from tests.fakes.discord.models import InteractionRecord, MessageRecord, iter_components
from tests.unit.test_action_grammar import SHOWN

# Lower-cased marks of an answer that means "no handler for this": the catch-all's refusal
# of an action it does not know, and the apology for an unexpected error. (A handler that
# refuses a parent of another kind, e.g. describe's on a grid, has answered: it is there.)
UNHANDLED = ("unknown", "something went wrong")
# A form's prompt the local check refuses (bot/data/banned_words.txt): no job, no charge.
BANNED_PROMPT = "a bloody fox"
ANSWER_S = 10.0
# Families a backend's bot does not answer, each with why no such button is ever posted
# under that backend; none today. Kept explicit: a family added to the grammar is held to
# a handler on every backend here unless it is named below with its reason. (Describe's
# and shorten's buttons are registered whatever the backend since bd69ce7: a button from
# before a switch of backend still gets a private answer.)
NOT_SERVED: dict[str, dict[str, str]] = {"piapi": {}, "mjproxy": {}}
PERSISTENT = re.compile(r"(?s)mj:(?P<action>.+):(?P<job>[0-9a-z]+)")


def representatives() -> dict[str, str]:
    """family → its first name in SHOWN (the handlers route by family, not by index)."""
    picked: dict[str, str] = {}
    for name in SHOWN:
        parsed = parse_action(name)
        assert parsed is not None, name  # test_action_grammar holds every name to this
        picked.setdefault(parsed.family, name)
    return picked


def why_unhandled(world: World, record: InteractionRecord) -> str | None:
    """None when the bot answered `record` as a handled click or submit; else why not."""
    if not record.responded:
        return "no answer (Discord shows 'This interaction failed')"
    texts = []
    if record.response_type == 4:
        texts.append(str((record.response_data or {}).get("content") or ""))
    texts += [world.discord.messages[i].content for i in record.followup_ids]
    for text in texts:
        if any(mark in text.lower() for mark in UNHANDLED):
            return f"answered {text!r}"
    return None


async def click_shown(world: World, message: MessageRecord, custom_id: str) -> InteractionRecord:
    """Click `custom_id` on `message`, as on a message that carries that button."""
    message.components = [
        {"type": 1, "components": [{"type": 2, "style": 2, "label": "b", "custom_id": custom_id}]}
    ]
    click = await world.discord.click(message.id, custom_id)
    with contextlib.suppress(TimeoutError):  # judged by why_unhandled
        await world.discord.wait_for(lambda: click.responded, timeout=ANSWER_S, what=custom_id)
    return click


async def submit_form(world: World, form: InteractionRecord) -> InteractionRecord:
    """Submit the form the bot opened: a banned prompt, other empty required fields "x"."""
    assert form.modal is not None
    values: dict[str, Any] = {}
    for field in iter_components(form.modal.get("components", [])):
        custom_id = field.get("custom_id")
        if field.get("type") != 4 or not custom_id:
            continue
        if "prompt" in custom_id:
            values[custom_id] = BANNED_PROMPT
        elif field.get("required", True) and not field.get("value"):
            values[custom_id] = "x"
    record = await world.discord.submit_modal(form, values)
    with contextlib.suppress(TimeoutError):
        await world.discord.wait_for(lambda: record.responded, timeout=ANSWER_S, what="submit")
    return record


async def probe(world: World, message: MessageRecord, custom_id: str) -> list[InteractionRecord]:
    """The click, and the submit of the form it opened (if it opened one)."""
    click = await click_shown(world, message, custom_id)
    if click.response_type != 9:
        return [click]
    return [click, await submit_form(world, click)]


async def grid_of(world: World, prompt: str) -> MessageRecord:
    """/imagine to its finished grid on any backend (its rows differ between backends)."""
    interaction = await world.discord.slash("imagine", {"prompt": prompt})
    await world.discord.wait_for(lambda: interaction.responded, timeout=5, what="the ack")
    for _ in range(12):
        await world.advance_piapi(3, settle=0.3)
    return await world.wait_message(
        lambda m: (
            m.id == interaction.original_message_id
            and bool(m.attachments)
            and "U1" in button_ids(m)
        ),
        what="the grid",
    )


async def test_calibration_a_prefix_without_a_handler_is_caught(world: World) -> None:
    await world.start_bot()
    grid = await grid_of(world, "a grid to calibrate the probe")
    job = PERSISTENT.fullmatch(button_ids(grid)["U1"])
    assert job is not None
    for custom_id in (f"mj:no_such_family:{job['job']}", f"mjzz:pick:1:{job['job']}"):
        [click] = await probe(world, grid, custom_id)
        assert why_unhandled(world, click) is not None, (custom_id, click.response_data)


@pytest.mark.parametrize("backend", sorted(NOT_SERVED))
async def test_every_custom_id_the_bot_can_show_has_a_handler(backend: str, tmp_path: Path) -> None:
    async with open_world(tmp_path, backend) as world:
        await check_every_custom_id(world, NOT_SERVED[backend])


async def check_every_custom_id(world: World, not_served: dict[str, str]) -> None:
    bot = await world.start_bot()
    # No member limit in the way: every click below that starts a job keeps running.
    await admin(world, "settings limits", {"at_once": 0, "per_day": 0, "fast_per_day": 0})
    grid = await grid_of(world, "a lighthouse with every button")
    shown_ids = set(grid.custom_ids)
    job = PERSISTENT.fullmatch(button_ids(grid)["U1"])
    assert job is not None, grid.custom_ids
    families = {f: a for f, a in representatives().items() if f not in not_served}
    assert len(families) >= 20, families
    records: dict[str, list[InteractionRecord]] = {}
    for remix in ("off", "on"):
        await slash_prefs(world, "remix", {"state": remix})
        for family, action in families.items():
            custom_id = f"mj:{action}:{job['job']}"
            records[f"{family} ({custom_id}, remix {remix})"] = await probe(world, grid, custom_id)
    # Every custom id the bot posted in this run (the grid's, the follow-ups' messages):
    # a shape not probed above is clicked as it is.
    for message in list(world.discord.messages.values()):
        for version in [*message.history, {"components": message.components}]:
            shown_ids |= {
                c["custom_id"]
                for c in iter_components(version.get("components") or [])
                if "custom_id" in c
            }
    for custom_id in sorted(shown_ids):
        found = PERSISTENT.fullmatch(custom_id)
        parsed = parse_action(found["action"]) if found else None
        if parsed is None or parsed.family not in {*families, *not_served}:
            records[f"posted by the bot: {custom_id}"] = await probe(world, grid, custom_id)
    # Judged at the end: an error after the acknowledgement arrives as a follow-up.
    failures = {
        what: why
        for what, answers in records.items()
        for answer in answers
        if (why := why_unhandled(world, answer)) is not None
    }
    listed = "\n".join(f"{what}: {why}" for what, why in failures.items())
    assert not failures, f"custom ids without a handler:\n{listed}\n{bot.log()[-3000:]}"
    assert "Traceback" not in bot.log(), bot.log()[-3000:]
    forms = [answers[1] for answers in records.values() if len(answers) == 2]
    assert forms, "no click opened a form: the forms' custom ids went unprobed"
