"""Problems found while reading logs, and the exception that skips one bag."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Problem:
    """One thing found wrong (or worth knowing) in a recording.

    Attributes:
        bag: Path of the bag directory or storage file.
        kind: Short machine-readable category, e.g. ``gap``, ``clock_jump``, ``unsorted``,
            ``zero_stamps``, ``empty_episode``, ``unreadable``.
        message: What was found and what was done about it.
        topic: Topic concerned, or None for the whole bag.
        time_ns: Bag timestamp in nanoseconds where it happened, or None.
        episode: Episode index inside the bag, or None.
    """

    bag: str
    kind: str
    message: str
    topic: str | None = None
    time_ns: int | None = None
    episode: int | None = None

    @property
    def time(self) -> float | None:
        """`time_ns` in seconds, or None."""
        return None if self.time_ns is None else self.time_ns / 1e9

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        where = [self.bag]
        if self.topic:
            where.append(self.topic)
        if self.time_ns is not None:
            where.append(f"t={self.time_ns / 1e9:.3f} s")
        if self.episode is not None:
            where.append(f"episode {self.episode}")
        return f"[{self.kind}] {', '.join(where)}: {self.message}"


class BagSkipped(Exception):
    """A bag cannot be used at all; it is reported as a `Problem` and the other bags still load."""

    def __init__(self, kind: str, message: str, *, topic: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.topic = topic
