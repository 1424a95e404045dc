"""Several provider accounts end to end: the real bot (`python -m bot`) with an accounts
file naming two Legnext accounts and a midjourney-proxy one, each its own fake on its own
port, against the fake Discord.

It shows: /blend offered only because one account (mj-proxy) serves it; /imagine spread
over the Legnext accounts by load; an account out of credit set aside and its work done
by the other with one create per job; `/settings accounts` telling an admin which account
is set aside and why, and putting it back; no key in the bot's log.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.conftest import BACKEND_KEYS, World, button_ids, open_world
from tests.e2e.test_community import slash
from tests.fakes.discord import DEFAULT_GUILD_ID
from tests.fakes.legnext import FakeLegnext
from tests.fakes.mjproxy import FakeMJProxy

# a is the world's own fake Legnext, made with the e2e key of that backend.
KEYS = {"a": BACKEND_KEYS["legnext"], "b": "lg-e2e-account-b-key", "mp": "mp-e2e-pool-secret"}


def accounts_file(tmp: Path, fa: FakeLegnext, fb: FakeLegnext, fm: FakeMJProxy) -> Path:
    path = tmp / "accounts.toml"
    path.write_text(
        f"""
[[accounts]]
name = "a"
provider = "legnext"
api_key = "{KEYS["a"]}"
base_url = "{fa.base_url}"
max_concurrent_jobs = 1

[[accounts]]
name = "b"
provider = "legnext"
api_key = "{KEYS["b"]}"
base_url = "{fb.base_url}"
max_concurrent_jobs = 2

[[accounts]]
name = "mp"
provider = "mjproxy"
api_key = "{KEYS["mp"]}"
base_url = "{fm.base_url}"
modes = ["relax"]
""",
        encoding="utf-8",
    )
    return path


async def grids(world: World, ids: list[int], fakes: list[object]) -> None:
    """Advance the shared fake clock until every message shows its finished grid."""
    for _ in range(40):
        done = [world.discord.messages[i] for i in ids]
        if all(m.attachments and len(m.components) > 1 for m in done):
            return
        world.clock.advance(3.0)
        await asyncio.sleep(0.3)
    logs = "\n".join(b.log()[-3000:] for b in world.bots)
    raise AssertionError(f"grids not finished\n{logs}")


async def accounts_view(world: World, options: dict[str, object] | None = None) -> str:
    """/settings accounts as an admin: a private answer, deferred then edited."""
    record = await slash(world, "settings accounts", options, user="admin")
    assert record.response_type == 5 and record.original_message_id is not None
    answer = await world.wait_message(
        lambda m: m.id == record.original_message_id and "Provider accounts" in m.content,
        what="/settings accounts",
    )
    assert answer.ephemeral
    return answer.content


async def imagine(world: World, prompt: str, user: str) -> int:
    record = await slash(world, "imagine", {"prompt": prompt}, user=user)
    assert record.response_type == 5, record.response_data
    assert record.original_message_id is not None
    return record.original_message_id


async def test_a_pool_of_accounts_from_a_file(tmp_path: Path) -> None:
    async with open_world(tmp_path, "legnext") as world:
        fa: FakeLegnext = world.fake
        async with (
            FakeLegnext(api_key=KEYS["b"], clock=world.clock, image_size=256) as fb,
            FakeMJProxy(api_secret=KEYS["mp"], clock=world.clock, image_size=256) as fm,
        ):
            path = accounts_file(tmp_path, fa, fb, fm)
            bot = await world.start_bot(MJ_ACCOUNTS_FILE=str(path), LEGNEXT_API_KEY="")
            # Legnext has no blend; the pool offers it because mj-proxy does.
            assert world.discord.find_command("blend", DEFAULT_GUILD_ID) is not None

            first = await imagine(world, "a lighthouse at dusk", "tester")
            await asyncio.sleep(0.5)
            second = await imagine(world, "a harbour at dawn", "admin")
            await grids(world, [first, second], [fa, fb])
            # a (limit 1) took the first; b was the least loaded for the second.
            assert (len(fa.created()), len(fb.created()), len(fm.created())) == (1, 1, 0)

            fa.balance_points = 0  # a runs out of credit: its next create answers 402
            third = await imagine(world, "a kite over the dunes", "tester")
            await grids(world, [third], [fa, fb])
            assert [r.status for r in fa.requests if r.method == "POST"] == [200, 402]
            assert (len(fa.created()), len(fb.created())) == (1, 2)  # one create per job

            view = await accounts_view(world)
            lines = {line.split("**")[1]: line for line in view.splitlines()[1:] if "**" in line}
            assert {"a", "b", "mp"} <= set(lines), view
            line_a, line_b = lines["a"], lines["b"]
            assert "(legnext)" in line_a and "set aside" in line_a
            assert "out of credit" in line_a and "insufficient balance" in line_a
            assert "balance 0 credits" in line_a
            assert "0/2 in flight" in line_b and "today 2 job(s)" in line_b
            assert "**available**" in line_b
            assert "**mp** (mjproxy)" in view

            # 🔄 on the first grid (made at a): answered privately, naming why; nothing sent.
            grid = world.discord.messages[first]
            click = await world.discord.click(first, button_ids(grid)["🔄"], user="tester")
            await world.discord.wait_for(lambda: click.responded, timeout=5, what="🔄")
            refusal = await world.wait_message(
                lambda m: m.ephemeral and "Follow-ups must go" in m.content, what="the refusal"
            )
            assert "(a) is set aside: it is out of credit" in refusal.content, refusal.content
            assert (len(fa.created()), len(fb.created())) == (1, 2)

            fa.balance_points = 10_000
            back = await accounts_view(world, {"restore": "a"})
            assert back.startswith("**a** is back in the pool.")
            fourth = await imagine(world, "a red kite", "tester")
            await grids(world, [fourth], [fa, fb])
            assert len(fa.created()) == 2  # a takes new work again

            log = bot.log()
            assert all(key not in log for key in KEYS.values())
