"""Command-line options made from dataclass fields, and the dataclasses built back from the parsed values.

A CLI whose settings are a dataclass (with nested dataclasses for groups of settings) states each
setting's type and default once, in the dataclass; the CLI adds only the words (`help`) and where an
option is listed (`panels`). Every leaf field becomes `--field-name`; a bool that defaults to False
is a plain flag (`--fp16`), one that defaults to True has a `--no-` form too (`--engine/--no-engine`).
Field names are unique across the groups, since they are the option names.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, Field, fields, is_dataclass
from typing import Annotated, Any, TypeVar

import typer

T = TypeVar("T")


def _leaves(
    cls: type, panel: str | None, panels: Mapping[str, str], skip: set[str]
) -> Iterator[tuple[Field, Any, str | None]]:
    """(field, its type, its help panel) for every field of `cls` that is not a dataclass, depth first."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in skip:
            continue
        if is_dataclass(hints[f.name]):
            yield from _leaves(hints[f.name], panels.get(f.name, panel), panels, skip)
        else:
            yield f, hints[f.name], panel


def _default(f: Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    raise TypeError(f"field {f.name} has no default: make it an argument of the command, not an option")


def options(
    cls: type, help: Mapping[str, str], panels: Mapping[str, str] | None = None, skip: tuple[str, ...] = ()
) -> list[inspect.Parameter]:
    """Keyword parameters for a typer command: one option per leaf field of `cls` (fields in `skip`
    are left out; a nested dataclass field's options are listed under `panels[field]`)."""
    params: list[inspect.Parameter] = []
    for f, hint, panel in _leaves(cls, None, panels or {}, set(skip)):
        if f.name not in help:
            raise TypeError(f"option --{f.name.replace('_', '-')} ({cls.__name__}) has no help text")
        default = _default(f)
        flag = (f"--{f.name.replace('_', '-')}",) if hint is bool and default is False else ()
        info = typer.Option(*flag, help=help[f.name], rich_help_panel=panel)
        params.append(
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[hint, info])
        )
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise TypeError(f"{cls.__name__}: option names repeat across its groups: {sorted(names)}")
    return params


def command_signature(func: Any, params: list[inspect.Parameter]) -> Any:
    """`func(..., **options)` with `params` as its signature, as typer reads it."""
    func.__signature__ = inspect.Signature(params)
    func.__annotations__ = {p.name: p.annotation for p in params}
    return func


def build(cls: type[T], values: Mapping[str, Any], **given: Any) -> T:
    """`cls` from parsed option values, by field name; nested dataclass fields are built the same way
    from the same values; `given` sets fields that are not options. A field with no value keeps its default."""
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in given:
            kwargs[f.name] = given[f.name]
        elif is_dataclass(hints[f.name]):
            kwargs[f.name] = build(hints[f.name], values)
        elif f.name in values:
            kwargs[f.name] = values[f.name]
    return cls(**kwargs)
