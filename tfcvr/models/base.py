"""The base of every method: embeddings -> backbone -> one tower per task.

A method is a `CVRModel` subclass. It names its tasks (`task_names`), may add
outputs on top of the towers (`build_outputs`), and states its objective:

* `objective(labels, predictions)` returns the loss terms of one batch with
  "loss" the total; the inherited `objective_step` minimises it with one
  optimizer.
* A method's steps are `stage_steps()`, {stage: step}: {"train":
  objective_step} by default. Methods with several optimizers or alternating
  updates (DR-JL) give their own step there and call `minimize` once per
  update; methods trained in stages (UKD: teacher, then student) list the
  stages and their epochs in `training_stages` and give each its step.
  `stage_step(stage)` is the one dispatch from stage to step: Keras'
  `train_step` (so `fit`, which runs the stages in order) and the command
  line's loop (trainer/loop.py, which records the stage in its checkpoints
  as the epoch count) both go through it.

A method declares its own arguments once, as a frozen dataclass of typed
fields (`MethodOptions`; a method extends its parent's) named by the class's
`options_class`; its `__post_init__` validates them. The constructor takes
them as keyword arguments beside `CVRModel`'s architecture arguments and
keeps them as `self.options` before the graph is built, so `build_outputs`
and `objective` read `self.options.<name>`; `get_config` and
`--model_params` derive from the same fields. State derived from the options
(loss objects, a teacher network) is built after `super().__init__`.
`compile` creates and builds every optimizer the method needs
(`build_optimizers`), so a compiled model is ready to train.

Training steps never look at the distribution strategy beyond `minimize`'s
replica scaling, so the same method code runs on one CPU and under
MultiWorkerMirrored / ParameterServer strategies (trainer/loop.py).
"""

import dataclasses
import math
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Self

import keras
import tensorflow as tf

from tfcvr import losses, optimizers
from tfcvr.data import schema as schema_lib
from tfcvr.data.statistics import LABEL_RATES
from tfcvr.layers import (
    BACKBONES,
    INTERACTIONS,
    MLP,
    FeatureEmbedding,
    InterceptCalibration,
    SchemaTransform,
    make_backbone,
    make_interaction,
)

# A training batch, (features, labels), and a per-replica step on one: batch -> {loss term: value}.
Batch = tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]
Step = Callable[[Batch], dict[str, tf.Tensor]]

# Every method serves these three, whatever heads it trains (docs/serving.md).
SERVING_OUTPUTS = ("ctr", "cvr", "ctcvr")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What `build_outputs` builds from: the schema and the architecture (the method's options are `model.options`).

    `embedded` is the shared embedding layer's output (for networks beside
    the backbone). After construction the model keeps its spec as
    `model.architecture`.
    """

    schema: schema_lib.Schema
    backbone: str
    embedding_dim: int
    hidden_units: tuple
    tower_units: tuple
    num_experts: int
    dropout: float
    numeric_statistics: dict
    label_rates: types.MappingProxyType = dataclasses.field(default_factory=lambda: types.MappingProxyType({}))
    embedded: Any = None
    interaction: str = "none"
    cross_layers: int = 2
    cross_rank: int | None = None
    extraction_levels: int = 2
    task_experts: int = 1

    def backbone_layer(self, num_tasks: int, layer_name: str = "backbone", dropout: float | None = None):
        """The architecture's backbone with `num_tasks` outputs (a teacher names its own and may set its dropout)."""
        return make_backbone(
            self.backbone,
            num_tasks,
            self.hidden_units,
            dropout=self.dropout if dropout is None else dropout,
            num_experts=self.num_experts,
            extraction_levels=self.extraction_levels,
            task_experts=self.task_experts,
            layer_name=layer_name,
        )

    def interact(self, embedded: keras.KerasTensor, name_prefix: str = "") -> keras.KerasTensor:
        """The architecture's feature interaction applied to `FeatureEmbedding`'s output (unchanged for "none")."""
        layer = make_interaction(
            self.interaction,
            len(self.schema.categorical),
            self.embedding_dim,
            len(self.schema.numeric),
            self.cross_layers,
            self.cross_rank,
            name_prefix=name_prefix,
        )
        return embedded if layer is None else layer(embedded)

    def log_odds(self, rate: str) -> float:
        """log(p / (1 - p)) of a label rate ("ctr", "cvr", "ctcvr"); 0 (p = 1/2) when the model was given none.

        A head's starting bias: at it, the head predicts the base rate of its
        label before any step (`CVRModel`'s `label_rates`).
        """
        if rate not in self.label_rates:
            return 0.0
        p = self.label_rates[rate]
        return math.log(p / (1.0 - p))


def head(
    task: str, hidden: keras.KerasTensor, initial_logit: float, activation: str | None = "sigmoid"
) -> keras.KerasTensor:
    """A task's one-unit output layer, shape [batch], its bias starting at `initial_logit` (`ModelSpec.log_odds`)."""
    dense = keras.layers.Dense(
        1, activation=activation, bias_initializer=keras.initializers.Constant(initial_logit), name=f"{task}_head"
    )
    return keras.ops.squeeze(dense(hidden), axis=-1)


def _checked_label_rates(label_rates: Mapping[str, float] | None) -> dict:
    """`label_rates` as {rate: float}, or a ValueError naming the rate and what was expected."""
    rates = {}
    for name, value in dict(label_rates or {}).items():
        if name not in LABEL_RATES:
            raise ValueError(f"`label_rates` names unknown rate {name!r}; expected some of {list(LABEL_RATES)}.")
        if not 0.0 < float(value) < 1.0:
            raise ValueError(f"`label_rates[{name!r}]` must be a rate strictly between 0 and 1. Received: {value!r}")
        rates[name] = float(value)
    return rates


@dataclasses.dataclass(frozen=True, kw_only=True)
class MethodOptions:
    """A method's own constructor arguments, beside `CVRModel`'s architecture arguments: one typed field each.

    A method subclasses its parent's options (a field may be declared again
    with another default), validates them in `__post_init__`, before any
    layer is built, and names the class as its `options_class`. Field types
    are bool, int, float, str or `float | None` (what `--model_params` parses).
    """

    def as_dict(self) -> dict[str, Any]:
        """{option: value}, as the model's config holds them."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class CTRLossOptions(MethodOptions):
    """Options of a method whose objective adds the CTR log loss with a weight (`CVRModel.ctr_log_loss`)."""

    ctr_loss_weight: float = 1.0  # γ (λ_c, λ_o in some papers): the CTR loss's weight in the total

    def __post_init__(self) -> None:
        if self.ctr_loss_weight < 0:
            raise ValueError(f"`ctr_loss_weight` must be >= 0. Received: {self.ctr_loss_weight!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Architecture:
    """The shape every method shares, embeddings -> interaction -> backbone -> towers: `CVRModel`'s architecture.

    backbone: "shared_bottom", "mmoe" or "ple"; None: the method's first (`CVRModel.backbones`).
    embedding_dim: width of every embedding table.
    hidden_units: widths of the shared MLP (or of each MMoE or PLE expert).
    tower_units: widths of each task tower before its head.
    num_experts: MMoE experts; PLE's shared experts per extraction layer (ignored by shared_bottom).
    dropout: dropout in the backbone and towers.
    interaction: explicit feature crossing between the embeddings and the
      backbone: "none", "cross" (DCN-V2's cross network) or "dot" (DLRM's
      pairwise dot products appended to the embeddings); `tfcvr.layers.feature_interaction`.
    cross_layers: cross layers of "cross".
    cross_rank: None: full-rank cross weights; else their rank (DCN-V2's low-rank cross).
    extraction_levels: PLE's extraction layers (1: its single-layer CGC).
    task_experts: PLE's experts of each task per extraction layer.

    A field added after a run recorded its configuration reads, in that
    record, as its default (`trainer.model_identity`): the default is what
    every earlier model was.
    """

    backbone: str | None = None
    embedding_dim: int = 16
    hidden_units: tuple[int, ...] = (256, 128)
    tower_units: tuple[int, ...] = (64, 32)
    num_experts: int = 4
    dropout: float = 0.0
    interaction: str = "none"
    cross_layers: int = 2
    cross_rank: int | None = None
    extraction_levels: int = 2
    task_experts: int = 1

    def __post_init__(self) -> None:
        # Lists (a config read back from JSON, a flag) are kept as tuples; the dataclass is frozen.
        object.__setattr__(self, "hidden_units", tuple(self.hidden_units))
        object.__setattr__(self, "tower_units", tuple(self.tower_units))
        if self.backbone is not None and self.backbone not in BACKBONES:
            raise ValueError(f"Unknown backbone {self.backbone!r}; expected one of {sorted(BACKBONES)}.")
        if self.interaction not in INTERACTIONS:
            raise ValueError(f"Unknown interaction {self.interaction!r}; expected one of {list(INTERACTIONS)}.")
        if self.cross_rank is not None and not self.cross_rank >= 1:
            raise ValueError(f"`cross_rank` must be positive, or None for full rank. Received: {self.cross_rank!r}")
        for name in ("embedding_dim", "num_experts", "cross_layers", "extraction_levels", "task_experts"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"`{name}` must be positive. Received: {getattr(self, name)!r}")
        for name in ("hidden_units", "tower_units"):
            if not all(units >= 1 for units in getattr(self, name)):
                raise ValueError(f"`{name}` must all be positive. Received: {list(getattr(self, name))}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: {self.dropout!r}")
        if self.backbone in ("mmoe", "ple") and not self.hidden_units:
            raise ValueError(
                f"`hidden_units` must name at least one layer: they are the widths of each {self.backbone} expert."
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class Preset:
    """A registered name for its parent method with some arguments set (a class's `preset`).

    Every preset accepts its parent's arguments, except that it refuses, with
    the same error, any value that would make it another method: its `fixed`
    arguments keep their value, its `positive` ones (its defining loss term)
    stay above 0. `defaults` are the preset's own defaults, which callers may
    change.
    """

    parent: str
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    positive: tuple[str, ...] = ()

    def arguments(self, name: str, given: Mapping[str, Any]) -> dict[str, Any]:
        """The parent's arguments for `given` to preset `name`: its defaults under them, its fixed values over them."""
        for argument, value in self.fixed.items():
            if argument in given and given[argument] != value:
                raise ValueError(
                    f"{name} is {self.parent} with {argument}={value!r}; for {argument}={given[argument]!r} use "
                    f"model {self.parent!r}."
                )
        arguments = {**self.defaults, **given, **self.fixed}
        for argument in self.positive:
            if not arguments[argument] > 0:
                raise ValueError(
                    f"{name} is {self.parent} with {argument} > 0; for {argument}={arguments[argument]!r} use "
                    f"model {self.parent!r}."
                )
        return arguments


class CVRModel(keras.Model):
    """A functional multi-task graph over a schema's features.

    Inputs: {feature name: [batch]} with hashed bucket ids (int64) for
    categorical features and float32 for numeric ones (`tfcvr.data`).
    Outputs: {task: [batch] probability} for every task in `task_names`, plus
    `ctcvr` = ctr * cvr, plus whatever `build_outputs` adds.

    Args:
      schema: a `Schema` or its dict form.
      numeric_statistics: {numeric feature: [mean, variance]} used to
        standardise numeric inputs (`tfcvr.data.numeric_statistics`).
      label_rates: {"ctr", "cvr", "ctcvr": base rate in (0, 1)} of the
        training data (`tfcvr.data.label_rates`; cvr is the rate on clicks).
        Each task head's bias starts at its label's log-odds, so the first
        predictions are the base rates instead of 1/2: with rare labels the
        output otherwise spends its first steps (and, under a decaying
        learning rate, the whole of a short run) walking down from 1/2,
        and ends above the observed rate. The initial bias of Karpathy's "A
        Recipe for Training Neural Networks" (2019, "init well") and of
        TensorFlow's imbalanced-data tutorial. None: biases start at 0.
      name: the Keras model's name (default: the registered name).
      **arguments: the architecture (`Architecture`: backbone, embedding_dim,
        hidden_units, tower_units, num_experts, dropout) and the method's own
        arguments (the fields of its `options_class`); a name that is
        neither is a TypeError listing them. `configuration` validates them
        and gives the model's config without building it.
    """

    task_names: tuple[str, ...] = ("ctr", "cvr")
    registered_name = "cvr_model"
    # The backbones a method runs on, its default first (a method fixed to one says so).
    backbones: tuple[str, ...] = ("shared_bottom", "mmoe", "ple")
    options_class: ClassVar[type[MethodOptions]] = MethodOptions
    options: MethodOptions
    # Set by a registered name for another method with some arguments fixed (ipw_naive, escm2_*, ...).
    preset: ClassVar[Preset | None] = None

    def __init__(self, schema, numeric_statistics=None, label_rates=None, name=None, **arguments: Any):
        schema_obj = _as_schema(schema)
        architecture, options = self.resolve_arguments(arguments)
        assert architecture.backbone is not None  # resolve_arguments chose the method's default
        numeric_statistics = _checked_numeric_statistics(numeric_statistics, schema_obj)
        label_rates = _checked_label_rates(label_rates)
        # Set before keras.Model.__init__ (Keras 3 allows it): `build_outputs` reads the options.
        self.options = options
        inputs = self.feature_inputs(schema_obj)
        spec = ModelSpec(
            schema=schema_obj,
            backbone=architecture.backbone,
            embedding_dim=architecture.embedding_dim,
            hidden_units=architecture.hidden_units,
            tower_units=architecture.tower_units,
            num_experts=architecture.num_experts,
            dropout=architecture.dropout,
            numeric_statistics=numeric_statistics,
            label_rates=types.MappingProxyType(label_rates),
            interaction=architecture.interaction,
            cross_layers=architecture.cross_layers,
            cross_rank=architecture.cross_rank,
            extraction_levels=architecture.extraction_levels,
            task_experts=architecture.task_experts,
        )
        spec = dataclasses.replace(spec, embedded=self.feature_embedding(spec, name="feature_embedding")(inputs))
        representations = spec.backbone_layer(len(self.task_names))(spec.interact(spec.embedded))
        task_representations = dict(zip(self.task_names, representations))
        outputs = self.served_calibration(self.build_outputs(inputs, task_representations, spec))
        super().__init__(inputs=inputs, outputs=outputs, name=name or self.registered_name)
        self.schema = schema_obj
        self.architecture = spec
        self._config = _config(schema_obj, architecture, options, numeric_statistics, label_rates)

    @classmethod
    def configuration(cls, schema, numeric_statistics=None, label_rates=None, **arguments: Any) -> dict:
        """The `get_config()` of the model these arguments build, without building it.

        Every argument is validated as the constructor does (a ValueError or
        TypeError naming it), so a command line checks a method's arguments
        and records what its checkpoints are before it reads any data.
        """
        schema_obj = _as_schema(schema)
        architecture, options = cls.resolve_arguments(arguments)
        return _config(
            schema_obj,
            architecture,
            options,
            _checked_numeric_statistics(numeric_statistics, schema_obj),
            _checked_label_rates(label_rates),
        )

    @classmethod
    def resolve_arguments(cls, arguments: Mapping[str, Any]) -> tuple[Architecture, MethodOptions]:
        """The architecture and the method's options from keyword arguments, validated (the preset's rules first)."""
        arguments = cls.preset.arguments(cls.registered_name, arguments) if cls.preset else dict(arguments)
        shape = {field.name for field in dataclasses.fields(Architecture)}
        architecture = Architecture(**{k: v for k, v in arguments.items() if k in shape})
        if architecture.backbone is None:
            architecture = dataclasses.replace(architecture, backbone=cls.backbones[0])
        elif architecture.backbone not in cls.backbones:
            raise ValueError(
                f"{cls.__name__} runs on the backbone(s) {list(cls.backbones)}. Received: {architecture.backbone!r}"
            )
        options = cls.make_options({k: v for k, v in arguments.items() if k not in shape})
        cls.check_arguments(architecture, options)
        return architecture, options

    @classmethod
    def check_arguments(cls, architecture: Architecture, options: MethodOptions) -> None:
        """Checks between the architecture and the method's options (a ValueError); none by default."""

    @classmethod
    def make_options(cls, options: Mapping[str, Any]) -> MethodOptions:
        """The method's `options_class` from keyword arguments; a TypeError names an argument it does not have."""
        accepted = {field.name for field in dataclasses.fields(cls.options_class)}
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise TypeError(
                f"{cls.__name__} has no argument(s) {unknown}; beside the architecture "
                f"{[field.name for field in dataclasses.fields(Architecture)]} it accepts {sorted(accepted)}."
            )
        return cls.options_class(**options)

    def build_outputs(self, inputs: dict, task_representations: dict, spec: ModelSpec) -> dict:
        """Towers on the backbone's task representations -> {name: [batch] tensor}.

        Runs inside `CVRModel.__init__`, before `keras.Model.__init__`: build
        layers and return tensors; the method's arguments are already
        `self.options`, other attributes are set after. The default gives each task an MLP tower and a sigmoid head,
        and adds ctcvr = ctr * cvr.
        """
        outputs = {
            task: self.task_tower(task, rep, spec, initial_logit=self.head_initial_logit(task, spec))
            for task, rep in task_representations.items()
        }
        outputs["ctcvr"] = keras.ops.multiply(outputs["ctr"], outputs["cvr"])
        return outputs

    @staticmethod
    def served_calibration(outputs: dict) -> dict:
        """`outputs` with ctr and cvr through the `intercept_calibration` layer, and ctcvr = ctr * cvr of those.

        The layer passes them through in training and shifts their logits by the offsets
        `tfcvr.models.refit_intercepts` fits after training at inference, for every method alike.
        """
        ctr, cvr = InterceptCalibration(name="intercept_calibration")([outputs["ctr"], outputs["cvr"]])
        return {**outputs, "ctr": ctr, "cvr": cvr, "ctcvr": keras.ops.multiply(ctr, cvr)}

    @staticmethod
    def head_initial_logit(task: str, spec: ModelSpec) -> float | None:
        """Where the default towers' head of `task` starts (a logit); None: at the task's own label rate.

        A method whose head learns another target says so (ChorusCVR's unCVR
        learns 1 − CVR on clicks: `-spec.log_odds("cvr")`).
        """
        return None

    @staticmethod
    def feature_inputs(schema: schema_lib.Schema) -> dict:
        """{feature name: keras.Input} for a schema: hashed int64 ids and float32 numerics, shape [batch].

        A categorical_list is [batch, max_length] ids padded with -1.
        """
        return {
            f.name: keras.Input(
                shape=(f.max_length,) if f.is_list else (),
                dtype="int64" if f.is_categorical else "float32",
                name=f.name,
            )
            for f in schema.features
        }

    @staticmethod
    def feature_embedding(spec: ModelSpec, name: str) -> FeatureEmbedding:
        """An embedding layer over every schema feature (one table per categorical)."""
        numeric = [f.name for f in spec.schema.numeric]
        return FeatureEmbedding(
            categorical={f.name: f.num_buckets for f in spec.schema.categorical},
            lists=[f.name for f in spec.schema.lists],
            numeric=numeric,
            embedding_dim=spec.embedding_dim,
            numeric_mean=[spec.numeric_statistics.get(n, (0.0, 1.0))[0] for n in numeric],
            numeric_variance=[spec.numeric_statistics.get(n, (0.0, 1.0))[1] for n in numeric],
            name=name,
        )

    @staticmethod
    def task_tower(
        task: str,
        representation: keras.KerasTensor,
        spec: ModelSpec,
        activation: str | None = "sigmoid",
        initial_logit: float | None = None,
    ) -> keras.KerasTensor:
        """MLP tower and one-unit head of a task (a probability by default), shape [batch].

        The head's bias starts at `initial_logit`; by default at the log-odds of
        the task's own label rate (`spec.log_odds(task)`: ctr, cvr, ctcvr), 0
        for a head that predicts something else. A head predicting another
        label passes its rate's log-odds (a click propensity: `spec.log_odds("ctr")`).
        """
        hidden = MLP(spec.tower_units, dropout=spec.dropout, name=f"{task}_tower")(representation)
        return head(task, hidden, spec.log_odds(task) if initial_logit is None else initial_logit, activation)

    @staticmethod
    def ctr_log_loss(labels: dict[str, tf.Tensor], predictions: dict[str, tf.Tensor]) -> tf.Tensor:
        """(1/|D|) Σ_D δ(o, pCTR): the CTR task every method trains."""
        return tf.reduce_mean(losses.binary_crossentropy(labels["click"], predictions["ctr"]))

    @staticmethod
    def ctcvr_log_loss(labels: dict[str, tf.Tensor], ctcvr: tf.Tensor) -> tf.Tensor:
        """(1/|D|) Σ_D δ(o·r, pCTCVR): ESMM's entire-space risk.

        As Xu et al. (WWW 2022, https://doi.org/10.1145/3485447.3512081, Eq. 3) and Fei et al.
        (AAAI 2025, https://arxiv.org/abs/2502.15687, Eq. 5) state it.
        """
        click_and_conversion = labels["click"] * labels["conversion"]
        return tf.reduce_mean(losses.binary_crossentropy(click_and_conversion, ctcvr))

    def objective(self, labels: dict, predictions: dict) -> dict:
        """Loss terms of one batch: {"loss": total, term name: value, ...}."""
        raise NotImplementedError(f"{type(self).__name__} must define `objective` or its own `stage_steps`.")

    def compile(self, optimizer: str | keras.optimizers.Optimizer = "adam", **kwargs: Any) -> None:
        """Keras' `compile`, then every optimizer the method needs, created and built (`build_optimizers`).

        Call under the distribution strategy's scope, as for any Keras model.
        A name in `tfcvr.optimizers.OPTIMIZERS` ("adam", "lazy_adam") gives
        that optimizer at its defaults; another string is Keras' own.
        The step is not XLA-compiled unless `jit_compile=True` is given: the
        command line's training loop runs it without XLA, and `fit` trains
        exactly as the loop does.
        """
        kwargs.setdefault("jit_compile", False)
        if isinstance(optimizer, str) and optimizer in optimizers.OPTIMIZERS:
            optimizer = optimizers.OPTIMIZERS[optimizer]()  # "adam": tfcvr's fused Adam, not Keras'
        super().compile(optimizer=optimizer, **kwargs)
        self.build_optimizers()

    def compile_from_config(self, config: dict) -> None:
        """Compiles a model loaded by `keras.models.load_model` as it was (every optimizer built)."""
        self.compile(**keras.saving.deserialize_keras_object(config))

    def fit(
        self, x: Any = None, y: Any = None, batch_size: int | None = None, epochs: int = 1, **kwargs: Any
    ) -> keras.callbacks.History:
        """Keras' `fit`, running every training stage of the method in order.

        A one-stage method trains as with any Keras model. A staged method
        (`training_stages`, e.g. UKD: its teacher's epochs, then `epochs` of
        the student) runs Keras' `fit` once per stage with that stage's step,
        as the command line's loop does, numbering epochs across the stages
        (callbacks see epochs 0..N-1 once); the returned History (also
        `model.history`) holds every epoch, the last stage's terms under their
        names and an earlier stage's as "<stage>/<term>" (NaN in the other
        stages' epochs). `x` must be iterable again for every stage (a
        dataset or arrays). Resuming a staged fit (`initial_epoch`,
        `BackupAndRestore`) is refused: the command line's loop checkpoints
        the stage.
        """
        strategy = self.distribute_strategy
        if isinstance(
            strategy, (tf.distribute.MultiWorkerMirroredStrategy, tf.distribute.experimental.ParameterServerStrategy)
        ):
            raise ValueError(
                f"Keras `fit` does not train under {type(strategy).__name__} (keras-team/keras#20585, #20329); "
                "train with trainer.loop.TrainingLoop, what `python -m trainer.task` runs on every worker."
            )
        if isinstance(x, tf.data.Dataset):
            kwargs.setdefault("shuffle", False)  # a dataset shuffles itself; Keras warns about its default
        stages = self.training_stages(epochs)
        if len(stages) == 1:
            return super().fit(x, y, batch_size=batch_size, epochs=epochs, **kwargs)
        resuming = kwargs.get("initial_epoch") or any(
            isinstance(c, keras.callbacks.BackupAndRestore) for c in kwargs.get("callbacks") or ()
        )
        if resuming or isinstance(x, Iterator):
            raise ValueError(
                f"{type(self).__name__} trains in stages {[s for s, _ in stages]}: "
                + (
                    "an iterator would be used up by the first stage; give a dataset or arrays."
                    if not resuming
                    else "`initial_epoch` / BackupAndRestore cannot say which stage to resume; train with the "
                    "command line's loop (trainer.loop.TrainingLoop), which checkpoints the stage."
                )
            )
        histories, offset = [], 0
        try:
            for stage, stage_epochs in stages:
                self._fit_stage = stage
                self.train_function = None  # traced again, for this stage's step
                self._initial_epoch = None
                history = super().fit(
                    x, y, batch_size=batch_size, initial_epoch=offset, epochs=offset + stage_epochs, **kwargs
                )
                histories.append((stage, history))
                offset += stage_epochs
        finally:
            self._fit_stage = None
            self.train_function = None
        self.history = _staged_history(self, histories)
        return self.history

    @property
    def fit_stage(self) -> str:
        """The stage Keras' `train_step` runs: the one `fit` is in, else the last (what a trained model continues)."""
        return getattr(self, "_fit_stage", None) or self.training_stages(1)[-1][0]

    def raw_feature_model(self) -> keras.Model:
        """This model behind the schema's transform: a Keras model taking raw feature values.

        Inputs, one per schema feature: string or int64 ids before hashing
        (a categorical_list: [batch, any length], padded with "" or -1) and
        float32 numerics, e.g. `tfcvr.data.feature_columns(rows, schema)` of
        dict rows (Keras' `predict` refuses a 2-D object array: pass a
        string list feature as `tf.constant(column)`, or call the model);
        `tfcvr.layers.SchemaTransform` hashes them as the training pipeline
        and the exported signatures do; the outputs are the served ctr, cvr
        and ctcvr, so `predict` in a notebook and TF Serving give the same
        numbers. It shares this model's
        weights (training this model trains it). Training keeps hashing in
        tf.data, where it is cheapest.
        """
        inputs = {f.name: _raw_input(f) for f in self.schema.features}
        outputs = self(SchemaTransform(self.schema)(inputs))
        served = {key: outputs[key] for key in SERVING_OUTPUTS}  # what the export serves
        return keras.Model(inputs, served, name=f"{self.name}_raw_features")

    def build_optimizers(self) -> None:
        """Creates the state of every optimizer the method trains with (run by `compile`).

        The default builds the compiled optimizer for every trainable
        variable; a method with more optimizers (`optimizer_copy`) creates and
        builds them here, each for the variables it updates.
        """
        self.optimizer.build(self.trainable_variables)

    def weights_by_path(self) -> dict:
        """{variable path: variable} of every model weight, for `tf.train.Checkpoint(weights=...)`.

        Keras 3 layers keep sub-layers in Keras' own list/dict wrappers, which
        TensorFlow's checkpoint graph does not follow, so `Checkpoint(model=m)`
        alone saves only the variables it reaches through the optimizer.
        Checkpoints name every variable by its unique Keras path instead.
        """
        # Dropout's random-generator state is named by a process-wide counter, so its path is not
        # stable across processes; it is not a model weight either.
        variables = [v for v in self.variables if not v.path.endswith("seed_generator_state")]
        weights = {variable.path: variable for variable in variables}
        if len(weights) != len(variables):
            raise ValueError(f"{self.name} has variables with the same path; checkpoints need unique paths.")
        return weights

    def optimizer_copy(self) -> keras.optimizers.Optimizer:
        """A fresh optimizer configured as the compiled one, for a method's second set of variables."""
        return self.optimizer.__class__.from_config(self.optimizer.get_config())

    def optimizers(self) -> list:
        """Every optimizer the method trains with: the compiled one, then those kept as attributes (copies)."""
        # Found among the attributes rather than kept in a list: a new tracked attribute would change the
        # checkpoints' object graph, and with it every existing checkpoint's keys.
        found = [self.optimizer]
        for value in vars(self).values():
            if isinstance(value, keras.optimizers.Optimizer) and not any(value is known for known in found):
                found.append(value)
        return found

    def training_stages(self, epochs: int) -> tuple:
        """((stage, epochs), ...) in training order, for `epochs` passes asked of the method.

        One stage, "train", by default. A staged method may add epochs of its
        own (UKD's teacher epochs come before the student's `epochs`).
        """
        return (("train", epochs),)

    def stage_steps(self) -> dict[str, Step]:
        """{stage: per-replica step, data -> {loss term: value}} for every stage of `training_stages`."""
        return {"train": self.objective_step}

    def stage_step(self, stage: str) -> Step:
        """The step of `stage`: the one dispatch from a stage to its step, for `fit` and the command line's loop."""
        steps = self.stage_steps()
        if stage not in steps:
            raise ValueError(f"{type(self).__name__} has no training stage {stage!r}; its stages are {sorted(steps)}.")
        return steps[stage]

    def train_step(self, data: Batch) -> dict[str, tf.Tensor]:
        """Keras' step (`fit`): the step of the stage `fit` is in (`fit_stage`)."""
        return self.stage_step(self.fit_stage)(data)

    def objective_step(self, data: Batch) -> dict[str, tf.Tensor]:
        """One update of every trainable variable by `objective`'s total, with the compiled optimizer."""
        features, labels = data
        with tf.GradientTape() as tape:
            terms = self.objective(labels, self(features, training=True))
        self.minimize(tape, terms["loss"])
        return terms

    def minimize(
        self,
        tape: tf.GradientTape,
        loss: tf.Tensor,
        variables: Sequence[keras.Variable] | None = None,
        optimizer: keras.optimizers.Optimizer | None = None,
    ) -> None:
        """Applies d(loss)/d(variables) with `optimizer` (default: all trainable, `self.optimizer`).

        Gradients are divided by the replicas in sync because the optimizer
        sums them across replicas, so each replica's loss is a per-replica mean.
        Variables the loss does not reach get no update (their gradient is None).
        """
        variables = self.trainable_variables if variables is None else variables
        optimizer = optimizer or self.optimizer
        gradients = tape.gradient(loss, variables)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        pairs = [
            (_scale(g, 1.0 / replicas) if replicas > 1 else g, v) for g, v in zip(gradients, variables) if g is not None
        ]
        optimizer.apply_gradients(pairs)

    def get_config(self) -> dict:
        return dict(self._config)

    @classmethod
    def from_config(cls, config: dict) -> Self:
        return cls(**config)


def _as_schema(schema: schema_lib.Schema | dict) -> schema_lib.Schema:
    return schema if isinstance(schema, schema_lib.Schema) else schema_lib.Schema.from_dict(schema)


def _checked_numeric_statistics(numeric_statistics: Mapping | None, schema: schema_lib.Schema) -> dict:
    """`numeric_statistics` as a dict, or a ValueError naming features the schema does not have as numeric."""
    numeric_statistics = dict(numeric_statistics or {})
    unknown = sorted(set(numeric_statistics) - {f.name for f in schema.numeric})
    if unknown:
        raise ValueError(f"`numeric_statistics` names unknown numeric feature(s) {unknown}.")
    return numeric_statistics


def _config(
    schema: schema_lib.Schema,
    architecture: Architecture,
    options: MethodOptions,
    numeric_statistics: dict,
    label_rates: dict,
) -> dict:
    """A model's `get_config()`: what `from_config` builds it again from (lists where JSON has them)."""
    return {
        "schema": schema.to_dict(),
        "backbone": architecture.backbone,
        "embedding_dim": architecture.embedding_dim,
        "hidden_units": list(architecture.hidden_units),
        "tower_units": list(architecture.tower_units),
        "num_experts": architecture.num_experts,
        "dropout": architecture.dropout,
        "interaction": architecture.interaction,
        "cross_layers": architecture.cross_layers,
        "cross_rank": architecture.cross_rank,
        "extraction_levels": architecture.extraction_levels,
        "task_experts": architecture.task_experts,
        "numeric_statistics": {k: list(v) for k, v in numeric_statistics.items()},
        "label_rates": label_rates,
        **options.as_dict(),
    }


def _raw_input(feature: schema_lib.Feature) -> keras.KerasTensor:
    """The keras.Input of a raw feature: its schema dtype, [batch], or [batch, any length] for a padded list."""
    return keras.Input(shape=(None,) if feature.is_list else (), dtype=feature.tf_dtype.name, name=feature.name)


def _staged_history(model: keras.Model, histories: list) -> keras.callbacks.History:
    """One History over the stages' epochs (module docstring of `CVRModel.fit`)."""
    total = sum(len(history.epoch) for _, history in histories)
    combined = keras.callbacks.History()
    combined.set_model(model)
    combined.epoch = list(range(total))
    combined.params = histories[-1][1].params
    offset = 0
    for index, (stage, history) in enumerate(histories):
        last = index == len(histories) - 1
        for key, values in history.history.items():
            values = values[-len(history.epoch) :]  # a History of the caller's own also holds earlier stages
            name = key if last else f"{stage}/{key}"
            column = combined.history.setdefault(name, [float("nan")] * total)
            column[offset : offset + len(values)] = values
        offset += len(history.epoch)
    return combined


def _scale(gradient, factor):
    """factor · gradient, also for the sparse (IndexedSlices) gradients of embedding lookups."""
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * factor, gradient.indices, gradient.dense_shape)
    return gradient * factor
