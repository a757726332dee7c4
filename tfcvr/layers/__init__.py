"""Keras layers: feature embedding, feature interaction (DCN-V2 cross, DLRM dot), MLP towers, shared-bottom, MMoE
and PLE backbones, method-specific blocks, and the schema's transform of raw feature values."""

from collections.abc import Sequence

from tfcvr.layers.causal_transfer import CausalTransfer
from tfcvr.layers.dropout import Dropout
from tfcvr.layers.feature_embedding import FeatureEmbedding
from tfcvr.layers.feature_interaction import INTERACTIONS, CrossNetwork, DotInteractionBottom, make_interaction
from tfcvr.layers.gradient_reversal import GradientReversal
from tfcvr.layers.intercept_calibration import InterceptCalibration
from tfcvr.layers.mlp import MLP
from tfcvr.layers.mmoe import MMoE
from tfcvr.layers.ple import PLE
from tfcvr.layers.schema_transform import SchemaTransform
from tfcvr.layers.shared_bottom import SharedBottom
from tfcvr.layers.variational_information import VariationalInformation

BACKBONES = {"shared_bottom": SharedBottom, "mmoe": MMoE, "ple": PLE}


def make_backbone(
    name: str,
    num_tasks: int,
    hidden_units: Sequence[int],
    dropout: float = 0.0,
    num_experts: int = 4,
    extraction_levels: int = 2,
    task_experts: int = 1,
    layer_name: str = "backbone",
) -> SharedBottom | MMoE | PLE:
    """The backbone `name` ("shared_bottom", "mmoe" or "ple") with `num_tasks` outputs.

    `hidden_units` are the widths of the shared MLP, or of each expert (MMoE,
    PLE); `num_experts` is MMoE's experts and PLE's shared experts per
    extraction layer; `extraction_levels` and `task_experts` (per task per
    layer) are PLE's. `layer_name` names the layer (a model with a second
    network, such as a teacher, gives it another name).
    """
    if name == "shared_bottom":
        return SharedBottom(num_tasks=num_tasks, units=hidden_units, dropout=dropout, name=layer_name)
    if name == "mmoe":
        return MMoE(
            num_tasks=num_tasks, num_experts=num_experts, expert_units=hidden_units, dropout=dropout, name=layer_name
        )
    if name == "ple":
        return PLE(
            num_tasks=num_tasks,
            num_levels=extraction_levels,
            task_experts=task_experts,
            shared_experts=num_experts,
            expert_units=hidden_units,
            dropout=dropout,
            name=layer_name,
        )
    raise ValueError(f"Unknown backbone {name!r}; expected one of {sorted(BACKBONES)}.")
