"""Methods registered by name: `--model=NAME` on the command line."""

import difflib
from collections.abc import Callable

import keras

from tfcvr.models.base import CVRModel

_MODELS: dict[str, type] = {}


def register(name: str) -> Callable[[type[CVRModel]], type[CVRModel]]:
    """Class decorator that registers a `CVRModel` subclass under `name`.

    The class is also a registered Keras serializable ("tfcvr>ClassName"),
    so `keras.models.load_model` rebuilds a saved `.keras` model without
    `custom_objects`.
    """

    def decorator(cls: type[CVRModel]) -> type[CVRModel]:
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(f"Model name {name!r} is already registered to {_MODELS[name].__name__}.")
        _MODELS[name] = cls
        cls.registered_name = name
        registered = keras.saving.get_registered_object(f"tfcvr>{cls.__name__}")
        if registered is not None and registered is not cls:
            raise ValueError(f"Keras already has a serializable named tfcvr>{cls.__name__}; rename {cls}.")
        keras.saving.register_keras_serializable(package="tfcvr", name=cls.__name__)(cls)
        return cls

    return decorator


def alias(name: str, target: str) -> None:
    """Registers `name` as another name of the method registered as `target`."""
    if name in _MODELS:
        raise ValueError(f"Model name {name!r} is already registered to {_MODELS[name].__name__}.")
    _MODELS[name] = get(target)


def names() -> list:
    """Registered model names, sorted."""
    return sorted(_MODELS)


def get(name: str) -> type[CVRModel]:
    """The class registered as `name`; a `ValueError` suggests the nearest names and lists them all."""
    if name not in _MODELS:
        nearest = difflib.get_close_matches(name, names(), n=3, cutoff=0.6)
        suggestion = f" Did you mean {' or '.join(repr(n) for n in nearest)}?" if nearest else ""
        raise ValueError(f"Unknown model {name!r}.{suggestion} Registered models: {', '.join(names())}.")
    return _MODELS[name]
