"""The training loop: collect, score, gate, update, evaluate, checkpoint.

One iteration:

1. the curriculum sampler proposes contexts (and skips those predicted to matter little);
2. the rollout backend simulates them with the DAgger mixture of expert and policy;
3. the significance model scores every episode (with physical feedback from real logs);
4. the gate admits some episodes to the transformer's replay buffer, the rest go to the proxy's;
5. the transformer takes gradient steps in proportion to the newly admitted samples, the proxy
   in proportion to the gated-out ones;
6. every `eval_every` iterations the policy is evaluated alone on fixed seeds;
7. metrics are appended and the `last` (and maybe `best`) checkpoint is written.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import signal
import threading
import time
from pathlib import Path

import numpy as np

from ast_robot.config import Config, config_from_dict, config_to_dict
from ast_robot.episode import Episode
from ast_robot.errors import AstRobotError, CheckpointError, ConfigError, TrainError
from ast_robot.run_directory import check_new_run_dir
from ast_robot.train.checkpoint import load_checkpoint, save_checkpoint
from ast_robot.train.curriculum import CurriculumSampler, expert_share, task_seed
from ast_robot.train.evaluate import evaluate
from ast_robot.train.real_data import RealData, load_real_data
from ast_robot.train.replay import ReplayBuffer
from ast_robot.train.rundir import RunDir, default_run_dir
from ast_robot.train.scoring import Scorer
from ast_robot.train.workers import LocalProcessPool, RolloutBackend, RolloutTask, serialize_policy

logger = logging.getLogger(__name__)


def train(
    config: Config,
    *,
    real_log: str | Path | None = None,
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
    device: str = "auto",
    gate_mode: str | None = None,
    workers: int | None = None,
    backend: RolloutBackend | None = None,
    progress: bool = True,
) -> dict:
    """Train a policy and return the run summary (also written to ``summary.json``).

    Args:
        config: The resolved config. Ignored when resuming, which uses the run's saved config.
        real_log: Directory of rosbag2 recordings whose episodes steer training, or None.
        run_dir: Where the run's files go; a new ``runs/<task>-<time>`` when None.
        resume: A run directory to continue from its ``checkpoints/last.pt``.
        device: ``auto``, ``cpu`` or ``cuda`` for the transformer and proxy updates.
        gate_mode: ``on``, ``off`` or ``random``; overrides ``gate.mode`` when given.
        workers: Rollout processes; overrides ``train.workers`` when given.
        backend: A rollout backend to use instead of a new `LocalProcessPool` (not closed here).
        progress: Show a progress bar.

    Raises:
        LogReadError: When `real_log` is missing, empty or contains no bags.
        TrainError: When `real_log` contains no usable episode, or the run cannot resume.
    """
    trainer = Trainer.create(
        config, real_log=real_log, run_dir=run_dir, resume=resume, device=device,
        gate_mode=gate_mode, workers=workers,
    )
    return trainer.run(backend=backend, progress=progress)


def check_run_inputs(config: Config, *, real_log: str | Path | None = None) -> None:
    """Check every file the run reads later, so a bad path fails before the first iteration.

    These are the reality profile of the final evaluation (``train.eval_reality``) and, with real
    logs, the robot map (``logs.robot``).

    Raises:
        ConfigError: A file is missing or invalid; the message names the config key.
    """
    from ast_robot.envs.randomization import load_reality_profile

    if config.train.eval_reality is not None:
        try:
            load_reality_profile(config.train.eval_reality)
        except ConfigError as error:
            raise ConfigError(f"train.eval_reality: {error}") from error
    if real_log is not None:
        from ast_robot.real_bridge.logs import resolve_robot_map

        try:
            resolve_robot_map(None, config.logs)
        except AstRobotError as error:
            raise ConfigError(f"logs.robot: {error}") from error


class _InterruptFlag:
    """Turns the first Ctrl-C into a request to stop after the current iteration."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self) -> _InterruptFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("Ctrl-C: finishing the current iteration and writing a checkpoint; press again to stop now")

    def __exit__(self, *exc_info) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Trainer:
    """Holds every component of a run; `run` executes the remaining iterations."""

    def __init__(self, config: Config, run: RunDir, real: RealData | None, device, *, workers: int | None):
        import torch

        from ast_robot.policy import ProxyPolicy, TransformerPolicy

        self.config = config
        self.cfg = config.train
        self.run_dir = run
        self.real = real
        self.device = device
        self.workers = workers if workers is not None else self.cfg.workers

        torch.set_num_threads(self.cfg.torch_threads)
        torch.manual_seed(self.cfg.seed)
        self.policy = TransformerPolicy(config.policy).to(device)
        self.proxy = ProxyPolicy(config.policy).to(device)
        self.optimizer = torch.optim.AdamW(
            self.policy.parameters(), lr=self.cfg.learning_rate, weight_decay=self.cfg.weight_decay
        )
        self.proxy_optimizer = torch.optim.AdamW(
            self.proxy.parameters(), lr=self.cfg.proxy_learning_rate, weight_decay=self.cfg.weight_decay
        )
        self.policy_buffer = ReplayBuffer(self.cfg.replay_capacity_steps, config.policy.history)
        self.proxy_buffer = ReplayBuffer(self.cfg.replay_capacity_steps, config.policy.history)
        self.scorer = Scorer(config, real, seed=self.cfg.seed)
        self.sampler = CurriculumSampler(self.cfg, seed=self.cfg.seed, has_real_feedback=real is not None)
        self.rng = np.random.default_rng([self.cfg.seed, 0x7EA1])
        self.context_source = ContextSource(config)

        self.iteration = 0  # iterations completed
        self.wall_offset_s = 0.0  # wall time of earlier sessions of a resumed run
        self.totals = {
            "compute/policy_flops_total": 0.0,
            "compute/policy_samples_total": 0,
            "compute/rollouts_simulated_total": 0,
            "compute/rollouts_skipped_total": 0,
            "compute/admitted_steps_total": 0,
            "compute/skipped_steps_total": 0,
        }
        self.best_success = -math.inf
        self.best_iteration: int | None = None
        self.last_eval: dict[str, float] = {}
        self.time_to_target: dict | None = None
        self.flops_per_sample = _flops_per_sample(self.policy, config, device)

        if real is not None and self.cfg.real_data_repeats > 0:
            added = sum(self.policy_buffer.add(ep, repeats=self.cfg.real_data_repeats) for ep in real.corrections)
            logger.info(
                "added %d human-corrected real steps from %d episodes to the transformer's replay buffer",
                added, len(real.corrections),
            )

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        config: Config,
        *,
        real_log: str | Path | None,
        run_dir: str | Path | None,
        resume: str | Path | None,
        device: str,
        gate_mode: str | None,
        workers: int | None,
    ) -> Trainer:
        from ast_robot.policy.device import select_device

        try:
            torch_device = select_device(device)
        except ValueError as error:
            raise TrainError(f"--device {device}: {error}") from error
        if resume is not None:
            return cls._resume(Path(resume), real_log=real_log, device=torch_device, workers=workers)

        if gate_mode is not None:
            config = dataclasses.replace(config, gate=dataclasses.replace(config.gate, mode=gate_mode))
        run = RunDir(run_dir if run_dir is not None else default_run_dir(config.env.task))
        check_new_run_dir(run.path, run_markers=("checkpoints/last.pt", "metrics.jsonl"))
        check_run_inputs(config, real_log=real_log)
        real = load_real_data(real_log, config) if real_log is not None else None
        run.create(config)
        if real is not None:
            real.write_report(run.path / "real_logs.json")
        logger.info("run directory: %s (device %s, gate %s)", run.path, torch_device, config.gate.mode)
        trainer = cls(config, run, real, torch_device, workers=workers)
        trainer.real_log = str(Path(real_log).resolve()) if real_log is not None else None
        return trainer

    @classmethod
    def _resume(cls, path: Path, *, real_log, device, workers: int | None) -> Trainer:
        run = RunDir(path)
        state = load_checkpoint(run.checkpoints / "last.pt")
        config = config_from_dict(state["config"], source_name=f"{run.checkpoints / 'last.pt'}")
        saved_log = state.get("real_log")
        if real_log is not None and saved_log is not None and Path(real_log).resolve() != Path(saved_log).resolve():
            raise TrainError(
                f"--real-log {real_log} differs from the run's real logs {saved_log}; resume with the "
                "same logs or start a new run"
            )
        real_log = saved_log if real_log is None else real_log
        check_run_inputs(config, real_log=real_log)
        real = load_real_data(real_log, config) if real_log is not None else None
        trainer = cls(config, run, real, device, workers=workers)
        trainer.real_log = str(Path(real_log).resolve()) if real_log is not None else None
        trainer.load_state(state)
        run.reopen(trainer.iteration)
        logger.info("resuming %s after iteration %d", run.path, trainer.iteration)
        return trainer

    # -- the loop --------------------------------------------------------------------------

    def run(self, *, backend: RolloutBackend | None = None, progress: bool = True) -> dict:
        from tqdm.auto import tqdm

        own_backend = backend is None
        if own_backend:
            backend = LocalProcessPool(
                self.config.env, self.config.randomization, self.config.policy, workers=self.workers
            )
        interrupted = False
        session_start = time.perf_counter()
        bar = tqdm(
            total=self.cfg.iterations, initial=self.iteration, desc="train", unit="it",
            disable=not progress, dynamic_ncols=True,
        )
        try:
            with _InterruptFlag() as interrupt:
                while self.iteration < self.cfg.iterations:
                    row = self.run_iteration(backend, session_start)
                    bar.update(1)
                    bar.set_postfix(
                        success=f"{self.last_eval.get('success_sim', float('nan')):.2f}",
                        gate=f"{row['gate/activation_rate']:.2f}",
                        loss=f"{row['train/loss']:.3g}" if row["train/loss"] is not None else "-",
                    )
                    if self.cfg.stop_at_target and self.time_to_target is not None:
                        logger.info("reached the target success %.2f; stopping (train.stop_at_target)", self.cfg.target_success)
                        break
                    if interrupt.requested:
                        interrupted = True
                        logger.warning("stopped after iteration %d; resume with --resume %s", self.iteration, self.run_dir.path)
                        break
        finally:
            bar.close()
            if own_backend:
                backend.close()
            self.context_source.close()

        self.run_dir.write_plots()
        summary = self.summary(interrupted=interrupted)
        self.run_dir.write_summary(summary)
        return summary

    def run_iteration(self, backend: RolloutBackend, session_start: float) -> dict:
        """Run one collect-score-gate-update cycle, append its metrics and checkpoint."""
        import torch

        iteration = self.iteration
        started = time.perf_counter()
        row: dict = {"iteration": iteration}

        # 1. Propose contexts; the pre-simulation gate may drop some.
        share = expert_share(self.cfg, iteration)
        contexts, skipped_before_sim = self.sampler.propose(
            self.cfg.episodes_per_iteration, iteration=iteration, draw=self.context_source
        )
        tasks = [
            RolloutTask(
                index=index,
                seed=task_seed(self.cfg.seed, iteration, index),
                expert_share=share,
                context=context,
                reality=None,
                randomize=self.config.randomization.enabled,
            )
            for index, context in enumerate(contexts)
        ]

        # 2. Roll out. Episodes arrive in completion order; sorting makes the run reproducible.
        policy_state = serialize_policy(self.policy)
        episodes = sorted(backend.collect(tasks, policy_state), key=lambda ep: ep.info["task_index"])
        rollout_done = time.perf_counter()

        # 3-4. Score and gate.
        scored = self.scorer.score_and_gate(episodes, progress=iteration / self.cfg.iterations)
        admitted = [ep for ep, is_open in zip(episodes, scored.open) if is_open]
        gated_out = [ep for ep, is_open in zip(episodes, scored.open) if not is_open]
        self.sampler.remember(np.stack([ep.context for ep in episodes]), scored.scores, scored.physical)

        admitted_steps = sum(self.policy_buffer.add(ep) for ep in admitted)
        skipped_steps = sum(self.proxy_buffer.add(ep) for ep in gated_out)
        self._update_normalizers(episodes)

        # 5. Update: gradient samples proportional to the new data each model received.
        policy_steps = self._budget(admitted_steps, self.cfg.reuse_factor, self.policy_buffer)
        proxy_steps = self._budget(skipped_steps, self.cfg.proxy_reuse_factor, self.proxy_buffer)
        loss = self._fit(self.policy, self.optimizer, self.policy_buffer, policy_steps, autocast=True)
        proxy_loss = self._fit(self.proxy, self.proxy_optimizer, self.proxy_buffer, proxy_steps, autocast=False)
        update_done = time.perf_counter()
        self.iteration += 1

        # 6. Evaluate now and then, and after the last iteration.
        evaluated = self.iteration % self.cfg.eval_every == 0 or self.iteration == self.cfg.iterations
        if evaluated:
            self.last_eval = evaluate(
                backend, serialize_policy(self.policy), episodes=self.cfg.eval_episodes,
                reality=self.cfg.eval_reality,
            )
        eval_done = time.perf_counter()

        # 7. Metrics and checkpoints.
        policy_samples = policy_steps * self.cfg.batch_size
        self.totals["compute/policy_flops_total"] += policy_samples * self.flops_per_sample
        self.totals["compute/policy_samples_total"] += policy_samples
        self.totals["compute/rollouts_simulated_total"] += len(episodes)
        self.totals["compute/rollouts_skipped_total"] += skipped_before_sim
        self.totals["compute/admitted_steps_total"] += admitted_steps
        self.totals["compute/skipped_steps_total"] += skipped_steps
        wall_s = self.wall_offset_s + (eval_done - session_start)
        row.update({
            "time/wall_s": wall_s,
            "time/iteration_s": eval_done - started,
            "time/rollout_s": rollout_done - started,
            "time/update_s": update_done - rollout_done,
            "time/eval_s": eval_done - update_done,
            "rollout/episodes": len(episodes),
            "rollout/steps": int(sum(len(ep) for ep in episodes)),
            "rollout/success": float(np.mean([bool(ep.success) for ep in episodes])) if episodes else None,
            "rollout/expert_share": share,
            "gate/mode": self.config.gate.mode,
            "gate/activation_rate": float(np.mean(scored.open)) if episodes else 0.0,
            "gate/threshold": scored.threshold,
            "gate/admitted": len(admitted),
            "gate/score_mean": float(np.mean(scored.scores)) if episodes else None,
            "train/loss": loss,
            "train/proxy_loss": proxy_loss,
            "train/steps": policy_steps,
            "train/proxy_steps": proxy_steps,
            "compute/admitted_steps": admitted_steps,
            "compute/skipped_steps": skipped_steps,
            "compute/rollouts_skipped": skipped_before_sim,
            "compute/policy_samples": policy_samples,
            "compute/policy_flops": policy_samples * self.flops_per_sample,
            **self.totals,
            "eval/success_sim": self.last_eval.get("success_sim") if evaluated else None,
            "eval/success_randomized": self.last_eval.get("success_randomized") if evaluated else None,
            "eval/success_reality": self.last_eval.get("success_reality") if evaluated else None,
        })
        row.update(scored.components)

        improved = False
        if evaluated:
            success = self.last_eval["success_sim"]
            if self.time_to_target is None and success >= self.cfg.target_success:
                self.time_to_target = {
                    "iteration": self.iteration,
                    "wall_s": wall_s,
                    "policy_flops": self.totals["compute/policy_flops_total"],
                    "rollouts": self.totals["compute/rollouts_simulated_total"],
                }
            if success > self.best_success:
                self.best_success, self.best_iteration, improved = success, self.iteration, True

        self.wall_s = wall_s
        self.run_dir.append(row)
        state = self.state_dict(wall_s)
        save_checkpoint(state, self.run_dir.checkpoints / "last.pt")
        if improved:
            save_checkpoint(state, self.run_dir.checkpoints / "best.pt")
            # The policy alone, in the format the ROS2 node and replay load.
            self.policy.save(self.run_dir.checkpoints / "best_policy.safetensors")
        torch.set_grad_enabled(True)
        return row

    # -- updates ---------------------------------------------------------------------------

    def _budget(self, new_samples: int, reuse: float, buffer: ReplayBuffer) -> int:
        """Gradient steps for `new_samples` fresh samples at `reuse` gradient samples each."""
        if new_samples == 0 or buffer.num_targets == 0:
            return 0
        steps = math.ceil(reuse * new_samples / self.cfg.batch_size)
        return min(steps, self.cfg.max_steps_per_iteration)

    def _update_normalizers(self, episodes: list[Episode]) -> None:
        import torch

        if not episodes:
            return
        batch = {
            name: torch.from_numpy(np.concatenate([ep.obs[name] for ep in episodes]))
            for name in episodes[0].obs
        }
        for model in (self.policy, self.proxy):
            update = getattr(model, "update_normalizer", None)
            if update is not None:
                update(batch)

    def _fit(self, model, optimizer, buffer: ReplayBuffer, steps: int, *, autocast: bool) -> float | None:
        """Take `steps` gradient steps on batches from `buffer`; return the mean loss or None."""
        import torch

        if steps == 0:
            return None
        from ast_robot.policy import autocast as autocast_context

        model.train()
        losses = []
        for _ in range(steps):
            batch = buffer.sample(self.cfg.batch_size, self.rng)
            obs = {
                key[len("obs/"):]: torch.from_numpy(value).to(self.device)
                for key, value in batch.items() if key.startswith("obs/")
            }
            pad_mask = torch.from_numpy(batch["pad_mask"]).to(self.device)
            target = torch.from_numpy(batch["labels"]).to(self.device)
            with autocast_context(self.device, enabled=autocast):
                loss, _parts = model.loss(obs, pad_mask, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.grad_clip_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), self.cfg.grad_clip_norm)
            optimizer.step()
            losses.append(float(loss.detach()))
        model.eval()
        return float(np.mean(losses))

    # -- state -----------------------------------------------------------------------------

    def state_dict(self, wall_s: float) -> dict:
        import torch

        return {
            "config": config_to_dict(self.config),
            "real_log": getattr(self, "real_log", None),
            "iteration": self.iteration,
            "wall_s": wall_s,
            "policy": self.policy.state_dict(),
            "proxy": self.proxy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "proxy_optimizer": self.proxy_optimizer.state_dict(),
            "policy_buffer": self.policy_buffer.state_dict(),
            "proxy_buffer": self.proxy_buffer.state_dict(),
            "scorer": self.scorer.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "totals": dict(self.totals),
            "best_success": self.best_success,
            "best_iteration": self.best_iteration,
            "last_eval": dict(self.last_eval),
            "time_to_target": self.time_to_target,
        }

    def load_state(self, state: dict) -> None:
        import torch

        try:
            self.policy.load_state_dict(state["policy"])
            self.proxy.load_state_dict(state["proxy"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.proxy_optimizer.load_state_dict(state["proxy_optimizer"])
            self.policy_buffer.load_state_dict(state["policy_buffer"])
            self.proxy_buffer.load_state_dict(state["proxy_buffer"])
            self.scorer.load_state_dict(state["scorer"])
            self.sampler.load_state_dict(state["sampler"])
            self.rng.bit_generator.state = state["rng"]
            torch.set_rng_state(state["torch_rng"])
        except (KeyError, RuntimeError, ValueError) as error:
            raise CheckpointError(f"checkpoint of {self.run_dir.path} does not match this run: {error}") from error
        self.iteration = int(state["iteration"])
        self.wall_offset_s = float(state["wall_s"])
        self.wall_s = self.wall_offset_s
        self.totals.update(state["totals"])
        self.best_success = float(state["best_success"])
        self.best_iteration = state["best_iteration"]
        self.last_eval = dict(state["last_eval"])
        self.time_to_target = state["time_to_target"]

    def summary(self, *, interrupted: bool) -> dict:
        summary = run_summary(self, interrupted=interrupted)
        summary["checkpoints"]["best_policy"] = (
            str(self.run_dir.checkpoints / "best_policy.safetensors") if self.best_iteration is not None else None
        )
        return summary


def run_summary(trainer, *, interrupted: bool) -> dict:
    """Build the ``summary.json`` contents shared by the DAgger and RL trainers.

    `trainer` has the attributes both trainers keep: run_dir, config, cfg (the train section),
    device, iteration, wall_s, last_eval, best_iteration, best_success, time_to_target, totals
    and real.
    """
    checkpoints = trainer.run_dir.checkpoints
    return {
        "run_dir": str(trainer.run_dir.path),
        "task": trainer.config.env.task,
        "gate_mode": trainer.config.gate.mode,
        "seed": trainer.cfg.seed,
        "device": str(trainer.device),
        "iterations_completed": trainer.iteration,
        "iterations": trainer.cfg.iterations,
        "interrupted": interrupted,
        "wall_s": getattr(trainer, "wall_s", trainer.wall_offset_s),
        "final_eval": dict(trainer.last_eval),
        "best_success_sim": None if trainer.best_iteration is None else trainer.best_success,
        "best_iteration": trainer.best_iteration,
        "target_success": trainer.cfg.target_success,
        "time_to_target": trainer.time_to_target,
        "totals": dict(trainer.totals),
        "real_logs": None if trainer.real is None else trainer.real.report(),
        "checkpoints": {
            "last": str(checkpoints / "last.pt"),
            "best": str(checkpoints / "best.pt") if trainer.best_iteration is not None else None,
        },
    }


class ContextSource:
    """Draws contexts from the task's own distribution: the context a nominal reset picks for a seed.

    The contexts are passed to the workers explicitly, so the rollout uses exactly the context the
    sampler judged, whatever the randomization draws.
    """

    def __init__(self, config: Config):
        from ast_robot.envs import make_env

        nominal = dataclasses.replace(config.randomization, enabled=False)
        self.env = make_env(config.env.task, config.env, nominal)

    def __call__(self, seeds: np.ndarray) -> np.ndarray:
        """Contexts float32 (M, 6) for seeds (M,)."""
        contexts = [self.env.reset(seed=int(seed))[1]["context"] for seed in seeds]
        return np.stack(contexts).astype(np.float32)

    def close(self) -> None:
        self.env.close()


def _flops_per_sample(policy, config: Config, device) -> float:
    """Measure the transformer's forward + backward FLOPs for one history window."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ast_robot.episode import ACTION_DIM, OBS_GROUPS

    history = config.policy.history
    obs = {name: torch.zeros(1, history, width, device=device) for name, width in OBS_GROUPS.items()}
    pad_mask = torch.zeros(1, history, dtype=torch.bool, device=device)
    target = torch.zeros(1, ACTION_DIM, device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        loss, _ = policy.loss(obs, pad_mask, target)
        loss.backward()
    policy.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())
