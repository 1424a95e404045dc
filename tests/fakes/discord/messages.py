"""Creating, editing and deleting messages with Discord's rules (§5, §7).

Shared by interaction callbacks, `@original`, followups and channel messages, so that the
attachment keep/add/drop rules, the limits and the gateway events are the same on every path.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .models import (
    F_COMPONENTS_V2,
    F_EPHEMERAL,
    F_LOADING,
    F_SUPPRESS_EMBEDS,
    JSON,
    ApiError,
    AttachmentRecord,
    FakeChannel,
    MessageRecord,
    empty_message,
    guess_content_type,
    iter_components,
)
from .validation import MAX_ATTACHMENTS, FormErrors, is_empty_message, validate_message_fields

if TYPE_CHECKING:
    from .server import FakeDiscord

FILE_FIELD_RE = re.compile(r"^files\[(\d+)\]$")


@dataclass
class ParsedFile:
    """One `files[n]` part of a multipart request."""

    field: str
    filename: str
    data: bytes
    content_type: str | None

    @property
    def index(self) -> int | None:
        match = FILE_FIELD_RE.match(self.field)
        return int(match.group(1)) if match else None


def assign_component_ids(components: list[JSON]) -> list[JSON]:
    """Discord numbers every component that has no `id` (1, 2, … depth-first)."""
    components = copy.deepcopy(components)
    everything = iter_components(components)
    used = {c["id"] for c in everything if isinstance(c.get("id"), int)}
    counter = 0
    for component in everything:
        if "id" not in component or component["id"] is None:
            counter += 1
            while counter in used:
                counter += 1
            component["id"] = counter
    return components


class MessageService:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    # --- attachments ------------------------------------------------------------------------

    def _attachments(
        self,
        existing: list[AttachmentRecord],
        listed: Any,
        files: list[ParsedFile],
        channel_id: int,
        ephemeral: bool,
    ) -> list[AttachmentRecord]:
        """Keep/add/drop: listed snowflakes are kept, listed indexes add `files[n]`,
        unlisted existing ones are dropped; no `attachments` key keeps everything."""
        fake = self.fake
        errors = FormErrors()
        uploads = {f.index: f for f in files if f.index is not None}
        unindexed = [f for f in files if f.index is None]

        def new(upload: ParsedFile, entry: JSON | None = None) -> AttachmentRecord:
            entry = entry or {}
            filename = str(entry.get("filename") or upload.filename)
            return AttachmentRecord(
                id=fake.snowflake(),
                filename=filename,
                data=upload.data,
                content_type=guess_content_type(filename, upload.content_type),
                channel_id=channel_id,
                created_at=fake.now(),
                ephemeral=ephemeral,
                description=entry.get("description"),
                clock=fake.now,
            )

        if listed is None:
            result = [*existing, *(new(f) for f in files)]
        elif not isinstance(listed, list):
            errors.add(("attachments",), "BASE_TYPE_ARRAY", "Must be an array.")
            errors.raise_if_any()
            return []
        else:
            by_id = {a.id: a for a in existing}
            used: set[int] = set()
            result = []
            for i, entry in enumerate(listed):
                try:
                    key = int(entry.get("id"))
                except (TypeError, ValueError, AttributeError):
                    errors.add(("attachments", i, "id"), "BASE_TYPE_REQUIRED", "Invalid id.")
                    continue
                if key in by_id:
                    result.append(by_id[key])
                elif key in uploads:
                    used.add(key)
                    result.append(new(uploads[key], entry))
                else:
                    errors.add(
                        ("attachments", i, "id"),
                        "ATTACHMENT_NOT_FOUND",
                        f"Unknown attachment {key}: neither kept nor uploaded",
                    )
            # uploads the list forgot are still attached, as Discord does
            result.extend(new(f) for k, f in uploads.items() if k not in used)
            result.extend(new(f) for f in unindexed)
        if len(result) > MAX_ATTACHMENTS:
            errors.add(
                ("attachments",),
                "BASE_TYPE_MAX_LENGTH",
                f"Must be {MAX_ATTACHMENTS} or fewer in length.",
            )
        errors.raise_if_any()
        return result

    # --- create / edit / delete -------------------------------------------------------------

    def build(
        self,
        *,
        channel: FakeChannel,
        payload: JSON,
        files: list[ParsedFile],
        author: JSON,
        msg_type: int,
        allowed_flags: int,
        interaction_id: int | None = None,
        interaction_metadata: JSON | None = None,
        loading: bool = False,
    ) -> MessageRecord:
        """A new message, validated; not stored until `commit_new`."""
        if not isinstance(payload, dict):
            raise ApiError(
                400,
                50035,
                "Invalid Form Body",
                {
                    "_errors": [
                        {
                            "code": "DICT_TYPE_CONVERT",
                            "message": "Only dictionaries may be used in a DictType",
                        }
                    ]
                },
            )
        errors = FormErrors()
        validate_message_fields(payload, errors)
        errors.raise_if_any()
        flags = int(payload.get("flags") or 0) & allowed_flags
        if loading:
            flags |= F_LOADING
        content = payload.get("content") or ""
        embeds = list(payload.get("embeds") or [])
        if not embeds and payload.get("embed"):
            embeds = [payload["embed"]]
        components = assign_component_ids(payload.get("components") or [])
        attachments = self._attachments(
            [], payload.get("attachments"), files, channel.id, bool(flags & F_EPHEMERAL)
        )
        if not loading and is_empty_message(content, embeds, components, len(attachments), payload):
            raise empty_message()
        return MessageRecord(
            id=self.fake.snowflake(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=author,
            created_at=self.fake.now(),
            content=content,
            embeds=embeds,
            components=components,
            attachments=attachments,
            flags=flags,
            type=msg_type,
            webhook_id=self.fake.app_id if interaction_id is not None else None,
            application_id=self.fake.app_id if interaction_id is not None else None,
            interaction_id=interaction_id,
            interaction_metadata=interaction_metadata,
            message_reference=payload.get("message_reference"),
            allowed_mentions=payload.get("allowed_mentions"),
            tts=bool(payload.get("tts")),
        )

    async def commit_new(self, message: MessageRecord) -> MessageRecord:
        fake = self.fake
        for attachment in message.attachments:
            fake.attachments[attachment.id] = attachment
        fake.messages[message.id] = message
        if not message.loading:
            await self._announce(message, "MESSAGE_CREATE")
        fake.notify()
        return message

    async def edit(
        self, message: MessageRecord, payload: Any, files: list[ParsedFile]
    ) -> MessageRecord:
        """PATCH semantics: only the keys present change; the result must not be empty."""
        if not isinstance(payload, dict):
            payload = {}
        errors = FormErrors()
        checked = dict(payload)
        checked.setdefault("flags", message.flags)
        validate_message_fields(checked, errors)
        errors.raise_if_any()
        if self.fake.old_message_edit_limit is not None:
            self._check_old_edit(message)

        content = message.content
        if "content" in payload:
            content = payload["content"] or ""
        embeds = message.embeds
        if "embeds" in payload:
            embeds = list(payload["embeds"] or [])
        elif "embed" in payload:
            embeds = [payload["embed"]] if payload["embed"] else []
        components = message.components
        if "components" in payload:
            components = assign_component_ids(payload["components"] or [])
        attachments = self._attachments(
            message.attachments,
            payload.get("attachments") if "attachments" in payload else None,
            files,
            message.channel_id,
            message.ephemeral,
        )
        flags = message.flags
        if "flags" in payload and payload["flags"] is not None:
            requested = int(payload["flags"])
            flags = (flags & ~F_SUPPRESS_EMBEDS) | (requested & F_SUPPRESS_EMBEDS)
            flags |= requested & F_COMPONENTS_V2  # can be set, never cleared
        if is_empty_message(content, embeds, components, len(attachments), payload):
            raise empty_message()

        was_loading = message.loading
        message.history.append(message.snapshot())
        message.content = content
        message.embeds = embeds
        message.components = components
        message.attachments = attachments
        message.flags = flags & ~F_LOADING
        if "allowed_mentions" in payload:
            message.allowed_mentions = payload["allowed_mentions"]
        message.edit_count += 1
        if not was_loading:
            message.edited_at = self.fake.now()
        for attachment in attachments:
            self.fake.attachments[attachment.id] = attachment
        # the first edit of a deferred ("thinking") reply is when the message appears (§5)
        await self._announce(message, "MESSAGE_UPDATE" if message.dispatched else "MESSAGE_CREATE")
        self.fake.notify()
        return message

    def _check_old_edit(self, message: MessageRecord) -> None:
        if self.fake.now() - message.created_at <= 3600:
            return
        message.old_edits += 1
        limit = self.fake.old_message_edit_limit
        if limit is not None and message.old_edits > limit:
            # Sent without `Via`, so discord.py raises HTTPException instead of sleeping (§7).
            raise ApiError(
                429,
                30046,
                "Maximum number of edits to messages older than 1 hour reached. Try again later",
                headers={"Retry-After": "60"},
            )

    async def delete(self, message: MessageRecord) -> None:
        message.deleted = True
        if message.dispatched:
            data: JSON = {"id": str(message.id), "channel_id": str(message.channel_id)}
            if message.guild_id is not None:
                data["guild_id"] = str(message.guild_id)
            await self.fake.gateway.dispatch_guild_event(
                "MESSAGE_DELETE", data, message.guild_id, needs_messages_intent=True
            )
        self.fake.notify()

    async def _announce(self, message: MessageRecord, event: str) -> None:
        """MESSAGE_CREATE/UPDATE for non-ephemeral messages, to bots with GUILD_MESSAGES (§3)."""
        if message.ephemeral:
            return
        data = message.payload(self.fake.base_url)
        if message.guild_id is not None:
            data["guild_id"] = str(message.guild_id)
            guild = self.fake.guild_by_id(message.guild_id)
            member = guild.member(int(message.author["id"])) if guild else None
            if member is not None and message.webhook_id is None:
                data["member"] = member.payload(with_user=False)
        message.dispatched = True
        await self.fake.gateway.dispatch_guild_event(
            event, data, message.guild_id, needs_messages_intent=True
        )
