"""A community server's rules, end to end: /settings as an admin, members refused with
the reason (channel, role, limits, banned prompts, someone else's buttons), the fair
queue between members, costs that add up to the provider's own count, and settings
that survive a restart."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from tests.e2e.conftest import World, button_ids
from tests.e2e.test_imagine import imagine_to_grid
from tests.fakes.discord.interactions import InteractionRefused
from tests.fakes.discord.models import InteractionRecord
from tests.fakes.piapi import Profile

EPHEMERAL = 64
QUICK = Profile(pending_s=1.0, processing_s=4.0, progress_step_s=2.0)


async def slash(
    world: World, name: str, options: dict[str, object] | None = None, **kw: object
) -> InteractionRecord:
    record = await world.discord.slash(name, options or {}, **kw)  # type: ignore[arg-type]
    await world.discord.wait_for(lambda: record.responded, timeout=10, what=f"/{name}")
    return record


def private_text(record: InteractionRecord) -> str:
    """The content of an ephemeral answer (asserting it is one)."""
    data = record.response_data or {}
    assert data.get("flags", 0) & EPHEMERAL, (record.response_type, data)
    return str(data.get("content", ""))


async def admin(world: World, name: str, options: dict[str, object] | None = None) -> str:
    text = private_text(await slash(world, name, options, user="admin"))
    assert "Saved" in text or "Server settings" in text or "Nothing changed" in text, text
    return text


async def test_channels_roles_limits_and_banned_words_refuse_before_spending(
    world: World,
) -> None:
    bot = await world.start_bot()
    # Members without Manage Server are not even shown /settings (Discord refuses it).
    with pytest.raises(InteractionRefused):
        await world.discord.slash("settings channels add", {"channel": "art"}, user="tester")

    await admin(world, "settings channels add", {"channel": "art"})
    refused = await slash(world, "imagine", {"prompt": "a red kite"}, channel="general")
    text = private_text(refused)
    art = world.discord.resolve_channel("art", world.discord.resolve_guild(None))
    assert f"<#{art.id}>" in text, text

    await admin(world, "settings roles add", {"role": "Artists"})
    refused = await slash(world, "imagine", {"prompt": "a red kite"}, channel="art")
    assert "role" in private_text(refused).lower()

    # A banned word, plain or disguised, never reaches the provider.
    for prompt in ("a gory scene with blood", "b.l.o.o.d on snow", "b\u200blood moon rising"):
        refused = await slash(world, "imagine", {"prompt": prompt}, channel="art", user="artist")
        assert "not allow" in private_text(refused), prompt
    # …and neither does a malformed parameter (the provider would count it as a failure).
    refused = await slash(
        world, "imagine", {"prompt": "a kite --ar 16x9"}, channel="art", user="artist"
    )
    assert "--ar" in private_text(refused)
    assert world.piapi.created() == []

    # A member at the day's limit is told which limit and when it resets.
    await admin(world, "settings limits", {"per_day": 1})
    ok = await slash(world, "imagine", {"prompt": "a red kite"}, channel="art", user="artist")
    assert ok.response_type == 5  # public "thinking": the job started
    await world.discord.wait_for(lambda: len(world.piapi.created()) == 1, timeout=10)
    refused = await slash(world, "imagine", {"prompt": "a blue kite"}, channel="art", user="artist")
    text = private_text(refused)
    assert "day" in text and re.search(r"<t:\d+:R>", text), text
    assert len(world.piapi.created()) == 1

    # Settings live in the store: after a kill -9 and a restart they still apply.
    world.kill(bot)
    await world.start_bot()
    shown = private_text(await slash(world, "settings show", user="admin"))
    assert f"<#{art.id}>" in shown and "1 a day" in shown, shown
    refused = await slash(world, "imagine", {"prompt": "a kite"}, channel="general")
    assert f"<#{art.id}>" in private_text(refused)
    audit = private_text(await slash(world, "settings audit", user="admin"))
    admin_id = world.discord.resolve_user("admin").id
    assert audit.count(f"<@{admin_id}>") >= 3 and "limits" in audit, audit


async def test_requester_only_buttons(world: World) -> None:
    await world.start_bot()
    await admin(world, "settings clicks", {"who": "requester"})
    grid = await imagine_to_grid(world, "a paper boat")  # by "tester"
    click = await world.discord.click(grid.id, button_ids(grid)["U1"], user="other")
    await world.discord.wait_for(lambda: click.responded, timeout=5)
    assert "asked for" in private_text(click) or "requester" in private_text(click).lower()
    assert world.piapi.created("upscale") == []
    # Moderators may still use them.
    click = await world.discord.click(grid.id, button_ids(grid)["U1"], user="admin")
    await world.discord.wait_for(lambda: click.responded, timeout=5)
    assert click.response_type == 7
    await world.discord.wait_for(lambda: len(world.piapi.created("upscale")) == 1, timeout=10)


async def test_fair_queue_interleaves_members_and_costs_add_up(world: World) -> None:
    world.piapi.default_profile = QUICK
    await world.start_bot(MJ_MAX_CONCURRENT_JOBS="2")
    await admin(world, "settings limits", {"at_once": 0, "per_day": 0, "fast_per_day": 0})
    members = ("tester", "other", "artist")
    interactions: list[InteractionRecord] = []
    for member in members:
        for n in range(1, 6):
            interactions.append(
                await slash(world, "imagine", {"prompt": f"{member} kite {n}"}, user=member)
            )
    assert all(i.response_type == 5 for i in interactions)

    for _ in range(60):
        await world.advance_piapi(1.0, settle=0.15)
        if len(world.piapi.created()) == 15 and not world.fake.running_task_count():
            break
    order = [r.json["input"]["prompt"].split()[0] for r in world.piapi.created()]
    assert Counter(order) == {m: 5 for m in members}, order
    # The first two slots went to the first jobs asked for; after that, while everyone
    # still waits, every three starts serve three different members.
    waiting_phase = order[2:11]
    for i in range(0, 9, 3):
        assert len(set(waiting_phase[i : i + 3])) == 3, order

    # Queued messages showed their place in line, and it moved.
    last = world.discord.messages[interactions[-1].original_message_id or 0]
    positions = [
        int(m)
        for version in [*last.history, last.payload(world.discord.base_url)]
        for m in re.findall(r"Queued \(position (\d+)\)", version.get("content") or "")
    ]
    assert len(set(positions)) >= 2 and positions == sorted(positions, reverse=True), positions

    # Every job finished; the costs recorded add up to what the provider consumed.
    await world.wait_message(
        lambda m: m.id == last.id and bool(m.attachments), limit_s=30, what="the last grid"
    )
    consumed = world.piapi.initial_credits - world.piapi.balance()
    assert consumed > 0
    server = await slash(world, "usage server", user="admin")
    assert server.response_type == 5 and server.original_message_id is not None
    answer = await world.wait_message(
        lambda m: m.id == server.original_message_id and "Server usage" in m.content,
        what="/usage server",
    )
    assert answer.ephemeral
    assert f"{consumed:,} credits" in answer.content, answer.content
    [chart] = answer.attachments
    assert chart.data[:8] == b"\x89PNG\r\n\x1a\n"
    mine = private_text(await slash(world, "usage me", user="other"))
    assert "5 job(s)" in mine, mine


async def test_allowed_sensitive_words_are_spoilered_outside_nsfw_channels(world: World) -> None:
    world.piapi.default_profile = QUICK
    await world.start_bot()
    await admin(world, "settings banned remove", {"word": "blood"})  # a default word, lifted
    finals = {}
    for channel in ("general", "nsfw-art"):
        started = await slash(world, "imagine", {"prompt": "a moon red as blood"}, channel=channel)
        assert started.response_type == 5, started.response_data
        finals[channel] = started.original_message_id
    await world.advance_piapi(10, settle=0.5)
    await world.advance_piapi(10, settle=0.5)
    names = {}
    for channel, message_id in finals.items():
        message = await world.wait_message(
            lambda m, i=message_id: m.id == i and bool(m.attachments), what=f"{channel}'s grid"
        )
        names[channel] = message.attachments[0].filename
    assert names["general"].startswith("SPOILER_"), names
    assert not names["nsfw-art"].startswith("SPOILER_"), names
    # The same prompt in a server that never lifted the word is refused instead.
    await admin(world, "settings banned add", {"word": "blood"})
    refused = await slash(world, "imagine", {"prompt": "a moon red as blood"})
    assert "not allow" in private_text(refused)


async def test_a_banned_word_typed_into_a_form_is_refused(world: World) -> None:
    await world.start_bot()
    remix = await slash(world, "prefs remix", {"state": "on"})
    assert "on" in private_text(remix)
    grid = await imagine_to_grid(world, "a quiet harbour")
    form = await world.discord.click(grid.id, button_ids(grid)["V1"])
    await world.discord.wait_for(lambda: form.responded, timeout=5)
    assert form.response_type == 9  # the remix form
    submitted = await world.discord.submit_modal(form, {"prompt": "a harbour full of g0re"})
    await world.discord.wait_for(lambda: submitted.responded, timeout=5)
    assert "not allow" in private_text(submitted)
    await world.advance_piapi(1, settle=0.3)
    assert world.piapi.created("variation") == []


async def test_a_refused_settings_change_saves_nothing_and_says_why(world: World) -> None:
    await world.start_bot()
    await admin(world, "settings modes", {"default": "relax"})
    # Forbidding the default speed is refused inside the edit: nothing saved, no audit row.
    refused = await slash(
        world, "settings modes", {"mode": "relax", "allowed": "off"}, user="admin"
    )
    assert "default speed **relax** must be one of the allowed" in private_text(refused)
    shown = private_text(await slash(world, "settings show", user="admin"))
    assert "default **relax**, allowed relax, fast, turbo" in shown, shown
    audit = private_text(await slash(world, "settings audit", user="admin"))
    assert audit.count("**modes**") == 1, audit
    # A refusal that needs no settings read: half an option pair.
    refused = await slash(world, "settings modes", {"mode": "fast"}, user="admin")
    assert "Give both `mode` and `allowed`" in private_text(refused)
