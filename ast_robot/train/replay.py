"""Replay buffers of labelled control steps, sampled as observation-history windows.

A buffer keeps the last `capacity` steps of the episodes added to it, in a ring. A sample is one
target step (a step with a usable label) together with the H - 1 steps before it in the same
episode, the policy's history window. Steps before the episode start, or already overwritten,
are padded and masked.
"""

from __future__ import annotations

import numpy as np

from ast_robot.episode import ACTION_DIM, OBS_GROUPS, Episode

OBS_WIDTH = sum(OBS_GROUPS.values())
_GROUP_SLICES: dict[str, slice] = {}
_start = 0
for _name, _width in OBS_GROUPS.items():
    _GROUP_SLICES[_name] = slice(_start, _start + _width)
    _start += _width


class ReplayBuffer:
    """A ring buffer of labelled control steps.

    Args:
        capacity: Maximum number of steps kept; the oldest are overwritten first.
        history: Window length H of a sample, in control steps.
    """

    def __init__(self, capacity: int, history: int):
        self.capacity = int(capacity)
        self.history = int(history)
        self.obs = np.zeros((self.capacity, OBS_WIDTH), np.float32)
        self.labels = np.zeros((self.capacity, ACTION_DIM), np.float32)
        self.episode_uid = np.full(self.capacity, -1, np.int64)
        self.step_index = np.zeros(self.capacity, np.int32)
        self.is_target = np.zeros(self.capacity, bool)
        self.size = 0
        self.cursor = 0
        self.next_uid = 0
        self.steps_added = 0

    def __len__(self) -> int:
        return self.size

    def add(self, episode: Episode, *, repeats: int = 1) -> int:
        """Add `episode` `repeats` times; return the number of sample targets added.

        Every step with a finite observation is stored, so windows keep their history. Sample
        targets are the labelled steps, restricted to ``info["label_mask"]`` (bool per step)
        when the episode has one, as human-corrected real episodes do. An episode without
        ``action_labels`` adds nothing.
        """
        if episode.action_labels is None or repeats <= 0:
            return 0
        obs = episode.stacked_obs()  # (T, OBS_WIDTH)
        valid = np.isfinite(obs).all(axis=1)
        for mask in episode.missing.values():
            valid &= ~mask
        target = valid & np.isfinite(episode.action_labels).all(axis=1)
        label_mask = episode.info.get("label_mask")
        if label_mask is not None:
            target &= np.asarray(label_mask, bool)
        if not target.any():
            return 0
        steps = np.flatnonzero(valid)
        labels = np.nan_to_num(episode.action_labels[steps])
        added = 0
        for _ in range(repeats):
            added += self._write(obs[steps], labels, steps, target[steps])
        return added

    def _write(self, obs: np.ndarray, labels: np.ndarray, steps: np.ndarray, target: np.ndarray) -> int:
        count = len(obs)
        if count > self.capacity:  # keep the newest steps of an episode longer than the buffer
            obs, labels = obs[-self.capacity:], labels[-self.capacity:]
            steps, target = steps[-self.capacity:], target[-self.capacity:]
            count = self.capacity
        positions = (self.cursor + np.arange(count)) % self.capacity
        self.obs[positions] = obs
        self.labels[positions] = labels
        self.episode_uid[positions] = self.next_uid
        self.step_index[positions] = steps
        self.is_target[positions] = target
        self.next_uid += 1
        self.cursor = int((self.cursor + count) % self.capacity)
        self.size = min(self.capacity, self.size + count)
        added = int(target.sum())
        self.steps_added += added
        return added

    @property
    def num_targets(self) -> int:
        """Stored steps that can be drawn as sample targets."""
        return int(self.is_target[: self.size].sum())

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw `batch_size` windows uniformly over the stored sample targets.

        Returns:
            ``obs/<group>`` float32 (B, H, d) per observation group, ``pad_mask`` bool (B, H)
            (True on padded steps, which come first), and ``labels`` float32 (B, ACTION_DIM), the
            label of each window's last step.
        """
        targets = np.flatnonzero(self.is_target[: self.size])
        if len(targets) == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        last = targets[rng.integers(0, len(targets), size=batch_size)]  # (B,) window's last step
        return self.gather(last)

    def gather(self, last: np.ndarray) -> dict[str, np.ndarray]:
        """Build the windows that end at buffer positions `last` (B,)."""
        offsets = np.arange(self.history - 1, -1, -1)  # (H,) H-1 ... 0
        positions = (last[:, None] - offsets[None, :]) % self.capacity  # (B, H)
        same_episode = self.episode_uid[positions] == self.episode_uid[last][:, None]
        contiguous = self.step_index[positions] == (self.step_index[last][:, None] - offsets[None, :])
        valid = same_episode & contiguous & (self.episode_uid[positions] >= 0)  # (B, H)
        window = np.where(valid[..., None], self.obs[positions], 0.0).astype(np.float32)  # (B, H, W)
        batch = {f"obs/{name}": window[..., part] for name, part in _GROUP_SLICES.items()}
        batch["pad_mask"] = ~valid
        batch["labels"] = self.labels[last]
        return batch

    def state_dict(self) -> dict[str, np.ndarray | int]:
        """Return the stored steps and counters, for checkpoints."""
        used = slice(0, self.size)
        return {
            "capacity": self.capacity,
            "history": self.history,
            "obs": self.obs[used].copy(),
            "labels": self.labels[used].copy(),
            "episode_uid": self.episode_uid[used].copy(),
            "step_index": self.step_index[used].copy(),
            "is_target": self.is_target[used].copy(),
            "size": self.size,
            "cursor": self.cursor,
            "next_uid": self.next_uid,
            "steps_added": self.steps_added,
        }

    def load_state_dict(self, state: dict) -> None:
        if int(state["capacity"]) != self.capacity or int(state["history"]) != self.history:
            raise ValueError(
                f"replay buffer shape differs: checkpoint has capacity {state['capacity']} and "
                f"history {state['history']}, this run {self.capacity} and {self.history}"
            )
        size = int(state["size"])
        self.obs[:size] = state["obs"]
        self.labels[:size] = state["labels"]
        self.episode_uid[:size] = state["episode_uid"]
        self.step_index[:size] = state["step_index"]
        self.is_target[:size] = state["is_target"]
        self.size = size
        self.cursor = int(state["cursor"])
        self.next_uid = int(state["next_uid"])
        self.steps_added = int(state["steps_added"])
