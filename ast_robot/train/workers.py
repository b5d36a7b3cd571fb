"""Rollout workers: contexts and policy weights in, episodes out.

The training loop talks to a `RolloutBackend` only, so a distributed engine can replace the local
process pool without touching the loop. A backend takes a list of `RolloutTask` and the current
policy weights, and yields one `Episode` per task as soon as that episode finishes, in completion
order. Each episode is a deterministic function of its task (seed, expert share, context, reality
profile, randomization) and the policy weights, whichever worker runs it.

Rollouts are DAgger-style. At every step the privileged expert computes its action, which becomes
the step's label. The executed action is the expert's with probability `expert_share` and the
policy's mean action otherwise. While acting, the worker records the policy's per-step statistics
(`pred_error_norm`, `hidden_norm`, `action_std`, `imitation_loss` against the expert label) in
`Episode.step_stats`, so the main process never runs a second forward pass.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import multiprocessing as mp
import os
import queue
import signal
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from ast_robot.episode import OBS_GROUPS, Episode
from ast_robot.errors import RolloutError

if TYPE_CHECKING:
    import torch

    from ast_robot.config import EnvConfig, PolicyConfig, RandomizationConfig

logger = logging.getLogger(__name__)

STEP_STAT_KEYS = ("pred_error_norm", "hidden_norm", "action_std", "imitation_loss")
"""Per-step statistics that workers record while the policy acts."""

_PARENT_CHECK_S = 5.0
"""How often an idle worker checks that the process that started it is still alive, in seconds."""

_RESULT_POLL_S = 1.0
"""How often the pool checks that its workers are alive while waiting for an episode, in seconds."""


@dataclass
class RolloutTask:
    """One episode to roll out.

    Attributes:
        index: Position of the task in its batch; returned as ``episode.info["task_index"]``.
        seed: Seed of the environment reset, the randomization and the expert/policy mixture.
        expert_share: Probability in [0, 1] that the expert's action is executed at a step;
            1 rolls out the expert alone, 0 the policy alone.
        context: Object start xyz and goal xyz in metres, float32 (6,), or None to let the
            environment sample it from `seed`.
        reality: Path of a reality-profile YAML whose fixed physics replace sampling, or None.
        randomize: Sample domain parameters at reset (ignored when `reality` is set).
    """

    index: int
    seed: int
    expert_share: float = 1.0
    context: np.ndarray | None = None
    reality: str | None = None
    randomize: bool = True


@runtime_checkable
class RolloutBackend(Protocol):
    """Anything that turns rollout tasks and policy weights into episodes."""

    def collect(self, tasks: list[RolloutTask], policy_state: bytes | None) -> Iterator[Episode]:
        """Roll out every task once and yield its episode as soon as it finishes.

        `policy_state` is the policy's serialized weights (see `serialize_policy`), or None
        to act with the expert alone. Every task yields exactly one episode, carrying
        ``info["task_index"]``.
        """
        ...

    def close(self) -> None:
        """Stop the workers and release their resources."""
        ...

    def __enter__(self) -> RolloutBackend: ...

    def __exit__(self, *exc_info: Any) -> None: ...


# ---------------------------------------------------------------------------------------------
# Policy weights on the wire
# ---------------------------------------------------------------------------------------------


def serialize_policy(policy: torch.nn.Module) -> bytes:
    """Serialize a policy's state dict (parameters and normalizer buffers) for the workers."""
    import torch

    buffer = io.BytesIO()
    state = {name: tensor.detach().to("cpu", torch.float32) for name, tensor in policy.state_dict().items()}
    torch.save(state, buffer)
    return buffer.getvalue()


def deserialize_policy_state(data: bytes) -> dict[str, torch.Tensor]:
    """Inverse of `serialize_policy`: the state dict as CPU tensors."""
    import torch

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


# ---------------------------------------------------------------------------------------------
# The acting side, shared by every backend
# ---------------------------------------------------------------------------------------------


class DaggerActor:
    """Acts with a per-step mixture of the expert and the policy and records labels and stats.

    Built once per worker; `start_episode` prepares it for the next task.
    """

    def __init__(self, expert, policy, history: int):
        self.expert = expert
        self.policy = policy
        self.history = history
        self.labels: list[np.ndarray] = []
        self.stats: dict[str, list[float]] = {key: [] for key in STEP_STAT_KEYS}
        self._obs_history: dict[str, list[np.ndarray]] = {name: [] for name in OBS_GROUPS}
        self._rng = np.random.default_rng(0)
        self._expert_share = 1.0

    def start_episode(self, *, seed: int, expert_share: float) -> None:
        # The mixture draws come from their own stream, so they do not shift the env's samples.
        self._rng = np.random.default_rng([seed, 0x4A17])
        self._expert_share = float(expert_share)
        self.labels = []
        self.stats = {key: [] for key in STEP_STAT_KEYS}
        self._obs_history = {name: [] for name in OBS_GROUPS}

    def reset(self, seed: int | None = None) -> None:
        """Reset the expert; `run_episode` calls this with the episode seed before the env reset."""
        self.expert.reset(seed=seed)

    def act(self, obs: dict[str, np.ndarray], info: dict) -> np.ndarray:
        """Return the executed action, float32 (4,) in [-1, 1]."""
        label = getattr(self.expert, "label", None) or self.expert.act
        expert_action = np.asarray(label(obs, info), dtype=np.float32)
        self.labels.append(expert_action)
        for name in OBS_GROUPS:
            self._obs_history[name].append(np.asarray(obs[name], dtype=np.float32))
            del self._obs_history[name][: -self.history]

        use_expert = self._rng.random() < self._expert_share
        if self.policy is None:
            for key in STEP_STAT_KEYS:
                self.stats[key].append(0.0)
            return expert_action

        policy_action, step_stats = self._policy_step(expert_action)
        for key in STEP_STAT_KEYS:
            self.stats[key].append(step_stats[key])
        return expert_action if use_expert else policy_action

    def _policy_step(self, expert_action: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        import torch

        from ast_robot.policy.common import history_to_batch

        obs, pad_mask = history_to_batch(
            {name: np.stack(steps) for name, steps in self._obs_history.items()},
            self.history,
            torch.device("cpu"),
        )  # obs (1, H, d) per group, left-padded; pad_mask (1, H)
        label = torch.from_numpy(expert_action).unsqueeze(0)  # (1, 4)
        with torch.inference_mode():
            output = self.policy(obs, pad_mask)
            stats = self.policy.step_stats(output, label)
        action = self.policy.action_from_mean(output.mean[0]).numpy().astype(np.float32)
        return action, {key: float(stats[key][0]) for key in STEP_STAT_KEYS}


class RolloutRunner:
    """Runs rollout tasks one at a time in the current process.

    Environments are created on first use, one per (randomize, reality) combination, and kept.
    """

    def __init__(self, env_cfg: EnvConfig, rand_cfg: RandomizationConfig | None, policy_cfg: PolicyConfig):
        self.env_cfg = env_cfg
        self.rand_cfg = rand_cfg
        self.policy_cfg = policy_cfg
        self._envs: dict[tuple[bool, str | None], Any] = {}
        self._experts: dict[tuple[bool, str | None], Any] = {}
        self._policy = None

    def load_policy(self, policy_state: bytes | None) -> None:
        """Load new policy weights, or act with the expert alone when `policy_state` is None."""
        if policy_state is None:
            self._policy = None
            return
        import torch

        from ast_robot.policy import TransformerPolicy

        torch.set_num_threads(1)
        if self._policy is None:
            self._policy = TransformerPolicy(self.policy_cfg)
        self._policy.load_state_dict(deserialize_policy_state(policy_state))
        self._policy.eval()

    def run(self, task: RolloutTask) -> Episode:
        """Roll out one task and return its episode with ``info["task_index"]`` set."""
        from ast_robot.envs.rollout import run_episode

        env, expert = self._env_for(task)
        actor = DaggerActor(expert, self._policy, self.policy_cfg.history)
        actor.start_episode(seed=task.seed, expert_share=task.expert_share)
        options = None if task.context is None else {"context": np.asarray(task.context, np.float32)}
        episode = run_episode(env, actor, seed=task.seed, options=options)

        step_stats = dict(episode.step_stats)
        step_stats.update({key: np.asarray(values, np.float32) for key, values in actor.stats.items()})
        info = dict(episode.info)
        info.update(
            task_index=task.index,
            seed=task.seed,
            expert_share=task.expert_share,
            reality=task.reality,
            randomize=task.randomize,
        )
        return episode.replace(
            action_labels=np.stack(actor.labels).astype(np.float32),
            step_stats=step_stats,
            info=info,
        )

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()
        self._experts.clear()

    def _env_for(self, task: RolloutTask):
        from ast_robot.envs import make_env, make_expert

        randomize = bool(task.randomize) and task.reality is None
        key = (randomize, task.reality)
        if key not in self._envs:
            rand_cfg = self.rand_cfg
            if rand_cfg is not None and not randomize:
                # Nominal physics: the same randomization section with sampling switched off.
                rand_cfg = dataclasses.replace(rand_cfg, enabled=False)
            env = make_env(self.env_cfg.task, self.env_cfg, rand_cfg, reality=task.reality)
            self._envs[key] = env
            self._experts[key] = make_expert(self.env_cfg.task, env)
        return self._envs[key], self._experts[key]


# ---------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------


class InlineBackend:
    """Runs every task in the calling process; for debugging, tests and single-core machines."""

    def __init__(self, env_cfg: EnvConfig, rand_cfg: RandomizationConfig | None, policy_cfg: PolicyConfig):
        self._runner = RolloutRunner(env_cfg, rand_cfg, policy_cfg)

    def collect(self, tasks: list[RolloutTask], policy_state: bytes | None) -> Iterator[Episode]:
        self._runner.load_policy(policy_state)
        for task in tasks:
            yield self._runner.run(task)

    def close(self) -> None:
        self._runner.close()

    def __enter__(self) -> InlineBackend:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _worker_main(worker_id: int, inbox, outbox, env_cfg, rand_cfg, policy_cfg) -> None:
    """Serve rollout requests until a ``None`` message arrives.

    Messages in: ``("policy", bytes | None)`` and ``("task", (generation, RolloutTask))``.
    Messages out: ``("episode", worker_id, generation, arrays)`` or
    ``("error", worker_id, generation, (task_index, text))``.
    """
    # Ctrl-C in a terminal reaches the whole process group; the parent alone decides what to do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parent = os.getppid()
    runner = RolloutRunner(env_cfg, rand_cfg, policy_cfg)
    try:
        while True:
            try:
                message = inbox.get(timeout=_PARENT_CHECK_S)
            except queue.Empty:
                if os.getppid() != parent:
                    break  # the training process died without closing the pool
                continue
            if message is None:
                break
            kind, payload = message
            generation, task = payload if kind == "task" else (None, None)
            try:
                if kind == "policy":
                    runner.load_policy(payload)
                    continue
                episode = runner.run(task)
                outbox.put(("episode", worker_id, generation, episode.to_arrays()))
            except Exception:  # noqa: BLE001 - the parent re-raises it with the traceback text
                index = task.index if task is not None else None
                outbox.put(("error", worker_id, generation, (index, traceback.format_exc())))
    finally:
        runner.close()


class LocalProcessPool:
    """A pool of worker processes on this machine, each owning its environments for its lifetime.

    Policy weights are sent to every worker once per `collect` call. Tasks are then handed out
    one at a time to whichever worker is idle, so fast and slow episodes balance out. Episodes
    stream back in completion order.

    Args:
        env_cfg, rand_cfg, policy_cfg: Sections of the run's config that the workers need.
        workers: Number of processes; None uses the CPU count. 0 runs every task in the calling
            process (no subprocesses).
    """

    def __init__(
        self,
        env_cfg: EnvConfig,
        rand_cfg: RandomizationConfig | None,
        policy_cfg: PolicyConfig,
        workers: int | None = None,
    ):
        if workers is None:
            workers = os.cpu_count() or 1
        if workers < 0:
            raise RolloutError(f"workers must be >= 0, got {workers}")
        self.num_workers = workers
        self._inline = InlineBackend(env_cfg, rand_cfg, policy_cfg) if workers == 0 else None
        self._processes: list[mp.process.BaseProcess] = []
        self._inboxes: list[Any] = []
        self._outbox = None
        self._closed = False
        self._generation = 0
        if workers == 0:
            return

        # spawn: forking a parent that already runs torch threads can deadlock the children.
        context = mp.get_context("spawn")
        self._outbox = context.Queue()
        for worker_id in range(workers):
            inbox = context.Queue()
            process = context.Process(
                target=_worker_main,
                args=(worker_id, inbox, self._outbox, env_cfg, rand_cfg, policy_cfg),
                name=f"ast-robot-rollout-{worker_id}",
                daemon=True,
            )
            process.start()
            self._inboxes.append(inbox)
            self._processes.append(process)
        logger.info("started %d rollout worker processes", workers)

    def collect(self, tasks: list[RolloutTask], policy_state: bytes | None) -> Iterator[Episode]:
        if self._closed:
            raise RolloutError("the rollout pool is closed")
        if self._inline is not None:
            yield from self._inline.collect(tasks, policy_state)
            return

        # A collect call abandoned half-way leaves at most one task per worker in flight; the
        # generation number lets this call discard those stale episodes.
        self._generation += 1
        generation = self._generation
        for inbox in self._inboxes:
            inbox.put(("policy", policy_state))
        pending = list(reversed(tasks))
        busy: dict[int, int] = {}  # worker id -> task index

        def hand_out(worker_id: int) -> None:
            task = pending.pop()
            self._inboxes[worker_id].put(("task", (generation, task)))
            busy[worker_id] = task.index

        for worker_id in range(self.num_workers):
            if pending:
                hand_out(worker_id)

        while busy:
            kind, worker_id, result_generation, payload = self._next_result(busy)
            if result_generation != generation:
                continue
            if kind == "error":
                task_index, text = payload
                raise RolloutError(f"rollout worker {worker_id} failed on task {task_index}:\n{text}")
            del busy[worker_id]
            if pending:
                hand_out(worker_id)
            yield Episode.from_arrays(payload)

    def _next_result(self, busy: dict[int, int]) -> tuple:
        while True:
            try:
                return self._outbox.get(timeout=_RESULT_POLL_S)
            except queue.Empty:
                for worker_id in busy:
                    process = self._processes[worker_id]
                    if not process.is_alive():
                        raise RolloutError(
                            f"rollout worker {worker_id} exited with code {process.exitcode} while "
                            f"running task {busy[worker_id]}"
                        ) from None

    def close(self) -> None:
        """Stop the workers; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._inline is not None:
            self._inline.close()
            return
        for inbox in self._inboxes:
            try:
                inbox.put(None)
            except (OSError, ValueError):
                pass
        for process in self._processes:
            process.join(timeout=5.0)
            if process.is_alive():
                logger.warning("rollout worker %s did not stop in 5 s; terminating it", process.name)
                process.terminate()
                process.join(timeout=1.0)
        for inbox in self._inboxes:
            inbox.close()
        if self._outbox is not None:
            self._outbox.close()

    def __enter__(self) -> LocalProcessPool:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()
