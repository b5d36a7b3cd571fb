"""Finding rosbag2 recordings under a path.

A recording is one of:

- a bag directory: any directory holding ``metadata.yaml`` (its name may end in ``.db3``), with
  one or more storage files (split bags), MCAP or sqlite3, compressed or not;
- a standalone ``.mcap`` or ``.db3`` storage file outside a bag directory. Storage files in a
  directory without ``metadata.yaml`` (a recorder that was killed before writing it) are read
  one by one from storage, and a problem tells how to restore the metadata.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ast_robot.errors import LogReadError
from ast_robot.real_bridge.problems import Problem

STORAGE_SUFFIXES = (".mcap", ".db3")
COMPRESSED_SUFFIXES = (".mcap.zstd", ".db3.zstd")


@dataclass(frozen=True)
class BagSource:
    """One recording to read.

    Attributes:
        path: Bag directory or storage file.
        kind: ``"dir"`` for a bag directory with ``metadata.yaml``, ``"mcap"`` or ``"db3"`` for a
            standalone storage file.
    """

    path: Path
    kind: str

    @property
    def name(self) -> str:
        """Bag name used in episode ids and labels files: the directory or file name."""
        return self.path.name


def find_bags(path: str | Path) -> tuple[list[BagSource], list[Problem]]:
    """Find every recording under `path` (itself a bag, a storage file or a directory tree).

    Returns:
        The recordings in sorted path order, and problems about what was found (storage files
        without metadata, compressed files that cannot be read without it).

    Raises:
        LogReadError: `path` does not exist, or contains no recordings at all.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise LogReadError(f"log path {root} does not exist")

    bags: list[BagSource] = []
    problems: list[Problem] = []
    if root.is_file():
        _add_file(root, bags, problems, standalone=True)
    else:
        for directory, subdirs, files in os.walk(root, followlinks=False):
            here = Path(directory)
            if "metadata.yaml" in files:
                bags.append(BagSource(here, "dir"))
                subdirs.clear()
                continue
            subdirs.sort()
            storage = sorted(name for name in files if name.endswith(STORAGE_SUFFIXES + COMPRESSED_SUFFIXES))
            # ros2 bag names storage files <bag>_<index>.<ext>; rosbags writes <bag>.<ext>.
            looks_like_bag = any(
                name.startswith(f"{here.name}_") or name.split(".", 1)[0] == here.name for name in storage
            )
            if looks_like_bag:
                problems.append(
                    Problem(
                        str(here), "no_metadata",
                        f"bag directory has no metadata.yaml (was the recorder killed?); reading its "
                        f"{len(storage)} storage file(s) one by one; `ros2 bag reindex {here}` restores "
                        "the metadata so split files are read as one bag",
                    )
                )
            for name in storage:
                _add_file(here / name, bags, problems, standalone=not looks_like_bag)

    if not bags:
        raise LogReadError(
            f"no rosbag2 recordings found under {root}: expected bag directories with metadata.yaml, "
            f"or .mcap / .db3 files"
        )
    bags.sort(key=lambda bag: str(bag.path))
    return bags, problems


def _add_file(path: Path, bags: list[BagSource], problems: list[Problem], *, standalone: bool) -> None:
    name = path.name
    if name.endswith(COMPRESSED_SUFFIXES):
        problems.append(
            Problem(
                str(path), "unreadable",
                "compressed storage file without metadata.yaml is skipped; the compression is only "
                f"known from the bag's metadata: decompress it with `zstd -d {path}` or run "
                f"`ros2 bag reindex` on its directory",
            )
        )
        return
    if name.endswith(".mcap"):
        bags.append(BagSource(path, "mcap"))
    elif name.endswith(".db3"):
        bags.append(BagSource(path, "db3"))
    elif standalone:
        raise LogReadError(f"{path} is not a rosbag2 recording: expected a .mcap or .db3 file or a bag directory")
