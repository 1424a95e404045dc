"""/blend: two to five images merged into a new grid.

Like /describe, the images are checked before the provider sees them (Discord's size
and type first, then the bytes), so the command answers privately at once and the
job gets its own public message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.discord.attachments import AttachmentError, check_all_metadata, check_attachments
from bot.discord.policy import Member
from bot.domain import BlendDimension, Operation, OperationKind
from bot.interactions.errors import Refusal

if TYPE_CHECKING:
    from bot.app import MidjourneyBot


class Blend(commands.Cog):
    def __init__(self, bot: MidjourneyBot) -> None:
        self.bot = bot

    @app_commands.command(name="blend", description="Blend 2 to 5 images into new ones")
    # Server rules (channels, roles, quotas, speeds) need a server: no DMs, no user installs.
    @app_commands.guild_only()
    @app_commands.allowed_installs(guilds=True, users=False)
    @app_commands.describe(
        image1="First image",
        image2="Second image",
        image3="Third image (optional)",
        image4="Fourth image (optional)",
        image5="Fifth image (optional)",
        dimension="Shape of the result: square (default), portrait or landscape",
    )
    @app_commands.choices(
        dimension=[app_commands.Choice(name=d.value, value=d.value) for d in BlendDimension],
    )
    async def blend(
        self,
        interaction: discord.Interaction[Any],
        image1: discord.Attachment,
        image2: discord.Attachment,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
        image5: discord.Attachment | None = None,
        dimension: app_commands.Choice[str] | None = None,
    ) -> None:
        given = [
            (f"image{n}", a)
            for n, a in enumerate((image1, image2, image3, image4, image5), start=1)
            if a is not None
        ]
        try:
            check_all_metadata(given)  # nothing is downloaded when this fails
        except AttachmentError as exc:
            raise Refusal(str(exc)) from None

        # The speed decided once and carried by the job: judged, counted and sent.
        mode = await self.bot.policy.default_mode(Member.of(interaction))
        probe = Operation(OperationKind.BLEND, image_urls=tuple(a.url for _, a in given), mode=mode)
        await self.bot.starter.check(interaction, probe)
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            checked = await check_attachments(given)
        except AttachmentError as exc:
            await interaction.edit_original_response(content=f"❌ {exc}")
            return
        operation = Operation(
            OperationKind.BLEND,
            image_urls=tuple(c.url for c in checked),
            dimension=BlendDimension(dimension.value) if dimension else None,
            mode=mode,
        )
        await self.bot.starter.start_after_private_ack(
            interaction, operation, what=f"Blending {len(checked)} images"
        )


async def setup(bot: MidjourneyBot) -> None:
    # Hidden where the backend cannot blend (e.g. Vtrix): no command that always fails.
    if bot.provider.capabilities.supports(OperationKind.BLEND):
        await bot.add_cog(Blend(bot))
