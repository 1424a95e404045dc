"""Inside the bot process: which project functions one button click passes (bench/click_path.py).

Copied by bench/click_path.py as `sitecustomize.py` into a directory put first on the bot's
PYTHONPATH, so it runs before `python -m bot` imports anything and patches two things:

- `ConnectionState.parse_interaction_create`: for the first component interaction (type 3,
  a button click) it sets a context variable for the length of that call. Every task and
  every loop callback created while it is set copies the context (asyncio does so for
  `create_task` and `call_soon`/`call_later`), and so does every task *they* create: the
  variable marks exactly the click's task chain, not the engine's scheduler, the gateway's
  reader or other jobs' publisher tasks running at the same time.
- `aiohttp.ClientSession._request` (every HTTP request, discord.py's and the providers'):
  marks the milestones, at the moment the request starts: the acknowledgement (POST
  .../interactions/{id}/{token}/callback), the first provider request, and the first new
  message (POST /channels/{id}/messages).

Between the dispatch and the first message a `sys.setprofile` hook records every Python
"call" event (coroutines resuming count as calls too, but each function is counted once)
in the marked context: project functions (files under bot/ and cogs/ of CLICK_PATH_ROOT)
in order of first entry, with the asyncio task they first ran in. Comprehensions,
generator expressions and lambdas are not counted as functions. The result is written as
JSON to CLICK_PATH_OUT at each milestone (`complete` once ack and message are both seen;
recording goes on until the first provider request too, when the click's chain sends one).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
from discord import state as discord_state

ROOT = os.path.realpath(os.environ.get("CLICK_PATH_ROOT", os.getcwd()))
OUT = Path(os.environ.get("CLICK_PATH_OUT", "click_path.json"))
PREFIXES = tuple(os.path.join(ROOT, part) + os.sep for part in ("bot", "cogs"))
NOT_FUNCTIONS = ("<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>", "<lambda>", "<module>")
CALLBACK = re.compile(r"/interactions/(\d+)/[^/]+/callback$")
NEW_MESSAGE = re.compile(r"/channels/\d+/messages$")

_in_click: contextvars.ContextVar[bool] = contextvars.ContextVar("click_path", default=False)


class Recorder:
    def __init__(self) -> None:
        self.interaction_id: str | None = None
        self.custom_id: str | None = None
        self.order: list[dict[str, Any]] = []
        self.seen: set[tuple[str, str]] = set()
        self.tasks: dict[int, str] = {}  # every task that ran Python code in the chain
        self.project_tasks: dict[int, str] = {}  # the tasks that ran project code
        self.callbacks = 0  # calls in loop callbacks (no current task) of the chain
        self.milestones: dict[str, dict[str, Any]] = {}
        self.done = False

    def task_label(self) -> str:
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        if task is None:
            self.callbacks += 1
            return "(loop callback)"
        label = self.tasks.get(id(task))
        if label is None:
            label = self.tasks[id(task)] = f"#{len(self.tasks) + 1} {task.get_name()}"
        return label

    def profile(self, frame: FrameType, event: str, arg: object) -> None:
        if event != "call" or self.done or not _in_click.get():
            return
        task = self.task_label()
        code = frame.f_code
        path = os.path.realpath(code.co_filename)
        if not path.startswith(PREFIXES) or code.co_name in NOT_FUNCTIONS:
            return
        if task != "(loop callback)":
            self.project_tasks.setdefault(id(asyncio.current_task()), task)
        key = (os.path.relpath(path, ROOT), code.co_qualname)
        if key in self.seen:
            return
        self.seen.add(key)
        self.order.append({"file": key[0], "function": key[1], "task": task})

    def milestone(self, name: str, method: str, url: str) -> None:
        if name in self.milestones:
            return
        self.milestones[name] = {
            "request": f"{method} {re.sub(r'/[A-Za-z0-9_-]{60,}', '/<token>', url)}",
            "functions": len(self.order),
            "files": len({entry["file"] for entry in self.order}),
            "tasks": len(self.tasks),
            "project_tasks": len(self.project_tasks),
            "project_task_names": sorted(self.project_tasks.values()),
            "callback_calls": self.callbacks,
        }
        if len(self.milestones) == 3:  # ack, first message and provider request: enough
            self.done = True
            sys.setprofile(None)
        self.dump()

    def dump(self) -> None:
        OUT.write_text(
            json.dumps(
                {
                    "interaction_id": self.interaction_id,
                    "custom_id": self.custom_id,
                    "complete": {"ack", "first_message"} <= self.milestones.keys(),
                    "provider_request_seen": "provider_request" in self.milestones,
                    "milestones": self.milestones,
                    "order": self.order,
                    "all_tasks": sorted(self.tasks.values()),
                },
                indent=1,
            )
        )


RECORDER = Recorder()
_parse = discord_state.ConnectionState.parse_interaction_create


def _traced_parse(self: Any, data: Any) -> None:
    if data.get("type") != 3 or RECORDER.interaction_id is not None:
        _parse(self, data)
        return
    RECORDER.interaction_id = str(data["id"])
    RECORDER.custom_id = str(data["data"]["custom_id"])
    token = _in_click.set(True)
    sys.setprofile(RECORDER.profile)
    try:
        _parse(self, data)  # creates the dispatch tasks, which copy the marked context
    finally:
        _in_click.reset(token)  # the gateway's own task goes on unmarked


_request: Callable[..., Any] = aiohttp.ClientSession._request


async def _traced_request(self: aiohttp.ClientSession, method: str, url: Any, **kw: Any) -> Any:
    if _in_click.get() and not RECORDER.done:
        text = str(url)
        path = text.split("?", 1)[0]
        found = CALLBACK.search(path)
        if found and found.group(1) == RECORDER.interaction_id:
            RECORDER.milestone("ack", method, text)
        elif method == "POST" and NEW_MESSAGE.search(path):
            RECORDER.milestone("first_message", method, text)
        elif not path.startswith(os.environ.get("DISCORD_API_BASE", "\0")):
            RECORDER.milestone("provider_request", method, text)
    return await _request(self, method, url, **kw)


discord_state.ConnectionState.parse_interaction_create = _traced_parse  # type: ignore[method-assign]
aiohttp.ClientSession._request = _traced_request  # type: ignore[method-assign,assignment]
