"""How a setting is declared, once: its default, its doc, its parser, its environment
variable and flag, and whether it takes effect only at a start. The dataclasses in
config/model.py declare every key this way; loading, env, flags, the CLI's help and
the reload's restart warning all read these declarations."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from signing_proxy.config.values import Parser

T = TypeVar("T")

_META = "signing_proxy.setting"


@dataclass(frozen=True, slots=True)
class Setting:
    """What one key is: its doc, parser, variable, flag and whether a reload can change it."""

    doc: str
    parse: Parser
    env: str | None = None
    flag: str | None = None  # the `run` option, without its dashes
    restart: bool = False  # takes effect only when the process starts
    in_file: bool = True  # False: a secret read only from its variable, never from YAML
    note: str = ""  # more about the key: the starter config's comment, the reference's text
    example: str = ""  # YAML showing a non-default value (keys whose shape is a list or map)


@dataclass(frozen=True, slots=True)
class Section:
    """A group of keys under one YAML mapping, e.g. `listen:`."""

    doc: str
    restart: bool = False  # every key in it takes effect only at a start
    note: str = ""  # more about the section, as for Setting.note


def setting(
    default: T,
    doc: str,
    parse: Parser,
    *,
    env: str | None = None,
    flag: str | None = None,
    restart: bool = False,
    in_file: bool = True,
    secret: bool = False,
    note: str = "",
    example: str = "",
) -> T:
    """Declare a dataclass field that is a configuration key (see Setting)."""
    meta = Setting(doc, parse, env, flag, restart, in_file, note, example)
    return field(default=default, repr=not secret, metadata={_META: meta})


def section(kind: type[T], doc: str, *, restart: bool = False, note: str = "") -> T:
    """Declare a dataclass field that holds a section of keys."""
    return field(default_factory=kind, metadata={_META: Section(doc, restart, note)})


@dataclass(frozen=True, slots=True)
class Key:
    """One declared key as the loader walks it: where it sits and what it is."""

    dotted: str  # "listen.port"; a top-level key has no dot
    name: str  # the dataclass field
    default: Any
    setting: Setting


def section_fields(config_type: type[Any]) -> Iterator[tuple[str, type[Any], Section]]:
    """The sections of `config_type`: (name, dataclass, declaration)."""
    for item in dataclasses.fields(config_type):
        meta = item.metadata.get(_META)
        if isinstance(meta, Section):
            yield item.name, cast(type[Any], item.default_factory), meta


def keys_of(kind: type[Any], prefix: str = "") -> Iterator[Key]:
    """The keys declared directly on dataclass `kind` (not inside its sections)."""
    for item in dataclasses.fields(kind):
        meta = item.metadata.get(_META)
        if isinstance(meta, Setting):
            yield Key(f"{prefix}{item.name}", item.name, item.default, meta)


def all_keys(config_type: type[Any]) -> Iterator[Key]:
    """Every key of `config_type`, top-level and in sections, in declaration order."""
    yield from keys_of(config_type)
    for name, kind, _ in section_fields(config_type):
        yield from keys_of(kind, f"{name}.")


def declared(kind: type[Any]) -> Iterator[tuple[str, Setting | Section, Any]]:
    """Every key and section of `kind` in declaration order: (name, declaration, default)."""
    for item in dataclasses.fields(kind):
        meta = item.metadata.get(_META)
        if isinstance(meta, Setting):
            yield item.name, meta, item.default
        elif isinstance(meta, Section):
            yield item.name, meta, item.default_factory
