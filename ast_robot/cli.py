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
# Parser and entry point
# ---------------------------------------------------------------------------------------------

SUBCOMMANDS: list[Callable] = [_add_config_parser]
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
