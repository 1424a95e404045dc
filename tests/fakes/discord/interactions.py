"""Building INTERACTION_CREATE payloads the way Discord's client would (§4).

A test names a command and gives option values; everything else comes from what the bot
registered: the command id, the option types, the subcommand tree and the resolved objects.
Anything a real user could not send (unknown command or option, a disabled button, a modal
that was never opened) raises instead of reaching the bot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .models import (
    F_EPHEMERAL,
    JSON,
    P_ADMINISTRATOR,
    FakeChannel,
    FakeGuild,
    FakeRole,
    FakeUser,
    MessageRecord,
    Upload,
    iter_components,
)

if TYPE_CHECKING:
    from .server import FakeDiscord


class InteractionRefused(ValueError):
    """What the test asked for is something Discord's client would never send."""


UserRef = FakeUser | str | int
ChannelRef = FakeChannel | str | int
OptionValue = Any


SNOWFLAKE_OPTION_TYPES = {6, 7, 8, 9, 11}  # user, channel, role, mentionable, attachment


def command_path(name: str, subcommand: str | Sequence[str] | None) -> list[str]:
    parts = name.split()
    if isinstance(subcommand, str):
        parts.extend(subcommand.split())
    elif subcommand:
        parts.extend(subcommand)
    return parts


class OptionBuilder:
    """Turns `{"prompt": "a cat", "image": Upload(...)}` into `options` + `resolved`."""

    def __init__(self, fake: FakeDiscord, guild: FakeGuild, channel: FakeChannel) -> None:
        self.fake = fake
        self.guild = guild
        self.channel = channel
        self.resolved: dict[str, dict[str, JSON]] = {}

    def build(
        self,
        command: JSON,
        path: list[str],
        given: Mapping[str, OptionValue] | Sequence[JSON] | None,
        *,
        focused: str | None = None,
    ) -> list[JSON]:
        schema: list[JSON] = command.get("options") or []
        wrappers: list[JSON] = []
        for part in path[1:]:
            sub = next(
                (o for o in schema if o.get("name") == part and o.get("type") in (1, 2)), None
            )
            if sub is None:
                raise InteractionRefused(f"/{' '.join(path)}: no subcommand {part!r} registered")
            wrappers.append({"name": part, "type": sub["type"]})
            schema = sub.get("options") or []
        if any(o.get("type") in (1, 2) for o in schema):
            names = [o["name"] for o in schema]
            raise InteractionRefused(f"/{' '.join(path)} needs a subcommand, one of {names}")

        options = self._leaf_options(schema, given, path, focused)
        for wrapper in reversed(wrappers):
            wrapper["options"] = options
            options = [wrapper]
        return options

    def _leaf_options(
        self,
        schema: list[JSON],
        given: Mapping[str, OptionValue] | Sequence[JSON] | None,
        path: list[str],
        focused: str | None,
    ) -> list[JSON]:
        by_name = {o["name"]: o for o in schema}
        where = f"/{' '.join(path)}"
        if given is None:
            given = {}
        if not isinstance(given, Mapping):  # raw option dicts: names still must exist
            raw: list[JSON] = []
            for item in given:
                spec = by_name.get(item.get("name", ""))
                if spec is None:
                    raise InteractionRefused(f"{where}: unknown option {item.get('name')!r}")
                raw.append({"type": spec["type"], **item})
            return raw

        out: list[JSON] = []
        for name, value in given.items():
            spec = by_name.get(name)
            if spec is None:
                raise InteractionRefused(f"{where}: unknown option {name!r}; have {list(by_name)}")
            if name == focused:
                if not spec.get("autocomplete"):
                    raise InteractionRefused(f"{where}: option {name!r} has no autocomplete")
                out.append({"name": name, "type": spec["type"], "value": value, "focused": True})
                continue
            out.append(
                {"name": name, "type": spec["type"], "value": self._value(spec, value, where)}
            )
        if focused is None:
            missing = [o["name"] for o in schema if o.get("required") and o["name"] not in given]
            if missing:
                raise InteractionRefused(f"{where}: required option(s) missing: {missing}")
        elif focused not in given:
            raise InteractionRefused(f"{where}: the focused option {focused!r} needs a value")
        return out

    def _value(self, spec: JSON, value: OptionValue, where: str) -> Any:
        otype = spec["type"]
        name = spec["name"]
        choices = spec.get("choices") or []
        if otype == 3:
            if not isinstance(value, str):
                raise InteractionRefused(f"{where}: {name} must be a string")
            low, high = spec.get("min_length", 0), spec.get("max_length", 6000)
            if not low <= len(value) <= high:
                raise InteractionRefused(f"{where}: {name} length must be {low}..{high}")
        elif otype == 4:
            if isinstance(value, bool) or not isinstance(value, int):
                raise InteractionRefused(f"{where}: {name} must be an integer")
        elif otype == 5:
            if not isinstance(value, bool):
                raise InteractionRefused(f"{where}: {name} must be a boolean")
        elif otype == 10 and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InteractionRefused(f"{where}: {name} must be a number")
        if otype in (4, 10):
            low, high = spec.get("min_value"), spec.get("max_value")
            if (low is not None and value < low) or (high is not None and value > high):
                raise InteractionRefused(f"{where}: {name} must be within {low}..{high}")
        if choices and value not in [c["value"] for c in choices]:
            raise InteractionRefused(f"{where}: {name} must be one of the registered choices")
        if otype in SNOWFLAKE_OPTION_TYPES:
            return self._resolve(spec, value, where)
        return value

    def _resolve(self, spec: JSON, value: OptionValue, where: str) -> str:
        otype = spec["type"]
        if otype == 11:
            upload = value if isinstance(value, Upload) else Upload(*value)
            att = self.fake.add_attachment(self.channel.id, upload, ephemeral=True)
            self.resolved.setdefault("attachments", {})[str(att.id)] = att.payload(
                self.fake.base_url
            )
            return str(att.id)
        if otype == 7:
            channel = self.fake.resolve_channel(value, self.guild)
            allowed = spec.get("channel_types")
            if allowed and channel.type not in allowed:
                raise InteractionRefused(f"{where}: channel type {channel.type} not allowed")
            self.add_channel(channel)
            return str(channel.id)
        if otype == 8 or (otype == 9 and self._is_role(value)):
            role = self.fake.resolve_role(value, self.guild)
            self.resolved.setdefault("roles", {})[str(role.id)] = role.payload()
            return str(role.id)
        user = self.fake.resolve_user(value)
        self.add_user(user)
        return str(user.id)

    def _is_role(self, value: OptionValue) -> bool:
        if isinstance(value, FakeRole):
            return True
        try:
            self.fake.resolve_role(value, self.guild)
        except LookupError:
            return False
        return not isinstance(value, FakeUser)

    def add_user(self, user: FakeUser) -> None:
        self.resolved.setdefault("users", {})[str(user.id)] = user.payload()
        member = self.guild.member(user.id)
        if member is not None:
            perms = self.guild.permissions_for(user.id)
            self.resolved.setdefault("members", {})[str(user.id)] = member.payload(
                permissions=perms, with_user=False
            )

    def add_channel(self, channel: FakeChannel) -> None:
        data = channel.payload(self.guild.permissions_for(self.fake.bot_user.id))
        self.resolved.setdefault("channels", {})[str(channel.id)] = data


def check_can_use(command: JSON, guild: FakeGuild, channel: FakeChannel, user: FakeUser) -> None:
    """Discord hides commands a member may not use; such a member cannot invoke them."""
    required = command.get("default_member_permissions")
    if required is not None:
        perms = guild.permissions_for(user.id)
        needed = int(required)  # "0" means administrators only
        if not perms & P_ADMINISTRATOR and (needed == 0 or perms & needed != needed):
            raise InteractionRefused(f"{user.username} lacks permissions for /{command['name']}")
    contexts = command.get("contexts")
    if contexts is not None and 0 not in contexts:
        raise InteractionRefused(f"/{command['name']} is not installed for use in guilds")
    if command.get("nsfw") and not channel.nsfw:
        raise InteractionRefused(f"/{command['name']} is age-restricted; #{channel.name} is not")


def click_data(message: MessageRecord, custom_id: str, values: Sequence[str] | None) -> JSON:
    """The `data` of a component interaction, refusing what a user could not click."""
    component = message.component(custom_id)
    if component is None:
        raise InteractionRefused(
            f"message {message.id} has no component {custom_id!r}; has {message.custom_ids}"
        )
    if component.get("disabled"):
        raise InteractionRefused(f"component {custom_id!r} is disabled")
    ctype = component.get("type")
    data: JSON = {"custom_id": custom_id, "component_type": ctype}
    if "id" in component:
        data["id"] = component["id"]
    if ctype == 2:
        if component.get("style") in (5, 6):
            raise InteractionRefused(f"{custom_id!r} is a link/premium button")
        if values:
            raise InteractionRefused("buttons take no values")
        return data
    if ctype not in (3, 5, 6, 7, 8):
        raise InteractionRefused(f"component {custom_id!r} of type {ctype} is not clickable")
    chosen = list(values or [])
    low, high = component.get("min_values", 1), component.get("max_values", 1)
    if not low <= len(chosen) <= high:
        raise InteractionRefused(f"select {custom_id!r} takes {low}..{high} values")
    if ctype == 3:
        offered = [o["value"] for o in component.get("options", [])]
        unknown = [v for v in chosen if v not in offered]
        if unknown:
            raise InteractionRefused(f"select {custom_id!r} does not offer {unknown}")
    data["values"] = chosen
    return data


def modal_submit_components(modal: JSON, values: Mapping[str, Any]) -> list[JSON]:
    """Mirror a stored modal with the user's input, as Discord sends it back (§4 type 5)."""
    fields = {
        c["custom_id"]: c for c in iter_components(modal.get("components", [])) if "custom_id" in c
    }
    unknown = [k for k in values if k not in fields]
    if unknown:
        raise InteractionRefused(f"modal {modal.get('custom_id')!r} has no field(s) {unknown}")

    def submitted(field: JSON) -> JSON:
        custom_id = field["custom_id"]
        out: JSON = {"type": field["type"], "custom_id": custom_id}
        if "id" in field:
            out["id"] = field["id"]
        if field["type"] == 4:
            value = values.get(custom_id, field.get("value") or "")
            if not isinstance(value, str):
                raise InteractionRefused(f"text input {custom_id!r} takes a string")
            if field.get("required", True) and not value:
                raise InteractionRefused(f"text input {custom_id!r} is required")
            low, high = field.get("min_length", 0), field.get("max_length", 4000)
            if value and not low <= len(value) <= high:
                raise InteractionRefused(f"text input {custom_id!r} must be {low}..{high} long")
            out["value"] = value
        else:
            chosen = values.get(custom_id, [])
            out["values"] = [chosen] if isinstance(chosen, str) else list(chosen)
        return out

    mirrored: list[JSON] = []
    for component in modal.get("components", []):
        ctype = component.get("type")
        if ctype == 1:
            row = [submitted(c) for c in component.get("components", [])]
            mirrored.append({"type": 1, "components": row})
        elif ctype == 18:
            label: JSON = {"type": 18, "component": submitted(component["component"])}
            if "id" in component:
                label["id"] = component["id"]
            mirrored.append(label)
        elif ctype == 10:
            mirrored.append({"type": 10, **({"id": component["id"]} if "id" in component else {})})
    return mirrored


def ephemeral_owner(message: MessageRecord) -> int | None:
    if not message.flags & F_EPHEMERAL or not message.interaction_metadata:
        return None
    return int(message.interaction_metadata["user"]["id"])
