"""Method arguments from the command line: `--model_params=name=value,...` and `method[name=value;...]` entries."""

import ast
import inspect

from absl import app

from tfcvr import models


def model_class(name: str):
    """The registered method `name`; a UsageError listing the registered names otherwise."""
    try:
        return models.get(name)
    except ValueError as e:
        raise app.UsageError(str(e)) from e


def parse_model_params(items, model_class) -> dict:
    """["name=value", ...] -> {name: value}; names must be constructor arguments of the method."""
    accepted = method_arguments(model_class)
    params = {}
    for item in items:
        name, separator, text = item.partition("=")
        if not separator or not name:
            raise app.UsageError(f"--model_params entries are name=value. Received: {item!r}")
        if name not in accepted:
            raise app.UsageError(
                f"--model_params: {model_class.__name__} has no argument {name!r}; "
                f"it accepts {sorted(accepted)}."
            )
        try:
            params[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            params[name] = text
    return params


def method_arguments(model_class) -> set:
    """Constructor arguments a method adds to `CVRModel`'s (those have their own flags)."""
    base = set(inspect.signature(models.CVRModel.__init__).parameters)
    accepted = set()
    for cls in model_class.__mro__:
        if cls is models.CVRModel:
            break
        if "__init__" in vars(cls):
            accepted |= set(inspect.signature(cls.__init__).parameters)
    return accepted - base - {"self", "kwargs"}


def parse_method_entry(entry: str) -> tuple:
    """"ukd[alpha=1;gamma=0.5]" -> ("ukd", {"alpha": 1, "gamma": 0.5}); "ukd" -> ("ukd", {}).

    The name must be registered and the arguments its constructor's (a UsageError otherwise).
    """
    name, bracket, rest = entry.partition("[")
    if bracket and not rest.endswith("]"):
        raise app.UsageError(f"Method entry {entry!r}: expected NAME or NAME[name=value;...].")
    items = [item for item in rest[:-1].split(";") if item] if bracket else []
    return name, parse_model_params(items, model_class(name))
