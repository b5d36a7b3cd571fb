"""Vision training end to end on a tiny generated dataset: gating, compute counts, run directory, resume."""

import json
import warnings

import numpy as np
import pytest
import torch

from ast_robot.cli import main
from ast_robot.config import load_config
from ast_robot.errors import CheckpointError
from ast_robot.vision.data import load_cifar10
from ast_robot.vision.rundir import RunDirectory
from ast_robot.vision.synthetic import make_synthetic_cifar10
from ast_robot.vision.trainer import VisionTrainer, train_vision

TINY = [
    "vision.embed_dim=16", "vision.depth=1", "vision.heads=2", "vision.proxy_width=4",
    "vision.batch_size=100", "vision.eval_batch_size=100", "vision.epochs=1",
]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_synthetic_cifar10(tmp_path_factory.mktemp("cifar"), train_count=1000, test_count=40, seed=0)


@pytest.fixture(scope="module")
def data(data_dir):
    return load_cifar10(data_dir)


def _config(*extra):
    return load_config(overrides=[*TINY, *extra])


class _VitCounter:
    """Count images through the ViT's training forward and backward passes with module hooks."""

    def __init__(self, vit):
        self.forward = 0
        self.backward = 0
        vit.register_forward_pre_hook(self._on_forward)
        vit.register_full_backward_hook(self._on_backward)

    def _on_forward(self, module, args):
        if module.training and torch.is_grad_enabled():
            self.forward += args[0].shape[0]

    def _on_backward(self, module, grad_input, grad_output):
        self.backward += grad_output[0].shape[0]


@pytest.mark.parametrize("mode", ["on", "random"])
def test_gate_skips_vit_compute(data, mode):
    # 1000 images at a 10% target rate; controller updates every 20 decisions. Class percentiles
    # are uniform on [0, 1], so a threshold of 0.9 admits the target share from the first image.
    # From the default 0.5 the approach alone admits about 17% of so short an epoch.
    config = _config(
        "vision.train_subset=1000", "vision.gate_target_rate=0.1", "gate.update_every=20",
        "gate.initial_threshold=0.9",
    )
    trainer = VisionTrainer(config, data, device=CPU, gate_mode=mode)
    counter = _VitCounter(trainer.vit)
    with warnings.catch_warnings():
        # The image batch needs no gradient, which the full backward hook warns about.
        warnings.simplefilter("ignore", UserWarning)
        result = trainer.train_epoch()

    seen = trainer.counters.samples_seen
    assert seen == 1000
    assert counter.forward == counter.backward
    assert counter.forward == trainer.counters.vit_forward
    assert counter.forward == trainer.gate.stats().opened
    assert abs(counter.forward / seen - 0.1) <= 0.03
    assert result.metrics["gate/activation_rate"] == pytest.approx(counter.forward / seen)
    # The proxy learned from exactly the images the ViT skipped.
    assert trainer.counters.proxy_backward == seen - counter.forward


def test_gate_off_sends_every_image_through_vit(data):
    trainer = VisionTrainer(_config("vision.train_subset=300"), data, device=CPU, gate_mode="off")
    counter = _VitCounter(trainer.vit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        trainer.train_epoch()
    assert counter.forward == 300
    assert trainer.counters.proxy_forward == 0


@pytest.mark.parametrize("mode", ["on", "off", "random"])
def test_smoke_run_writes_run_directory(data, tmp_path, mode):
    config = _config("vision.train_subset=300", "vision.epochs=2")
    summary = train_vision(config, data, run_dir=tmp_path / "run", device=CPU, gate_mode=mode)

    run = RunDirectory(tmp_path / "run")
    rows = run.read_metrics()
    assert [row["epoch"] for row in rows] == [1, 2]
    for row in rows:
        assert 0.0 <= row["eval/accuracy"] <= 1.0
        assert np.isfinite(row["train/vit_loss"])
        assert row["compute/samples_seen"] == 300
    expected_rate = {"off": 1.0, "on": 0.5, "random": 0.5}[mode]
    rate = sum(row["compute/vit_forward"] for row in rows) / 600
    assert abs(rate - expected_rate) <= 0.15
    assert run.checkpoint_path("last").exists()
    assert run.checkpoint_path("best").exists()
    assert run.config_path.exists()
    assert json.loads(run.summary_path.read_text())["epochs"] == 2
    assert summary["gate_mode"] == mode


def test_resume_continues_exactly(data, tmp_path):
    config = _config("vision.train_subset=200", "vision.epochs=2")
    straight = VisionTrainer(config, data, device=CPU, gate_mode="on")
    straight.train_epoch()
    expected = straight.train_epoch().metrics

    first = VisionTrainer(config, data, device=CPU, gate_mode="on")
    first.train_epoch()
    run = RunDirectory(tmp_path)
    run.save_checkpoint("last", first.state_dict())
    resumed = VisionTrainer(config, data, device=CPU, gate_mode="on")
    resumed.load_state_dict(run.load_checkpoint("last"))
    got = resumed.train_epoch().metrics

    for key in ("train/vit_loss", "train/proxy_loss", "eval/accuracy", "eval/loss", "gate/threshold",
                "compute/vit_forward"):
        assert got[key] == pytest.approx(expected[key], rel=1e-5), key


def test_resume_rejects_changed_architecture(data, tmp_path):
    trainer = VisionTrainer(_config("vision.train_subset=100"), data, device=CPU, gate_mode="on")
    run = RunDirectory(tmp_path)
    run.save_checkpoint("last", trainer.state_dict())
    wider = VisionTrainer(_config("vision.train_subset=100", "vision.embed_dim=32"), data, device=CPU)
    with pytest.raises(CheckpointError, match=r"embed_dim \(16 -> 32\)"):
        wider.load_state_dict(run.load_checkpoint("last"))


def test_resume_rejects_other_gate_mode(data, tmp_path):
    trainer = VisionTrainer(_config("vision.train_subset=100"), data, device=CPU, gate_mode="on")
    run = RunDirectory(tmp_path)
    run.save_checkpoint("last", trainer.state_dict())
    other = VisionTrainer(_config("vision.train_subset=100"), data, device=CPU, gate_mode="random")
    with pytest.raises(CheckpointError, match=r"--gate on, not --gate random"):
        other.load_state_dict(run.load_checkpoint("last"))


def test_importance_weighting_with_temperature(data):
    config = _config(
        "vision.train_subset=200", "vision.importance_weighting=true", "gate.temperature=0.1",
        "gate.probe_rate=0.05",
    )
    trainer = VisionTrainer(config, data, device=CPU, gate_mode="on")
    metrics = trainer.train_epoch().metrics
    assert np.isfinite(metrics["train/vit_loss"])
    weights = trainer._importance_weights(np.array([1.0, 0.5, 0.01]))
    assert weights.max() / weights.min() == pytest.approx(config.vision.max_importance_weight)
    assert float(weights.mean()) == pytest.approx(1.0)


def test_cli_vision_runs_and_resumes(data_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    settings = [arg for item in [*TINY, "vision.train_subset=200"] for arg in ("--set", item)]
    code = main(["vision", "--data-dir", str(data_dir), "--gate", "random", "--run-dir", str(run_dir), *settings])
    assert code == 0
    assert "validation accuracy" in capsys.readouterr().out

    code = main(["vision", "--data-dir", str(data_dir), "--epochs", "2", "--resume", str(run_dir)])
    assert code == 0
    assert "epochs: 2, gate random" in capsys.readouterr().out
    assert [row["epoch"] for row in RunDirectory(run_dir).read_metrics()] == [1, 2]


def test_cli_vision_existing_run_rejected(data_dir, tmp_path, capsys):
    run_dir = tmp_path / "run"
    settings = [arg for item in [*TINY, "vision.train_subset=100"] for arg in ("--set", item)]
    assert main(["vision", "--data-dir", str(data_dir), "--run-dir", str(run_dir), *settings]) == 0
    assert main(["vision", "--data-dir", str(data_dir), "--run-dir", str(run_dir), *settings]) == 2
    assert "already contains a run; pass --resume" in capsys.readouterr().err


def test_cli_vision_bad_data_dir_one_line(tmp_path, capsys):
    (tmp_path / "data_batch_1").write_bytes(b"")
    assert main(["vision", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "data_batch_1: the file is empty" in err
    assert len(err.strip().splitlines()) == 1


def test_class_balance_equalizes_admission(data):
    trainer = VisionTrainer(_config("vision.train_subset=100"), data, device=CPU, gate_mode="on")
    labels = np.repeat([0, 1], 50)
    # Class 0 scores all low, class 1 all high: a raw threshold at 0.5 would admit class 1 only.
    scores = np.concatenate([np.linspace(0.0, 0.1, 50), np.linspace(0.9, 1.0, 50)])
    balanced = trainer._class_percentiles(scores, labels)
    assert (balanced[:50] > 0.5).sum() == 25
    assert (balanced[50:] > 0.5).sum() == 25
    # Order within a class is kept.
    assert np.all(np.diff(balanced[:50]) > 0)


def test_cli_vision_rejects_non_run_folder(data_dir, tmp_path, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "config.yaml").write_text("keep: 1\n")
    (folder / "summary.json").write_text('{"keep": 1}\n')
    settings = [arg for item in [*TINY, "vision.train_subset=100"] for arg in ("--set", item)]

    assert main(["vision", "--data-dir", str(data_dir), "--run-dir", str(folder), *settings]) == 2

    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"run directory {folder} is not empty" in err
    assert "--run-dir" in err
    assert "--resume" in err
    assert (folder / "config.yaml").read_text() == "keep: 1\n"
    assert (folder / "summary.json").read_text() == '{"keep": 1}\n'
    assert sorted(path.name for path in folder.iterdir()) == ["config.yaml", "summary.json"]


def test_train_vision_accepts_empty_folder(data, tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    train_vision(_config("vision.train_subset=100"), data, run_dir=folder, device=CPU)
    assert RunDirectory(folder).checkpoint_path("last").exists()


def test_cli_vision_zero_epochs_names_option(tmp_path, capsys):
    assert main(["vision", "--data-dir", str(tmp_path), "--run-dir", str(tmp_path / "run"), "--epochs", "0"]) == 2
    err = capsys.readouterr().err
    assert "--epochs 0" in err
    assert "--set" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("hide", [False, True])
def test_cli_vision_no_progress_hides_bar(data_dir, tmp_path, capsys, hide):
    settings = [arg for item in [*TINY, "vision.train_subset=100"] for arg in ("--set", item)]
    flags = ["--no-progress"] if hide else []
    assert main(["vision", "--data-dir", str(data_dir), "--run-dir", str(tmp_path / "run"), *settings, *flags]) == 0
    # tqdm draws the bar on stderr with the description "epoch 1/1".
    assert ("epoch 1/1:" in capsys.readouterr().err) is not hide


def test_checkpoint_stores_vision_kind(tmp_path):
    run = RunDirectory(tmp_path)
    run.save_checkpoint("last", {"epoch": 1})
    stored = torch.load(run.checkpoint_path("last"), weights_only=True)
    assert stored["kind"] == "vision"
    assert run.load_checkpoint("last")["epoch"] == 1


def test_checkpoint_without_kind_still_loads(tmp_path):
    run = RunDirectory(tmp_path)
    run.checkpoint_path("last").parent.mkdir()
    torch.save({"version": 1, "epoch": 3}, run.checkpoint_path("last"))
    assert run.load_checkpoint("last")["epoch"] == 3


def test_resume_rejects_robot_checkpoint(tmp_path):
    from ast_robot.train.checkpoint import save_checkpoint

    run = RunDirectory(tmp_path)
    save_checkpoint({"iteration": 2}, run.checkpoint_path("last"))
    with pytest.raises(CheckpointError, match="not a vision checkpoint"):
        run.load_checkpoint("last")
