"""Exception classes shared across ast-robot.

Every subsystem raises its own subclass of `AstRobotError`, so the command line can report any of
them as one clear line while unexpected errors keep their traceback.
"""


class AstRobotError(Exception):
    """Base class for errors that reach the user as a one-line message."""


class ConfigError(AstRobotError, ValueError):
    """A configuration file, key or value is invalid."""


class EpisodeError(AstRobotError, ValueError):
    """An `Episode` was built from arrays that disagree in shape, dtype or content."""


class LogReadError(AstRobotError):
    """A rosbag2 recording could not be read or mapped."""


class LogWriteError(AstRobotError):
    """A rosbag2 recording could not be written."""


class SignificanceError(AstRobotError, ValueError):
    """Significance inputs or real-robot feedback data have the wrong shape or invalid values."""


class GateError(AstRobotError, ValueError):
    """The Sundew gate received invalid scores or costs, or a state it cannot restore."""


class EnvError(AstRobotError):
    """A simulation task could not be created, randomized or rendered."""


class CheckpointError(AstRobotError):
    """A checkpoint or saved model could not be written or loaded."""


class BridgeError(AstRobotError):
    """The ROS2 bridge could not start or lost a required resource."""


class DatasetError(AstRobotError):
    """An image dataset file is missing, empty, truncated or has the wrong shape or labels."""


class MissingExtraError(AstRobotError, ImportError):
    """An optional dependency group (`ros`, `sb3`, `distributed`) is not installed."""

    def __init__(self, extra: str, module: str, feature: str):
        super().__init__(
            f"{feature} needs the '{module}' module from the '{extra}' extra, which is not installed; "
            f"install it with: pip install 'ast-robot[{extra}]'"
        )
        self.extra = extra
        self.module = module


class RolloutError(AstRobotError):
    """A rollout worker failed or stopped while producing episodes."""


class TrainError(AstRobotError):
    """A training run could not start, resume or continue."""


class RunDirError(AstRobotError):
    """A run directory cannot be used: it is not a directory, or it contains other files."""


class StandinError(AstRobotError, ValueError):
    """A stand-in robot recording cannot start: bad counts, output path or checkpoint."""


class EvalError(AstRobotError, ValueError):
    """An evaluation cannot run with the given settings."""
