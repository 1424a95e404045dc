"""The path of one U2 click through the project's code: how many functions, files and
asyncio tasks lie between discord.py's dispatch of the click and (a) its acknowledgement,
(b) the follow-up job's first provider request, (c) the follow-up's first message.

Runs the real bot (`python -m bot`) against the fake Discord and the fake PiAPI the way the
e2e tests do (tests/e2e/conftest.py `open_world`): one /imagine to its grid, then one click
on U2. Inside the bot process bench/click_path_probe.py, injected as `sitecustomize`,
records every project function (under bot/ or cogs/) entered in the click's own task chain
(the tasks and loop callbacks created from the dispatch of that interaction, and the ones
they create; not the engine's scheduler, the gateway reader or other jobs), in order of
first entry; see its docstring for how exactly.

    .venv/bin/python -m bench.click_path [--json out.json] [--quiet]

Counts are of distinct (file, qualified name) pairs; comprehensions and lambdas are not
counted. Nothing is timed: the profiler slows the process down.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tests.e2e.conftest import ROOT, World, button_ids, open_world
from tests.e2e.test_imagine import imagine_to_grid

PROBE = Path(__file__).with_name("click_path_probe.py")
MILESTONES = (
    ("ack", "before the acknowledgement"),
    ("provider_request", "before the first provider request"),
    ("first_message", "before the first message"),
)


async def measure(tmp: Path) -> dict[str, Any]:
    """One /imagine, one U2 click; the probe's record of the click."""
    inject = tmp / "inject"
    inject.mkdir()
    shutil.copy(PROBE, inject / "sitecustomize.py")
    out = tmp / "click_path.json"
    async with open_world(tmp) as world:
        await world.start_bot(
            PYTHONPATH=f"{inject}:{ROOT}", CLICK_PATH_ROOT=str(ROOT), CLICK_PATH_OUT=str(out)
        )
        grid = await imagine_to_grid(world, "a red fox in snow")
        before = {m.id for m in world.channel_messages()}
        click = await world.discord.click(grid.id, button_ids(grid)["U2"])
        await world.discord.wait_for(lambda: click.responded, timeout=15, what="the ack")
        await world.wait_message(lambda m: m.id not in before, what="the upscale's message")
        await _wait_complete(world, out, "complete")
        # The provider request may come after the first message; it is in the chain only
        # when the click's own tasks send it (the engine's submit task, spawned by submit).
        with contextlib.suppress(AssertionError):
            await _wait_complete(world, out, "provider_request_seen", limit_s=5)
        record = _read(out)
    if record["interaction_id"] != str(click.id):
        raise AssertionError(f"the probe traced {record['interaction_id']}, not the click")
    return record


async def _wait_complete(world: World, out: Path, flag: str, limit_s: float = 15) -> None:
    """Until the probe's record has `flag` set (bounded): the file is written by the bot
    process, so nothing here is woken by it; it is read every 0.1 s."""
    for _ in range(int(limit_s * 10)):
        if _read(out).get(flag):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the probe's record has no {flag}:\n{world.bots[0].log()[-3000:]}")


def _read(out: Path) -> dict[str, Any]:
    """The probe's record so far ({} before its first write or while it is half-written)."""
    try:
        record: dict[str, Any] = json.loads(out.read_text())
    except (OSError, ValueError):
        return {}
    return record


def report(record: dict[str, Any], *, listing: bool = True) -> str:
    lines = [f"click on {record['custom_id']} (interaction {record['interaction_id']})"]
    reached = record["milestones"]
    for key, title in sorted(
        MILESTONES, key=lambda kt: reached.get(kt[0], {}).get("functions", 1e9)
    ):
        m = reached.get(key)
        if m is None:
            lines.append(f"{title}: not reached in the click's chain")
            continue
        lines.append(
            f"{title} ({m['request']}): {m['functions']} functions in {m['files']} files, "
            f"{m['project_tasks']} tasks running project code "
            f"({m['tasks']} tasks running any Python code; "
            f"{m['callback_calls']} calls in loop callbacks)"
        )
        lines.append(f"    tasks: {', '.join(m['project_task_names'])}")
    lines.append(f"every task of the chain that ran Python code: {', '.join(record['all_tasks'])}")
    lines.append("functions per layer (before the ack / before the first message):")
    lines.extend(_per_layer(record))
    lines.append("functions per file (before the ack / before the first message):")
    lines.extend(_per_file(record))
    if listing:
        marks = {m["functions"]: key for key, m in record["milestones"].items()}
        lines.append("ordered (n. file: function [task of first entry]):")
        for n, entry in enumerate(record["order"], 1):
            lines.append(f"  {n:3}. {entry['file']}: {entry['function']}  [{entry['task']}]")
            if n in marks:
                lines.append(f"       ---- {marks[n]} request sent here ----")
    return "\n".join(lines)


# Layers by file, for a summary beside the per-file counts (first match wins).
LAYERS = (
    ("interaction (items, forms, rules, starting jobs)", ("bot/interactions/", "cogs/")),
    ("interaction (items, forms, rules, starting jobs)", ("bot/app.py",)),
    (
        "interaction (items, forms, rules, starting jobs)",
        tuple(f"bot/discord/{n}.py" for n in ("follow_ups", "submit", "policy", "views")),
    ),
    ("presentation and Discord writes", ("bot/discord/",)),
    ("engine and accounts", ("bot/engine/", "bot/accounts/")),
    ("store", ("bot/store/",)),
    ("domain and shared helpers", ("bot/",)),
)


def layer_of(path: str) -> str:
    return next(name for name, prefixes in LAYERS if path.startswith(prefixes))


def _per_layer(record: dict[str, Any]) -> list[str]:
    ack = record["milestones"].get("ack", {}).get("functions", 0)
    message = record["milestones"].get("first_message", {}).get("functions", 0)
    counts: dict[str, list[int]] = {name: [0, 0] for name, _ in LAYERS}
    for n, entry in enumerate(record["order"], 1):
        pair = counts[layer_of(entry["file"])]
        pair[0] += n <= ack
        pair[1] += n <= message
    return [f"  {a:3} / {m:3}  {name}" for name, (a, m) in counts.items()]


def _per_file(record: dict[str, Any]) -> list[str]:
    ack = record["milestones"].get("ack", {}).get("functions", 0)
    message = record["milestones"].get("first_message", {}).get("functions", 0)
    counts: dict[str, list[int]] = {}
    for n, entry in enumerate(record["order"], 1):
        pair = counts.setdefault(entry["file"], [0, 0])
        pair[0] += n <= ack
        pair[1] += n <= message
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1][1], kv[0]))
    return [f"  {a:3} / {m:3}  {name}" for name, (a, m) in ordered if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the probe's record here")
    parser.add_argument("--quiet", action="store_true", help="counts only, no ordered list")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="click-path-"))
    try:
        record = asyncio.run(measure(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(record, indent=1))
    print(f"tree: {ROOT}")
    print(report(record, listing=not args.quiet))


if __name__ == "__main__":
    main()
