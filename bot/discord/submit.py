"""Starting a job from a Discord interaction: the engine records it, the publisher shows it.

Shared by the commands and by button handlers, so every entry point credits the member,
keys the job for idempotency and binds it to a message the same way.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import discord

from bot.discord.buttons_layout import STYLE_SUCCESS
from bot.discord.policy import Member, Policy
from bot.discord.presenter import render
from bot.discord.views import actions_with_style, job_view, used_actions
from bot.domain import Job, Operation, OperationKind
from bot.engine import EngineError
from bot.speed import decide_speed

if TYPE_CHECKING:
    from bot.app import MidjourneyBot


async def start_job(
    bot: MidjourneyBot,
    interaction: discord.Interaction[Any],
    operation: Operation,
    *,
    idempotency_key: str,
    message_id: int | None = None,
    use_token: bool = False,
) -> tuple[Job, bool]:
    """Submit `operation` for the interaction's member and attach it to a message.

    `message_id=None` lets the publisher post the job's own message in the channel;
    `use_token` edits through the interaction while its token lives (the command's own
    deferred reply). Returns the job and whether it is new to the publisher (False:
    the same key already started it). Raises EngineError when the engine refuses.
    """
    job = await bot.engine.submit(
        operation,
        requester_id=str(interaction.user.id),
        guild_id=optional_str(interaction.guild_id),
        channel_id=optional_str(interaction.channel_id),
        idempotency_key=idempotency_key,
        # The same facts as the delivery below, in the job's own row: a kill between the
        # two writes still lets the restarted bot show the job (Publisher.resume).
        delivery_hint={
            "channel_id": str(interaction.channel_id or 0),
            "message_id": str(message_id) if message_id else None,
            "guild_id": optional_str(interaction.guild_id),
            "upload_limit": interaction.filesize_limit,
        },
    )
    attached = await bot.publisher.attach(
        job,
        channel_id=interaction.channel_id or 0,
        message_id=message_id,
        guild_id=interaction.guild_id,
        interaction=interaction if use_token else None,
        upload_limit=interaction.filesize_limit,
    )
    return job, attached


async def start_after_private_ack(
    bot: MidjourneyBot, interaction: discord.Interaction[Any], operation: Operation, *, what: str
) -> Job | None:
    """For commands acknowledged with a private "thinking" reply (their input took long to
    check): start the job in its own public message and say so, or why not, privately."""
    try:
        job, _ = await start_job(
            bot, interaction, operation, idempotency_key=f"interaction:{interaction.id}"
        )
    except EngineError as exc:
        await interaction.edit_original_response(content=f"❌ {exc.error.message}")
        return None
    await interaction.edit_original_response(
        content=f"{what}; the result will appear in this channel (job `{job.id}`)."
    )
    return job


async def follow_up_speed(
    policy: Policy | None,
    interaction: discord.Interaction[Any],
    operation: Operation,
    parent: Job,
) -> Operation:
    """`operation` (a follow-up of `parent`) at its one decided speed: the parent's, unless
    its text (a remix form's prompt) asks for another; the text keeps at most a flag that
    agrees (bot/speed.py). Raises SpeedConflictError when the text asks for two."""
    if operation.kind is OperationKind.SEED:
        return operation  # asks for the parent's seed; runs at no speed
    if policy is None:
        speed = decide_speed(
            None, None, None, operation.prompt, inherited=parent.operation.mode, keep_flag=True
        )
    else:
        speed = await policy.decide_speed(
            Member.of(interaction), prompt=operation.prompt, parent=parent
        )
    return dataclasses.replace(operation, mode=speed.mode, prompt=speed.prompt)


async def refused_by_policy(
    bot: MidjourneyBot,
    interaction: discord.Interaction[Any],
    operation: Operation,
    *,
    parent: Job | None = None,
) -> bool:
    """Check the server's rules (bot/discord/policy.py) for `operation`; when they refuse,
    say why privately (the interaction must not be acknowledged yet) and return True."""
    member = Member.of(interaction)
    reason = None
    if parent is not None:
        reason = await bot.policy.check_click(member, parent)
    if reason is None:
        reason = await bot.policy.check_job(member, operation, parent=parent)
    if reason is None:
        return False
    await refuse(interaction, reason)
    return True


async def mark_clicked(
    interaction: discord.Interaction[Any], parent: Job, action: str, *, remixed: bool = False
) -> None:
    """Acknowledge a click on `parent`'s message by colouring that button as Midjourney
    does: blue when used plainly, green when remixed. Content and image stay as they are."""
    used = used_actions(interaction.message) | {action}
    green = actions_with_style(interaction.message, discord.ButtonStyle.success)
    if remixed:
        green |= {action}
    rendered = render(
        parent,
        now=parent.finished_at or parent.updated_at,
        used_actions=used,
        follow_up_window=None,
        extra_actions=bot_actions(interaction.client, parent),
    )
    buttons = [
        dataclasses.replace(b, style=STYLE_SUCCESS) if b.action in green else b
        for b in rendered.buttons
    ]
    view = job_view(buttons, parent.id)
    if interaction.response.is_done():  # deferred earlier (e.g. while a form's images loaded)
        await interaction.edit_original_response(view=view)
    else:
        await interaction.response.edit_message(view=view)


async def refuse(interaction: discord.Interaction[Any], text: str) -> None:
    """A private answer that costs nothing: bad input, no permission, unknown job."""
    await interaction.response.send_message(text, ephemeral=True)


def optional_str(value: int | None) -> str | None:
    return str(value) if value is not None else None


def prompt_limit(bot: MidjourneyBot) -> int:
    """The longest prompt accepted: the provider's limit or the server's, whichever is lower."""
    return min(bot.provider.capabilities.max_prompt_length, bot.settings.mj_max_prompt_length)


# Jobs whose images have a Midjourney seed worth asking for (🌱).
_SEEDABLE = frozenset(
    {
        OperationKind.IMAGINE,
        OperationKind.REROLL,
        OperationKind.VARIATION,
        OperationKind.BLEND,
        OperationKind.UPSCALE,
        OperationKind.OUTPAINT,
        OperationKind.PAN,
        OperationKind.INPAINT,
    }
)


def bot_actions(bot: MidjourneyBot, job: Job) -> list[str]:
    """Buttons the bot offers beyond the provider's actions, where the provider can serve
    them: 🌱 Seed on image jobs."""
    if job.operation.kind in _SEEDABLE and bot.provider.capabilities.supports(OperationKind.SEED):
        return ["seed"]
    return []
