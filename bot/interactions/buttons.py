"""The buttons under a job's message, as persistent `DynamicItem`s (discord.py's lifecycle).

`from_custom_id` loads the job the button belongs to, `interaction_check` does every
refusal (bot/interactions/rules.py; answered privately before it returns False, since
discord.py says nothing more), `callback` acts. Collaborators come from
`interaction.client` through the small `Interactions` protocol, so nothing here imports
the bot itself. `JobButton` answers the provider's follow-ups; cogs register their own
items for their buttons (/describe's and /shorten's prompt picks, 🌱 Seed), which the
job button's template leaves out so that one click has one answer.
"""

from __future__ import annotations

import re
from typing import Any, Protocol, Self, cast

import discord

from bot.actions import parse_action
from bot.domain import Job
from bot.interactions.errors import answer_error
from bot.interactions.follow_ups import ClickPlan, FollowUps
from bot.interactions.starter import JobStarter

# Actions answered by a cog's own item (cogs/describe.py, cogs/shorten.py, cogs/jobs.py).
OWN_ITEMS = ("describe_pick", "describe_reroll", "describe_all", "shorten_pick", "seed")
JOB_ID = r"(?P<job_id>[0-9a-z]+)"
JOB_BUTTON_TEMPLATE = rf"(?s)mj:(?!(?:{'|'.join(OWN_ITEMS)}):)(?P<action>.+):{JOB_ID}"


def item_template(actions: str) -> str:
    """The custom id template of a cog's own item: `mj:<one of actions>:<job_id>`."""
    return rf"mj:(?P<action>{actions}):{JOB_ID}"


class Interactions(Protocol):
    """What the items need of the client: the bot built in setup_hook has both."""

    starter: JobStarter
    follow_ups: FollowUps


def services(interaction: discord.Interaction[Any]) -> Interactions:
    return cast(Interactions, interaction.client)


class JobItem(discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"(?!)"):
    """A button on a job's message: subclasses give their template (groups `action` and
    `job_id`), `judge` (every refusal, raised as Refusal) and `act`. The base's own
    template matches nothing: it is never registered."""

    def __init__(
        self,
        button: discord.ui.Button[Any],
        *,
        action: str,
        job_id: str,
        job: Job | None,
        problem: Exception | None = None,
    ) -> None:
        super().__init__(button)
        self.action = action
        self.parsed = parse_action(action)  # None: no action the bot can name
        self.job_id = job_id
        self.job = job  # the job the button is under (None: unknown)
        self.problem = problem  # loading the job failed: told by interaction_check

    @property
    def where(self) -> str:
        return f"button {self.action} on job {self.job_id}"

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
    ) -> Self:
        # discord.py only logs what this raises (the member would see "This interaction
        # failed"): a failed load is kept and answered by interaction_check.
        parent, problem = None, None
        try:
            parent = await services(interaction).starter.engine.get(match["job_id"])
        except Exception as exc:
            problem = exc
        button = cast(discord.ui.Button[Any], item)
        action, job_id = match["action"], match["job_id"]
        return cls(button, action=action, job_id=job_id, job=parent, problem=problem)

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        try:
            if self.problem is not None:
                raise self.problem
            await self.judge(interaction)
        except Exception as exc:
            await answer_error(interaction, exc, where=self.where)
            return False
        return True

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await self.act(interaction)
        except Exception as exc:
            # discord.py's default would only log it, and Discord would tell the member
            # "This interaction failed": one private answer instead (errors.py).
            await answer_error(interaction, exc, where=self.where)

    async def judge(self, interaction: discord.Interaction[Any]) -> None:
        raise NotImplementedError

    async def act(self, interaction: discord.Interaction[Any]) -> None:
        raise NotImplementedError


class JobButton(JobItem, template=JOB_BUTTON_TEMPLATE):
    """Any provider follow-up `mj:<action>:<job_id>` (U1, V2, 🔄, Zoom Out, …)."""

    plan: ClickPlan | None = None

    async def judge(self, interaction: discord.Interaction[Any]) -> None:
        follow_ups = services(interaction).follow_ups
        self.plan = await follow_ups.plan_click(interaction, self.action, self.job)

    async def act(self, interaction: discord.Interaction[Any]) -> None:
        assert self.job is not None and self.plan is not None  # judged
        await services(interaction).follow_ups.act(interaction, self.action, self.job, self.plan)
