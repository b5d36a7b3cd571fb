"""Rollouts: one episode with `run_episode`, many in worker processes with `rollout_pool`.

An episode is a deterministic function of the env's configuration, the actor and the seed.
`run_episode` resets the env with the seed and reseeds the actor with it (when the actor's
``reset`` takes a ``seed``). Every random draw in the env goes through its ``np_random``.
"""

from __future__ import annotations

import inspect
import logging
import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

import numpy as np

from ast_robot.config import EnvConfig, RandomizationConfig
from ast_robot.episode import ACTION_DIM, OBS_GROUPS, Episode, new_episode_id
from ast_robot.errors import EnvError

logger = logging.getLogger(__name__)


def run_episode(
    env,
    actor,
    *,
    seed: int,
    label_with=None,
    options: dict[str, Any] | None = None,
) -> Episode:
    """Roll out one episode and return it as an `Episode` with ``source="sim"``.

    Args:
        env: A task env from `make_env` (or a wrapper of one).
        actor: Any object with ``act(obs, info) -> action (4,)``. If it has ``reset``, that is
            called first, with ``seed=seed`` when it accepts a seed. If it has ``step_stats()``,
            the returned mapping of name -> per-step array (T,) goes to `Episode.step_stats`.
        seed: Seed of the env reset (domain parameters, start state, noise).
        label_with: An expert whose clean action at every step becomes `Episode.action_labels`;
            its ``label(obs, info)`` is used when present, else its ``act``.
        options: Reset options passed to the env (``context``, ``domain_params``).

    Returns:
        The episode: obs (T, d) per group are the observations the actor saw, actions (T, 4) the
        actions it returned (clipped to [-1, 1]), rewards (T,), timestamps (T,) in seconds of
        simulated time at each decision, the wrench (T, 6) as observed, success from the final
        step's ``is_success``, and flags ``terminated``, ``truncated``, ``unstable``, ``nan_sensor``.
    """
    _reset_actor(actor, seed)
    if label_with is not None and label_with is not actor:
        _reset_actor(label_with, seed)
    labeler = None
    if label_with is not None:
        labeler = getattr(label_with, "label", None) or label_with.act

    obs, info = env.reset(seed=seed, options=options)
    base = env.unwrapped
    dt_s = base.control_dt_s
    domain_params = dict(info["domain_params"])
    context = np.asarray(info["context"], np.float32)

    obs_steps: dict[str, list[np.ndarray]] = {name: [] for name in OBS_GROUPS}
    actions, labels, rewards = [], [], []
    terminated = truncated = unstable = nan_sensor = False
    success = bool(info["is_success"])
    while True:
        for name in OBS_GROUPS:
            obs_steps[name].append(obs[name])
        if labeler is not None:
            labels.append(np.asarray(labeler(obs, info), np.float32))
        action = np.clip(np.asarray(actor.act(obs, info), np.float32), -1.0, 1.0)
        if action.shape != (ACTION_DIM,):
            raise EnvError(f"actor {type(actor).__name__} returned an action of shape {action.shape}, expected ({ACTION_DIM},)")
        actions.append(action)

        obs, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        success = bool(info["is_success"])
        unstable = unstable or bool(info.get("unstable", False))
        nan_sensor = nan_sensor or bool(info.get("nan_sensor", False))
        if terminated or truncated:
            break

    length = len(actions)
    obs_arrays = {name: np.stack(steps) for name, steps in obs_steps.items()}
    step_stats = {}
    if hasattr(actor, "step_stats"):
        step_stats = {
            name: np.asarray(values, np.float32)[:length] for name, values in actor.step_stats().items()
        }
    return Episode(
        obs=obs_arrays,
        actions=np.stack(actions),
        timestamps=np.arange(length, dtype=np.float64) * dt_s,
        source="sim",
        id=new_episode_id("sim"),
        action_labels=np.stack(labels) if labeler is not None else None,
        wrench=obs_arrays["force"].copy(),
        rewards=np.asarray(rewards, np.float32),
        success=success and not (unstable or nan_sensor),
        context=context,
        domain_params=domain_params,
        flags={"terminated": terminated, "truncated": truncated, "unstable": unstable, "nan_sensor": nan_sensor},
        step_stats=step_stats,
        info={"task": base.task, "seed": int(seed), "reality": base.reality},
    )


def _reset_actor(actor, seed: int) -> None:
    reset = getattr(actor, "reset", None)
    if reset is None:
        return
    try:
        accepts_seed = "seed" in inspect.signature(reset).parameters
    except (TypeError, ValueError):
        accepts_seed = False
    if accepts_seed:
        reset(seed=seed)
    else:
        reset()


# ---------------------------------------------------------------------------------------------
# Worker pool
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpertRolloutSpec:
    """Settings a worker builds its env and expert from; plain data, so it pickles cheaply."""

    task: str
    env_cfg: EnvConfig
    rand_cfg: RandomizationConfig | None = None
    reality: str | None = None
    noise_std: float = 0.0
    mistake_prob: float = 0.0
    label: bool = False


_WORKER: dict[str, Any] = {}


def _worker_init(spec: ExpertRolloutSpec) -> None:
    from . import make_env, make_expert

    env = make_env(spec.task, spec.env_cfg, spec.rand_cfg, reality=spec.reality)
    _WORKER["env"] = env
    _WORKER["actor"] = make_expert(spec.task, env, noise_std=spec.noise_std, mistake_prob=spec.mistake_prob)
    _WORKER["labeler"] = make_expert(spec.task, env) if spec.label else None


def _worker_run(seed: int) -> dict[str, np.ndarray]:
    start = time.process_time()
    episode = run_episode(_WORKER["env"], _WORKER["actor"], seed=seed, label_with=_WORKER["labeler"])
    episode.info["worker_cpu_s"] = time.process_time() - start
    return episode.to_arrays()


def default_workers() -> int:
    """Worker processes for a pool: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not available on macOS
        return max(1, os.cpu_count() or 1)


class RolloutPool:
    """Worker processes that each hold one env and expert built from an `ExpertRolloutSpec`.

    A context manager: the processes start on entry (each builds its env once) and stop on exit.
    With ``workers=1`` everything runs in this process. The episode of a seed is identical
    whichever worker runs it.

    Args:
        spec: Task, configs and expert settings.
        workers: Process count; default `default_workers()`.
    """

    def __init__(self, spec: ExpertRolloutSpec, *, workers: int | None = None):
        workers = default_workers() if workers is None else workers
        if workers < 1:
            raise EnvError(f"workers must be >= 1, got {workers}")
        self.spec = spec
        self.workers = workers
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> RolloutPool:
        logger.info("starting %d rollout worker(s) for task %s", self.workers, self.spec.task)
        if self.workers == 1:
            _worker_init(self.spec)
        else:
            context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=context, initializer=_worker_init, initargs=(self.spec,)
            )
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        elif "env" in _WORKER:
            _WORKER.pop("env").close()

    def run(self, seeds: Sequence[int], *, progress: bool = False) -> Iterator[tuple[int, Episode]]:
        """Yield ``(seed, episode)`` for every seed as episodes finish (not in seed order)."""
        bar = _progress_bar(len(seeds), progress)
        try:
            if self._executor is None:
                if "env" not in _WORKER:
                    raise EnvError("the rollout pool is not open; use it as a context manager")
                for seed in seeds:
                    yield seed, Episode.from_arrays(_worker_run(seed))
                    bar.update(1)
                return
            futures = {self._executor.submit(_worker_run, seed): seed for seed in seeds}
            try:
                for future in as_completed(futures):
                    yield futures[future], Episode.from_arrays(future.result())
                    bar.update(1)
            finally:
                for future in futures:
                    future.cancel()
        finally:
            bar.close()


def rollout_pool(
    spec: ExpertRolloutSpec,
    seeds: Sequence[int],
    *,
    workers: int | None = None,
    progress: bool = False,
) -> Iterator[tuple[int, Episode]]:
    """Roll out the scripted expert of `spec` once per seed in a fresh `RolloutPool`.

    Yields ``(seed, episode)`` as episodes finish (not in seed order); `progress` shows a tqdm bar.
    """
    with RolloutPool(spec, workers=workers) as pool:
        yield from pool.run(seeds, progress=progress)


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="rollouts", unit="episode", disable=not enabled)
