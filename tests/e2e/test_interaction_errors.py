"""One answer for whatever a command, a click or a form raised (issue 14), end to end: the
real bot process against the fake Discord and PiAPI.

The fault is injected into the bot process itself: a `sitecustomize` module on its
PYTHONPATH wraps `Engine.submit`, which then raises whatever the file `fault` in the bot's
working directory names ("crash": a RuntimeError; "refuse": a `Refusal`), and behaves as
ever while that file is absent. The bot is a separate process, so monkeypatching the
running object is done the one way Python offers for a process we start but do not run in:
one method, at import time, everything else (discord.py, the handlers, the HTTP to the
fake Discord) real. No fake or real input can make the engine raise an unexpected error
on demand, which is exactly what "unexpected" means.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import ROOT, BotProcess, World, button_ids
from tests.e2e.test_community import private_text, slash
from tests.e2e.test_imagine import imagine_to_grid
from tests.e2e.test_modals import open_form, slash_prefs, submit
from tests.fakes.discord.models import MessageRecord

APOLOGY = "Sorry, something went wrong on my side"
INJECTED = "injected fault in Engine.submit"

SITECUSTOMIZE = f'''
from pathlib import Path

from bot.engine import Engine
from bot.interactions.errors import Refusal

_submit = Engine.submit


async def _faulty_submit(self, operation, **kwargs):
    fault = Path("fault")
    kind = fault.read_text().strip() if fault.exists() else ""
    if kind == "crash":
        raise RuntimeError("{INJECTED}")
    if kind == "refuse":
        raise Refusal("Not today: the injected refusal.")
    return await _submit(self, operation, **kwargs)


Engine.submit = _faulty_submit
'''


async def start_faulty_bot(world: World) -> BotProcess:
    inject = world.tmp / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return await world.start_bot(PYTHONPATH=f"{inject}:{ROOT}")


def grid_job(grid: MessageRecord) -> str:
    return button_ids(grid)["U1"].rsplit(":", 1)[1]


def set_fault(world: World, kind: str | None) -> None:
    path = Path(world.tmp / "fault")
    if kind is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(kind)


async def test_a_click_that_fails_after_its_acknowledgement_gets_a_private_apology(
    world: World,
) -> None:
    bot = await start_faulty_bot(world)
    grid = await imagine_to_grid(world, "a grid before the engine broke")
    set_fault(world, "crash")
    click = await world.discord.click(grid.id, button_ids(grid)["U1"])
    await world.discord.wait_for(lambda: bool(click.followup_ids), timeout=10, what="the apology")
    assert click.response_type == 7  # acknowledged first: the used button turned blue
    [followup] = [world.discord.messages[i] for i in click.followup_ids]
    assert followup.ephemeral and followup.flags & 64, followup.flags
    assert APOLOGY in followup.content, followup.content
    assert "RuntimeError" not in followup.content and INJECTED not in followup.content
    failures = [line for line in bot.log().splitlines() if " failed" in line]
    # Logged once, naming the button and the job, with its traceback.
    assert failures == [failures[0]] and f"button pick:1 on job {grid_job(grid)}" in failures[0]
    assert "Traceback" in bot.log()
    # The engine works again: so does the next click.
    set_fault(world, None)
    again = await world.discord.click(grid.id, button_ids(grid)["U2"])
    await world.discord.wait_for(lambda: again.responded, timeout=10, what="the next click")
    assert again.response_type == 7 and not again.followup_ids


async def test_a_slash_command_that_fails_unexpectedly_gets_a_private_apology(
    world: World,
) -> None:
    bot = await start_faulty_bot(world)
    set_fault(world, "crash")
    record = await slash(world, "imagine", {"prompt": "a cat while the engine is broken"})
    assert record.response_type == 4  # answered at once: no "thinking" reply left behind
    text = private_text(record)
    assert APOLOGY in text and INJECTED not in text, text
    assert not [m for m in world.discord.messages.values() if m.loading]
    log = bot.log()
    assert "/imagine failed" in log and "Traceback" in log, log[-3000:]
    assert not world.piapi.created()


async def test_a_refusal_raised_in_a_command_is_told_privately(world: World) -> None:
    bot = await start_faulty_bot(world)
    set_fault(world, "refuse")
    record = await slash(world, "imagine", {"prompt": "a cat the engine refuses"})
    assert record.response_type == 4
    assert private_text(record) == "Not today: the injected refusal."
    log = bot.log()
    assert "/imagine refused for member" in log and "Traceback" not in log, log[-3000:]
    assert not world.piapi.created()


async def test_a_form_that_fails_after_its_acknowledgement_gets_a_private_apology(
    world: World,
) -> None:
    bot = await start_faulty_bot(world)
    grid = await imagine_to_grid(world, "a grid to vary with remix on")
    await slash_prefs(world, "remix", {"state": "on"})
    form = await open_form(world, grid, "V1")
    set_fault(world, "crash")
    record = await submit(world, form, {"prompt": "a grid varied while the engine broke"})
    await world.discord.wait_for(lambda: bool(record.followup_ids), timeout=10, what="apology")
    [followup] = [world.discord.messages[i] for i in record.followup_ids]
    assert followup.ephemeral and APOLOGY in followup.content, followup.content
    failures = [line for line in bot.log().splitlines() if " failed" in line]
    assert len(failures) == 1 and "form " in failures[0], failures
