"""One typed configuration of a run, from which every command line is derived.

A run's settings live in small dataclasses, one per concern (data,
architecture, method, optimisation, runtime, output, leaderboard, offline
evaluation). Each field holds its one default and its help text; `define_flags`
turns fields into absl flags, `section_from_flags` reads them back, so
`trainer.task`, `trainer.benchmark` and `trainer.evaluate` share names,
defaults and parsing. A `TaskConfig` is written next to every run
(`run_config.json`) and `--config=run_config.json` repeats it; flags given on
the command line override the file.

Method parameters (`--model_params=name=value,...` or `method[name=value;...]`)
are typed from the method's constructor in `trainer.method_params`.
"""

import dataclasses
import json
import re
import types
import typing
from collections.abc import Iterable
from typing import Any, ClassVar, Self, TypeVar

import keras
import tensorflow as tf
from absl import app, flags

from tfcvr import atomic, cli, optimizers
from tfcvr.data import pipeline as pipeline_lib
from tfcvr.models import intercepts
from trainer import distribution, threads
from trainer.loop import STEPS_PER_EXECUTION


def _field(default, help_text: str, choices=None, lower_bound=None):
    """A dataclass field carrying the help text (and enum choices / lower bound) of its flag."""
    metadata = {"help": help_text, "choices": choices, "lower_bound": lower_bound}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


_S = TypeVar("_S", bound="_Sections")


class _Section:
    """A dataclass of settings, each checked against its type, choices and lower bound when set."""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            setattr(self, field.name, _check_type(field, getattr(self, field.name), type(self).__name__))


@dataclasses.dataclass
class DataConfig(_Section):
    """Where the impressions come from (TFRecords described by a schema, or the simulator)."""

    train_files: str | None = _field(None, "Glob(s) of training TFRecords; none: simulate.")
    valid_files: str | None = _field(None, "Glob(s) of validation TFRecords (the leaderboard's epoch selection).")
    eval_files: str | None = _field(None, "Glob(s) of evaluation (test) TFRecords.")
    schema: str | None = _field(None, "schema.json of the TFRecords.")
    sim_rows: int = _field(200_000, "Impressions to simulate when no data flags are given.", lower_bound=1)
    invalid_conversion: str = _field(
        "error",
        "Records with conversion=1 and click=0: fail, or drop and count them.",
        choices=list(pipeline_lib.INVALID_CONVERSION_POLICIES),
    )
    skip_corrupt_records: bool = _field(
        False,
        "A TFRecord file with a corrupt record or cut short: read it up to that record and "
        "skip the rest of the file (the format cannot resume past it), counted and reported "
        "in the logs and metrics.json, instead of failing.",
    )
    cache_input: bool = _field(
        False,
        "Parse the training (and validation) records once and keep them in memory (8 "
        "bytes per id and label, 4 per numeric value per record: ~200 bytes for Ali-CCP); "
        "every epoch is then a new global shuffle of them. For several epochs over data "
        "that fits in RAM. Not with ParameterServerStrategy.",
    )


@dataclasses.dataclass
class ArchitectureConfig(_Section):
    """The multi-task network every method is built on."""

    backbone: str | None = _field(
        None,
        "Multi-task backbone; default: the method's own (shared_bottom, or mmoe for mmoe_ddpo). ple: "
        "Progressive Layered Extraction (task-specific and shared experts, --extraction_levels, --task_experts).",
        choices=["shared_bottom", "mmoe", "ple"],
    )
    embedding_dim: int = _field(16, "Embedding width per categorical feature.", lower_bound=1)
    hidden_units: list[int] = _field([256, 128], "Shared-bottom MLP (or MMoE / PLE expert) widths.")
    tower_units: list[int] = _field([64, 32], "Task tower widths.")
    num_experts: int = _field(4, "MMoE experts; PLE's shared experts per extraction layer.", lower_bound=1)
    dropout: float = _field(0.0, "Dropout rate in backbone and towers.")
    interaction: str = _field(
        "none",
        "Feature crossing between the embeddings and the backbone: cross (DCN-V2 cross network), "
        "dot (DLRM pairwise dot products, appended), none.",
        choices=["none", "cross", "dot"],
    )
    cross_layers: int = _field(2, "Cross layers of --interaction=cross.", lower_bound=1)
    cross_rank: int | None = _field(
        None, "Rank of each cross layer's weights (DCN-V2 low-rank); none: full rank.", lower_bound=1
    )
    extraction_levels: int = _field(2, "PLE extraction layers (1: CGC).", lower_bound=1)
    task_experts: int = _field(1, "PLE experts of each task per extraction layer.", lower_bound=1)

    def model_kwargs(self) -> dict:
        """Constructor arguments of `CVRModel` (the backbone only when chosen: methods have their own default)."""
        kwargs = {
            name: getattr(self, name)
            for name in (
                "embedding_dim",
                "hidden_units",
                "tower_units",
                "num_experts",
                "dropout",
                "interaction",
                "cross_layers",
                "cross_rank",
                "extraction_levels",
                "task_experts",
            )
        }
        return {**({"backbone": self.backbone} if self.backbone else {}), **kwargs}


@dataclasses.dataclass
class MethodConfig(_Section):
    """The method trained by `trainer.task` and its constructor arguments."""

    model: str = _field("esmm", "Registered method name (an unknown name lists them).")
    model_params: list[str] = _field(
        [],
        "Method arguments as name=value, typed by the method's constructor, "
        "e.g. ctr_loss_weight=0.5,detach_uncertainty_weight=false.",
    )


@dataclasses.dataclass
class OptimizationConfig(_Section):
    """How the weights are fitted."""

    epochs: int = _field(
        1, "Passes over the training data (the leaderboard keeps the best on validation).", lower_bound=1
    )
    batch_size: int = _field(1024, "Global batch size.", lower_bound=1)
    learning_rate: float = _field(1e-3, "Learning rate of every optimizer.")
    optimizer: str = _field(
        "adam",
        "adam: dense Adam on the summed gradient, as the papers' PyTorch code (TensorFlow's fused kernel); "
        "lazy_adam: Adam that updates only the embedding rows a batch looks up.",
        choices=sorted(optimizers.OPTIMIZERS),
    )
    learning_rate_schedule: str = _field(
        optimizers.DEFAULT_SCHEDULE,
        "cosine_per_epoch: the learning rate decays to 0 over every epoch and restarts at the next, so every "
        "epoch ends on settled (calibrated) weights; constant: the papers' fixed rate.",
        choices=list(optimizers.SCHEDULES),
    )
    seed: int = _field(
        0, "Seed of shuffling, initialisation and the simulator (leaderboard: of run 1; run r uses seed + r - 1)."
    )
    refit_intercepts: str = _field(
        "ctr",
        "After training, refit the served intercepts (logit offsets inside the model and its export) on the "
        "training impressions; training itself is unchanged. ctr: Σ pCTR = clicks, pCVR as the method trained it; "
        "ctcvr: also Σ pCTR·pCVR = conversions, through one shift of pCVR (undoes part of what debiasing "
        "changes); none: the heads as trained.",
        choices=[*intercepts.TARGETS, "none"],
    )

    @property
    def needs_steps_per_epoch(self) -> bool:
        """Whether `make_optimizer` needs the steps of one epoch (the schedule's period)."""
        return optimizers.needs_steps_per_epoch(self.learning_rate_schedule)

    def make_optimizer(self, steps_per_epoch: int | None) -> keras.optimizers.Optimizer:
        """A fresh optimizer as configured; `steps_per_epoch` (steps of one pass) is the schedule's period."""
        return optimizers.make_optimizer(
            self.optimizer, self.learning_rate, self.learning_rate_schedule, steps_per_epoch
        )


@dataclasses.dataclass
class RuntimeConfig(_Section):
    """How `trainer.task` runs: steps, progress, checkpoints, distribution."""

    steps_per_epoch: int | None = _field(None, "Steps per epoch (repeats the data); default: one pass.", lower_bound=1)
    steps_per_execution: int = _field(
        STEPS_PER_EXECUTION,
        "Training steps per tf.function call (same results; fewer calls are faster).",
        lower_bound=1,
    )
    intra_op_threads: int = _field(
        threads.AUTO,
        "Threads one TensorFlow op may use; 0 (auto): 1 on a machine with at most "
        f"{threads.SINGLE_THREAD_MAX_CORES} cores (ops then run side by side, faster there: docs/benchmarks.md), "
        "TensorFlow's default (or TF_NUM_INTRAOP_THREADS) otherwise.",
        lower_bound=0,
    )
    log_every: int = _field(100, "Steps between progress lines and summaries.", lower_bound=1)
    checkpoint_every: int = _field(1000, "Steps between checkpoints.", lower_bound=1)
    strategy: str = _field(
        "auto",
        "Distribution strategy; auto: from TF_CONFIG (none -> default, workers -> "
        "multi_worker_mirrored, a ps job -> parameter_server).",
        choices=list(distribution.STRATEGIES),
    )


@dataclasses.dataclass
class OutputConfig(_Section):
    """What `trainer.task` writes."""

    model_dir: str | None = _field(None, "Output folder; default AIP_MODEL_DIR, else a new temporary folder.")
    export: bool = _field(True, "Export a SavedModel for TF Serving.")
    export_base: str | None = _field(
        None,
        "Folder of integer export versions TF Serving watches (a daily retrain exports every day's version "
        "into the same one); default <model_dir>/export.",
    )
    keep_versions: int | None = _field(
        None,
        "After exporting, keep only the newest N complete versions of the export base "
        "(never the one just written, nor one labelled in --serving_config). Default: keep all.",
        lower_bound=1,
    )
    serving_config: str | None = _field(
        None,
        "TF Serving's model config file for the export base (local or gs://): --keep_versions never retires a "
        "version one of its labels names (e.g. the 'stable' version clients fall back to).",
    )
    hypertune_metric: str = _field(
        "cvr_auc", "Evaluation metric reported to Vertex AI's hyperparameter tuner when CLOUD_ML_TRIAL_ID is set."
    )


@dataclasses.dataclass
class WarmStartConfig(_Section):
    """Where a run's weights start (`trainer.warm_start`)."""

    warm_start_from: str | None = _field(
        None,
        "A previous run's model_dir, checkpoint folder or prefix, export version or export base: start from "
        "its weights (matched by path) instead of the initialisation. Not used when --model_dir already holds "
        "this run's own checkpoints (a restarted job resumes from those).",
    )
    warm_start_partial: bool = _field(
        False,
        "Let weights the source lacks or holds with another shape (a new feature's embedding) keep their "
        "initial values, each named in the log and metrics.json; default: any mismatch is an error.",
    )
    warm_start_optimizer: bool = _field(
        False,
        "Also restore the optimizers' moments and iteration count (from a checkpoint of the same method with "
        "matching weights; the learning rate stays this run's). Default: fresh optimizer state.",
    )


@dataclasses.dataclass
class LeaderboardConfig(_Section):
    """What `trainer.benchmark` compares and how it recommends."""

    models: list[str] = _field(
        ["naive", "esmm", "escm2_ipw", "escm2_dr", "ddpo", "chorus"],
        "Methods to compare (naive is always added); NAME[arg=value;...] compares a variant, "
        "e.g. 'ukd[detach_uncertainty_weight=False]'.",
    )
    runs: int = _field(3, "Runs per method, paired by seed.", lower_bound=1)
    selection_metric: str = _field(
        "ctcvr_nll",
        "Validation metric of epoch selection (an AUC or NLL); the default, CTCVR log loss over all "
        "impressions, is a proper scoring rule of what a log observes, so it sees calibration (an AUC does not).",
    )
    positive_selection: bool = _field(
        True,
        "Clicks select for conversion intent: epoch selection sets aside epochs whose validation pCVR on clicked "
        "rows exceeds the conversions there by more than 3 standard errors, and the recommendation sets aside "
        "methods predicting above naive's pCVR on clicked rows; false for a log where clicks may select against "
        "conversion.",
    )


@dataclasses.dataclass
class ReportConfig(_Section):
    """Where the tables, plots and metrics of `trainer.benchmark` and `trainer.evaluate` go."""

    output_dir: str | None = _field(
        None,
        "Where tables, plots and metrics.json go; default: ./leaderboard "
        "(trainer.benchmark, which also simulates into it), "
        "<export base>/../evaluation/<version> (trainer.evaluate).",
    )
    calibration_buckets: int = _field(
        10, "Equal-frequency pCTR buckets of the calibration tables and plots.", lower_bound=1
    )


@dataclasses.dataclass
class EvaluationConfig(_Section):
    """`trainer.evaluate`: an export scored offline through its serving signature."""

    export_dir: str | None = _field(None, "A SavedModel version folder or the export base.")
    reference_export_dir: str | None = _field(None, "Export of the CTR model whose pCTR weights D-AUC/D-NLL.")


@dataclasses.dataclass
class ComparisonConfig(_Section):
    """`trainer.compare`: a candidate export against the baseline it would replace, on the same records."""

    baseline: str | None = _field(None, "The served export: a version folder, or an export base (its newest version).")
    candidate: str | None = _field(None, "The new export: a version folder, or an export base (its newest version).")
    gate_metrics: list[str] = _field(
        ["ctcvr_log_loss"],
        "Per-record losses the candidate must not be significantly worse on: ctcvr_log_loss (every impression, "
        "the served pCTR*pCVR against click and conversion), ctr_log_loss, cvr_log_loss_clicked (clicked rows).",
    )
    alpha: float = _field(0.05, "Level of the one-sided test, split over the gate metrics (Bonferroni).")
    margin: float = _field(
        0.0, "Relative loss increase tolerated: worse means significantly above baseline x (1 + margin).", lower_bound=0
    )


class _Sections:
    """A run's configuration: named sections, each a dataclass of settings."""

    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]  # every subclass is a dataclass

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, config: dict, source: str = "the configuration") -> Self:
        """The inverse of `to_dict`; unknown sections or settings and wrong types are errors naming them."""
        sections = _section_types(cls)
        unknown = sorted(set(config) - set(sections))
        if unknown:
            raise ValueError(f"{source}: unknown section(s) {unknown}; expected {sorted(sections)}.")
        return cls(
            **{name: _section_from_dict(sections[name], config.get(name, {}), f"{source}: {name}") for name in sections}
        )


@dataclasses.dataclass
class TaskConfig(_Sections):
    """Everything `python -m trainer.task` reads; written to <model_dir>/run_config.json."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    architecture: ArchitectureConfig = dataclasses.field(default_factory=ArchitectureConfig)
    method: MethodConfig = dataclasses.field(default_factory=MethodConfig)
    optimization: OptimizationConfig = dataclasses.field(default_factory=OptimizationConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)
    output: OutputConfig = dataclasses.field(default_factory=OutputConfig)
    warm_start: WarmStartConfig = dataclasses.field(default_factory=WarmStartConfig)


@dataclasses.dataclass
class BenchmarkConfig(_Sections):
    """Everything `python -m trainer.benchmark` reads; written into leaderboard.json."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    architecture: ArchitectureConfig = dataclasses.field(default_factory=ArchitectureConfig)
    optimization: OptimizationConfig = dataclasses.field(default_factory=OptimizationConfig)
    leaderboard: LeaderboardConfig = dataclasses.field(default_factory=LeaderboardConfig)
    report: ReportConfig = dataclasses.field(default_factory=ReportConfig)


@dataclasses.dataclass
class EvaluateConfig(_Sections):
    """Everything `python -m trainer.evaluate` reads."""

    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optimization: OptimizationConfig = dataclasses.field(default_factory=OptimizationConfig)
    report: ReportConfig = dataclasses.field(default_factory=ReportConfig)


@dataclasses.dataclass
class CompareConfig(_Sections):
    """Everything `python -m trainer.compare` reads."""

    comparison: ComparisonConfig = dataclasses.field(default_factory=ComparisonConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optimization: OptimizationConfig = dataclasses.field(default_factory=OptimizationConfig)
    report: ReportConfig = dataclasses.field(default_factory=ReportConfig)


def _section_from_dict(section_class, values: dict, source: str):
    fields = {f.name: f for f in dataclasses.fields(section_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{source}: unknown setting(s) {unknown}; expected {sorted(fields)}.")
    try:
        return section_class(**values)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None


def _check_type(field, value, owner):
    """`value` as the field's type (ints accepted for floats); a ValueError naming the setting otherwise."""
    kind, optional = _kind(field.type)
    if value is None and optional:
        return None
    choices, bound = field.metadata["choices"], field.metadata["lower_bound"]
    if choices and value not in choices:
        raise ValueError(f"{owner}.{field.name}: expected one of {choices}, got {value!r}.")
    if bound is not None and isinstance(value, (int, float)) and value < bound:
        raise ValueError(f"{owner}.{field.name}: must be at least {bound}, got {value!r}.")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is list:
        element = typing.get_args(field.type)[0]
        if isinstance(value, (list, tuple)) and all(
            isinstance(item, element) and not isinstance(item, bool) for item in value
        ):
            return list(value)
        raise ValueError(f"{owner}.{field.name}: expected a list of {element.__name__}, got {value!r}.")
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise ValueError(f"{owner}.{field.name}: expected {kind.__name__}{' or null' if optional else ''}, got {value!r}.")


def _kind(annotation):
    """(base type, optional?) of a field annotation: int, Optional[str], List[int], ..."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return _kind(next(a for a in args if a is not type(None)))[0], True
    if typing.get_origin(annotation) is list:
        return list, False
    return annotation, False


def define_flags(
    section_class: type,
    only: Iterable[str] | None = None,
    required: Iterable[str] = (),
    flag_values: flags.FlagValues = flags.FLAGS,
) -> None:
    """Defines one absl flag per field of `section_class` (or of the fields in `only`) in `flag_values`."""
    for field in dataclasses.fields(section_class):
        if only is not None and field.name not in only:
            continue
        kind, _ = _kind(field.type)
        default = _default(field)
        help_text, choices = field.metadata["help"], field.metadata["choices"]
        if choices:
            flags.DEFINE_enum(field.name, default, choices, help_text, flag_values=flag_values)
        elif kind is bool:
            flags.DEFINE_bool(field.name, default, help_text, flag_values=flag_values)
        elif kind is int:
            lower_bound = field.metadata["lower_bound"]
            flags.DEFINE_integer(field.name, default, help_text, lower_bound=lower_bound, flag_values=flag_values)
        elif kind is float:
            flags.DEFINE_float(field.name, default, help_text, flag_values=flag_values)
        elif kind is list:
            flags.DEFINE_list(field.name, [str(v) for v in default], help_text, flag_values=flag_values)
        else:
            flags.DEFINE_string(field.name, default, help_text, flag_values=flag_values)
        if field.name in required:
            flags.mark_flag_as_required(field.name, flag_values=flag_values)
        cli.set_flag_group([field.name], section_title(section_class))


def build_model(
    model_class: type,
    schema,
    architecture: "ArchitectureConfig",
    optimization: "OptimizationConfig",
    params: dict,
    data_statistics: dict,
    steps_per_epoch: int | None,
):
    """The configured method on `schema`, compiled with the configured optimizer (call under the strategy's scope).

    The one way `trainer.task` and the leaderboard build a model: architecture
    flags, then the method's own arguments (`params`, which win over an
    architecture flag of the same name), the training data's
    statistics (`numeric_statistics`, `label_rates`), and the optimizer whose
    schedule has a period of `steps_per_epoch`.
    """
    model = model_class(schema=schema, **data_statistics, **{**architecture.model_kwargs(), **params})
    model.compile(optimizer=optimization.make_optimizer(steps_per_epoch))
    return model


def section_title(section_class: type) -> str:
    """The heading of a section's flags in `--help`: DataConfig -> "Data", WarmStartConfig -> "Warm start"."""
    words = re.findall(r"[A-Z][a-z]*", section_class.__name__.removesuffix("Config"))
    return " ".join([words[0], *(w.lower() for w in words[1:])])


def section_from_flags(section_class: type, flag_values: flags.FlagValues = flags.FLAGS, base: Any = None) -> Any:
    """The section from parsed flags; with `base`, only flags given on the command line replace its values."""
    values = {}
    for field in dataclasses.fields(section_class):
        if field.name not in flag_values:
            continue
        if base is not None and not flag_values[field.name].present:
            values[field.name] = getattr(base, field.name)
            continue
        value = flag_values[field.name].value
        if field.type == list[int]:
            value = _int_list(field.name, value)
        values[field.name] = value
    return dataclasses.replace(base, **values) if base is not None else section_class(**values)


def _int_list(name, items):
    try:
        return [int(item) for item in items]
    except ValueError:
        raise app.UsageError(f"--{name} takes comma-separated integers. Received: {','.join(items)!r}") from None


def _default(field: dataclasses.Field) -> Any:
    """A setting's default value (every setting has one: a flag needs it)."""
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    if field.default is not dataclasses.MISSING:
        return field.default
    raise TypeError(f"Setting {field.name!r} has no default.")


def config_from_flags(
    config_class: type[_S], flag_values: flags.FlagValues = flags.FLAGS, config_path: str | None = None
) -> _S:
    """`config_class` from the flags; with `config_path` (a saved configuration) only the flags given on the
    command line replace the file's settings."""
    base = load_config(config_class, config_path) if config_path else None
    return config_class(
        **{
            name: section_from_flags(section_class, flag_values, getattr(base, name) if base else None)
            for name, section_class in _section_types(config_class).items()
        }
    )


def _section_types(config_class: type[_Sections]) -> dict[str, type]:
    """{section name: its dataclass} of a configuration class."""
    sections = {}
    for field in dataclasses.fields(config_class):
        if not isinstance(field.type, type):
            raise TypeError(f"{config_class.__name__}.{field.name}: a section is annotated with its dataclass.")
        sections[field.name] = field.type
    return sections


def load_config(config_class: type[_S], path: str) -> _S:
    """A configuration written by `write_config`; a UsageError naming the file and the bad setting otherwise."""
    if not tf.io.gfile.exists(path):
        raise app.UsageError(f"--config={path}: no such file.")
    with tf.io.gfile.GFile(path) as f:
        text = f.read()
    try:
        return config_class.from_dict(json.loads(text), source=path)
    except (ValueError, TypeError) as e:
        raise app.UsageError(f"--config={path}: {e}") from None


def write_config(config: _Sections, path: str) -> None:
    atomic.write_file(path, json.dumps(config.to_dict(), indent=2) + "\n")
