"""Replay buffer windows, padding, ring overwrite and state round trip."""

import numpy as np
import pytest

from ast_robot.episode import OBS_GROUPS, Episode
from ast_robot.train.replay import ReplayBuffer


def make_episode(length: int, offset: float = 0.0, labelled: bool = True) -> Episode:
    steps = np.arange(length, dtype=np.float32)[:, None] + offset
    obs = {name: np.repeat(steps, width, axis=1) for name, width in OBS_GROUPS.items()}
    labels = np.repeat(steps, 4, axis=1) if labelled else None
    return Episode(obs=obs, actions=np.zeros((length, 4)), timestamps=np.arange(length) * 0.05, action_labels=labels)


def test_window_pads_before_episode_start():
    buffer = ReplayBuffer(capacity=100, history=4)
    buffer.add(make_episode(5))
    batch = buffer.gather(np.array([0, 2, 4]))
    assert batch["pad_mask"].tolist() == [
        [True, True, True, False],
        [True, False, False, False],
        [False, False, False, False],
    ]
    assert batch["obs/goal"][1, :, 0].tolist() == [0.0, 0.0, 1.0, 2.0]
    assert batch["labels"][:, 0].tolist() == [0.0, 2.0, 4.0]


def test_window_never_crosses_episodes():
    buffer = ReplayBuffer(capacity=100, history=3)
    buffer.add(make_episode(4, offset=0.0))
    buffer.add(make_episode(4, offset=100.0))
    batch = buffer.gather(np.array([4]))  # first step of the second episode
    assert batch["pad_mask"][0].tolist() == [True, True, False]
    assert batch["obs/proprio"][0, -1, 0] == 100.0


def test_ring_overwrite_masks_lost_steps():
    buffer = ReplayBuffer(capacity=6, history=4)
    buffer.add(make_episode(4, offset=0.0))
    buffer.add(make_episode(4, offset=10.0))  # positions 4, 5, 0, 1
    assert len(buffer) == 6
    assert buffer.steps_added == 8
    batch = buffer.gather(np.array([1]))  # last step (13) of the second episode
    assert batch["obs/proprio"][0, :, 0].tolist() == [10.0, 11.0, 12.0, 13.0]
    batch = buffer.gather(np.array([3]))  # step 3 of the first episode; steps 0, 1 overwritten
    assert batch["pad_mask"][0].tolist() == [True, True, False, False]


def test_unlabelled_episode_not_added():
    buffer = ReplayBuffer(capacity=10, history=2)
    assert buffer.add(make_episode(5, labelled=False)) == 0
    assert len(buffer) == 0


def test_repeats_add_copies():
    buffer = ReplayBuffer(capacity=100, history=2)
    assert buffer.add(make_episode(5), repeats=3) == 15


def test_sample_from_empty_buffer_rejected():
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(capacity=10, history=2).sample(4, np.random.default_rng(0))


def test_state_round_trip_samples_equal():
    buffer = ReplayBuffer(capacity=50, history=3)
    for i in range(4):
        buffer.add(make_episode(7, offset=10.0 * i))
    restored = ReplayBuffer(capacity=50, history=3)
    restored.load_state_dict(buffer.state_dict())
    first = buffer.sample(16, np.random.default_rng(1))
    second = restored.sample(16, np.random.default_rng(1))
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert restored.steps_added == buffer.steps_added


def test_label_mask_limits_targets_keeps_history():
    buffer = ReplayBuffer(capacity=100, history=3)
    episode = make_episode(6)
    episode.info["label_mask"] = [False, False, False, True, True, False]
    assert buffer.add(episode) == 2
    assert len(buffer) == 6
    batch = buffer.sample(50, np.random.default_rng(0))
    assert set(batch["labels"][:, 0].tolist()) == {3.0, 4.0}
    assert not batch["pad_mask"].any()  # the history before the corrected steps is kept
