"""Loaded tfcvr exports answering predict calls, with TF Serving's version rules and errors."""

import re
import threading

import numpy as np
import tensorflow as tf

from serving.errors import ServingError
from tfcvr.export.versions import existing_versions


class ExportedModels:
    """{model name: export base} served like tensorflow_model_server with its default version policy.

    As TF Serving does, the newest version of each model and every labelled
    version are loaded before serving starts, so no request waits for a
    load; other versions load on their first request.

    Args:
      models: {model name: export base (folder of integer versions)}.
      labels: {model name: {label: version}} (TF Serving's version_labels).
    """

    def __init__(self, models: dict, labels=None):
        self.models = dict(models)
        self.labels = {name: dict(mapping) for name, mapping in (labels or {}).items()}
        self._loaded = {}
        self._lock = threading.Lock()
        for name in self.models:
            versions = existing_versions(self.models[name], complete_only=True)
            preload = set(versions[-1:]) | (set(self.labels.get(name, {}).values()) & set(versions))
            for version in sorted(preload):
                self._load(name, version)

    def _load(self, model_name, version):
        key = (model_name, version)
        with self._lock:
            if key not in self._loaded:
                self._loaded[key] = tf.saved_model.load(f"{self.models[model_name].rstrip('/')}/{version}")
        return self._loaded[key]

    def resolve(self, model_name: str, version: int | str | None = None, version_label: str | None = None) -> int:
        """The version a request addresses; NOT_FOUND when the model, version or label does not exist."""
        if model_name not in self.models:
            raise ServingError("NOT_FOUND", f"Servable not found for request: model {model_name!r}")
        versions = existing_versions(self.models[model_name], complete_only=True)
        if version_label:
            if version_label not in self.labels.get(model_name, {}):
                raise ServingError("NOT_FOUND", f"Unrecognized servable version label: {version_label}")
            version = self.labels[model_name][version_label]
        if version is None:
            if not versions:
                raise ServingError("NOT_FOUND", f"No versions of servable {model_name} found")
            return versions[-1]
        if int(version) not in versions:
            raise ServingError("NOT_FOUND", f"Servable not found for request: Specific({model_name}, {version})")
        return int(version)

    def signature(
        self, model_name: str, version: int, signature_name: str | None
    ) -> tf.types.experimental.ConcreteFunction:
        """The concrete function of a signature of a resolved version (loaded once, then cached)."""
        signatures = self._load(model_name, version).signatures
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
