"""Discord's validation of what a bot sends: messages, components, modals, commands (§7, §8).

Errors come back the way Discord reports them: one 400 with code 50035 "Invalid Form Body" and
an `errors` tree whose leaves are `{"_errors": [{"code", "message"}]}`.
"""

from __future__ import annotations

import re
from typing import Any

from .models import F_COMPONENTS_V2, JSON, ApiError, iter_components

Path = tuple[str | int, ...]

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_ATTACHMENTS = 10
MAX_ROWS = 5
MAX_ROW_WIDTH = 5
MAX_V2_COMPONENTS = 40
MAX_EMBED_TOTAL = 6000

SELECT_TYPES = {3, 5, 6, 7, 8}
INTERACTIVE_TYPES = {2, *SELECT_TYPES}
MODAL_FIELD_TYPES = {4, 3, 5, 6, 7, 8, 19, 21, 22, 23}
# Chat-input names: letters/digits of any script, '-', '_' and "'" (discord-api-docs).
COMMAND_NAME_RE = re.compile(r"^[-_'\w]{1,32}$")
URL_RE = re.compile(r"^(https?|attachment)://\S+$")


class FormErrors:
    """Collects errors by JSON path and raises them as one 50035."""

    def __init__(self) -> None:
        self._items: list[tuple[Path, str, str]] = []

    def add(self, path: Path, code: str, message: str) -> None:
        self._items.append((path, code, message))

    def __bool__(self) -> bool:
        return bool(self._items)

    def tree(self) -> JSON:
        root: JSON = {}
        for path, code, message in self._items:
            node = root
            for key in path:
                node = node.setdefault(str(key), {})
            node.setdefault("_errors", []).append({"code": code, "message": message})
        return root

    def raise_if_any(self) -> None:
        if self._items:
            raise ApiError(400, 50035, "Invalid Form Body", self.tree())


def _max_len(errors: FormErrors, path: Path, value: Any, limit: int) -> None:
    if isinstance(value, str) and len(value) > limit:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")


def _bad_len(errors: FormErrors, path: Path, value: Any, low: int, high: int) -> None:
    size = len(value) if isinstance(value, str | list) else -1
    if not low <= size <= high:
        errors.add(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")


def _required(errors: FormErrors, path: Path, value: Any) -> bool:
    if value is None:
        errors.add(path, "BASE_TYPE_REQUIRED", "This field is required")
        return False
    return True


# --- messages -------------------------------------------------------------------------------


def validate_message_fields(payload: JSON, errors: FormErrors) -> None:
    """Field limits of a message create/edit body (whatever keys it carries)."""
    content = payload.get("content")
    if content is not None and not isinstance(content, str):
        errors.add(("content",), "BASE_TYPE_STRING", "Must be a string.")
    _max_len(errors, ("content",), content, MAX_CONTENT)

    embeds = payload.get("embeds")
    if embeds is not None:
        if not isinstance(embeds, list):
            errors.add(("embeds",), "BASE_TYPE_ARRAY", "Must be an array.")
        else:
            if len(embeds) > MAX_EMBEDS:
                errors.add(
                    ("embeds",), "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length."
                )
            total = 0
            for i, embed in enumerate(embeds):
                total += validate_embed(embed, ("embeds", i), errors)
            if total > MAX_EMBED_TOTAL:
                errors.add(
                    ("embeds",),
                    "MAX_EMBED_SIZE_EXCEEDED",
                    f"Embed size exceeds maximum size of {MAX_EMBED_TOTAL}",
                )

    components = payload.get("components")
    if components is not None:
        validate_components(components, int(payload.get("flags") or 0), errors)

    attachments = payload.get("attachments")
    if isinstance(attachments, list) and len(attachments) > MAX_ATTACHMENTS:
        errors.add(
            ("attachments",),
            "BASE_TYPE_MAX_LENGTH",
            f"Must be {MAX_ATTACHMENTS} or fewer in length.",
        )

    flags = int(payload.get("flags") or 0)
    if flags & F_COMPONENTS_V2 and (payload.get("content") or payload.get("embeds")):
        errors.add(
            ("content",),
            "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
            "The 'content' and 'embeds' fields cannot be used with IS_COMPONENTS_V2",
        )


def validate_embed(embed: Any, path: Path, errors: FormErrors) -> int:
    """Checks one embed and returns its character count towards the 6000 total."""
    if not isinstance(embed, dict):
        errors.add(path, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
        return 0
    count = 0
    for key, limit in (("title", 256), ("description", 4096)):
        value = embed.get(key)
        _max_len(errors, (*path, key), value, limit)
        count += len(value) if isinstance(value, str) else 0
    if embed.get("url") is not None and not URL_RE.match(str(embed["url"])):
        errors.add((*path, "url"), "URL_TYPE_INVALID_URL", "Not a well formed URL.")
    for key in ("image", "thumbnail"):
        media = embed.get(key)
        if isinstance(media, dict) and not URL_RE.match(str(media.get("url", ""))):
            errors.add((*path, key, "url"), "URL_TYPE_INVALID_URL", "Not a well formed URL.")
    fields = embed.get("fields") or []
    if len(fields) > 25:
        errors.add((*path, "fields"), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    for i, fld in enumerate(fields):
        name, value = fld.get("name"), fld.get("value")
        if _required(errors, (*path, "fields", i, "name"), name):
            _bad_len(errors, (*path, "fields", i, "name"), name, 1, 256)
        if _required(errors, (*path, "fields", i, "value"), value):
            _bad_len(errors, (*path, "fields", i, "value"), value, 1, 1024)
        count += len(name or "") + len(value or "")
    footer = embed.get("footer") or {}
    _max_len(errors, (*path, "footer", "text"), footer.get("text"), 2048)
    count += len(footer.get("text") or "")
    author = embed.get("author") or {}
    _max_len(errors, (*path, "author", "name"), author.get("name"), 256)
    count += len(author.get("name") or "")
    return count


def validate_components(components: Any, flags: int, errors: FormErrors) -> None:
    if not isinstance(components, list):
        errors.add(("components",), "BASE_TYPE_ARRAY", "Must be an array.")
        return
    if flags & F_COMPONENTS_V2:
        total = len(iter_components(components))
        if total > MAX_V2_COMPONENTS:
            errors.add(
                ("components",),
                "BASE_TYPE_MAX_LENGTH",
                f"Must be {MAX_V2_COMPONENTS} or fewer in length.",
            )
        for i, component in enumerate(components):
            _validate_v2(component, ("components", i), errors)
    else:
        if len(components) > MAX_ROWS:
            errors.add(
                ("components",), "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_ROWS} or fewer in length."
            )
        for i, row in enumerate(components):
            _validate_row(row, ("components", i), errors)
    _check_unique_custom_ids(components, errors)


def _validate_row(row: Any, path: Path, errors: FormErrors) -> None:
    if not isinstance(row, dict) or row.get("type") != 1:
        errors.add(
            (*path, "type"), "UNION_TYPE_CHOICES", 'Value of field "type" must be one of (1,).'
        )
        return
    children = row.get("components")
    _bad_len(errors, (*path, "components"), children, 1, MAX_ROW_WIDTH)
    children = children if isinstance(children, list) else []
    is_select = [isinstance(c, dict) and c.get("type") in SELECT_TYPES for c in children]
    if any(is_select) and len(children) > 1:
        errors.add(
            (*path, "components"),
            "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
            "The specified component exceeds the maximum width",
        )
    for j, child in enumerate(children):
        _validate_interactive(child, (*path, "components", j), errors)


def _validate_v2(component: Any, path: Path, errors: FormErrors) -> None:
    if not isinstance(component, dict):
        return
    if component.get("type") == 1:
        _validate_row(component, path, errors)
        return
    for j, child in enumerate(component.get("components") or []):
        _validate_v2(child, (*path, "components", j), errors)
    accessory = component.get("accessory")
    if isinstance(accessory, dict) and accessory.get("type") == 2:
        _validate_interactive(accessory, (*path, "accessory"), errors)


def _validate_interactive(component: Any, path: Path, errors: FormErrors) -> None:
    if not isinstance(component, dict):
        errors.add(path, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
        return
    ctype = component.get("type")
    if ctype == 2:
        _validate_button(component, path, errors)
    elif ctype in SELECT_TYPES:
        _validate_select(component, path, errors)
    else:
        errors.add(
            (*path, "type"),
            "UNION_TYPE_CHOICES",
            'Value of field "type" must be one of (2, 3, 5, 6, 7, 8).',
        )


def _validate_button(button: JSON, path: Path, errors: FormErrors) -> None:
    style = button.get("style")
    if style not in (1, 2, 3, 4, 5, 6):
        errors.add(
            (*path, "style"), "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4, 5, 6}."
        )
    _max_len(errors, (*path, "label"), button.get("label"), 80)
    if style == 5:
        url = button.get("url")
        if not url or not URL_RE.match(str(url)):
            errors.add((*path, "url"), "URL_TYPE_INVALID_URL", "Not a well formed URL.")
        _max_len(errors, (*path, "url"), url, 512)
        if "custom_id" in button:
            errors.add(
                (*path, "custom_id"),
                "BUTTON_COMPONENT_CUSTOM_ID_LINK",
                "A link button cannot have a custom id",
            )
    elif style == 6:
        _required(errors, (*path, "sku_id"), button.get("sku_id"))
    else:
        custom_id = button.get("custom_id")
        if _required(errors, (*path, "custom_id"), custom_id):
            _bad_len(errors, (*path, "custom_id"), custom_id, 1, 100)
    if style != 6 and not button.get("label") and not button.get("emoji"):
        errors.add(
            path,
            "BUTTON_COMPONENT_LABEL_OR_EMOJI_REQUIRED",
            "A button must have a label or an emoji",
        )


def _validate_select(select: JSON, path: Path, errors: FormErrors) -> None:
    custom_id = select.get("custom_id")
    if _required(errors, (*path, "custom_id"), custom_id):
        _bad_len(errors, (*path, "custom_id"), custom_id, 1, 100)
    _max_len(errors, (*path, "placeholder"), select.get("placeholder"), 150)
    low, high = select.get("min_values", 1), select.get("max_values", 1)
    if not (0 <= low <= 25 and 1 <= high <= 25 and low <= high):
        errors.add((*path, "max_values"), "BASE_TYPE_BAD_INT", "min_values/max_values out of range")
    if select.get("type") == 3:
        options = select.get("options")
        _bad_len(errors, (*path, "options"), options, 1, 25)
        for k, opt in enumerate(options if isinstance(options, list) else []):
            for key in ("label", "value"):
                _bad_len(errors, (*path, "options", k, key), opt.get(key), 1, 100)
            _max_len(errors, (*path, "options", k, "description"), opt.get("description"), 100)


def _check_unique_custom_ids(components: list[JSON], errors: FormErrors) -> None:
    seen: set[str] = set()
    for component in iter_components(components):
        custom_id = component.get("custom_id")
        if custom_id is None:
            continue
        if custom_id in seen:
            errors.add(
                ("components",),
                "COMPONENT_CUSTOM_ID_DUPLICATED",
                f"Component custom id cannot be duplicated: {custom_id!r}",
            )
        seen.add(custom_id)


def is_empty_message(
    content: str, embeds: list[JSON], components: list[JSON], attachments: int, extra: JSON
) -> bool:
    return not (
        content
        or embeds
        or components
        or attachments
        or extra.get("sticker_ids")
        or extra.get("poll")
    )


# --- modals and autocomplete ----------------------------------------------------------------


def validate_modal(modal: Any) -> None:
    errors = FormErrors()
    if not isinstance(modal, dict):
        errors.add(("data",), "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
        errors.raise_if_any()
        return
    path: Path = ("data",)
    custom_id = modal.get("custom_id")
    if _required(errors, (*path, "custom_id"), custom_id):
        _bad_len(errors, (*path, "custom_id"), custom_id, 1, 100)
    title = modal.get("title")
    if _required(errors, (*path, "title"), title):
        _bad_len(errors, (*path, "title"), title, 1, 45)
    components = modal.get("components")
    _bad_len(errors, (*path, "components"), components, 1, 5)
    for i, component in enumerate(components if isinstance(components, list) else []):
        cpath: Path = (*path, "components", i)
        ctype = component.get("type")
        if ctype == 1:  # a row with a bare text input (still emitted by 2.7)
            children = component.get("components") or []
            _bad_len(errors, (*cpath, "components"), children, 1, 1)
            for j, child in enumerate(children):
                _validate_modal_field(child, (*cpath, "components", j), errors, needs_label=True)
        elif ctype == 18:
            _bad_len(errors, (*cpath, "label"), component.get("label"), 1, 45)
            _max_len(errors, (*cpath, "description"), component.get("description"), 100)
            child = component.get("component")
            if _required(errors, (*cpath, "component"), child):
                _validate_modal_field(child, (*cpath, "component"), errors, needs_label=False)
        elif ctype != 10:
            errors.add(
                (*cpath, "type"),
                "UNION_TYPE_CHOICES",
                'Value of field "type" must be one of (1, 10, 18).',
            )
    if isinstance(components, list):
        _check_unique_custom_ids(components, errors)
    errors.raise_if_any()


def _validate_modal_field(field: Any, path: Path, errors: FormErrors, *, needs_label: bool) -> None:
    if not isinstance(field, dict) or field.get("type") not in MODAL_FIELD_TYPES:
        errors.add((*path, "type"), "UNION_TYPE_CHOICES", "Invalid modal component type.")
        return
    custom_id = field.get("custom_id")
    if _required(errors, (*path, "custom_id"), custom_id):
        _bad_len(errors, (*path, "custom_id"), custom_id, 1, 100)
    if field["type"] != 4:
        if field["type"] in SELECT_TYPES:
            _validate_select(field, path, errors)
        return
    if field.get("style") not in (1, 2):
        errors.add((*path, "style"), "BASE_TYPE_CHOICES", "Value must be one of {1, 2}.")
    label = field.get("label")
    if needs_label:
        if _required(errors, (*path, "label"), label):
            _bad_len(errors, (*path, "label"), label, 1, 45)
    else:
        _max_len(errors, (*path, "label"), label, 45)
    _max_len(errors, (*path, "value"), field.get("value"), 4000)
    _max_len(errors, (*path, "placeholder"), field.get("placeholder"), 100)
    low, high = field.get("min_length"), field.get("max_length")
    if low is not None and not 0 <= low <= 4000:
        errors.add((*path, "min_length"), "NUMBER_TYPE_MAX", "Must be between 0 and 4000.")
    if high is not None and not 1 <= high <= 4000:
        errors.add((*path, "max_length"), "NUMBER_TYPE_MAX", "Must be between 1 and 4000.")


def validate_choices(data: Any) -> list[JSON]:
    errors = FormErrors()
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list):
        errors.add(("data", "choices"), "BASE_TYPE_REQUIRED", "This field is required")
        errors.raise_if_any()
        return []
    if len(choices) > 25:
        errors.add(("data", "choices"), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    for i, choice in enumerate(choices):
        _bad_len(errors, ("data", "choices", i, "name"), choice.get("name"), 1, 100)
        value = choice.get("value")
        if isinstance(value, str):
            _max_len(errors, ("data", "choices", i, "value"), value, 100)
        elif not isinstance(value, int | float):
            errors.add(("data", "choices", i, "value"), "BASE_TYPE_REQUIRED", "Invalid value.")
    errors.raise_if_any()
    return choices


# --- application commands -------------------------------------------------------------------

COMMAND_LIMITS = {1: 100, 2: 5, 3: 5}  # chat input, user, message per scope


def validate_commands(commands: Any) -> None:
    """The checks Discord applies to a bulk overwrite (PUT …/commands)."""
    errors = FormErrors()
    if not isinstance(commands, list):
        errors.add((), "BASE_TYPE_ARRAY", "Must be an array.")
        errors.raise_if_any()
    seen: set[tuple[int, str]] = set()
    per_type: dict[int, int] = {}
    for i, command in enumerate(commands):
        validate_command(command, (i,), errors)
        ctype = int(command.get("type", 1) or 1) if isinstance(command, dict) else 1
        name = command.get("name") if isinstance(command, dict) else None
        if (ctype, str(name)) in seen:
            errors.add(
                (i, "name"),
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                f"Application command names must be unique: {name}",
            )
        seen.add((ctype, str(name)))
        per_type[ctype] = per_type.get(ctype, 0) + 1
    for ctype, count in per_type.items():
        if count > COMMAND_LIMITS.get(ctype, 100):
            errors.add(
                (),
                "APPLICATION_COMMANDS_TOO_MANY",
                f"Maximum number of application commands of type {ctype} reached",
            )
    errors.raise_if_any()


def validate_command(command: Any, path: Path, errors: FormErrors) -> None:
    if not isinstance(command, dict):
        errors.add(path, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
        return
    ctype = int(command.get("type", 1) or 1)
    name = command.get("name")
    description = command.get("description")
    if ctype not in (1, 2, 3, 4):
        errors.add((*path, "type"), "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4}.")
    if ctype == 1:
        _check_name(name, (*path, "name"), errors)
        if _required(errors, (*path, "description"), description):
            _bad_len(errors, (*path, "description"), description, 1, 100)
        _validate_options(command.get("options") or [], (*path, "options"), errors)
    else:
        if _required(errors, (*path, "name"), name):
            _bad_len(errors, (*path, "name"), name, 1, 32)
        if description:
            errors.add(
                (*path, "description"),
                "APPLICATION_COMMAND_INVALID_DESCRIPTION",
                "Context menu commands cannot have a description",
            )
        if command.get("options"):
            errors.add(
                (*path, "options"),
                "APPLICATION_COMMAND_OPTIONS_INVALID",
                "Context menu commands cannot have options",
            )


def _check_name(name: Any, path: Path, errors: FormErrors) -> None:
    if not isinstance(name, str) or not COMMAND_NAME_RE.match(name):
        errors.add(
            path,
            "APPLICATION_COMMAND_INVALID_NAME",
            f"Command name is invalid: {name!r}",
        )
    elif name != name.lower():
        errors.add(
            path, "APPLICATION_COMMAND_INVALID_NAME", f"Command name must be lowercase: {name}"
        )


def _validate_options(
    options: Any, path: Path, errors: FormErrors, *, parent: int | None = None
) -> None:
    if not isinstance(options, list):
        errors.add(path, "BASE_TYPE_ARRAY", "Must be an array.")
        return
    if len(options) > 25:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    names: set[str] = set()
    seen_optional = False
    kinds = {"sub": False, "plain": False}
    for i, option in enumerate(options):
        opath: Path = (*path, i)
        if not isinstance(option, dict):
            errors.add(opath, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
            continue
        otype = option.get("type")
        name = option.get("name")
        _check_name(name, (*opath, "name"), errors)
        description = option.get("description")
        if _required(errors, (*opath, "description"), description):
            _bad_len(errors, (*opath, "description"), description, 1, 100)
        if name in names:
            errors.add(
                (*opath, "name"),
                "APPLICATION_COMMAND_OPTION_NAME_ALREADY_EXISTS",
                "Option names must be unique",
            )
        names.add(str(name))
        if otype not in range(1, 12):
            errors.add((*opath, "type"), "BASE_TYPE_CHOICES", "Value must be between 1 and 11.")
            continue
        if otype in (1, 2):
            kinds["sub"] = True
            # groups only at the top, sub-commands at the top or inside a group
            if (otype == 2 and parent is not None) or (otype == 1 and parent == 1):
                errors.add(
                    (*opath, "type"),
                    "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
                    "Sub-commands cannot be nested this deep",
                )
            inner = option.get("options") or []
            if otype == 2 and any(o.get("type") != 1 for o in inner):
                errors.add(
                    (*opath, "options"),
                    "APPLICATION_COMMAND_OPTION_TYPE_INVALID",
                    "Sub-command groups may only contain sub-commands",
                )
            _validate_options(inner, (*opath, "options"), errors, parent=otype)
            continue
        kinds["plain"] = True
        required = bool(option.get("required", False))
        if required and seen_optional:
            errors.add(
                (*opath, "required"),
                "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                "Required options must be placed before non-required options",
            )
        seen_optional = seen_optional or not required
        choices = option.get("choices") or []
        if len(choices) > 25:
            errors.add(
                (*opath, "choices"), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
            )
        if choices and option.get("autocomplete"):
            errors.add(
                (*opath, "autocomplete"),
                "APPLICATION_COMMAND_OPTION_AUTOCOMPLETE_CHOICES",
                "Autocomplete cannot be set on options with choices",
            )
        for k, choice in enumerate(choices):
            _bad_len(errors, (*opath, "choices", k, "name"), choice.get("name"), 1, 100)
    if kinds["sub"] and kinds["plain"]:
        errors.add(
            path,
            "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
            "Sub-commands cannot be mixed with other option types",
        )
