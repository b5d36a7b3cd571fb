"""The `ast-robot` command line.

Each subcommand is a pair of functions: one adds its arguments to an argparse parser, the other
loads what it needs and calls one library function. Heavy imports (torch, mujoco, rclpy) happen
inside the run functions, so `ast-robot --help` and `config show` start fast and the core works
without the optional extras.

Errors derived from `AstRobotError` reach the user as one line on stderr and exit code 2; the
traceback is shown only with ``-v``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from ast_robot import __version__
from ast_robot.errors import AstRobotError
from ast_robot.logging_setup import setup_logging

logger = logging.getLogger(__name__)

EXIT_USAGE_ERROR = 2
EXIT_INTERRUPTED = 130


def add_config_source_arguments(parser: argparse.ArgumentParser, *, default_env: str | None = None) -> None:
    """Add ``--env``, ``--config`` and repeatable ``--set`` to a subcommand."""
    source = parser.add_mutually_exclusive_group(required=default_env is None)
    source.add_argument(
        "--env",
        default=default_env,
        help="task name (pick_place, reach, push); loads the packaged configs/<task>.yaml",
    )
    source.add_argument("--config", help="path of a YAML config file to load instead of a task file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set gate.target_rate=0.1 (repeatable; values are YAML)",
    )


def load_config_from_args(args: argparse.Namespace):
    """Load the config named by ``--env``/``--config`` with the ``--set`` overrides applied."""
    from ast_robot.config import load_config

    if args.config:
        return load_config(args.config, args.overrides)
    return load_config(env=args.env, overrides=args.overrides)


# ---------------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------------


def _add_config_parser(subparsers) -> None:
    parser = subparsers.add_parser("config", help="inspect configuration")
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="print the resolved config of a task with overrides applied")
    add_config_source_arguments(show)
    show.add_argument("--no-comments", action="store_true", help="omit help and unit comments")
    show.set_defaults(run=_run_config_show)


def _run_config_show(args: argparse.Namespace) -> int:
    from ast_robot.config import dump_yaml

    config = load_config_from_args(args)
    sys.stdout.write(dump_yaml(config, comments=not args.no_comments))
    return 0


# ---------------------------------------------------------------------------------------------
# train, eval, record-standin
# ---------------------------------------------------------------------------------------------


def _add_train_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a policy in simulation, steered by real-robot logs",
        description="Train a policy: collect DAgger rollouts, score and gate them, update the "
        "transformer on admitted episodes and the proxy on the rest, evaluate and checkpoint.",
    )
    add_config_source_arguments(parser, default_env="pick_place")
    parser.add_argument("--real-log", metavar="DIR", help="directory of rosbag2 recordings from the robot")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--run-name", help="name of the run directory under runs/")
    where.add_argument("--run-dir", help="path of the run directory (default: runs/<task>-<UTC time>)")
    where.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    parser.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda"],
        help="device of the model updates (default: auto, CUDA when present)",
    )
    parser.add_argument(
        "--gate", choices=["on", "off", "random"],
        help="on: gate by significance; off: every episode updates the transformer; random: the "
        "same share at random (default: gate.mode from the config)",
    )
    parser.add_argument(
        "--workers", type=int, help="rollout processes (default: train.workers, the CPU count when null)"
    )
    parser.add_argument(
        "--rollout", choices=["local", "ray"], default="local",
        help="rollout backend: local worker processes, or Ray actors on a cluster (needs the "
        "distributed extra; --workers then counts actors, default: every CPU of the cluster)",
    )
    parser.add_argument(
        "--ray-address", metavar="ADDRESS",
        help="Ray cluster for --rollout ray: auto (the cluster started on this machine with `ray "
        "start`), HOST:PORT of the head's GCS, or ray://HOST:PORT (Ray Client); default: start a "
        "local Ray instance sized to this machine",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--algo", choices=["dagger", "ppo", "sac"], default="dagger",
        help="dagger: imitation of the scripted expert; ppo, sac: reinforcement learning with "
        "stable-baselines3 (needs the sb3 extra; settings in the rl section) (default: dagger)",
    )
    parser.set_defaults(run=lambda args: _run_train(args) if args.algo == "dagger" else _run_train_rl(args))


def _run_train_rl(args: argparse.Namespace) -> int:
    from ast_robot.errors import TrainError
    from ast_robot.rl import train_rl

    if args.rollout != "local" or args.ray_address is not None:
        raise TrainError(f"--algo {args.algo} steps its environments itself; drop --rollout and --ray-address")
    config = load_config_from_args(args)
    run_dir = _run_dir_from_args(args)
    summary = train_rl(
        config, algo=args.algo, real_log=args.real_log, run_dir=run_dir, resume=args.resume, device=args.device,
        gate_mode=args.gate, workers=args.workers, progress=not args.no_progress,
    )
    final = summary["final_eval"]
    sys.stdout.write(
        f"run: {summary['run_dir']}\n"
        f"iterations: {summary['iterations_completed']}/{summary['iterations']}"
        f"{' (interrupted)' if summary['interrupted'] else ''}\n"
        f"success: sim {final.get('success_sim', float('nan')):.2f}, "
        f"randomized {final.get('success_randomized', float('nan')):.2f}, "
        f"reality {final.get('success_reality', float('nan')):.2f}\n"
        f"best checkpoint: {summary['checkpoints']['best']}\n"
    )
    return EXIT_INTERRUPTED if summary["interrupted"] else 0


def _ray_backend(args: argparse.Namespace, config):
    """Build the Ray rollout backend for ``--rollout ray``, or return None so `train` starts its local pool."""
    from pathlib import Path

    from ast_robot.errors import RolloutError

    if args.rollout != "ray":
        if args.ray_address is not None:
            raise RolloutError("--ray-address needs --rollout ray")
        return None
    from ast_robot.config import load_config
    from ast_robot.train.ray_pool import RayPool

    if args.resume:
        config = load_config(Path(args.resume) / "config.yaml")  # a resumed run keeps its settings
    workers = args.workers if args.workers is not None else config.train.workers
    return RayPool(config.env, config.randomization, config.policy, workers, address=args.ray_address)


def _run_dir_from_args(args: argparse.Namespace):
    """The run directory named by --run-name (a single folder under runs/) or --run-dir."""
    from pathlib import Path

    from ast_robot.errors import RunDirError

    if args.run_name is None:
        return args.run_dir
    name = args.run_name
    if not name.strip():
        raise RunDirError("--run-name is empty; give a folder name such as reach-baseline")
    if name in (".", "..") or "/" in name or "\\" in name:
        raise RunDirError(
            f"--run-name {name!r} is not a plain folder name; it names a folder under runs/ and may "
            "not contain '/' or be '.' or '..' (use --run-dir for another location)"
        )
    return Path("runs") / name


def _run_train(args: argparse.Namespace) -> int:
    from ast_robot.train.trainer import train

    config = load_config_from_args(args)
    if args.resume and (args.overrides or args.gate):
        logger.warning("--set and --gate are ignored with --resume: the run continues with its saved config")
    run_dir = _run_dir_from_args(args)
    backend = _ray_backend(args, config)
    try:
        summary = train(
            config, real_log=args.real_log, run_dir=run_dir, resume=args.resume, device=args.device,
            gate_mode=args.gate, workers=args.workers, backend=backend, progress=not args.no_progress,
        )
    finally:
        if backend is not None:
            backend.close()
    final = summary["final_eval"]
    sys.stdout.write(
        f"run: {summary['run_dir']}\n"
        f"iterations: {summary['iterations_completed']}/{summary['iterations']}"
        f"{' (interrupted)' if summary['interrupted'] else ''}\n"
        f"success: sim {final.get('success_sim', float('nan')):.2f}, "
        f"randomized {final.get('success_randomized', float('nan')):.2f}, "
        f"reality {final.get('success_reality', float('nan')):.2f}\n"
        f"best checkpoint: {summary['checkpoints']['best']}\n"
    )
    return EXIT_INTERRUPTED if summary["interrupted"] else 0


def _add_eval_parser(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a training checkpoint on fixed seeds")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint file, e.g. runs/NAME/checkpoints/best.pt")
    parser.add_argument("--reality", help="reality profile YAML (default: the run's train.eval_reality)")
    parser.add_argument("--episodes", type=int, help="episodes per setting (default: train.eval_episodes)")
    parser.add_argument("--workers", type=int, help="rollout processes (default: the run's train.workers)")
    parser.add_argument("--env", help="task the checkpoint must have been trained on (default: not checked)")
    parser.set_defaults(run=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    import json

    from ast_robot.train.policy_io import evaluate_checkpoint

    results = evaluate_checkpoint(
        args.checkpoint, reality=args.reality, episodes=args.episodes, workers=args.workers, task=args.env
    )
    sys.stdout.write(json.dumps(results, indent=2) + "\n")
    return 0


def _add_record_standin_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "record-standin",
        help="record rosbag2 logs from the stand-in robot (a simulator running a reality profile)",
    )
    add_config_source_arguments(parser, default_env="pick_place")
    parser.add_argument("--out", required=True, help="directory the bags are written to")
    parser.add_argument("--episodes", type=int, default=20, help="episodes to record (default: 20)")
    parser.add_argument("--checkpoint", help="drive the robot with this training checkpoint instead of the expert")
    parser.add_argument(
        "--reality", default="configs/reality/standin.yaml",
        help="reality profile YAML of the stand-in robot (default: configs/reality/standin.yaml)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the episodes and mistakes (default: 0)")
    parser.add_argument("--episodes-per-bag", type=int, default=5, help="episodes per bag (default: 5)")
    parser.add_argument(
        "--ros", action="store_true",
        help="drive the stand-in through ROS2: the stand-in robot node and the bridge node run in this "
        "process, the bridge records one bag per episode (needs the ros extra and --checkpoint)",
    )
    parser.add_argument(
        "--robot", default="configs/robots/standin.yaml",
        help="topic map of the stand-in robot for --ros (default: configs/robots/standin.yaml)",
    )
    parser.set_defaults(run=_run_record_standin)


def _run_record_standin(args: argparse.Namespace) -> int:
    from ast_robot.train.standin import record_standin

    if args.ros:
        return _run_record_standin_ros(args)
    config = load_config_from_args(args)
    summary = record_standin(
        args.out, config, episodes=args.episodes, seed=args.seed, checkpoint=args.checkpoint,
        reality=args.reality, episodes_per_bag=args.episodes_per_bag,
    )
    sys.stdout.write(
        f"recorded {summary['episodes']} episodes in {len(summary['bags'])} bags under {args.out}: "
        f"{summary['successes']} successes, {summary['episodes_with_interventions']} with interventions\n"
    )
    return 0


def _run_record_standin_ros(args: argparse.Namespace) -> int:
    """Record the stand-in robot through the ROS2 topics and the bridge node's safety layer."""
    from ast_robot.errors import StandinError

    if not args.checkpoint:
        raise StandinError("record-standin --ros needs --checkpoint: the bridge node runs a trained policy")
    if args.episodes < 1:
        raise StandinError(f"--episodes {args.episodes}: invalid value; expected at least 1 episode")
    # Imported first, so a missing 'ros' extra is reported before the checkpoint is loaded.
    from ast_robot.real_bridge.standin_robot import SupervisorSettings, record_standin_ros
    from ast_robot.real_bridge.topic_map import RobotMap

    config = load_config_from_args(args)
    robot_map = RobotMap.load(args.robot)
    policy, history = _load_policy(args.checkpoint, robot_map)
    summary = record_standin_ros(
        args.out, config, policy, history_steps=history, episodes=args.episodes, robot_map=robot_map,
        reality=args.reality, seed=args.seed, supervisor=SupervisorSettings(),
    )
    sys.stdout.write(
        f"recorded {summary['episodes']} episodes through ROS2 under {args.out}: "
        f"{summary['successes']} successes, {summary['episodes_with_interventions']} with interventions\n"
    )
    return 0


# ---------------------------------------------------------------------------------------------
# vision
# ---------------------------------------------------------------------------------------------


def _add_vision_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "vision",
        help="train the sparse ViT on CIFAR-10 with per-image gating",
        description="Train a sparse-attention ViT on a CIFAR-10 python directory. The significance "
        "gate decides per image whether it goes through the ViT's forward and backward; skipped "
        "images train a small CNN proxy. Prints one line per epoch and writes metrics and "
        "checkpoints to the run directory.",
    )
    parser.add_argument(
        "--data-dir", required=True, metavar="DIR",
        help="CIFAR-10 python directory (data_batch_1..5, test_batch), e.g. cifar-10-batches-py",
    )
    parser.add_argument("--config", help="YAML config file (default: the built-in defaults)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one setting, e.g. --set vision.batch_size=128 (repeatable; values are YAML)",
    )
    parser.add_argument("--epochs", type=int, help="training epochs (default: vision.epochs)")
    parser.add_argument(
        "--gate", choices=["on", "off", "random"],
        help="on: gate by significance; off: every image goes through the ViT; random: the same "
        "share at random (default: gate.mode from the config)",
    )
    parser.add_argument(
        "--device", default="auto", choices=["auto", "cpu", "cuda"],
        help="training device (default: auto, CUDA when present)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--run-dir", help="path of the run directory (default: runs/vision-<UTC time>)")
    where.add_argument(
        "--resume", metavar="RUN_DIR",
        help="continue a run from its last checkpoint, with the config saved in it",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(run=_run_vision)


def _run_vision(args: argparse.Namespace) -> int:
    from ast_robot.vision.trainer import run_vision

    summary = run_vision(
        data_dir=args.data_dir, config_path=args.config, overrides=args.overrides, epochs=args.epochs,
        gate_mode=args.gate, device=args.device, run_dir=args.resume or args.run_dir,
        resume=args.resume is not None, progress=not args.no_progress,
    )
    sys.stdout.write(
        f"run: {summary['run_dir']}\n"
        f"epochs: {summary['epochs']}, gate {summary['gate_mode']}\n"
        f"validation accuracy: best {100 * summary['best_accuracy']:.2f}%, "
        f"final {100 * summary['final_accuracy']:.2f}%\n"
    )
    return 0


# ---------------------------------------------------------------------------------------------
# logs
# ---------------------------------------------------------------------------------------------


def _add_logs_parser(subparsers) -> None:
    parser = subparsers.add_parser("logs", help="inspect real-robot rosbag2 logs")
    actions = parser.add_subparsers(dest="logs_command", metavar="ACTION", required=True)
    inspect = actions.add_parser(
        "inspect",
        help="per bag: storage, topics with counts and rates, episodes, interventions, peak force, problems",
    )
    inspect.add_argument("path", help="a bag directory, a .mcap / .db3 file, or a directory searched recursively")
    inspect.add_argument(
        "--robot", help="topic map YAML (default: logs.robot of the config, configs/robots/standin.yaml)"
    )
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")
    add_config_source_arguments(inspect, default_env="pick_place")
    inspect.set_defaults(run=_run_logs_inspect)


def _option_path(value: str, option: str):
    """Resolve a file path given by `option` (a flag or config key) like a config path.

    Raises:
        ConfigError: The file does not exist; the message names the option and the path.
    """
    from ast_robot.config import resolve_config_path
    from ast_robot.errors import ConfigError

    try:
        return resolve_config_path(value)
    except ConfigError as error:
        raise ConfigError(
            f"{option}: file {value!r} does not exist (looked in the working directory and the packaged "
            "configs directory)"
        ) from error


def _load_robot_map(value: str, option: str):
    """Load the topic map `option` names, failing with the option and path when it is missing."""
    from ast_robot.real_bridge.topic_map import RobotMap

    return RobotMap.load(_option_path(value, option))


def _run_logs_inspect(args: argparse.Namespace) -> int:
    from ast_robot.real_bridge.log_report import as_json, format_table, inspect_logs

    config = load_config_from_args(args)
    if args.robot:
        robot_map = _load_robot_map(args.robot, "--robot")
    else:
        robot_map = _load_robot_map(config.logs.robot, "logs.robot")
    report = inspect_logs(args.path, robot_map, config.logs)
    sys.stdout.write(as_json(report) + "\n" if args.json else format_table(report))
    if report.summary.bags_read == 0:
        # The report above lists why each recording was skipped; a script must not read it as fine.
        sys.stderr.write(
            f"ast-robot: error: none of the {report.summary.bags_found} recording(s) under {args.path} "
            "could be read; see the problems in the report\n"
        )
        return 2
    return 0


# ---------------------------------------------------------------------------------------------
# bridge, standin-robot, replay
# ---------------------------------------------------------------------------------------------


def _load_policy(checkpoint: str, robot_map):
    """Load a policy from a training checkpoint (``.pt``) or a saved policy (``.safetensors``).

    Returns the policy (CPU, eval mode) and its history length H, and warns when the policy was
    trained with another action scale than the robot map's.
    """
    from pathlib import Path

    if Path(checkpoint).suffix == ".pt":
        from ast_robot.train.checkpoint import load_checkpoint
        from ast_robot.train.policy_io import config_from_checkpoint, policy_from_checkpoint

        state = load_checkpoint(checkpoint)
        policy, history = policy_from_checkpoint(state)
        trained_scale = config_from_checkpoint(state).env.max_ee_speed_m_s
        if abs(trained_scale - robot_map.linear_scale_m_s) > 1e-9:
            logger.warning(
                "the policy was trained with env.max_ee_speed_m_s=%g m/s but robot map %s sets "
                "command.linear_scale_m_s=%g m/s; its commands will be scaled differently",
                trained_scale, robot_map.name, robot_map.linear_scale_m_s,
            )
        return policy, history

    from ast_robot.policy import TransformerPolicy

    policy = TransformerPolicy.load(checkpoint, map_location="cpu").eval()
    return policy, policy.cfg.history


def _add_bridge_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "bridge", help="run a policy on a robot through ROS2, behind watchdog, workspace, speed and force limits",
    )
    add_config_source_arguments(parser, default_env="pick_place")
    parser.add_argument(
        "--checkpoint", required=True, help="training checkpoint (.pt) or saved policy (.safetensors)"
    )
    parser.add_argument(
        "--robot", default="configs/robots/standin.yaml",
        help="topic map of the robot (default: configs/robots/standin.yaml)",
    )
    parser.add_argument("--record", metavar="DIR", help="record one rosbag2 bag per episode under DIR")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="bag storage (default: mcap)")
    parser.add_argument(
        "--arm", action="store_true", help="arm at start instead of waiting for ~/arm or the operator topic"
    )
    parser.add_argument(
        "--duration", type=float, metavar="S", help="stop after S seconds (default: run until SIGINT or SIGTERM)"
    )
    parser.set_defaults(run=_run_bridge)


def _run_bridge(args: argparse.Namespace) -> int:
    import json

    # Imported first, so a missing 'ros' extra is reported before the checkpoint is loaded.
    from ast_robot.real_bridge.ros2_node import run_bridge
    from ast_robot.real_bridge.topic_map import RobotMap

    config = load_config_from_args(args)
    robot_map = RobotMap.load(args.robot)
    policy, history = _load_policy(args.checkpoint, robot_map)
    summary = run_bridge(
        policy, robot_map, config.bridge, history_steps=history, record_dir=args.record,
        storage=args.storage, duration_s=args.duration, arm=args.arm,
    )
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


def _add_standin_robot_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "standin-robot", help="serve a simulated arm (a reality profile) on the ROS2 topics of a real one",
    )
    add_config_source_arguments(parser, default_env="pick_place")
    parser.add_argument(
        "--reality", default="configs/reality/standin.yaml",
        help="reality profile YAML of the simulated robot (default: configs/reality/standin.yaml)",
    )
    parser.add_argument(
        "--robot", default="configs/robots/standin.yaml",
        help="topic map to serve (default: configs/robots/standin.yaml)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the first scene (default: 0)")
    parser.add_argument(
        "--supervise", action="store_true",
        help="run a scripted supervisor that takes over (intervention + teleop topics) when commands go astray",
    )
    parser.add_argument(
        "--duration", type=float, metavar="S", help="stop after S seconds (default: run until SIGINT or SIGTERM)"
    )
    parser.set_defaults(run=_run_standin_robot)


def _run_standin_robot(args: argparse.Namespace) -> int:
    import json

    from ast_robot.real_bridge.standin_robot import SupervisorSettings, run_standin_robot
    from ast_robot.real_bridge.topic_map import RobotMap

    config = load_config_from_args(args)
    summary = run_standin_robot(
        RobotMap.load(args.robot), config.env, reality=args.reality, seed=args.seed,
        duration_s=args.duration, supervisor=SupervisorSettings() if args.supervise else None,
        teleop_topic=config.bridge.teleop_topic,
    )
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


def _add_replay_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "replay", help="test a policy on recorded logs through the bridge's own pipeline, or replay logs in sim",
    )
    parser.add_argument("logs", help="a bag, a storage file, or a directory searched recursively")
    add_config_source_arguments(parser, default_env="pick_place")
    parser.add_argument(
        "--checkpoint", help="training checkpoint (.pt) or saved policy (.safetensors); required without --sim"
    )
    parser.add_argument(
        "--robot", default="configs/robots/standin.yaml", help="topic map of the logs (default: configs/robots/standin.yaml)"
    )
    parser.add_argument(
        "--threshold", type=float, default=0.1,
        help="command error in normalized units that counts as diverging (default: 0.1)",
    )
    parser.add_argument(
        "--sim", action="store_true",
        help="replay the logged commands open loop in simulation and report the trajectory gap (open loop, "
        "the profile's noise and latency can turn a logged success into a miss)",
    )
    parser.add_argument(
        "--reality", default="configs/reality/standin.yaml",
        help="physics profile for --sim (default: configs/reality/standin.yaml; 'none' for nominal physics)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=_run_replay)


def _run_replay(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from ast_robot.errors import ConfigError
    from ast_robot.real_bridge.replay import (
        format_report, format_sim_report, replay_in_sim, replay_logs, sim_summary,
    )

    config = load_config_from_args(args)
    robot_map = _load_robot_map(args.robot, "--robot")
    if args.sim:
        reality = None if args.reality.lower() == "none" else str(_option_path(args.reality, "--reality"))
        results, problems = replay_in_sim(args.logs, robot_map, config.env, reality=reality, logs_cfg=config.logs)
        if args.json:
            payload = {
                "episodes": [dataclasses.asdict(item) for item in results],
                "summary": sim_summary(results),
                "problems": [problem.as_dict() for problem in problems],
            }
            sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        else:
            sys.stdout.write(format_sim_report(results, problems))
        return 0

    if args.checkpoint is None:
        raise ConfigError("replay needs --checkpoint (the policy to test), or --sim to replay the logged commands")
    policy, history = _load_policy(args.checkpoint, robot_map)
    report = replay_logs(
        args.logs, policy, robot_map, config.bridge, history_steps=history, divergence_threshold=args.threshold
    )
    sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n" if args.json else format_report(report))
    return 0


# ---------------------------------------------------------------------------------------------
# Parser and entry point
# ---------------------------------------------------------------------------------------------

SUBCOMMANDS: list[Callable] = [
    _add_config_parser, _add_train_parser, _add_eval_parser, _add_record_standin_parser, _add_vision_parser,
    _add_logs_parser, _add_bridge_parser, _add_standin_robot_parser, _add_replay_parser,
]
"""Functions that each add one subcommand; every subcommand sets ``run`` as its default."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ast-robot",
        description="Train robot policies in simulation, steered by real-robot logs.",
    )
    parser.add_argument("--version", action="version", version=f"ast-robot {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging and full tracebacks on errors"
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="logging level (default: INFO; -v sets DEBUG)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add_subcommand in SUBCOMMANDS:
        add_subcommand(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging("DEBUG" if args.verbose else args.log_level)
    try:
        return int(args.run(args) or 0)
    except AstRobotError as error:
        if args.verbose:
            logger.exception("command failed")
        print(f"ast-robot: error: {error}", file=sys.stderr)
        return EXIT_USAGE_ERROR
    except KeyboardInterrupt:
        print("ast-robot: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
