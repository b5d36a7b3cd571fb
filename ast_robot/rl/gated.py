"""PPO and SAC from stable-baselines3 with the significance gate between collection and update.

Every finished episode is scored by the same `SignificanceModel` and `SundewGate` as in
imitation, from RL signals:

- difficulty: mean magnitude of the episode's advantage estimates, the L1 value loss that
  prioritized level replay ranks levels by (PPO: GAE advantages; SAC: one-step TD errors
  ``r + gamma * V(s') - Q(s, a)`` with ``V(s') = min Q_target(s', a') - alpha * log pi(a'|s')``);
- learning value: mean positive advantage (how much better than expected the episode went);
- uncertainty: mean standard deviation of the policy's action distribution on the episode;
- novelty: nearest-neighbour distance of the episode's context, domain parameters and outcome
  to the episodes trained on;
- physical: feedback from real-robot logs near the episode's context, when logs are given.

Only admitted episodes train the networks:

- PPO: transitions of gated-out episodes are masked out of every minibatch, so the update takes
  ``ppo_epochs * ceil(admitted / minibatch)`` gradient steps. A rollout with nothing admitted
  takes none. An episode that spans two rollouts is judged in each, on its part in that rollout.
- SAC: transitions wait per environment until their episode ends; admitted episodes go to the
  replay buffer, gated-out ones are dropped. Gradient steps are ``sac_updates_per_step`` per
  admitted transition.
"""

from __future__ import annotations

import logging
from collections.abc import Generator

import numpy as np
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.buffers import DictReplayBuffer, DictRolloutBuffer
from stable_baselines3.common.type_aliases import DictRolloutBufferSamples
from stable_baselines3.common.utils import obs_as_tensor

from ast_robot.config import Config
from ast_robot.episode import Episode
from ast_robot.rl.wrappers import EPISODE_INFO_KEY

logger = logging.getLogger(__name__)


class EpisodeScorer:
    """Significance model and gate for RL episodes; keeps per-iteration statistics."""

    def __init__(self, config: Config, feedback=None, *, seed: int):
        from ast_robot.gate import SundewGate
        from ast_robot.significance import SignificanceModel

        self.feedback = feedback
        self.model = SignificanceModel(
            config.significance, modality="robot", has_real_feedback=feedback is not None, seed=seed
        )
        self.gate = SundewGate(config.gate, seed=seed)
        self.progress = 0.0
        self._iteration: dict[str, list] = {}
        self.start_iteration()

    def start_iteration(self) -> None:
        self._iteration = {"scores": [], "open": [], "steps": [], "success": [], "returns": [], "finished": []}
        self._components: dict[str, list[float]] = {}

    def decide(
        self,
        episodes: list[Episode],
        advantages: list[np.ndarray],
        uncertainty: np.ndarray,
        *,
        finished: np.ndarray | None = None,
    ) -> np.ndarray:
        """Score episodes and return which ones the gate admits, bool (N,).

        Args:
            episodes: The episodes (or episode parts) to judge.
            advantages: Per-step advantage estimates of each, float (T_i,).
            uncertainty: Mean action standard deviation of each, float (N,).
            finished: bool (N,), False for episode parts still running; only finished episodes
                count toward the iteration's success and return statistics.
        """
        from ast_robot.significance import SignificanceInputs

        if not episodes:
            return np.zeros(0, bool)
        physical = None
        if self.feedback is not None:
            physical = np.asarray(self.feedback.feedback(episodes), np.float64)
        base = self.model.inputs_from_episodes(episodes, physical=physical)
        inputs = SignificanceInputs(
            learning_value=np.array([np.maximum(a, 0.0).mean() for a in advantages]),
            difficulty=np.array([np.abs(a).mean() for a in advantages]),
            uncertainty=np.asarray(uncertainty, np.float64),
            novelty_features=base.novelty_features,
            physical=physical,
            context=base.context,
        )
        result = self.model.score(inputs, progress=min(max(self.progress, 0.0), 1.0))
        steps = np.array([len(a) for a in advantages], np.float64)
        decision = self.gate.decide(result.score, costs=steps)
        opened = np.asarray(decision.open, bool)
        if opened.any():
            self.model.mark_trained(inputs.subset(opened))

        finished = np.ones(len(episodes), bool) if finished is None else np.asarray(finished, bool)
        record = self._iteration
        record["scores"].extend(result.score.tolist())
        record["open"].extend(opened.tolist())
        record["steps"].extend(steps.tolist())
        record["finished"].extend(finished.tolist())
        for name, values in result.components.items():
            self._components.setdefault(name, []).extend(np.asarray(values, np.float64).tolist())
        for episode, done in zip(episodes, finished):
            if done:
                record["success"].append(bool(episode.success))
                record["returns"].append(float(episode.rewards.sum()) if episode.rewards is not None else 0.0)
        return opened

    def iteration_metrics(self) -> dict:
        """Gate and rollout metrics of the episodes judged since `start_iteration`."""
        record = self._iteration
        opened = np.asarray(record["open"], bool)
        steps = np.asarray(record["steps"], np.float64)
        stats = self.gate.stats().as_metrics()
        return {
            "rollout/episodes": int(np.sum(record["finished"])),
            "rollout/success": float(np.mean(record["success"])) if record["success"] else None,
            "rollout/return": float(np.mean(record["returns"])) if record["returns"] else None,
            "gate/judged": len(opened),
            "gate/admitted": int(opened.sum()),
            "gate/activation_rate": float(opened.mean()) if len(opened) else 0.0,
            "gate/threshold": float(self.gate.threshold),
            "gate/score_mean": float(np.mean(record["scores"])) if record["scores"] else None,
            "gate/activation_rate_total": stats["gate/activation_rate"],
            "compute/admitted_steps": int(steps[opened].sum()),
            "compute/skipped_steps": int(steps[~opened].sum()),
            **{f"significance/{name}_mean": float(np.mean(values)) for name, values in self._components.items()},
        }

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "gate": self.gate.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.gate.load_state_dict(state["gate"])


# ---------------------------------------------------------------------------------------------
# PPO
# ---------------------------------------------------------------------------------------------


class GatedRolloutBuffer(DictRolloutBuffer):
    """A rollout buffer whose minibatches hold only the transitions with ``keep`` set.

    ``keep`` is bool (n_steps, n_envs), all True after `reset`; the gate clears the rows of
    gated-out episodes after the advantages are computed.
    """

    def reset(self) -> None:
        super().reset()
        self.keep = np.ones((self.buffer_size, self.n_envs), dtype=bool)

    def get(self, batch_size: int | None = None) -> Generator[DictRolloutBufferSamples, None, None]:
        assert self.full, "the rollout buffer is read only when full"
        # Same flattening as the parent: (n_steps, n_envs) -> env-major (n_envs * n_steps).
        admitted = np.flatnonzero(self.keep.swapaxes(0, 1).reshape(-1))
        indices = np.random.permutation(admitted)
        if not self.generator_ready:
            for key, obs in self.observations.items():
                self.observations[key] = self.swap_and_flatten(obs)
            for name in ("actions", "values", "log_probs", "advantages", "returns"):
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
            self.generator_ready = True
        batch_size = len(indices) if batch_size is None else batch_size
        for start in range(0, len(indices), batch_size):
            yield self._get_samples(indices[start : start + batch_size])


class GatedPPO(PPO):
    """PPO whose update uses only the transitions of episodes the gate admits."""

    def __init__(self, *args, scorer: EpisodeScorer, **kwargs):
        self.scorer = scorer
        self.gradient_steps_total = 0
        self.last_gradient_steps = 0
        self._finished: list[tuple[int, int, Episode]] = []
        super().__init__(*args, rollout_buffer_class=GatedRolloutBuffer, **kwargs)

    def _update_info_buffer(self, infos, dones=None) -> None:
        super()._update_info_buffer(infos, dones)
        if dones is None:
            return
        for env_index, done in enumerate(dones):
            if done and infos[env_index].get(EPISODE_INFO_KEY) is not None:
                # Called before the step is added, so `pos` is this step's row.
                self._finished.append((self.rollout_buffer.pos, env_index, infos[env_index][EPISODE_INFO_KEY]))

    def collect_rollouts(self, env, callback, rollout_buffer, n_rollout_steps: int) -> bool:
        self._finished = []
        if not super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps):
            return False
        self._gate_rollout(env, rollout_buffer)
        return True

    def _gate_rollout(self, env, buffer: GatedRolloutBuffer) -> None:
        """Split the rollout into episode segments, score them and mask out the gated-out ones."""
        n_steps, n_envs = buffer.buffer_size, buffer.n_envs
        ends = {(row, env_index): episode for row, env_index, episode in self._finished}
        segments: list[tuple[int, int, int]] = []  # (env, first row, end row exclusive)
        episodes: list[Episode] = []
        finished: list[bool] = []
        for env_index in range(n_envs):
            first = 0
            for row in range(n_steps):
                if (row, env_index) in ends:
                    segments.append((env_index, first, row + 1))
                    episodes.append(ends[(row, env_index)])
                    finished.append(True)
                    first = row + 1
            if first < n_steps:
                # The episode is still running: judge its part in this rollout on what it did so far.
                segments.append((env_index, first, n_steps))
                episodes.append(env.env_method("current_episode", indices=[env_index])[0])
                finished.append(False)

        advantages = [buffer.advantages[first:end, env_index].astype(np.float64) for env_index, first, end in segments]
        std = float(torch.exp(self.policy.log_std.detach()).mean())  # state-independent in PPO
        opened = self.scorer.decide(episodes, advantages, np.full(len(segments), std), finished=np.array(finished))
        for (env_index, first, end), is_open in zip(segments, opened):
            buffer.keep[first:end, env_index] = is_open

    def train(self) -> None:
        admitted = int(self.rollout_buffer.keep.sum())
        batches = -(-admitted // self.batch_size)  # ceil
        self.last_gradient_steps = self.n_epochs * batches
        if admitted == 0:
            logger.debug("no transition admitted this rollout; skipping the PPO update")
            return
        super().train()
        self.gradient_steps_total += self.last_gradient_steps


# ---------------------------------------------------------------------------------------------
# SAC
# ---------------------------------------------------------------------------------------------


class GatedReplayBuffer(DictReplayBuffer):
    """A replay buffer that delays transitions until their episode ends and the gate decides.

    It stores single transitions (an inner layout with one environment column); SB3 adds all
    environments' transitions of a step at once, and `add` splits them per environment.
    `on_episode_end(transitions, episode)` returns whether the episode is admitted.
    """

    def __init__(self, buffer_size, observation_space, action_space, device="auto", n_envs: int = 1, **kwargs):
        kwargs.pop("optimize_memory_usage", None)
        super().__init__(buffer_size, observation_space, action_space, device, n_envs=1, **kwargs)
        self.staged_envs = n_envs
        self.pending: list[list[tuple]] = [[] for _ in range(n_envs)]
        self.on_episode_end = None

    def add(self, obs, next_obs, action, reward, done, infos) -> None:
        for env_index in range(self.staged_envs):
            info = infos[env_index]
            transition = (
                {key: np.array(value[env_index]) for key, value in obs.items()},
                {key: np.array(value[env_index]) for key, value in next_obs.items()},
                np.array(action[env_index]),
                float(reward[env_index]),
                bool(done[env_index]),
                {"TimeLimit.truncated": bool(info.get("TimeLimit.truncated", False))},
            )
            self.pending[env_index].append(transition)
            if done[env_index]:
                transitions, self.pending[env_index] = self.pending[env_index], []
                if self.on_episode_end is None or self.on_episode_end(transitions, info.get(EPISODE_INFO_KEY)):
                    self.commit(transitions)

    def commit(self, transitions: list[tuple]) -> None:
        """Write transitions into the buffer proper."""
        for obs, next_obs, action, reward, done, info in transitions:
            super().add(
                {key: value[None] for key, value in obs.items()},
                {key: value[None] for key, value in next_obs.items()},
                action[None],
                np.array([reward], np.float32),
                np.array([done], np.float32),
                [info],
            )

    def contents(self) -> dict:
        """Return the stored transitions as arrays, for a checkpoint."""
        size = self.size()
        out = {
            "pos": self.pos,
            "full": self.full,
            "actions": self.actions[:size].copy(),
            "rewards": self.rewards[:size].copy(),
            "dones": self.dones[:size].copy(),
            "timeouts": self.timeouts[:size].copy(),
        }
        for key in self.observations:
            out[f"obs/{key}"] = self.observations[key][:size].copy()
            out[f"next_obs/{key}"] = self.next_observations[key][:size].copy()
        return out

    def load_contents(self, state: dict) -> None:
        size = len(state["actions"])
        self.pos, self.full = int(state["pos"]), bool(state["full"])
        for name in ("actions", "rewards", "dones", "timeouts"):
            getattr(self, name)[:size] = state[name]
        for key in self.observations:
            self.observations[key][:size] = state[f"obs/{key}"]
            self.next_observations[key][:size] = state[f"next_obs/{key}"]


class GatedSAC(SAC):
    """SAC whose replay buffer receives only admitted episodes, trained per admitted transition.

    NOTE: the buffer stores observations as normalized when they were collected, so early
    transitions keep the early statistics. SB3's VecNormalize stores raw ones and normalizes at
    sampling instead.
    """

    def __init__(self, *args, scorer: EpisodeScorer, updates_per_step: float, **kwargs):
        self.scorer = scorer
        self.updates_per_step = updates_per_step
        self.gradient_steps_total = 0
        self.last_gradient_steps = 0
        self.update_credit = 0.0
        super().__init__(*args, replay_buffer_class=GatedReplayBuffer, **kwargs)
        self.replay_buffer.on_episode_end = self._on_episode_end

    def _on_episode_end(self, transitions: list[tuple], episode: Episode | None) -> bool:
        if episode is None:
            return True
        advantages, uncertainty = self._td_errors(transitions)
        opened = bool(self.scorer.decide([episode], [advantages], np.array([uncertainty]))[0])
        if opened and self.num_timesteps > self.learning_starts:
            self.update_credit += self.updates_per_step * len(transitions)
        return opened

    @torch.no_grad()
    def _td_errors(self, transitions: list[tuple]) -> tuple[np.ndarray, float]:
        """One-step advantage estimates (T,) of an episode and its mean action standard deviation."""
        obs = obs_as_tensor({key: np.stack([t[0][key] for t in transitions]) for key in transitions[0][0]}, self.device)
        next_obs = obs_as_tensor({key: np.stack([t[1][key] for t in transitions]) for key in transitions[0][1]}, self.device)
        actions = torch.as_tensor(np.stack([t[2] for t in transitions]), device=self.device)
        rewards = torch.as_tensor([t[3] for t in transitions], device=self.device, dtype=torch.float32)
        # Only true terminal states stop the bootstrap; time-limit endings do not.
        terminal = torch.as_tensor(
            [t[4] and not t[5]["TimeLimit.truncated"] for t in transitions], device=self.device, dtype=torch.float32
        )
        ent_coef = torch.exp(self.log_ent_coef.detach()) if self.ent_coef_optimizer is not None else self.ent_coef_tensor

        next_actions, next_log_prob = self.actor.action_log_prob(next_obs)
        next_q = torch.min(torch.cat(self.critic_target(next_obs, next_actions), dim=1), dim=1).values  # (T,)
        next_value = next_q - ent_coef * next_log_prob.reshape(-1)
        target = rewards + (1.0 - terminal) * self.gamma * next_value
        q = torch.min(torch.cat(self.critic(obs, actions), dim=1), dim=1).values  # (T,)
        _mean, log_std, _ = self.actor.get_action_dist_params(obs)
        return (target - q).cpu().numpy().astype(np.float64), float(log_std.exp().mean())

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        steps = int(self.update_credit)
        self.update_credit -= steps
        if steps == 0 or self.replay_buffer.size() == 0:
            return
        self.last_gradient_steps += steps
        self.gradient_steps_total += steps
        super().train(steps, batch_size)
