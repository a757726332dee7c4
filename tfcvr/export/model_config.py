r"""TF Serving's `--model_config_file`: a model_config_list for one or several exported models.

    python -m tfcvr.export.model_config --model=cvr=/models/cvr [--model=ctr=/models/ctr] \
        [--latest_versions=2 | --versions=cvr:7,cvr:8] [--label=cvr:stable=7] --out=models.config

writes a text-format `ModelServerConfig` (tensorflow_serving/config/
model_server_config.proto); `tensorflow_model_server --model_config_file=...`
serves every model it lists, each under `/v1/models/<name>` and by gRPC
`model_spec.name`. Version labels ("stable", "canary") let clients pin a
version by name; TF Serving only accepts a label for a version it serves, so
with labels list those versions (or keep enough latest versions).
"""

import os
from collections.abc import Iterable

from absl import app, flags
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2


def model_config(
    models: dict,
    latest_versions: int | None = None,
    versions: dict[str, list[int]] | None = None,
    labels: dict[str, dict[str, int]] | None = None,
) -> str:
    """The text-format ModelServerConfig.

    Args:
      models: {model name: export base path (the folder of integer versions)}.
      latest_versions: serve the newest N versions of every model (TF
        Serving's default is the newest 1). Exclusive with `versions`.
      versions: {model name: [version, ...]} to serve exactly those.
      labels: {model name: {label: version}}.
    """
    if not models:
        raise ValueError("At least one model (name=base_path) is needed.")
    if latest_versions is not None and versions:
        raise ValueError("Give either latest_versions or versions, not both.")
    if latest_versions is not None and int(latest_versions) < 1:
        raise ValueError(f"latest_versions must be at least 1. Received: {latest_versions}")
    for option, mapping in (("versions", versions or {}), ("labels", labels or {})):
        unknown = sorted(set(mapping) - set(models))
        if unknown:
            raise ValueError(f"{option} name models {unknown} that are not configured; models: {sorted(models)}.")
    config = model_server_config_pb2.ModelServerConfig()
    for name, base_path in models.items():
        if not name or "/" in name:
            raise ValueError(f"Model name {name!r} must be non-empty and contain no '/'.")
        entry = config.model_config_list.config.add(name=name, base_path=base_path, model_platform="tensorflow")
        if latest_versions is not None:
            entry.model_version_policy.latest.num_versions = int(latest_versions)
        elif versions and name in versions:
            entry.model_version_policy.specific.versions.extend(int(v) for v in versions[name])
        for label, version in (labels or {}).get(name, {}).items():
            entry.version_labels[label] = int(version)
    return text_format.MessageToString(config)


FLAGS = flags.FLAGS


def _define_flags():
    flags.DEFINE_multi_string("model", None, "name=export_base, once per model.", required=True)
    flags.DEFINE_integer("latest_versions", None, "Serve the newest N versions of each model.")
    flags.DEFINE_list("versions", [], "name:version entries to serve exactly those versions.")
    flags.DEFINE_multi_string("label", [], "name:label=version, e.g. cvr:stable=1700000000.")
    flags.DEFINE_string("out", None, "Output file (default: print).")


def _pair(text, separator, flag):
    left, found, right = text.partition(separator)
    if not found or not left or not right:
        raise ValueError(f"--{flag}: expected a{separator}b. Received: {text!r}")
    return left, right


def parse_model_flags(model_items: Iterable[str], label_items: Iterable[str] = ()) -> tuple:
    """(models, labels) from "name=base_path" and "name:label=version" flag values; ValueError names the flag."""
    models = dict(_pair(item, "=", "model") for item in model_items)
    labels = {}
    for item in label_items:
        name, rest = _pair(item, ":", "label")
        label, version = _pair(rest, "=", "label")
        labels.setdefault(name, {})[label] = int(version)
    return models, labels


def main(argv: list[str]) -> None:
    del argv
    try:
        models, labels = parse_model_flags(FLAGS.model, FLAGS.label)
        versions = {}
        for item in FLAGS.versions:
            name, version = _pair(item, ":", "versions")
            versions.setdefault(name, []).append(int(version))
        text = model_config(models, FLAGS.latest_versions, versions, labels)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    if FLAGS.out:
        os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
        with open(FLAGS.out, "w") as f:
            f.write(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
