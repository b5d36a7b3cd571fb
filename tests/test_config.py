import dataclasses

import pytest
import yaml

from ast_robot.config import (
    TASKS,
    Config,
    all_keys,
    config_dir,
    config_from_dict,
    dump_yaml,
    load_config,
    resolve_config_path,
)
from ast_robot.errors import ConfigError


@pytest.mark.parametrize("task", TASKS)
def test_task_file_loads(task):
    config = load_config(env=task)
    assert config.env.task == task


def _leaf_keys(data, prefix=""):
    keys = set()
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value and dotted in _section_keys():
            keys |= _leaf_keys(value, dotted)
        else:
            keys.add(dotted)
    return keys


def _section_keys():
    sections = set()
    for key in all_keys():
        parts = key.split(".")
        for i in range(1, len(parts)):
            sections.add(".".join(parts[:i]))
    return sections


@pytest.mark.parametrize("task", TASKS)
def test_task_file_lists_every_setting(task):
    data = yaml.safe_load((config_dir() / f"{task}.yaml").read_text())
    written = _leaf_keys(data)
    expected = {k for k in all_keys() if k not in _section_keys()}
    assert sorted(expected - written) == []
    assert sorted(written - expected) == []


def test_override_sets_value():
    config = load_config(env="pick_place", overrides=["gate.target_rate=0.1", "train.seed=7"])
    assert config.gate.target_rate == 0.1
    assert config.train.seed == 7


def test_override_parses_yaml_scalars():
    config = load_config(env="pick_place", overrides=["randomization.enabled=false", "env.timestep_s=1e-3"])
    assert config.randomization.enabled is False
    assert config.env.timestep_s == 0.001


def test_override_on_off_words_stay_words():
    config = load_config(env="pick_place", overrides=["gate.mode=off"])
    assert config.gate.mode == "off"


def test_later_override_wins():
    config = load_config(env="reach", overrides=["train.seed=1", "train.seed=2"])
    assert config.train.seed == 2


def test_unknown_override_key_suggests_closest():
    with pytest.raises(ConfigError, match=r"--set: unknown key 'gate\.target_rat'.*did you mean 'gate\.target_rate'"):
        load_config(env="pick_place", overrides=["gate.target_rat=0.1"])


def test_unknown_deep_key_is_named_whole():
    with pytest.raises(ConfigError, match=r"unknown key 'no\.such\.key'.*did you mean"):
        load_config(env="pick_place", overrides=["no.such.key=1"])


def test_override_below_a_leaf_rejected():
    with pytest.raises(ConfigError, match=r"'gate\.target_rate\.x' goes below 'gate\.target_rate'"):
        load_config(env="pick_place", overrides=["gate.target_rate.x=1"])


def test_override_without_equals_rejected():
    with pytest.raises(ConfigError, match="expected the form section.key=value"):
        load_config(env="pick_place", overrides=["gate.target_rate"])


def test_override_invalid_yaml_rejected():
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(env="pick_place", overrides=["train.seed=[1"])


def test_unknown_key_in_file_names_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("gate:\n  targt_rate: 0.1\n")
    with pytest.raises(ConfigError, match=rf"{path}: unknown key 'gate\.targt_rate'.*'gate\.target_rate'"):
        load_config(path)


def test_unknown_section_in_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("gat:\n  target_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'gat'.*did you mean 'gate'"):
        load_config(path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.seed=abc", r"train\.seed: invalid value 'abc'; expected an integer"),
        ("train.seed=1.5", r"train\.seed: invalid value 1\.5; expected an integer"),
        ("randomization.enabled=3", r"randomization\.enabled: invalid value 3; expected true or false"),
        ("env.control_hz=fast", r"env\.control_hz: invalid value 'fast'; expected a number"),
        ("env.control_hz=.nan", r"env\.control_hz: invalid value nan; expected a finite number"),
        ("env.task=stack", r"env\.task: invalid value 'stack'; expected one of 'pick_place', 'reach', 'push'"),
        ("logs.robot=5", r"logs\.robot: invalid value 5; expected a string"),
        ("env=3", r"env: invalid value 3; expected a mapping"),
    ],
)
def test_wrong_type_rejected(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(env="pick_place", overrides=[override])


@pytest.mark.parametrize(
    ("override", "allowed"),
    [
        ("gate.target_rate=0", r"\(0, 1\]"),
        ("gate.target_rate=1.01", r"\(0, 1\]"),
        ("train.iterations=0", ">= 1"),
        ("env.max_ee_speed_m_s=-0.1", r"\(0, 5\] m/s"),
        ("train.seed=-1", ">= 0"),
    ],
)
def test_out_of_range_rejected(override, allowed):
    with pytest.raises(ConfigError, match=rf"--set: .*invalid value .*expected a value .*{allowed}"):
        load_config(env="pick_place", overrides=[override])


def test_bad_value_in_file_names_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("gate:\n  target_rate: 2.0\n")
    with pytest.raises(ConfigError, match=rf"{path}: gate\.target_rate: invalid value 2\.0"):
        load_config(path)


def test_cross_field_check_names_both_values():
    with pytest.raises(ConfigError, match=r"env: control_hz=30\.0 and timestep_s=0\.002"):
        load_config(env="pick_place", overrides=["env.control_hz=30"])


def test_file_with_list_top_level_rejected(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path)


def test_invalid_yaml_file_rejected(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("gate: [\n")
    with pytest.raises(ConfigError, match=rf"{path}: invalid YAML"):
        load_config(path)


def test_missing_file_rejected(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_unknown_task_suggests_closest():
    with pytest.raises(ConfigError, match="did you mean 'pick_place'"):
        load_config(env="pick_plac")


def test_empty_file_gives_defaults(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(path) == Config()


def test_partial_file_keeps_other_defaults(tmp_path):
    path = tmp_path / "partial.yaml"
    path.write_text("gate:\n  target_rate: 0.5\n")
    config = load_config(path)
    assert config.gate.target_rate == 0.5
    assert config.gate.mode == Config().gate.mode
    assert config.env == Config().env


@pytest.mark.parametrize("task", TASKS)
def test_yaml_round_trip(task, tmp_path):
    config = load_config(env=task, overrides=["gate.target_rate=0.1", "train.seed=3"])
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_yaml(config))
    assert load_config(path) == config


def test_round_trip_without_comments(tmp_path):
    config = load_config(env="push")
    path = tmp_path / "plain.yaml"
    path.write_text(dump_yaml(config, comments=False))
    assert "#" not in path.read_text()
    assert load_config(path) == config


def test_dump_has_units_in_comments():
    text = dump_yaml(Config())
    assert "control_hz: 20.0  # control rate [Hz]" in text


def test_config_from_dict_matches_dataclass():
    config = config_from_dict(dataclasses.asdict(Config()))
    assert config == Config()


def test_resolve_packaged_path_with_configs_prefix():
    path = resolve_config_path("configs/pick_place.yaml")
    assert path.name == "pick_place.yaml"
    assert path.is_file()


@pytest.mark.parametrize("override", ["env.control_hz=.inf", "env.max_ee_speed_m_s=-.inf"])
def test_infinite_number_rejected(override):
    with pytest.raises(ConfigError, match="expected a finite number"):
        load_config(env="pick_place", overrides=[override])


def test_huge_step_limit_rejected():
    with pytest.raises(ConfigError, match=r"env\.max_steps: invalid value 99999999999999999999"):
        load_config(env="pick_place", overrides=["env.max_steps=99999999999999999999"])


def test_duplicate_key_in_file_rejected(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("gate:\n  target_rate: 0.1\n  target_rate: 0.2\n")
    with pytest.raises(ConfigError, match=r"the key 'target_rate' appears twice \(first on line 2\)"):
        load_config(path)


def test_partial_file_gets_its_task_defaults(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("env:\n  task: reach\ntrain:\n  seed: 4\n")
    config = load_config(path)
    assert config.env.max_steps == load_config(env="reach").env.max_steps
    assert config.train.seed == 4


def test_cross_field_error_names_override_source():
    with pytest.raises(ConfigError, match=r"pick_place\.yaml and --set: env: control_hz=30\.0"):
        load_config(env="pick_place", overrides=["env.control_hz=30"])


def test_unknown_section_suggests_only_sections(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("zzz:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'zzz'.*Valid sections: env, ") as error:
        load_config(path)
    assert "vision.lr" not in str(error.value)
