"""trainer.config: one typed configuration, the flags derived from it, and a run repeated from its file."""

import json

import pytest
from absl import app, flags

from trainer import config as config_lib


def _flag_values(sections, argv):
    """Fresh FlagValues with the sections' flags, parsed from argv."""
    values = flags.FlagValues()
    for section in sections:
        config_lib.define_flags(section, flag_values=values)
    values(["prog", *argv])
    return values


def test_every_flag_has_its_section_default_and_help():
    values = _flag_values([config_lib.ArchitectureConfig, config_lib.OptimizationConfig], [])
    assert values["hidden_units"].default == ["256", "128"] and values["embedding_dim"].default == 16
    assert values["epochs"].default == 1 and values["learning_rate"].default == 1e-3
    assert (
        values["optimizer"].help
        == "<adam|lazy_adam>: adam: dense Adam on the summed gradient, as the papers' PyTorch code (TensorFlow's "
        "fused kernel); lazy_adam: Adam that updates only the embedding rows a batch looks up."
    )
    section = config_lib.section_from_flags(config_lib.ArchitectureConfig, values)
    assert section == config_lib.ArchitectureConfig()  # one default per setting, the dataclass's
    assert section.hidden_units == [256, 128]  # typed, not the flag's strings


def test_flags_parse_into_typed_sections_and_bounds_are_checked():
    values = _flag_values(
        [config_lib.ArchitectureConfig, config_lib.OptimizationConfig],
        ["--hidden_units=32,16", "--backbone=mmoe", "--epochs=3", "--learning_rate=0.01", "--interaction=cross"],
    )
    architecture = config_lib.section_from_flags(config_lib.ArchitectureConfig, values)
    assert architecture.hidden_units == [32, 16] and architecture.backbone == "mmoe"
    assert architecture.model_kwargs() == {
        "backbone": "mmoe",
        "embedding_dim": 16,
        "hidden_units": [32, 16],
        "tower_units": [64, 32],
        "num_experts": 4,
        "dropout": 0.0,
        "interaction": "cross",
        "cross_layers": 2,
        "cross_rank": None,
        "extraction_levels": 2,
        "task_experts": 1,
    }
    with pytest.raises(flags.IllegalFlagValueError, match="cross_rank"):
        _flag_values([config_lib.ArchitectureConfig], ["--cross_rank=0"])
    assert "backbone" not in config_lib.ArchitectureConfig().model_kwargs()  # the method's own default then
    with pytest.raises(flags.IllegalFlagValueError, match="batch_size"):
        _flag_values([config_lib.OptimizationConfig], ["--batch_size=0"])
    with pytest.raises(app.UsageError, match=r"--hidden_units takes comma-separated integers. Received: '32,x'"):
        config_lib.section_from_flags(
            config_lib.ArchitectureConfig, _flag_values([config_lib.ArchitectureConfig], ["--hidden_units=32,x"])
        )


def test_sections_check_types_choices_and_bounds_in_python_too():
    with pytest.raises(ValueError, match="OptimizationConfig.epochs: must be at least 1, got 0"):
        config_lib.OptimizationConfig(epochs=0)
    with pytest.raises(
        ValueError, match=r"ArchitectureConfig.backbone: expected one of \['shared_bottom', 'mmoe', 'ple'\]"
    ):
        config_lib.ArchitectureConfig(backbone="resnet")
    with pytest.raises(ValueError, match=r"ArchitectureConfig.hidden_units: expected a list of int, got \['a'\]"):
        config_lib.ArchitectureConfig(hidden_units=["a"])
    with pytest.raises(ValueError, match="OutputConfig.export: expected bool, got 'yes'"):
        config_lib.OutputConfig(export="yes")
    assert config_lib.OptimizationConfig(learning_rate=1).learning_rate == 1.0  # an int is a valid float


def test_task_config_round_trips_and_names_unknown_settings():
    config = config_lib.TaskConfig(
        method=config_lib.MethodConfig(model="ukd", model_params=["distillation_loss_weight=1"]),
        architecture=config_lib.ArchitectureConfig(hidden_units=[8]),
    )
    assert config_lib.TaskConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match=r"run.json: unknown section\(s\) \['trainer'\]"):
        config_lib.TaskConfig.from_dict({"trainer": {}}, "run.json")
    with pytest.raises(ValueError, match=r"run.json: data: unknown setting\(s\) \['sim_rowz'\]"):
        config_lib.TaskConfig.from_dict({"data": {"sim_rowz": 5}}, "run.json")


def test_a_saved_configuration_is_repeated_and_given_flags_replace_its_settings(tmp_path):
    saved = config_lib.TaskConfig(
        method=config_lib.MethodConfig(model="dcmt"), optimization=config_lib.OptimizationConfig(epochs=4, seed=7)
    )
    path = str(tmp_path / "run_config.json")
    config_lib.write_config(saved, path)
    sections = [f.type for f in config_lib.dataclasses.fields(config_lib.TaskConfig)]
    values = _flag_values(sections, ["--epochs=2", "--model_dir=/elsewhere"])
    repeated = config_lib.config_from_flags(config_lib.TaskConfig, values, config_path=path)
    assert repeated.method.model == "dcmt" and repeated.optimization.seed == 7  # from the file
    assert repeated.optimization.epochs == 2 and repeated.output.model_dir == "/elsewhere"  # given flags win
    assert config_lib.config_from_flags(config_lib.TaskConfig, values).method.model == "esmm"  # no file: defaults
    with pytest.raises(app.UsageError, match="--config=.*missing.json: no such file"):
        config_lib.load_config(config_lib.TaskConfig, str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text(json.dumps({"optimization": {"epochs": "two"}}))
    with pytest.raises(app.UsageError, match=r"bad.json: optimization: OptimizationConfig.epochs: expected int"):
        config_lib.load_config(config_lib.TaskConfig, str(tmp_path / "bad.json"))
