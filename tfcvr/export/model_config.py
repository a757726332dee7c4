r"""TF Serving's `--model_config_file`: a model_config_list for one or several exported models.

    python -m tfcvr.export.model_config --model=cvr=/models/cvr [--model=ctr=/models/ctr] \
        [--all_versions | --latest_versions=2 | --versions=cvr:7,cvr:8] [--label=cvr:stable=7] \
        --out=models.config [--monitoring_out=monitoring.config]
    python -m tfcvr.export.model_config --update=models.config --label=cvr:stable=8

writes a text-format `ModelServerConfig` (tensorflow_serving/config/
model_server_config.proto); `tensorflow_model_server --model_config_file=...`
serves every model it lists, each under `/v1/models/<name>` and by gRPC
`model_spec.name`. Version labels ("stable", "canary") let clients pin a
version by name; TF Serving only accepts a label for a version it serves, so
with labels list those versions, keep enough latest versions, or serve all
versions of the base (`--all_versions`, with `trainer.task --keep_versions`
bounding them on disk). `--update` moves labels in an existing file (the
rollback: point `stable` back at the previous version); the file is replaced
whole, so a server polling it never reads half of it. `--monitoring_out`
writes the MonitoringConfig that exposes Prometheus metrics on the REST port.
"""

import os
from collections.abc import Iterable

import tensorflow as tf
from absl import app, flags
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfcvr import atomic, cli


def model_config(
    models: dict,
    latest_versions: int | None = None,
    versions: dict[str, list[int]] | None = None,
    labels: dict[str, dict[str, int]] | None = None,
    all_versions: bool = False,
) -> str:
    """The text-format ModelServerConfig.

    Args:
      models: {model name: export base path (the folder of integer versions)}.
      latest_versions: serve the newest N versions of every model (TF
        Serving's default is the newest 1).
      versions: {model name: [version, ...]} to serve exactly those.
      labels: {model name: {label: version}}.
      all_versions: serve every version in the base (TF Serving's `all`
        policy). At most one of the three policies.
    """
    if not models:
        raise ValueError("At least one model (name=base_path) is needed.")
    if sum(bool(x) for x in (latest_versions is not None, versions, all_versions)) > 1:
        raise ValueError("Give one version policy: latest_versions, versions or all_versions.")
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
        if all_versions:
            entry.model_version_policy.all.SetInParent()
        elif latest_versions is not None:
            entry.model_version_policy.latest.num_versions = int(latest_versions)
        elif versions and name in versions:
            entry.model_version_policy.specific.versions.extend(int(v) for v in versions[name])
        for label, version in (labels or {}).get(name, {}).items():
            entry.version_labels[label] = int(version)
    return text_format.MessageToString(config)


def parse_model_config(text: str) -> model_server_config_pb2.ModelServerConfig:
    """A text-format ModelServerConfig; ValueError saying what is wrong (as TF Serving refuses the file)."""
    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise ValueError(f"not a text-format ModelServerConfig: {e}") from None
    if not config.HasField("model_config_list"):
        raise ValueError("no model_config_list: tfcvr's configurations list their models there")
    for entry in config.model_config_list.config:
        if not entry.name or not entry.base_path:
            raise ValueError(f"every model needs a name and a base_path; received {entry}")
        if entry.model_platform not in ("", "tensorflow"):
            raise ValueError(f"model {entry.name}: model_platform {entry.model_platform!r}, expected 'tensorflow'")
    return config


def set_labels(text: str, labels: dict[str, dict[str, int]]) -> str:
    """`text` (a ModelServerConfig) with `labels` {model: {label: version}} set; other labels kept.

    A label must name a version the model's policy can serve: one of its
    `specific` versions when it has that policy (TF Serving refuses the file
    otherwise; with `latest` or `all` the server checks the version is loaded).
    """
    config = parse_model_config(text)
    entries = {entry.name: entry for entry in config.model_config_list.config}
    for name, mapping in labels.items():
        if name not in entries:
            raise ValueError(f"--label names model {name!r}, which the file does not list; models: {sorted(entries)}")
        policy = entries[name].model_version_policy
        for label, version in mapping.items():
            if policy.WhichOneof("policy_choice") == "specific" and version not in policy.specific.versions:
                raise ValueError(
                    f"{name}:{label}={version}: the model serves only versions {list(policy.specific.versions)}; "
                    "add the version to them first and let the server load it (TF Serving labels loaded versions)."
                )
            entries[name].version_labels[label] = int(version)
    return text_format.MessageToString(config)


def labelled_versions(text: str) -> set[int]:
    """Every version a label of the ModelServerConfig `text` names (retention must keep them)."""
    config = parse_model_config(text)
    return {version for entry in config.model_config_list.config for version in entry.version_labels.values()}


# TF Serving's MonitoringConfig (tensorflow_serving/config/monitoring_config.proto; its Python module is not in
# tensorflow-serving-api): Prometheus metrics at this path of the REST port.
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


def monitoring_config(path: str = PROMETHEUS_PATH) -> str:
    """The text-format MonitoringConfig for `--monitoring_config_file` that enables Prometheus metrics."""
    return f'prometheus_config {{\n  enable: true\n  path: "{path}"\n}}\n'


FLAGS = flags.FLAGS


def _define_flags():
    flags.DEFINE_multi_string("model", [], "name=export_base, once per model (not with --update).")
    flags.DEFINE_integer("latest_versions", None, "Serve the newest N versions of each model.")
    flags.DEFINE_bool("all_versions", False, "Serve every version of each base (bounded by --keep_versions).")
    flags.DEFINE_list("versions", [], "name:version entries to serve exactly those versions.")
    flags.DEFINE_multi_string("label", [], "name:label=version, e.g. cvr:stable=1700000000.")
    flags.DEFINE_string("out", None, "Output file (default: print).")
    flags.DEFINE_string("update", None, "An existing config file whose labels --label sets (the file is replaced).")
    flags.DEFINE_string("monitoring_out", None, "Also write a Prometheus MonitoringConfig file here.")


def _pair(text, separator, flag):
    left, found, right = text.partition(separator)
    if not found or not left or not right:
        raise ValueError(f"--{flag}: expected a{separator}b. Received: {text!r}")
    return left, right


def parse_model_flags(model_items: Iterable[str], label_items: Iterable[str] = ()) -> tuple:
    """(models, labels) from "name=base_path" and "name:label=version" flag values; ValueError names the flag."""
    models = dict(_pair(item, "=", "model") for item in model_items)
    labels: dict[str, dict[str, int]] = {}
    for item in label_items:
        name, rest = _pair(item, ":", "label")
        label, version = _pair(rest, "=", "label")
        labels.setdefault(name, {})[label] = int(version)
    return models, labels


def main(argv: list[str]) -> None:
    del argv
    try:
        if FLAGS.update:
            if FLAGS.model or FLAGS.versions or FLAGS.latest_versions is not None or FLAGS.all_versions:
                raise ValueError("--update only sets --label; write a new file to change models or policies.")
            if not tf.io.gfile.exists(FLAGS.update):
                raise ValueError(f"--update={FLAGS.update}: no such file.")
            _, labels = parse_model_flags([], FLAGS.label)
            with tf.io.gfile.GFile(FLAGS.update) as f:
                text = set_labels(f.read(), labels)
            atomic.write_file(FLAGS.update, text)
            print(f"Updated {FLAGS.update}: " + ", ".join(f"{k}:{v}" for k, v in sorted(labels.items())))
        else:
            if not FLAGS.model:
                raise ValueError("Give --model=name=export_base (or --update=FILE).")
            models, labels = parse_model_flags(FLAGS.model, FLAGS.label)
            versions: dict[str, list[int]] = {}
            for item in FLAGS.versions:
                name, version = _pair(item, ":", "versions")
                versions.setdefault(name, []).append(int(version))
            text = model_config(models, FLAGS.latest_versions, versions, labels, FLAGS.all_versions)
            if FLAGS.out:
                folder = os.path.dirname(FLAGS.out if "://" in FLAGS.out else os.path.abspath(FLAGS.out))
                tf.io.gfile.makedirs(folder)
                atomic.write_file(FLAGS.out, text)
            else:
                print(text, end="")
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    if FLAGS.monitoring_out:
        atomic.write_file(FLAGS.monitoring_out, monitoring_config())


if __name__ == "__main__":
    _define_flags()
    cli.run(main)
