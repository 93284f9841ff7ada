"""The config model described for people: the commented starter config (`signing-proxy
init`, config.example.yaml) and the configuration reference page of the docs. Both walk
the model's declarations, so neither can drift from it."""

from __future__ import annotations

import json
import re
import textwrap
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from signing_proxy.config.fields import Section, Setting, declared
from signing_proxy.config.model import Config

WIDTH = 88
STARTER_HEADER = """\
# signing-proxy configuration. Every key is shown with its default; change what you need
# and delete the rest. Written by `signing-proxy init` from the config model.
# Precedence: command-line flags > environment variables > this file > defaults.
# Unknown keys are errors. Use it with `signing-proxy run --config FILE` (or set
# SIGNING_PROXY_CONFIG=FILE); `signing-proxy check --config FILE` validates it.
"""


@dataclass(frozen=True, slots=True)
class Entry:
    """One key as the descriptions show it."""

    dotted: str
    name: str
    setting: Setting
    default: Any
    kind: str  # the value's type, in words


@dataclass(frozen=True, slots=True)
class Group:
    """A section of keys, or (name "") the top-level keys around the sections."""

    name: str
    section: Section | None
    entries: tuple[Entry, ...]


def groups(config_type: type[Any] = Config) -> Iterator[Group]:
    """The model in declaration order: runs of top-level keys, and each section."""
    hints = get_type_hints(config_type)
    loose: list[Entry] = []
    for name, declaration, default in declared(config_type):
        if isinstance(declaration, Setting):
            loose.append(Entry(name, name, declaration, default, type_text(hints[name])))
            continue
        if loose:
            yield Group("", None, tuple(loose))
            loose = []
        kind = default
        inner = get_type_hints(kind)
        entries = tuple(
            Entry(f"{name}.{sub}", sub, meta, value, type_text(inner[sub]))
            for sub, meta, value in declared(kind)
            if isinstance(meta, Setting)
        )
        yield Group(name, declaration, entries)
    if loose:
        yield Group("", None, tuple(loose))


_NAMES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    Decimal: "decimal",
}


def type_text(hint: Any) -> str:
    """A type annotation of the model in a user's words (YAML's, not Python's)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return " | ".join(str(a) for a in args)
    if origin in (Union, types.UnionType):
        shown = [type_text(a) for a in args if a is not type(None)]
        return " | ".join([*shown, "null"])
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = args[0]
        if get_origin(item) is tuple:  # (METHOD, path) pairs, written "METHOD /path"
            return 'list of "METHOD /path"'
        return f"list of {type_text(item)}"
    if origin is tuple:
        return "[" + ", ".join(type_text(a) for a in args) + "]"
    if hint in _NAMES:
        return _NAMES[hint]
    return "mapping" if isinstance(hint, type) else str(hint)


_PLAIN = re.compile(r"[A-Za-z0-9_./:*-]+")


def scalar_text(value: Any) -> str:
    """`value` as a YAML scalar that reads back as the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple):  # a (METHOD, path) pair, written as its two words
        return scalar_text(" ".join(str(part) for part in value))
    text = str(value)
    # A Decimal is quoted so that YAML does not read it as a float; so is a word that
    # YAML would read as something else.
    plain = _PLAIN.fullmatch(text) and not isinstance(value, Decimal)
    if plain and text.lower() not in ("null", "true", "false", "yes", "no", "on", "off"):
        return text
    return json.dumps(text)


def value_lines(value: Any) -> list[str]:
    """`value` as YAML: one line for a scalar or an empty list, a block list otherwise."""
    if isinstance(value, tuple) and value and not _is_pair(value):
        return [f"- {scalar_text(item)}" for item in value]
    if isinstance(value, tuple) and not value:
        return ["[]"]
    return [scalar_text(value)]


def _is_pair(value: tuple[Any, ...]) -> bool:
    return len(value) == 2 and all(isinstance(part, str) for part in value)


def inline_value(value: Any) -> str:
    """`value` as one line of YAML (flow style for lists), for tables."""
    lines = value_lines(value)
    if len(lines) == 1:
        return lines[0]
    return "[" + ", ".join(line[2:] for line in lines) + "]"


def where_set(setting: Setting) -> str:
    """'env: X, flag: --y' for a key that has either, else ''."""
    parts = [f"env: {setting.env}"] if setting.env else []
    parts += [f"flag: --{setting.flag}"] if setting.flag else []
    return ", ".join(parts)


def _comment(text: str, indent: str) -> list[str]:
    """`text` as wrapped comment lines; a newline in it starts a new line."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        width = WIDTH - len(indent) - 2
        wrapped = textwrap.wrap(paragraph, width, break_on_hyphens=False) or [""]
        lines += [f"{indent}# {line}".rstrip() for line in wrapped]
    return lines


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text.endswith((".", ":")) else f"{text}."


def _entry_lines(entry: Entry, indent: str, section_restarts: bool) -> list[str]:
    """One key of the starter config: its comment, then the key with its default."""
    setting = entry.setting
    text = _sentence(setting.doc)
    if setting.note:
        text += "\n" + setting.note
    where = where_set(setting)
    if not setting.in_file:
        return _comment(f"{setting.env} (environment only, never in this file): {text}", indent)
    tail = [where] if where else []
    if setting.restart and not section_restarts:
        tail.append("takes effect at the next start")
    lines = _comment(text + (f"\n({'; '.join(tail)})" if tail else ""), indent)
    if setting.example:
        lines.append(f"{indent}# For example:")
        lines += [f"{indent}#   {line}".rstrip() for line in setting.example.splitlines()]
    values = value_lines(entry.default)
    if len(values) == 1:
        return [*lines, f"{indent}{entry.name}: {values[0]}"]
    return [*lines, f"{indent}{entry.name}:", *(f"{indent}  {line}" for line in values)]


def starter_yaml(values: Mapping[str, Any] | None = None) -> str:
    """The commented starter config: every key with its default (or `values[dotted]`)."""
    chosen = values or {}
    out = STARTER_HEADER.splitlines()
    for group in groups():
        indent = "  " if group.name else ""
        restarts = bool(group.section and group.section.restart)
        if group.section is not None:
            text = _sentence(group.section.doc)
            text += f" {group.section.note}" if group.section.note else ""
            text += " Takes effect at the next start." if restarts else ""
            out += ["", *_comment(text, ""), f"{group.name}:"]
        for entry in group.entries:
            if entry.dotted in chosen:
                entry = Entry(entry.dotted, entry.name, entry.setting, chosen[entry.dotted], "")
            out += ([] if group.name else [""]) + _entry_lines(entry, indent, restarts)
    return "\n".join(out) + "\n"


def reference_markdown() -> str:
    """The configuration reference (Markdown, from its first H2), generated from the model."""
    out = _variables_table()
    for group in groups():
        out += _group_markdown(group)
    return "\n".join(out) + "\n"


def _variables_table() -> list[str]:
    rows = ["## Environment variables", "", "| variable | key |", "|---|---|"]
    for group in groups():
        for entry in group.entries:
            if entry.setting.env:
                key = f"`{entry.dotted}`" if entry.setting.in_file else entry.setting.doc
                rows.append(f"| `{entry.setting.env}` | {key} |")
    rows.append("| `SIGNING_PROXY_CONFIG` | the path of the YAML file |")
    return [*rows, ""]


def _group_markdown(group: Group) -> list[str]:
    if group.section is None:
        out = ["## Top-level keys", ""]
    else:
        out = [f"## `{group.name}`", "", _sentence(group.section.doc)]
        out += [group.section.note] if group.section.note else []
        if group.section.restart:
            out.append("Every key here takes effect at the next start, not on a reload (SIGHUP).")
        out.append("")
    for entry in group.entries:
        out += _entry_markdown(entry)
    return out


def _entry_markdown(entry: Entry) -> list[str]:
    setting = entry.setting
    if not setting.in_file:
        title = f"### `{setting.env}`"
        facts = ["- environment variable only; never in the file"]
    else:
        title = f"### `{entry.dotted}`"
        facts = [f"- type: {entry.kind}", f"- default: `{inline_value(entry.default)}`"]
        facts += [f"- environment variable: `{setting.env}`"] if setting.env else []
    facts += [f"- flag: `--{setting.flag}`"] if setting.flag else []
    facts += ["- takes effect at the next start"] if setting.restart else []
    text = _sentence(setting.doc)
    # A newline in a note is a line of its own (Markdown's hard break: two spaces).
    note = setting.note.replace("<", "&lt;").replace("\n", "  \n")
    out = [title, "", *facts, "", f"{text} {note}".strip(), ""]
    if setting.example:
        out += ["```yaml", *setting.example.splitlines(), "```", ""]
    return out
