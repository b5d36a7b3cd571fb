"""The RL training loop: SB3 learns in chunks, and after each chunk we evaluate and checkpoint.

One iteration is ``rl.steps_per_env`` environment steps in each of ``rl.n_envs`` environments,
with the gate judging every episode that ends (see `ast_robot.rl.gated`). PPO updates once per
iteration on the admitted transitions; SAC updates as admitted episodes arrive. After every
iteration the actor is exported as a `TransformerPolicy` and, every ``train.eval_every``
iterations, evaluated alone on the fixed seeds of `ast_robot.train.evaluate`, the same
evaluation `ast-robot eval` runs on the checkpoint.

The run directory has the layout of a DAgger run (config.yaml, metrics.jsonl/csv, summary.json,
plots, checkpoints/last.pt and best.pt). A checkpoint contains what `ast-robot eval` reads:
``config``, ``iteration`` and ``policy``, the exported transformer with the observation
statistics in its normalizer. It also contains the SB3 state needed to resume: network and
optimizer parameters, the observation normalizer, the significance model and gate, the SAC
replay buffer and the random number generator states. Episodes running when a checkpoint is written are not kept: a resumed
run starts fresh episodes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import numpy as np

from ast_robot.config import Config, config_from_dict, config_to_dict
from ast_robot.errors import CheckpointError, TrainError

logger = logging.getLogger(__name__)

ALGOS = ("ppo", "sac")


def train_rl(
    config: Config,
    *,
    algo: str,
    real_log: str | Path | None = None,
    run_dir: str | Path | None = None,
    resume: str | Path | None = None,
    device: str = "auto",
    gate_mode: str | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> dict:
    """Train with PPO or SAC from stable-baselines3 and return the run summary.

    Args:
        config: The resolved config (the `rl` section plus `train.iterations`, `train.seed` and
            the evaluation settings of `train`). Ignored when resuming.
        algo: ``ppo`` or ``sac``.
        real_log: Directory of rosbag2 recordings for the physical feedback, or None.
        run_dir: Where the run's files go; a new ``runs/<task>-<time>`` when None.
        resume: A run directory to continue from its ``checkpoints/last.pt``.
        device: ``auto``, ``cpu`` or ``cuda`` for the networks.
        gate_mode: ``on``, ``off`` or ``random``; overrides ``gate.mode`` when given.
        workers: Evaluation rollout processes (0: in this process); ``train.workers`` when None.
        progress: Show a progress bar.

    Raises:
        MissingExtraError: When stable-baselines3 (the `sb3` extra) is not installed.
        TrainError: On an unknown algorithm, a run directory that already contains a checkpoint,
            or a resume with another algorithm than the run's.
    """
    from ast_robot.rl.sb3 import require_sb3

    require_sb3()
    if algo not in ALGOS:
        raise TrainError(f"--algo {algo!r} is not a reinforcement learning algorithm; choose one of {ALGOS}")
    trainer = RLTrainer.create(
        config, algo=algo, real_log=real_log, run_dir=run_dir, resume=resume, device=device,
        gate_mode=gate_mode, workers=workers,
    )
    return trainer.run(progress=progress)


def make_env_fns(config: Config, n_envs: int):
    """Return factories of the run's task env, one per vectorized environment."""
    from ast_robot.envs import make_env

    def factory():
        return make_env(config.env.task, config.env, config.randomization)

    return [factory for _ in range(n_envs)]


def build_model(algo: str, venv, config: Config, scorer, *, device, seed: int):
    """Build the gated SB3 model with the transformer as features extractor."""
    import torch

    from ast_robot.rl.extractor import extractor_kwargs
    from ast_robot.rl.gated import GatedPPO, GatedSAC

    rl = config.rl
    policy_kwargs = extractor_kwargs(config.policy)
    common = dict(learning_rate=rl.learning_rate, gamma=rl.gamma, seed=seed, device=device, verbose=0)
    if algo == "ppo":
        policy_kwargs.update(
            net_arch=dict(pi=[], vf=list(rl.value_hidden)), log_std_init=rl.ppo_init_log_std, ortho_init=False
        )
        model = GatedPPO(
            "MultiInputPolicy", venv, scorer=scorer, n_steps=rl.steps_per_env, batch_size=rl.ppo_minibatch,
            n_epochs=rl.ppo_epochs, gae_lambda=rl.gae_lambda, clip_range=rl.ppo_clip_range,
            ent_coef=rl.ppo_ent_coef, vf_coef=rl.ppo_vf_coef, max_grad_norm=rl.max_grad_norm,
            policy_kwargs=policy_kwargs, **common,
        )
        with torch.no_grad():  # small initial actions, as SB3's orthogonal init would give
            torch.nn.init.orthogonal_(model.policy.action_net.weight, gain=0.01)
            model.policy.action_net.bias.zero_()
        return model
    policy_kwargs.update(net_arch=dict(pi=[], qf=list(rl.value_hidden)))
    return GatedSAC(
        "MultiInputPolicy", venv, scorer=scorer, updates_per_step=rl.sac_updates_per_step,
        buffer_size=rl.sac_buffer_steps, batch_size=rl.sac_batch_size, learning_starts=rl.sac_learning_starts,
        tau=rl.sac_tau, policy_kwargs=policy_kwargs, **common,
    )


class RLTrainer:
    """Every component of an RL run; `run` executes the remaining iterations."""

    def __init__(self, config: Config, algo: str, run, real, device, *, workers: int | None):
        import torch

        from ast_robot.rl.gated import EpisodeScorer
        from ast_robot.rl.wrappers import make_vec_env

        self.config = config
        self.algo = algo
        self.cfg = config.train
        self.run_dir = run
        self.real = real
        self.device = device
        self.workers = workers if workers is not None else self.cfg.workers
        self.real_log: str | None = None

        torch.set_num_threads(self.cfg.torch_threads)  # small networks: more threads contend for cores
        rl = config.rl
        self.venv = make_vec_env(
            make_env_fns(config, rl.n_envs), history=config.policy.history, clip=config.policy.obs_clip,
            subprocess=rl.vec_env == "subproc",
        )
        self.scorer = EpisodeScorer(config, None if real is None else real.feedback, seed=self.cfg.seed)
        self.model = build_model(algo, self.venv, config, self.scorer, device=device, seed=self.cfg.seed)

        self.iteration = 0
        self.wall_offset_s = 0.0
        self.wall_s = 0.0
        self.totals = {"compute/env_steps_total": 0, "compute/gradient_steps_total": 0,
                       "compute/admitted_steps_total": 0, "compute/skipped_steps_total": 0}
        self.best_success = -math.inf
        self.best_iteration: int | None = None
        self.last_eval: dict[str, float] = {}
        self.time_to_target: dict | None = None

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def create(cls, config: Config, *, algo, real_log, run_dir, resume, device, gate_mode, workers) -> RLTrainer:
        from ast_robot.policy.device import select_device
        from ast_robot.train.real_data import load_real_data
        from ast_robot.train.rundir import RunDir, default_run_dir

        try:
            torch_device = select_device(device)
        except ValueError as error:
            raise TrainError(f"--device {device}: {error}") from error
        if resume is not None:
            return cls._resume(Path(resume), algo=algo, real_log=real_log, device=torch_device, workers=workers)

        if gate_mode is not None:
            config = dataclasses.replace(config, gate=dataclasses.replace(config.gate, mode=gate_mode))
        if algo == "sac" and config.policy.action_squash != "tanh":
            # SAC's deterministic action is tanh of its Gaussian mean; the exported policy must match.
            logger.info("SAC run: setting policy.action_squash=tanh")
            config = dataclasses.replace(config, policy=dataclasses.replace(config.policy, action_squash="tanh"))
        real = load_real_data(real_log, config) if real_log is not None else None
        run = RunDir(run_dir if run_dir is not None else default_run_dir(config.env.task))
        if (run.checkpoints / "last.pt").exists():
            raise TrainError(
                f"run directory {run.path} already contains a checkpoint; continue it with --resume "
                f"{run.path} or choose another --run-dir"
            )
        run.create(config)
        if real is not None:
            real.write_report(run.path / "real_logs.json")
        logger.info("run directory: %s (algo %s, device %s, gate %s)", run.path, algo, torch_device, config.gate.mode)
        trainer = cls(config, algo, run, real, torch_device, workers=workers)
        trainer.real_log = str(Path(real_log).resolve()) if real_log is not None else None
        return trainer

    @classmethod
    def _resume(cls, path: Path, *, algo: str, real_log, device, workers) -> RLTrainer:
        from ast_robot.train.checkpoint import load_checkpoint
        from ast_robot.train.real_data import load_real_data
        from ast_robot.train.rundir import RunDir

        run = RunDir(path)
        state = load_checkpoint(run.checkpoints / "last.pt")
        saved_algo = state.get("algo", "dagger")
        if saved_algo != algo:
            raise TrainError(f"run {path} was trained with --algo {saved_algo}; resume it with --algo {saved_algo}")
        config = config_from_dict(state["config"], source_name=str(run.checkpoints / "last.pt"))
        real_log = state.get("real_log") if real_log is None else real_log
        real = load_real_data(real_log, config) if real_log is not None else None
        trainer = cls(config, algo, run, real, device, workers=workers)
        trainer.real_log = str(Path(real_log).resolve()) if real_log is not None else None
        trainer.load_state(state)
        run.reopen(trainer.iteration)
        logger.info("resuming %s after iteration %d", run.path, trainer.iteration)
        return trainer

    # -- the loop --------------------------------------------------------------------------

    def run(self, *, progress: bool = True) -> dict:
        from tqdm.auto import tqdm

        from ast_robot.train.workers import LocalProcessPool

        backend = LocalProcessPool(self.config.env, self.config.randomization, self.config.policy, workers=self.workers)
        interrupted = False
        session_start = time.perf_counter()
        bar = tqdm(total=self.cfg.iterations, initial=self.iteration, desc=f"train {self.algo}", unit="it",
                   disable=not progress, dynamic_ncols=True)
        try:
            while self.iteration < self.cfg.iterations:
                row = self.run_iteration(backend, session_start)
                bar.update(1)
                bar.set_postfix(success=f"{self.last_eval.get('success_sim', float('nan')):.2f}",
                                gate=f"{row['gate/activation_rate']:.2f}")
        except KeyboardInterrupt:
            interrupted = True
            logger.warning("interrupted; the last checkpoint is after iteration %d; resume with --resume %s",
                           self.iteration, self.run_dir.path)
        finally:
            bar.close()
            backend.close()
            self.venv.close()

        self.run_dir.write_plots()
        summary = self.summary(interrupted=interrupted)
        self.run_dir.write_summary(summary)
        return summary

    def run_iteration(self, backend, session_start: float) -> dict:
        """Collect and update for one iteration, evaluate when due, append metrics, checkpoint."""
        from ast_robot.train.checkpoint import save_checkpoint
        from ast_robot.train.evaluate import evaluate
        from ast_robot.train.workers import serialize_policy

        started = time.perf_counter()
        row: dict = {"iteration": self.iteration}
        model = self.model
        self.scorer.progress = self.iteration / self.cfg.iterations
        self.scorer.start_iteration()
        model.last_gradient_steps = 0
        steps_before = model.num_timesteps

        # 1. Collect and update (PPO: one rollout and one update; SAC: updates as episodes are admitted).
        budget = self.config.rl.steps_per_env * self.config.rl.n_envs
        model.learn(total_timesteps=budget, reset_num_timesteps=False, log_interval=None, progress_bar=False)
        learned = time.perf_counter()
        sb3_metrics = {key: float(value) for key, value in model.logger.name_to_value.items() if key.startswith("train/")}
        model.logger.name_to_value.clear()
        model.logger.name_to_count.clear()
        self.iteration += 1

        # 2. Export the actor and evaluate it alone now and then, and after the last iteration.
        policy = self.export_policy()
        evaluated = self.iteration % self.cfg.eval_every == 0 or self.iteration == self.cfg.iterations
        if evaluated:
            self.last_eval = evaluate(
                backend, serialize_policy(policy), episodes=self.cfg.eval_episodes, reality=self.cfg.eval_reality
            )
        eval_done = time.perf_counter()

        # 3. Metrics.
        gate_metrics = self.scorer.iteration_metrics()
        self.totals["compute/env_steps_total"] += model.num_timesteps - steps_before
        self.totals["compute/gradient_steps_total"] += model.last_gradient_steps
        self.totals["compute/admitted_steps_total"] += gate_metrics["compute/admitted_steps"]
        self.totals["compute/skipped_steps_total"] += gate_metrics["compute/skipped_steps"]
        wall_s = self.wall_offset_s + (eval_done - session_start)
        row.update({
            "time/wall_s": wall_s,
            "time/iteration_s": eval_done - started,
            "time/learn_s": learned - started,
            "time/eval_s": eval_done - learned,
            "rollout/steps": model.num_timesteps - steps_before,
            "gate/mode": self.config.gate.mode,
            **gate_metrics,
            "compute/gradient_steps": model.last_gradient_steps,
            **self.totals,
            **sb3_metrics,
            "eval/success_sim": self.last_eval.get("success_sim") if evaluated else None,
            "eval/success_randomized": self.last_eval.get("success_randomized") if evaluated else None,
            "eval/success_reality": self.last_eval.get("success_reality") if evaluated else None,
            "eval/return_sim": self.last_eval.get("return_sim") if evaluated else None,
        })

        # 4. Checkpoints.
        improved = False
        if evaluated:
            success = self.last_eval["success_sim"]
            if self.time_to_target is None and success >= self.cfg.target_success:
                self.time_to_target = {
                    "iteration": self.iteration, "wall_s": wall_s,
                    "env_steps": self.totals["compute/env_steps_total"],
                    "gradient_steps": self.totals["compute/gradient_steps_total"],
                }
            if success > self.best_success:
                self.best_success, self.best_iteration, improved = success, self.iteration, True
        self.wall_s = wall_s
        self.run_dir.append(row)
        state = self.state_dict(policy, wall_s)
        if improved:
            save_checkpoint({key: value for key, value in state.items() if key != "replay"},
                            self.run_dir.checkpoints / "best.pt")
        save_checkpoint(state, self.run_dir.checkpoints / "last.pt")
        return row

    def export_policy(self):
        from ast_robot.rl.extractor import export_policy

        return export_policy(self.model, self.venv.state_dict(), self.config.policy)

    # -- state -----------------------------------------------------------------------------

    def state_dict(self, policy, wall_s: float) -> dict:
        import torch

        model = self.model
        sb3 = {
            "params": model.get_parameters(),
            "num_timesteps": int(model.num_timesteps),
            "n_updates": int(model._n_updates),
            "gradient_steps_total": int(model.gradient_steps_total),
        }
        state = {
            "config": config_to_dict(self.config),
            "algo": self.algo,
            "real_log": self.real_log,
            "iteration": self.iteration,
            "wall_s": wall_s,
            "policy": policy.state_dict(),
            "obs_normalizer": self.venv.state_dict(),
            "sb3": sb3,
            "scorer": self.scorer.state_dict(),
            "rng": {"numpy": np.random.get_state(), "torch": torch.get_rng_state()},
            "totals": dict(self.totals),
            "best_success": self.best_success,
            "best_iteration": self.best_iteration,
            "last_eval": dict(self.last_eval),
            "time_to_target": self.time_to_target,
        }
        if self.algo == "sac":
            sb3["log_ent_coef"] = model.log_ent_coef.detach().cpu()
            sb3["update_credit"] = float(model.update_credit)
            state["replay"] = model.replay_buffer.contents()
        return state

    def load_state(self, state: dict) -> None:
        import torch

        model = self.model
        try:
            sb3 = state["sb3"]
            model.set_parameters(sb3["params"], exact_match=True, device=self.device)
            model.num_timesteps = int(sb3["num_timesteps"])
            model._n_updates = int(sb3["n_updates"])
            model.gradient_steps_total = int(sb3["gradient_steps_total"])
            self.venv.load_state_dict(state["obs_normalizer"])
            self.scorer.load_state_dict(state["scorer"])
            if self.algo == "sac":
                with torch.no_grad():
                    model.log_ent_coef.copy_(torch.as_tensor(sb3["log_ent_coef"]))
                model.update_credit = float(sb3["update_credit"])
                model.replay_buffer.load_contents(state["replay"])
            np.random.set_state(state["rng"]["numpy"])
            torch.set_rng_state(state["rng"]["torch"])
        except (KeyError, RuntimeError, ValueError) as error:
            raise CheckpointError(f"checkpoint of {self.run_dir.path} does not match this run: {error}") from error
        # New episodes after a resume come from seeds the run has not used yet.
        self.venv.seed(self.cfg.seed + model.num_timesteps)
        self.iteration = int(state["iteration"])
        self.wall_offset_s = self.wall_s = float(state["wall_s"])
        self.totals.update(state["totals"])
        self.best_success = float(state["best_success"])
        self.best_iteration = state["best_iteration"]
        self.last_eval = dict(state["last_eval"])
        self.time_to_target = state["time_to_target"]

    def summary(self, *, interrupted: bool) -> dict:
        from ast_robot.train.trainer import run_summary

        return {"algo": self.algo, **run_summary(self, interrupted=interrupted)}


def load_for_evaluation(checkpoint: str | Path, *, n_envs: int = 1, device: str = "cpu"):
    """Rebuild a checkpoint's SB3 model and its env with the saved statistics in evaluation mode.

    The observation statistics are loaded into `VecObservationNormalize` with ``training``
    False, so stepping the env leaves them unchanged.

    Returns:
        (model, venv): the gated SB3 model with the trained parameters, and its vectorized env.
    """
    from ast_robot.rl.gated import EpisodeScorer
    from ast_robot.rl.sb3 import require_sb3
    from ast_robot.rl.wrappers import make_vec_env
    from ast_robot.train.checkpoint import load_checkpoint

    require_sb3()
    state = load_checkpoint(checkpoint)
    algo = state.get("algo")
    if algo not in ALGOS:
        raise CheckpointError(f"{checkpoint} is a {algo or 'dagger'} checkpoint, not a PPO or SAC one")
    config = config_from_dict(state["config"], source_name=str(checkpoint))
    venv = make_vec_env(make_env_fns(config, n_envs), history=config.policy.history, clip=config.policy.obs_clip)
    venv.load_state_dict(state["obs_normalizer"])
    venv.training = False
    scorer = EpisodeScorer(config, None, seed=config.train.seed)
    model = build_model(algo, venv, config, scorer, device=device, seed=config.train.seed)
    model.set_parameters(state["sb3"]["params"], exact_match=True, device=device)
    return model, venv
