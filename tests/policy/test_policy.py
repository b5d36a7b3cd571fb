"""Transformer policy and proxy: shapes, padding, normalizer, loss, acting, save/load, golden output."""

from __future__ import annotations

import json
import logging
import warnings

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from ast_robot.config import ConfigError, PolicyConfig, load_config
from ast_robot.episode import ACTION_DIM, OBS_GROUPS
from ast_robot.errors import CheckpointError
from ast_robot.policy import ProxyPolicy, TransformerPolicy, autocast, select_device
from ast_robot.policy.attention import SparseAttention

from policy_golden import GOLDEN_PATH, golden_outputs

POLICIES = [TransformerPolicy, ProxyPolicy]


def _batch(batch=4, steps=8, *, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(batch, steps, width, generator=generator) for name, width in OBS_GROUPS.items()
    }


def _history(steps=8, *, seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.normal(size=(steps, width)).astype(np.float32) for name, width in OBS_GROUPS.items()}


def _policy(cls, **overrides):
    torch.manual_seed(0)
    return cls(PolicyConfig(**overrides))


@pytest.mark.parametrize("cls", POLICIES)
def test_forward_shapes(cls):
    policy = _policy(cls)
    output = policy(_batch())
    assert output.mean.shape == (4, ACTION_DIM)
    assert output.log_std.shape == (4, ACTION_DIM)
    assert output.features.shape[0] == 4
    assert output.valid.all()
    cfg = policy.cfg
    assert (output.log_std >= cfg.log_std_min).all()
    assert (output.log_std <= cfg.log_std_max).all()


@pytest.mark.parametrize("cls", POLICIES)
def test_float64_observations_accepted(cls):
    policy = _policy(cls)
    obs = {name: value.double() for name, value in _batch(2).items()}
    assert policy(obs).mean.dtype == torch.float32


@pytest.mark.parametrize("cls", POLICIES)
def test_padded_steps_do_not_leak(cls):
    policy = _policy(cls).eval()
    obs = _batch(2)
    pad_mask = torch.zeros(2, 8, dtype=torch.bool)
    pad_mask[:, :3] = True
    changed = {name: value.clone() for name, value in obs.items()}
    for value in changed.values():
        value[:, :3] = 100.0
    with torch.no_grad():
        expected = policy(obs, pad_mask)
        actual = policy(changed, pad_mask)
    assert torch.allclose(actual.mean, expected.mean, atol=1e-5, rtol=0)
    assert torch.allclose(actual.log_std, expected.log_std, atol=1e-5, rtol=0)


def test_shorter_history_equals_left_padding():
    policy = _policy(TransformerPolicy).eval()
    obs = _batch(2)
    short = {name: value[:, 3:] for name, value in obs.items()}
    pad_mask = torch.zeros(2, 8, dtype=torch.bool)
    pad_mask[:, :3] = True
    with torch.no_grad():
        padded = policy(obs, pad_mask)
        cut = policy(short)
    assert torch.allclose(cut.mean, padded.mean, atol=1e-5, rtol=0)


def test_proxy_reads_only_latest_valid_step():
    policy = _policy(ProxyPolicy).eval()
    obs = _batch(2)
    changed = {name: value.clone() for name, value in obs.items()}
    for value in changed.values():
        value[:, :-1] = 50.0
    with torch.no_grad():
        assert torch.equal(policy(obs).mean, policy(changed).mean)


@pytest.mark.parametrize("cls", POLICIES)
def test_fully_padded_sample_excluded_from_loss(cls):
    policy = _policy(cls).train()
    obs = _batch(3)
    target = torch.rand(3, ACTION_DIM) * 2 - 1
    pad_mask = torch.zeros(3, 8, dtype=torch.bool)
    pad_mask[2] = True

    output = policy(obs, pad_mask)
    assert not output.valid[2]
    assert torch.equal(output.mean[2], torch.zeros(ACTION_DIM))
    assert torch.equal(output.features[2], torch.zeros_like(output.features[2]))

    _, parts_with = policy.loss(obs, pad_mask, target)
    kept = {name: value[:2] for name, value in obs.items()}
    _, parts_without = policy.loss(kept, pad_mask[:2], target[:2])
    assert torch.allclose(parts_with["mse"], parts_without["mse"], atol=1e-6)
    assert torch.allclose(parts_with["nll"], parts_without["nll"], atol=1e-5)


@pytest.mark.parametrize("cls", POLICIES)
def test_all_padded_batch_has_finite_zero_loss(cls):
    policy = _policy(cls).train()
    pad_mask = torch.ones(2, 8, dtype=torch.bool)
    loss, parts = policy.loss(_batch(2), pad_mask, torch.full((2, ACTION_DIM), float("nan")))
    loss.backward()
    assert float(parts["mse"]) == 0.0
    assert float(parts["nll"]) == 0.0
    for name, param in policy.named_parameters():
        assert param.grad is None or torch.isfinite(param.grad).all(), name


def test_loss_parts_and_indexer_term():
    policy = _policy(TransformerPolicy).train()
    loss, parts = policy.loss(_batch(8), None, torch.zeros(8, ACTION_DIM))
    assert set(parts) == {"mse", "nll", "indexer", "total"}
    assert float(parts["indexer"]) > 0.0
    cfg = policy.cfg
    expected = parts["mse"] + cfg.nll_weight * parts["nll"] + cfg.indexer_loss_weight * parts["indexer"]
    assert torch.allclose(loss.detach(), expected)
    loss.backward()
    assert policy.blocks[0].attn.indexer.key.weight.grad.abs().sum() > 0


def test_training_reduces_loss():
    policy = _policy(TransformerPolicy).train()
    obs = _batch(32)
    target = torch.tanh(obs["proprio"][:, -1, :ACTION_DIM] + obs["goal"][:, -1, :1])
    policy.update_normalizer(obs)
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss, parts = policy.loss(obs, None, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = first if first is not None else float(parts["mse"])
    assert float(parts["mse"]) < 0.3 * first


@pytest.mark.parametrize("cls", POLICIES)
def test_step_stats(cls):
    policy = _policy(cls).eval()
    with torch.no_grad():
        output = policy(_batch(3))
    labels = output.mean + torch.tensor([3.0, 4.0, 0.0, 0.0])
    stats = policy.step_stats(output, labels)
    assert set(stats) == {"pred_error_norm", "hidden_norm", "action_std", "imitation_loss"}
    for value in stats.values():
        assert value.shape == (3,)
    assert torch.allclose(stats["pred_error_norm"], torch.full((3,), 5.0))
    assert torch.allclose(stats["imitation_loss"], torch.full((3,), 25.0 / 4))
    assert torch.allclose(stats["hidden_norm"], output.features.norm(dim=-1))
    unlabeled = policy.step_stats(output)
    assert torch.isnan(unlabeled["pred_error_norm"]).all()


def test_normalizer_matches_numpy():
    policy = _policy(TransformerPolicy)
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size=(n, 8)) for n in (5, 17, 40)]
    for chunk in chunks:
        policy.update_normalizer({name: rng.normal(size=(7, w)) if name != "proprio" else chunk
                                  for name, w in OBS_GROUPS.items()})  # fmt: skip
    data = np.concatenate(chunks)
    norm = policy.normalizer
    assert np.allclose(norm.mean_proprio.numpy(), data.mean(0))
    assert np.allclose(norm.var_proprio.numpy(), data.var(0))
    assert float(norm.count_proprio) == len(data)


def test_normalizer_skips_nan_rows_and_clips():
    policy = _policy(ProxyPolicy)
    batch = {name: np.ones((4, w)) for name, w in OBS_GROUPS.items()}
    batch["force"][0] = np.nan
    policy.update_normalizer(batch)
    assert float(policy.normalizer.count_force) == 3
    assert float(policy.normalizer.count_proprio) == 4
    normalized = policy.normalizer({name: torch.full((1, w), 1e6) for name, w in OBS_GROUPS.items()})
    assert float(normalized["proprio"].max()) == policy.cfg.obs_clip
    with_nan = policy.normalizer({name: torch.full((1, w), float("nan")) for name, w in OBS_GROUPS.items()})
    assert torch.equal(with_nan["goal"], torch.zeros(1, 3))


def test_normalizer_rejects_wrong_width():
    policy = _policy(ProxyPolicy)
    batch = {name: np.ones((4, w)) for name, w in OBS_GROUPS.items()}
    batch["goal"] = np.ones((4, 5))
    with pytest.raises(ValueError, match="'goal' has width 5, expected 3"):
        policy.update_normalizer(batch)


@pytest.mark.parametrize("cls", POLICIES)
def test_act_batch_one(cls):
    policy = _policy(cls).eval()
    action, std = policy.act(_history(8))
    assert action.shape == (ACTION_DIM,)
    assert action.dtype == np.float32
    assert std.shape == (ACTION_DIM,)
    assert std.dtype == np.float32
    assert (np.abs(action) <= 1.0).all()
    assert (std > 0).all()
    _, _, stats = policy.act(_history(8), return_stats=True)
    assert set(stats) == {"hidden_norm", "action_std"}


def test_act_pads_short_and_cuts_long_history():
    policy = _policy(TransformerPolicy).eval()
    long_history = _history(12)
    last_eight = {name: value[-8:] for name, value in long_history.items()}
    assert np.array_equal(policy.act(long_history)[0], policy.act(last_eight)[0])

    short = {name: value[-3:] for name, value in long_history.items()}
    obs = {name: torch.from_numpy(value[-8:])[None] for name, value in long_history.items()}
    pad_mask = torch.zeros(1, 8, dtype=torch.bool)
    pad_mask[0, :5] = True
    with torch.no_grad():
        expected = policy(obs, pad_mask).mean[0].clamp(-1, 1).numpy()
    assert np.allclose(policy.act(short)[0], expected, atol=1e-6)


def test_act_rejects_bad_history():
    policy = _policy(TransformerPolicy)
    history = _history(4)
    history["force"] = history["force"][:3]
    with pytest.raises(ValueError, match="different lengths"):
        policy.act(history)
    with pytest.raises(ValueError, match="empty"):
        policy.act({name: np.zeros((0, w)) for name, w in OBS_GROUPS.items()})
    with pytest.raises(KeyError, match="no group 'goal'"):
        policy.act({name: np.zeros((2, w)) for name, w in OBS_GROUPS.items() if name != "goal"})


def test_forward_rejects_long_history():
    policy = _policy(TransformerPolicy)
    with pytest.raises(ValueError, match="has 9 steps, expected 1 to 8"):
        policy(_batch(1, 9))


@pytest.mark.parametrize("cls", POLICIES)
def test_save_load_round_trip(cls, tmp_path):
    policy = _policy(cls)
    policy.update_normalizer({name: np.random.default_rng(1).normal(2, 3, (50, w)) for name, w in OBS_GROUPS.items()})
    policy.eval()
    path = tmp_path / "model.safetensors"
    json_path = policy.save(path)
    assert json_path == tmp_path / "model.json"

    loaded = cls.load(path)
    history = _history(8, seed=3)
    for a, b in zip(policy.act(history), loaded.act(history)):
        assert np.array_equal(a, b)
    assert loaded.cfg == policy.cfg
    for name, tensor in policy.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name


def test_load_without_json_uses_metadata(tmp_path):
    policy = _policy(TransformerPolicy, d_model=32, heads=2)
    path = tmp_path / "model.safetensors"
    policy.save(path).unlink()
    assert TransformerPolicy.load(path).cfg.d_model == 32


def test_cpu_load_of_model_saved_on_cuda(tmp_path, caplog):
    """The header records the saving device; rewrite it to a CUDA string as a CUDA run would."""
    policy = _policy(TransformerPolicy).eval()
    path = tmp_path / "model.safetensors"
    json_path = policy.save(path)
    header = json.loads(json_path.read_text())
    header["saved_on_device"] = "cuda:0"
    json_path.write_text(json.dumps(header))

    loaded = TransformerPolicy.load(path, map_location="cpu")
    assert loaded.device == torch.device("cpu")
    if not torch.cuda.is_available():
        with caplog.at_level(logging.WARNING):
            fallback = TransformerPolicy.load(path, map_location=None)
        assert fallback.device == torch.device("cpu")
        assert "not available here" in caplog.text
    history = _history(8)
    assert np.array_equal(policy.act(history)[0], loaded.act(history)[0])


def test_load_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        TransformerPolicy.load(tmp_path / "missing.safetensors")
    path = tmp_path / "proxy.safetensors"
    _policy(ProxyPolicy).save(path)
    with pytest.raises(CheckpointError, match="contains a 'proxy' policy"):
        TransformerPolicy.load(path)
    (tmp_path / "proxy.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="could not read the policy header"):
        ProxyPolicy.load(path)


def test_load_rejects_mismatched_tensors(tmp_path):
    path = tmp_path / "model.safetensors"
    json_path = _policy(TransformerPolicy).save(path)
    header = json.loads(json_path.read_text())
    header["config"]["d_model"] = 32
    header["config"]["heads"] = 2
    json_path.write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="do not fit the saved config"):
        TransformerPolicy.load(path)


@pytest.mark.parametrize("cls", POLICIES)
def test_every_tensor_follows_to(cls):
    policy = _policy(cls).to("meta")
    for name, tensor in list(policy.named_parameters()) + list(policy.named_buffers()):
        assert tensor.device.type == "meta", name


def test_golden_outputs():
    """Regenerate with `python tests/policy/policy_golden.py --write` after an intended change."""
    expected = json.loads(GOLDEN_PATH.read_text())
    actual = golden_outputs()
    for kind in expected:
        for key in expected[kind]:
            assert np.allclose(actual[kind][key], expected[kind][key], atol=1e-5, rtol=0), (kind, key)


def test_proxy_far_cheaper_than_transformer():
    """FLOP counts (not wall-clock): the proxy needs at least 50x fewer FLOPs per action."""
    flops = {}
    for cls in POLICIES:
        policy = _policy(cls).eval()
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            policy(_batch(1))
        flops[cls] = counter.get_total_flops()
    assert flops[TransformerPolicy] >= 50 * flops[ProxyPolicy], flops


def test_always_clamped_top_k_warns_once():
    with pytest.warns(UserWarning, match="always clamped") as record:
        _policy(TransformerPolicy, history=1)
    assert len([w for w in record if "always clamped" in str(w.message)]) == 1


def test_default_policy_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _policy(TransformerPolicy)


def test_default_policy_selects_sparsely():
    """With H = 8 steps each query step attends 3 local steps + 2 selected of 8, plus globals."""
    policy = _policy(TransformerPolicy).eval()
    with torch.no_grad():
        policy(_batch(1))
    attention: SparseAttention = policy.blocks[0].attn
    selection = attention.last_selection
    assert selection.num_blocks == 8
    assert selection.num_selected == 2
    assert not selection.block_allowed().all()


def test_config_rejects_bad_combinations():
    with pytest.raises(ConfigError, match="not divisible"):
        load_config(env="reach", overrides=["policy.d_model=30", "policy.heads=4"])
    with pytest.raises(ConfigError, match="log_std_min"):
        load_config(env="reach", overrides=["policy.log_std_min=2.0"])


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")


def test_autocast_is_noop_on_cpu():
    with autocast(torch.device("cpu")):
        out = torch.ones(2, 2) @ torch.ones(2, 2)
    assert out.dtype == torch.float32
