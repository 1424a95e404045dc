"""/imagine: validate, acknowledge within 3 seconds, hand the job to the engine.

Bad options get an ephemeral answer and cost nothing at the provider; a good prompt
gets a public message that the publisher keeps up to date.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import media
from bot.community import GuildSettings
from bot.discord.attachments import AttachmentError, check_metadata, format_size
from bot.discord.policy import Member
from bot.domain import Operation, OperationKind, SpeedMode
from bot.engine import EngineError
from bot.interactions.errors import Refusal, answer_refusal
from bot.interactions.ids import optional_str
from bot.references import References, compose_prompt
from bot.speed import SpeedConflictError
from bot.store.base import MemberPrefs, StoreError

if TYPE_CHECKING:
    from bot.app import MidjourneyBot

log = logging.getLogger(__name__)

COMMON_RATIOS = (
    "1:1",
    "16:9",
    "9:16",
    "4:3",
    "3:4",
    "3:2",
    "2:3",
    "21:9",
    "9:21",
    "5:4",
    "4:5",
    "2:1",
)
_RATIO = re.compile(r"^\s*(\d{1,3})\s*:\s*(\d{1,3})\s*$")
# Midjourney accepts roughly 1:14 to 14:1; anything wider is a typo.
MAX_RATIO = 14


class OptionError(ValueError):
    """An option the member typed is unusable; the message tells them why."""


def parse_aspect_ratio(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    match = _RATIO.match(value)
    if not match:
        raise OptionError(f"`{value[:20]}` is not an aspect ratio. Use width:height, like 16:9.")
    width, height = int(match[1]), int(match[2])
    if width == 0 or height == 0 or max(width / height, height / width) > MAX_RATIO:
        raise OptionError(f"Aspect ratio {width}:{height} is out of range (at most {MAX_RATIO}:1).")
    return f"{width}:{height}"


_HAS_AR = re.compile(r"(?:--|—)(?:ar|aspect)\b", re.IGNORECASE)
_TYPED_AR = re.compile(r"(?:--|—)(?:ar|aspect)\s+(\d+\s*:\s*\d+)", re.IGNORECASE)


def reconcile_ratio(option: str | None, prompt: str) -> str | None:
    """The aspect_ratio option beside a `--ar` typed in the prompt: the same ratio goes to
    the service once (in the prompt), a different one is refused (issue 15 item 7)."""
    found = _TYPED_AR.findall(prompt)
    if option is None or not found:
        return option
    try:
        typed = parse_aspect_ratio(found[-1].replace(" ", ""))
    except OptionError:
        return option  # the prompt check refuses a malformed --ar on its own
    if typed != option:
        raise OptionError(
            f"Your prompt says `--ar {typed}` and the aspect_ratio option says {option}."
            " Keep one of them."
        )
    return None


def clean_prompt(prompt: str, *, max_length: int) -> str:
    text = " ".join(prompt.split())
    if not text:
        raise OptionError("The prompt is empty. Describe what you want to see.")
    if len(text) > max_length:
        raise OptionError(f"The prompt is {len(text)} characters long; the limit is {max_length}.")
    return text


_HAS_DRAFT = re.compile(r"(?:--|—)draft\b", re.IGNORECASE)
_HAS_VERSION = re.compile(r"(?:--|—)(?:v|version|niji)\b", re.IGNORECASE)
REFERENCE_MAX_BYTES = 10 * 1024 * 1024  # what Legnext takes for an image (PROVIDERS §8.2)

# Option name -> (References field, what it is, in the member's words).
REFERENCE_OPTIONS = {
    "image_prompt": ("image", "the image prompt"),
    "omni_reference": ("omni", "the omni-reference"),
    "style_reference": ("style", "the style reference"),
    "character_reference": ("character", "the character reference"),
}
WEIGHT_OF = {
    "image_weight": "image_prompt",
    "omni_weight": "omni_reference",
    "style_weight": "style_reference",
    "character_weight": "character_reference",
}


def with_draft(text: str, draft: bool | None) -> str:
    """--draft appended when asked for (the option, or the member's default)."""
    if draft and not _HAS_DRAFT.search(text):
        return f"{text} --draft"
    return text


def with_version(text: str, prefs: MemberPrefs) -> str:
    """The member's /prefs version, where the prompt names none (else Midjourney's V7)."""
    if prefs.version and not _HAS_VERSION.search(text):
        return f"{text} {prefs.version}"
    return text


def find_preset(name: str, prefs: MemberPrefs, settings: GuildSettings | None) -> str | None:
    """The member's own preset of that name, else the server's."""
    own = prefs.preset(name)
    if own is not None:
        return own
    return dict(settings.presets).get(name.strip().lower()) if settings is not None else None


def preset_names(prefs: MemberPrefs, settings: GuildSettings | None) -> list[tuple[str, str]]:
    """(name, whose) of every preset the member may use: their own first."""
    names = [(n, "yours") for n, _ in prefs.presets]
    mine = {n for n, _ in prefs.presets}
    if settings is not None:
        names += [(n, "server") for n, _ in settings.presets if n not in mine]
    return names


def unknown_preset(name: str, prefs: MemberPrefs, settings: GuildSettings | None) -> str:
    known = ", ".join(f"`{n}`" for n, _ in preset_names(prefs, settings)) or "none yet"
    return (
        f"There is no preset named `{name[:40]}`. Presets you can use: {known}. "
        "Save one with /prefs preset save."
    )


def reference_options(
    attachments: dict[str, discord.Attachment | None], weights: dict[str, Any]
) -> References:
    """The references given, with their weights; OptionError for a weight alone or a file
    that is not an image."""
    for weight, option in WEIGHT_OF.items():
        if weights.get(weight) is not None and attachments.get(option) is None:
            raise OptionError(f"`{weight}` weighs `{option}`: attach that image too.")
    urls: dict[str, str] = {}
    for option, attachment in attachments.items():
        if attachment is None:
            continue
        field, what = REFERENCE_OPTIONS[option]
        try:
            check_metadata(attachment, max_bytes=REFERENCE_MAX_BYTES)
        except AttachmentError as exc:
            raise OptionError(f"{what.capitalize()}: {exc}") from None
        urls[field] = attachment.url
    iw = weights.get("image_weight")
    return References(
        **urls,
        image_weight=Decimal(str(iw)) if iw is not None else None,
        omni_weight=weights.get("omni_weight"),
        style_weight=weights.get("style_weight"),
        character_weight=weights.get("character_weight"),
    )


class Imagine(commands.Cog):
    def __init__(self, bot: MidjourneyBot) -> None:
        self.bot = bot

    @app_commands.command(name="imagine", description="Create four images from a prompt")
    # Server rules (channels, roles, quotas, speeds) need a server: no DMs, no user installs.
    @app_commands.guild_only()
    @app_commands.allowed_installs(guilds=True, users=False)
    @app_commands.describe(
        prompt="What to draw; Midjourney parameters like --ar 16:9 may follow",
        aspect_ratio="Width:height of the images, e.g. 16:9",
        mode="Speed: relax, fast or turbo",
        draft="Draft mode (V7): about ten times faster at half the cost; Enhance the best",
        preset="One of your saved parameter sets, or the server's (/prefs preset save)",
        image_prompt="An image to start from (sent first in the prompt)",
        image_weight="How much the image prompt counts (--iw 0-3, default 1)",
        omni_reference="An omni-reference: a person or thing to put in the images (V7)",
        omni_weight="How closely to follow the omni-reference (--ow 1-1000, default 100)",
        style_reference="A style reference image (--sref)",
        style_weight="How strongly to apply the style (--sw 0-1000, default 100)",
        character_reference="A character reference (--cref, V6 and niji 6)",
        character_weight="How much of the character to keep (--cw 0-100, default 100)",
    )
    @app_commands.choices(
        mode=[app_commands.Choice(name=m.value, value=m.value) for m in SpeedMode],
    )
    async def imagine(
        self,
        interaction: discord.Interaction[Any],
        prompt: str,
        aspect_ratio: str | None = None,
        mode: app_commands.Choice[str] | None = None,
        draft: bool | None = None,
        preset: str | None = None,
        image_prompt: discord.Attachment | None = None,
        image_weight: app_commands.Range[float, 0, 3] | None = None,
        omni_reference: discord.Attachment | None = None,
        omni_weight: app_commands.Range[int, 1, 1000] | None = None,
        style_reference: discord.Attachment | None = None,
        style_weight: app_commands.Range[int, 0, 1000] | None = None,
        character_reference: discord.Attachment | None = None,
        character_weight: app_commands.Range[int, 0, 100] | None = None,
    ) -> None:
        attachments = {
            "image_prompt": image_prompt,
            "omni_reference": omni_reference,
            "style_reference": style_reference,
            "character_reference": character_reference,
        }
        weights = {
            "image_weight": image_weight,
            "omni_weight": omni_weight,
            "style_weight": style_weight,
            "character_weight": character_weight,
        }
        prefs = await self.bot.store.prefs.get(
            optional_str(interaction.guild_id), str(interaction.user.id)
        )
        if preset:
            settings = await self.bot.policy.settings(optional_str(interaction.guild_id))
            found = find_preset(preset, prefs, settings)
            if found is None:
                raise Refusal(unknown_preset(preset, prefs, settings))
            # Like typed parameters: the same speed decision and prompt check follow.
            prompt = f"{prompt} {found}"
        await self._imagine(
            interaction, prefs, prompt, aspect_ratio, mode, draft, attachments, weights
        )

    async def _imagine(
        self,
        interaction: discord.Interaction[Any],
        prefs: MemberPrefs,
        prompt: str,
        aspect_ratio: str | None,
        mode: app_commands.Choice[str] | None,
        draft: bool | None,
        attachments: dict[str, discord.Attachment | None],
        weights: dict[str, Any],
    ) -> None:
        try:
            # One speed from the option, the prompt's and the suffix's flags, the member's
            # and the server's defaults; the prompt sent keeps no flag (bot/speed.py). The
            # member's /prefs suffix goes on every prompt, like Midjourney's /prefer suffix.
            speed = await self.bot.policy.decide_speed(
                Member.of(interaction),
                option=SpeedMode(mode.value) if mode else None,
                prompt=prompt,
                prefs=prefs,
                with_suffix=True,
            )
            text = clean_prompt(speed.prompt or "", max_length=self.bot.starter.prompt_limit)
            ratio = reconcile_ratio(parse_aspect_ratio(aspect_ratio), text)
            refs = reference_options(attachments, weights)
        except (OptionError, SpeedConflictError) as exc:
            raise Refusal(str(exc)) from None
        if ratio is None and not _HAS_AR.search(text):
            ratio = prefs.default_aspect_ratio
        text = with_version(with_draft(text, prefs.draft if draft is None else draft), prefs)
        # The prompt check (versions included: --oref only on V7) judges the prompt as it
        # will be sent, with the attachments' URLs in it, before anything is posted.
        operation = Operation(
            OperationKind.IMAGINE,
            prompt=compose_prompt(text, refs),
            aspect_ratio=ratio,
            mode=speed.mode,
        )
        await self.bot.starter.check(interaction, operation)
        if refs.urls():
            await self._start_with_references(interaction, text, refs, attachments, operation)
            return
        # Stored first, then acknowledged publicly within the 3-second window, before the
        # provider is asked (bot/interactions/starter.py).
        await self.bot.starter.start_public(interaction, operation)

    async def _start_with_references(
        self,
        interaction: discord.Interaction[Any],
        text: str,
        refs: References,
        attachments: dict[str, discord.Attachment | None],
        operation: Operation,
    ) -> None:
        """Acknowledge first (copying the images takes a few requests), keep the images in
        a message of the bot's own, then start the job with that message's URLs: the
        member's upload is theirs and its URL dies in a day (bot/references.py)."""
        response = await interaction.response.defer(thinking=True)
        given = [(opt, a) for opt, a in attachments.items() if a is not None]
        try:
            files = [(a.filename, await self._image_bytes(opt, a)) for opt, a in given]
            kept = await self.bot.references.keep(
                interaction.channel_id or 0,
                f"📎 Reference images for a /imagine by <@{interaction.user.id}>",
                files,
            )
        except OptionError as exc:
            await answer_refusal(interaction, str(exc))  # the public "thinking" reply goes
            return
        except discord.HTTPException as exc:
            log.warning("could not keep the reference images (%s)", exc.status)
            await interaction.edit_original_response(
                content="❌ I could not keep your reference images in this channel (can I "
                "attach files here?). Nothing was started."
            )
            return
        fresh = {a.url: url for (_, a), url in zip(given, kept, strict=True)}
        operation = dataclasses.replace(
            operation, prompt=compose_prompt(text, refs.with_urls(fresh))
        )
        try:
            await self.bot.starter.start(
                interaction,
                operation,
                idempotency_key=f"interaction:{interaction.id}",
                message_id=response.message_id if response else None,
                use_token=True,
            )
        except EngineError as exc:
            await interaction.edit_original_response(content=f"❌ {exc.error.message}")
        except StoreError:
            await interaction.edit_original_response(
                content="❌ I can't save anything right now, so nothing was started and "
                "nothing was charged. Please try again in a few minutes."
            )

    async def _image_bytes(self, option: str, attachment: discord.Attachment) -> bytes:
        what = REFERENCE_OPTIONS[option][1]
        try:
            data = await attachment.read()
        except discord.HTTPException:
            raise OptionError(f"Could not download {what} from Discord; try again.") from None
        if len(data) > REFERENCE_MAX_BYTES:
            raise OptionError(
                f"{what.capitalize()} is {format_size(len(data))}; the limit is 10 MB."
            )
        try:
            await asyncio.to_thread(media.inspect_image, data)
        except media.MediaError as exc:
            raise OptionError(f"{what.capitalize()}: {exc.message}") from None
        return data

    @imagine.autocomplete("preset")
    async def _preset_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        prefs = await self.bot.store.prefs.get(
            optional_str(interaction.guild_id), str(interaction.user.id)
        )
        settings = await self.bot.policy.settings(optional_str(interaction.guild_id))
        typed = current.strip().lower()
        return [
            app_commands.Choice(name=f"{name} ({whose})"[:100], value=name)
            for name, whose in preset_names(prefs, settings)
            if name.startswith(typed)
        ][:25]

    @imagine.autocomplete("aspect_ratio")
    async def _ratio_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        typed = current.strip()
        options = [r for r in COMMON_RATIOS if r.startswith(typed)] or list(COMMON_RATIOS)
        return [app_commands.Choice(name=r, value=r) for r in options[:25]]


async def setup(bot: MidjourneyBot) -> None:
    await bot.add_cog(Imagine(bot))
