"""Method arguments from the command line: `--model_params=name=value,...` and `method[name=value;...]` entries."""

import dataclasses
import types
import typing
from collections.abc import Iterable
from typing import Any

from absl import app

from tfcvr import models


def model_class(name: str) -> type[models.CVRModel]:
    """The registered method `name`; a UsageError listing the registered names otherwise."""
    try:
        return models.get(name)
    except ValueError as e:
        raise app.UsageError(str(e)) from e


def parse_model_params(items: Iterable[str], model_class: type[models.CVRModel], flag: str = "--model_params") -> dict:
    """["name=value", ...] -> {name: typed value}; names must be the method's own arguments (`method_arguments`).

    Each value is parsed as its field's annotated type (bool: true/false; int; float; str; an optional float
    also takes "none"). A value that does not parse is a
    UsageError naming the argument and the expected type, before any data is read.
    """
    accepted = method_arguments(model_class)
    params = {}
    for item in items:
        name, separator, text = item.partition("=")
        if not separator or not name:
            raise app.UsageError(f"{flag} entries are name=value. Received: {item!r}")
        if name not in accepted:
            raise app.UsageError(
                f"{flag}: {model_class.__name__} has no argument {name!r}; it accepts {sorted(accepted)}."
            )
        params[name] = _typed(text, accepted[name], f"{flag}: {model_class.__name__}'s {name}")
    return params


_BOOLEANS = {"true": True, "false": False}  # any capitalisation; nothing else, so a typo is an error


def _typed(text: str, kind, what: str):
    """`text` as `kind` (bool, int, float, str or Optional[float]); a UsageError naming `what` otherwise."""
    optional = typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in typing.get_args(kind)
    if optional:
        if text.lower() == "none":
            return None
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    try:
        if kind is bool:
            return _BOOLEANS[text.lower()]
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is str:
            return text
    except (KeyError, ValueError):
        expected = {bool: "true or false", int: "an integer", float: "a number"}[kind]
        expected += " or none" if optional else ""
        raise app.UsageError(f"{what} takes {expected}. Received: {text!r}") from None
    raise TypeError(f"{what}: no parser for the argument type {kind!r}.")


def method_arguments(model_class: type[models.CVRModel]) -> dict[str, Any]:
    """{argument: type} of a method's own arguments (`CVRModel`'s architecture arguments have their own flags).

    The fields of its options class (`options_class`, a frozen dataclass) and their annotated types.
    """
    hints = typing.get_type_hints(model_class.options_class)
    return {field.name: hints[field.name] for field in dataclasses.fields(model_class.options_class)}


def parse_method_entry(entry: str) -> tuple:
    """`ukd[ctr_loss_weight=1;teacher_epochs=2]` -> ("ukd", {"ctr_loss_weight": 1.0, "teacher_epochs": 2}).

    A bare name, "ukd", gives ("ukd", {}).

    The name must be registered and the arguments its constructor's (a UsageError otherwise).
    """
    name, bracket, rest = entry.partition("[")
    if bracket and not rest.endswith("]"):
        raise app.UsageError(f"Method entry {entry!r}: expected NAME or NAME[name=value;...].")
    items = [item for item in rest[:-1].split(";") if item] if bracket else []
    return name, parse_model_params(items, model_class(name), flag=f"--models entry {entry!r}")
