"""Loaded tfcvr exports answering predict calls, with TF Serving's version lifecycle, rules and errors.

What TF Serving (tensorflow_model_server) does and this stand-in mirrors:

* A model is served from its base path under a version policy: the newest N
  complete versions (`latest`, N = 1 by default), or `specific` versions.
  Labels ("stable", "canary") name served versions.
* The file system is polled (`file_system_poll_wait_seconds`, 1 s by
  default): a new version is loaded in the background and only then served,
  so a request never waits for a load and the newest *loaded* version
  answers meanwhile; a version that leaves the policy is unloaded. A
  half-written export is never seen (tfcvr renames a finished export into
  place; `existing_versions(complete_only=True)`).
* With a model config file polled (`model_config_file_poll_wait_seconds`),
  an edited file is applied without a restart: that is how a label is moved
  for a rollback. As TF Serving, a label may only name a version that is
  loaded: a configuration labelling another one is rejected at start, and on
  a reload it is logged and the previous configuration kept.
"""

import atexit
import dataclasses
import re
import threading
import weakref

import numpy as np
import tensorflow as tf
from absl import logging

from serving.errors import ServingError
from tfcvr.export import model_config as model_config_lib
from tfcvr.export.versions import existing_versions


@dataclasses.dataclass(frozen=True)
class ServedModel:
    """One entry of TF Serving's model_config_list: where a model's versions are, which to serve, its labels."""

    name: str
    base_path: str
    latest_versions: int | None = 1  # serve the newest N complete versions...
    specific_versions: tuple[int, ...] = ()  # ...or exactly these (when given)
    labels: tuple[tuple[str, int], ...] = ()

    def aspired(self, complete: list[int]) -> list[int]:
        """The versions the policy serves among the complete versions on disk, ascending."""
        if self.specific_versions:
            return sorted(set(self.specific_versions) & set(complete))
        return complete[-self.latest_versions :] if self.latest_versions else list(complete)


def served_models(models: dict, labels: dict | None = None, latest_versions: int | None = None) -> list[ServedModel]:
    """ServedModels from command-line style arguments: {name: base}, {name: {label: version}}, newest N."""
    return [
        ServedModel(
            name,
            base,
            latest_versions=latest_versions or 1,
            labels=tuple(sorted((labels or {}).get(name, {}).items())),
        )
        for name, base in models.items()
    ]


def parse_served_models(text: str, source: str = "the model config") -> list[ServedModel]:
    """The ServedModels of a text-format ModelServerConfig."""
    try:
        config = model_config_lib.parse_model_config(text)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    served = []
    for entry in config.model_config_list.config:
        policy = entry.model_version_policy
        which = policy.WhichOneof("policy_choice")
        served.append(
            ServedModel(
                entry.name,
                entry.base_path,
                latest_versions=None if which == "all" else (policy.latest.num_versions or 1),
                specific_versions=tuple(policy.specific.versions) if which == "specific" else (),
                labels=tuple(sorted(entry.version_labels.items())),
            )
        )
    return served


# Every ExportedModels still polling. A daemon poller that the interpreter stops at exit in the middle of a
# TensorFlow call (listing a base, loading a version) aborts the process ("FATAL: exception not rethrown":
# the thread's forced unwind meets a C++ frame that may not throw), after the program itself succeeded.
# atexit handlers run before daemon threads are stopped, so closing the pollers there lets a poll finish.
_POLLING: "weakref.WeakSet[ExportedModels]" = weakref.WeakSet()


@atexit.register
def _close_all_at_exit() -> None:
    for exported in list(_POLLING):
        exported.close()


class ExportedModels:
    """Serves tfcvr exports as tensorflow_model_server does (module docstring): load, poll, label, unload.

    Args:
      models: the ServedModels (`served_models`); a dict {name: export base}
        is read as `served_models(models, labels)`. Or none, with:
      model_config_file: a text-format ModelServerConfig to serve, re-read
        every `model_config_file_poll_wait_seconds` (0: never) to apply edits.
      labels: {name: {label: version}} with a dict `models`.
      file_system_poll_wait_seconds: seconds between polls of the export
        bases; 0 loads once at start.

    Raises ValueError at start when a label names a version that is not served.
    A version that fails to load is logged and retried at the next poll; the
    other versions and models are not held up. `close()` (or leaving a `with`
    block) stops polling and waits for a poll in progress; whatever is still
    polling when the interpreter exits is closed then (`_close_all_at_exit`).
    """

    def __init__(
        self,
        models: list[ServedModel] | dict | None = None,
        labels: dict | None = None,
        file_system_poll_wait_seconds: float = 1.0,
        model_config_file: str | None = None,
        model_config_file_poll_wait_seconds: float = 0.0,
    ):
        if (models is None) == (model_config_file is None):
            raise ValueError("Give either `models` or `model_config_file`.")
        self._model_config_file = model_config_file
        self._config_text = None
        if model_config_file:
            self._config_text = tf.io.gfile.GFile(model_config_file).read()
            models = parse_served_models(self._config_text, f"--model_config_file={model_config_file}")
        elif isinstance(models, dict):
            models = served_models(models, labels)
        elif models is None:  # model_config_file is "": it names no file
            raise ValueError(f"`model_config_file` must name a file. Received: {model_config_file!r}")
        served = {m.name: m for m in models}
        self._refresh_lock = threading.Lock()  # one refresh or reload at a time (poll threads or a caller)
        # (served models, {name: {version: loaded SavedModel}}): replaced whole, so a request reads one
        # consistent pair, and only after it was loaded and checked.
        available = self._loaded(served, {})  # the initial load, before serving starts (as TF Serving)
        _check_labels(served, available)
        self._state = (served, available)
        self._stop = threading.Event()
        self._pollers = [
            threading.Thread(target=self._poll, args=(poll, seconds), daemon=True, name="model-poll")
            for seconds, poll in (
                (file_system_poll_wait_seconds, self.refresh),
                (model_config_file_poll_wait_seconds if model_config_file else 0, self.reload_config),
            )
            if seconds and seconds > 0
        ]
        if self._pollers:
            _POLLING.add(self)
        for poller in self._pollers:
            poller.start()

    def _poll(self, poll, seconds):
        while not self._stop.wait(seconds):
            try:
                poll()
            except Exception:  # noqa: BLE001 (a failed poll is logged and retried, as TF Serving does)
                logging.exception("serving.local: poll failed; retrying in %s s.", seconds)

    def close(self) -> None:
        """Stops polling and waits for a poll in progress to end (the loaded versions keep answering)."""
        self._stop.set()
        for poller in self._pollers:
            if poller is not threading.current_thread():
                poller.join()
        _POLLING.discard(self)

    def __enter__(self) -> "ExportedModels":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _loaded(self, served: dict, current: dict) -> dict:
        """{name: {version: loaded}} of what `served` aspires to on disk now; loaded versions are reused."""
        available = {}
        for name, model in served.items():
            previous = current.get(name, {})
            table, failed = {}, False
            for version in model.aspired(existing_versions(model.base_path, complete_only=True)):
                if version in previous:
                    table[version] = previous[version]
                    continue
                try:
                    table[version] = tf.saved_model.load(f"{model.base_path.rstrip('/')}/{version}")
                except Exception as e:  # noqa: BLE001 (one broken version must not hold up the others)
                    logging.error("serving.local: %s version %d failed to load (%s); retrying.", name, version, e)
                    failed = True
                    continue
                logging.info("serving.local: loaded %s version %d.", name, version)
            if failed:  # availability first, as TF Serving: the versions it would replace keep serving
                table = {**previous, **table}
            unloaded = sorted(set(previous) - set(table))
            if unloaded:
                logging.info("serving.local: unloading %s versions %s.", name, unloaded)
            available[name] = table
        return available

    def refresh(self) -> None:
        """One poll of the export bases: loads newly aspired versions, then serves them; unloads the others."""
        with self._refresh_lock:
            served, current = self._state
            self._state = (served, self._loaded(served, current))

    def reload_config(self) -> bool:
        """Applies the model config file if it changed; False (previous configuration kept) when it is invalid.

        The new configuration's versions are loaded and its labels checked
        before it is published; an invalid file is not retried until it
        changes again.
        """
        config_file = self._model_config_file
        if not config_file:
            raise ValueError("reload_config: these models were given as `models`, not by a `model_config_file`.")
        text = tf.io.gfile.GFile(config_file).read()
        if text == self._config_text:
            return True
        with self._refresh_lock:
            self._config_text = text
            try:
                served = {m.name: m for m in parse_served_models(text, config_file)}
                available = self._loaded(served, self._state[1])
                _check_labels(served, available)
            except ValueError as e:
                logging.error("serving.local: %s; keeping the previous configuration.", e)
                return False
            self._state = (served, available)
        logging.info("serving.local: applied %s.", config_file)
        return True

    def model_names(self) -> list[str]:
        """The names of the served models."""
        return sorted(self._state[0])

    def versions(self, model_name: str) -> list[int]:
        """The versions of a model loaded and answering, ascending."""
        return sorted(self._state[1].get(model_name, {}))

    def resolve(self, model_name: str, version: int | str | None = None, version_label: str | None = None) -> int:
        """The version a request addresses; NOT_FOUND when the model, version or label is not served."""
        served, available = self._state
        if model_name not in served:
            raise ServingError("NOT_FOUND", f"Servable not found for request: model {model_name!r}")
        available = available.get(model_name, {})
        if version_label:
            labels = dict(served[model_name].labels)
            if version_label not in labels:
                raise ServingError("NOT_FOUND", f"Unrecognized servable version label: {version_label}")
            version = labels[version_label]
        if version is None:
            if not available:
                raise ServingError("NOT_FOUND", f"No versions of servable {model_name} found")
            return max(available)
        if int(version) not in available:
            raise ServingError("NOT_FOUND", f"Servable not found for request: Specific({model_name}, {version})")
        return int(version)

    def signature(
        self, model_name: str, version: int, signature_name: str | None
    ) -> tf.types.experimental.ConcreteFunction:
        """The concrete function of a signature of a resolved version."""
        loaded = self._state[1].get(model_name, {}).get(version)
        if loaded is None:  # unloaded between resolve and here
            raise ServingError("NOT_FOUND", f"Servable not found for request: Specific({model_name}, {version})")
        signatures = loaded.signatures
        name = signature_name or "serving_default"
        if name not in signatures:
            raise ServingError(
                "INVALID_ARGUMENT",
                f'Serving signature name: "{name}" not found in signature def; available: {sorted(signatures)}',
            )
        return signatures[name]

    def predict(
        self,
        model_name: str,
        inputs: dict,
        version: int | str | None = None,
        version_label: str | None = None,
        signature_name: str | None = None,
        convert_dtypes: bool = False,
    ) -> tuple:
        """(version, {output: numpy array}) for `inputs` {input name: numpy array}.

        `convert_dtypes`: cast values to the signature's dtypes (REST JSON
        carries no dtypes); otherwise a dtype mismatch is INVALID_ARGUMENT, as
        TF Serving's gRPC API answers.
        """
        version = self.resolve(model_name, version, version_label)
        function = self.signature(model_name, version, signature_name)
        specs = function.structured_input_signature[1]
        missing, unknown = sorted(set(specs) - set(inputs)), sorted(set(inputs) - set(specs))
        if missing or unknown:
            raise ServingError(
                "INVALID_ARGUMENT",
                f"Request inputs do not match the signature: missing {missing}, "
                f"unknown {unknown}; expected {sorted(specs)}",
            )
        tensors = {}
        for name, spec in specs.items():
            tensors[name] = _tensor(name, inputs[name], spec, convert_dtypes)
        try:
            outputs = function(**tensors)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
            raise ServingError("INVALID_ARGUMENT", _op_error_message(error)) from error
        return version, {name: value.numpy() for name, value in outputs.items()}


def _check_labels(served: dict, available: dict) -> None:
    """TF Serving's rule: a label may only name a version that is loaded."""
    for name, model in served.items():
        for label, version in model.labels:
            if version not in available.get(name, {}):
                raise ValueError(
                    f"Request to assign label {label!r} to version {version} of model {name}, which is not "
                    f"currently available for inference (served: {sorted(available.get(name, {}))})"
                )


def as_exported_models(models: "ExportedModels | dict", labels: dict | None = None) -> ExportedModels:
    """`models` itself, or the ExportedModels of {name: export base} and `labels` (newest version, polled)."""
    return models if isinstance(models, ExportedModels) else ExportedModels(models, labels)


def _op_error_message(error) -> str:
    """The op's own message (what TF Serving returns), without eager execution's wrapping."""
    text = getattr(error, "message", None) or str(error)
    boilerplate = ("Graph execution error", "Detected at node", "<stack traces", "[[", "File ")
    lines = [line.strip() for line in text.splitlines()]
    kept = [re.sub(r"\s*\[Op:[^\]]*\]$", "", line) for line in lines if line and not line.startswith(boilerplate)]
    return " ".join(kept)[:2000] or text[:2000]


def _tensor(name, value, spec, convert_dtypes):
    if isinstance(value, list):
        # dtype=object: numpy's fixed-width bytes ("S") would strip trailing NUL bytes of serialized protos.
        flat = np.array(value, dtype=object)
        value = flat if any(isinstance(v, (bytes, str)) for v in flat.reshape([-1])) else np.asarray(value)
    value = np.asarray(value)
    if value.ndim != spec.shape.rank:
        raise ServingError(
            "INVALID_ARGUMENT", f"input {name!r} must have rank {spec.shape.rank}; received shape {list(value.shape)}"
        )
    given = tf.string if value.dtype.kind in "OSU" else tf.as_dtype(value.dtype)
    if given != spec.dtype and not convert_dtypes:
        raise ServingError(
            "INVALID_ARGUMENT", f"Expects arg {name!r} to be {spec.dtype.name} but {given.name} is provided"
        )
    try:
        return tf.constant(value.tolist() if value.dtype.kind == "O" else value, dtype=spec.dtype)
    except (TypeError, ValueError, tf.errors.InvalidArgumentError) as error:
        raise ServingError(
            "INVALID_ARGUMENT", f"input {name!r} cannot be read as {spec.dtype.name}: {str(error)[:300]}"
        ) from error
