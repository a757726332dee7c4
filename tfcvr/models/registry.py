"""Methods registered by name: `--model=NAME` on the command line."""

_MODELS = {}


def register(name: str):
    """Class decorator that registers a `CVRModel` subclass under `name`."""

    def decorator(cls):
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(f"Model name {name!r} is already registered to {_MODELS[name].__name__}.")
        _MODELS[name] = cls
        cls.registered_name = name
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


def get(name: str):
    """The class registered as `name`; a `ValueError` lists the registered names."""
    if name not in _MODELS:
        raise ValueError(f"Unknown model {name!r}. Registered models: {', '.join(names())}.")
    return _MODELS[name]
