"""Expert-share schedule and curriculum sampler."""

import numpy as np
import pytest

from ast_robot.config import load_config
from ast_robot.train.curriculum import CurriculumSampler, expert_share, task_seed


def train_cfg(*overrides):
    return load_config(env="pick_place", overrides=list(overrides)).train


def test_linear_share_decays_to_end():
    cfg = train_cfg("train.expert_share_start=1.0", "train.expert_share_end=0.2", "train.expert_share_decay_iterations=4")
    assert [round(expert_share(cfg, i), 3) for i in range(6)] == [1.0, 0.8, 0.6, 0.4, 0.2, 0.2]


def test_exponential_share_reaches_zero():
    cfg = train_cfg("train.expert_share_decay=exponential", "train.expert_share_decay_iterations=3")
    shares = [expert_share(cfg, i) for i in range(5)]
    assert shares[0] == 1.0
    assert shares[1] > shares[2] > 0
    assert shares[3] == 0.0


def test_share_end_above_start_rejected():
    with pytest.raises(Exception, match="may only decay"):
        train_cfg("train.expert_share_start=0.2", "train.expert_share_end=0.5")


def test_task_seeds_distinct():
    seeds = {task_seed(0, it, i) for it in range(5) for i in range(20)}
    assert len(seeds) == 100


def fill(sampler, count=64):
    rng = np.random.default_rng(0)
    contexts = rng.uniform(0, 1, (count, 6)).astype(np.float32)
    scores = contexts[:, 0]  # high score where the first coordinate is high
    physical = contexts[:, 1]  # high feedback where the second coordinate is high
    sampler.remember(contexts, scores, physical)


def draw(seeds):
    """Contexts uniform in the unit cube, a deterministic function of each seed."""
    return np.stack([np.random.default_rng(int(seed)).uniform(0, 1, 6) for seed in seeds])


def test_sampler_draws_plainly_before_memory():
    sampler = CurriculumSampler(train_cfg(), seed=0, has_real_feedback=False)
    contexts, skipped = sampler.propose(4, iteration=0, draw=draw)
    assert len(contexts) == 4
    assert skipped == 0


def test_pregate_skips_low_predictions_up_to_cap():
    cfg = train_cfg("train.pregate_quantile=0.5", "train.pregate_max_skip=0.25", "train.pregate_warmup_iterations=0")
    sampler = CurriculumSampler(cfg, seed=0, has_real_feedback=False)
    fill(sampler)
    contexts, skipped = sampler.propose(16, iteration=1, draw=draw)
    assert skipped == 4
    assert len(contexts) == 12


def test_pregate_waits_for_warmup():
    cfg = train_cfg("train.pregate_warmup_iterations=3")
    sampler = CurriculumSampler(cfg, seed=0, has_real_feedback=False)
    fill(sampler)
    _contexts, skipped = sampler.propose(16, iteration=2, draw=draw)
    assert skipped == 0


def test_curriculum_bias_prefers_high_feedback():
    cfg = train_cfg("train.curriculum_strength=1.0", "train.pregate=false")
    biased = CurriculumSampler(cfg, seed=0, has_real_feedback=True)
    uniform = CurriculumSampler(cfg, seed=0, has_real_feedback=False)
    fill(biased)
    fill(uniform)
    biased_mean = np.mean([c[1] for c in biased.propose(200, iteration=5, draw=draw)[0]])
    uniform_mean = np.mean([c[1] for c in uniform.propose(200, iteration=5, draw=draw)[0]])
    assert biased_mean > uniform_mean + 0.05


def test_sampler_state_round_trip():
    cfg = train_cfg("train.pregate_warmup_iterations=0")
    sampler = CurriculumSampler(cfg, seed=3, has_real_feedback=True)
    fill(sampler)
    restored = CurriculumSampler(cfg, seed=99, has_real_feedback=True)
    restored.load_state_dict(sampler.state_dict())
    first, _ = sampler.propose(8, iteration=4, draw=draw)
    second, _ = restored.propose(8, iteration=4, draw=draw)
    np.testing.assert_array_equal(np.stack(first), np.stack(second))
