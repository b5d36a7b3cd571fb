"""Rollouts on a Ray cluster, behind the same `RolloutBackend` interface as the local pool.

Each Ray actor wraps one `RolloutRunner`, the same per-worker code the local process pool runs, so
it owns its environments for its whole life and an episode is the same deterministic function of
its task on either backend. Per `collect` call:

- the policy weights go into the object store once (`ray.put`). An actor fetches them only when
  they differ from the weights it already holds. Each node's object store keeps one copy that
  its actors share, so the weights normally cross the network once per node;
- tasks are handed out one at a time to whichever actor is idle, and episodes stream back in
  completion order (`ray.wait`), so a slow actor holds up only its own task;
- an actor that dies is replaced by a new one and its unfinished task is re-run there. Results are
  counted per task index, so every task yields exactly one episode. Each retry is logged.

Ray is imported only when a `RayPool` is built; without the ``distributed`` extra that raises
`MissingExtraError` with the install command.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import socket
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ast_robot.episode import Episode
from ast_robot.errors import MissingExtraError, RolloutError
from ast_robot.train.workers import RolloutRunner, RolloutTask

if TYPE_CHECKING:
    from ast_robot.config import EnvConfig, PolicyConfig, RandomizationConfig

logger = logging.getLogger(__name__)

DEFAULT_MAX_TASK_ATTEMPTS = 3
"""Runs of one task (the first and its retries) before the pool gives up on it."""

DEFAULT_CONNECT_TIMEOUT_S = 5.0
"""How long the pool waits for a TCP connection to a cluster address before it reports it as
unreachable, in seconds. With Ray 2.60, `ray.init` gives up on a dead ray:// address after 30 s and
had not returned after 90 s for a dead GCS address."""

_LOOPBACK_ENV_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@dataclass
class CollectStats:
    """Counts and sizes of one `RayPool.collect` call.

    Attributes:
        tasks: Tasks in the call.
        retried: Task indices that were re-run after their actor died, once per retry.
        actors_replaced: Actors that died during the call and were replaced.
        weights_bytes: Size of the serialized policy weights, in bytes (0 without a policy).
        weights_put: Whether this call put the weights into the object store; False when the
            previous call's copy was reused because the weights had not changed.
        nodes: Distinct Ray nodes that run this pool's actors; each fetches the weights once.
        episode_bytes: Serialized size of the episodes received, in bytes.
    """

    tasks: int = 0
    retried: list[int] = field(default_factory=list)
    actors_replaced: int = 0
    weights_bytes: int = 0
    weights_put: bool = False
    nodes: int = 0
    episode_bytes: int = 0


class RolloutActor:
    """The body of one Ray actor: a `RolloutRunner` plus the key of the weights it holds.

    `RayPool` wraps this class with ``ray.remote``; it is a plain class so importing this module
    does not import Ray.
    """

    def __init__(self, env_cfg: EnvConfig, rand_cfg: RandomizationConfig | None, policy_cfg: PolicyConfig):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        self._runner = RolloutRunner(env_cfg, rand_cfg, policy_cfg)
        self._policy_key: str | None = None
        self._has_loaded = False

    def describe(self) -> tuple[str, int]:
        """Return the Ray node id this actor runs on and its process id."""
        import ray

        return ray.get_runtime_context().get_node_id(), os.getpid()

    def run(self, task: RolloutTask, policy_key: str | None, policy_box: list) -> dict:
        """Roll out `task` and return its episode as `Episode.to_arrays` output.

        `policy_box` holds the object reference of the weights inside a list, so Ray passes the
        reference instead of resolving it for every call. The actor fetches the weights only when
        `policy_key` differs from the key of the weights it already loaded.
        """
        import ray

        if not self._has_loaded or policy_key != self._policy_key:
            state = None if policy_box[0] is None else ray.get(policy_box[0])
            self._runner.load_policy(state)
            self._policy_key = policy_key
            self._has_loaded = True
        return self._runner.run(task).to_arrays()

    def close(self) -> None:
        self._runner.close()


class RayPool:
    """Rollout actors on a Ray cluster, or on a local Ray instance started for this pool.

    Args:
        env_cfg, rand_cfg, policy_cfg: Sections of the run's config that the actors need.
        workers: Number of actors, one CPU each; None uses every CPU of the cluster.
        address: None starts a local Ray instance sized to this machine (``workers`` CPUs, or
            all of them), bound to the loopback interface. ``"auto"`` connects to the cluster
            started on this machine with ``ray start``. ``"HOST:PORT"`` connects to a head
            node's GCS port (6379 by default), and ``"ray://HOST:PORT"`` connects through Ray
            Client (port 10001 by default). If Ray is already initialized in this process, the
            pool uses that instance and ignores `address`.
        max_task_attempts: Runs of one task (first run plus retries after actor deaths) before
            `collect` raises `RolloutError`.
        connect_timeout_s: TCP connect timeout of the reachability check of `address`, in seconds.

    Raises:
        MissingExtraError: When Ray is not installed.
        RolloutError: When the cluster is unreachable, `workers` is below 1, or the cluster has
            fewer CPUs than `workers`.
    """

    def __init__(
        self,
        env_cfg: EnvConfig,
        rand_cfg: RandomizationConfig | None,
        policy_cfg: PolicyConfig,
        workers: int | None = None,
        *,
        address: str | None = None,
        max_task_attempts: int = DEFAULT_MAX_TASK_ATTEMPTS,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    ):
        if workers is not None and workers < 1:
            raise RolloutError(f"the ray rollout backend needs workers >= 1 (--workers or train.workers), got {workers}")
        if max_task_attempts < 1:
            raise RolloutError(f"max_task_attempts must be >= 1, got {max_task_attempts}")
        self.max_task_attempts = max_task_attempts
        self.connect_timeout_s = connect_timeout_s
        self.last_stats = CollectStats()
        self._configs = (env_cfg, rand_cfg, policy_cfg)
        self._closed = False
        self._owns_ray = False
        self._actors: list[Any] = []
        self._actor_info: list[tuple[str, int] | None] = []
        self._in_flight: dict[Any, tuple[int, RolloutTask]] = {}
        self._policy_key: str | None = None
        self._policy_ref = None

        self._ray = _import_ray(address)
        self._connect(address, workers)
        cluster_cpus = int(self._ray.cluster_resources().get("CPU", 0))
        if workers is None:
            workers = max(1, cluster_cpus)
        if workers > cluster_cpus:
            self.close()
            raise RolloutError(
                f"{workers} ray rollout actors need {workers} CPUs but the Ray cluster has "
                f"{cluster_cpus}; lower --workers or add nodes with `ray start --address=...`"
            )
        self.num_workers = workers
        self._actor_class = self._ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(RolloutActor)
        self._actors = [self._start_actor() for _ in range(workers)]
        self._actor_info = [None] * workers
        logger.info("started %d ray rollout actors on a cluster with %d CPUs", workers, cluster_cpus)

    # -- connection ------------------------------------------------------------------------

    def _connect(self, address: str | None, workers: int | None) -> None:
        ray = self._ray
        if ray.is_initialized():
            ignored = f" (ignoring address {address})" if address is not None else ""
            logger.info("using the Ray instance already initialized in this process%s", ignored)
            return

        if address is None:
            num_cpus = workers if workers is not None else (os.cpu_count() or 1)
            ray.init(num_cpus=num_cpus, include_dashboard=False, configure_logging=False, log_to_driver=True)
            self._owns_ray = True
            logger.info("started a local Ray instance with %d CPUs", num_cpus)
            return

        if address != "auto":
            check_reachable(address, timeout_s=self.connect_timeout_s)
        try:
            ray.init(address=address, configure_logging=False, log_to_driver=True)
        except ConnectionError as error:
            if address == "auto":
                raise RolloutError(
                    "--ray-address auto found no running Ray cluster on this machine; start one with "
                    "`ray start --head`, pass the head's address, or omit --ray-address to start a "
                    "local Ray instance"
                ) from error
            hint = ""
            if "RAY_AUTH_MODE" not in os.environ:
                # `ray start` turns token authentication on by default (Ray 2.60), and a client that
                # connects by explicit address sends its token only when asked to.
                hint = (
                    "; if the cluster uses token authentication, set RAY_AUTH_MODE=token and provide "
                    "the cluster's token in RAY_AUTH_TOKEN or ~/.ray/auth_token"
                )
            raise RolloutError(f"could not connect to the Ray cluster at {address}: {error}{hint}") from error
        self._owns_ray = False
        logger.info("connected to the Ray cluster at %s", address)

    def _start_actor(self):
        env_cfg, rand_cfg, policy_cfg = self._configs
        # SPREAD places actors on as many nodes as have free CPUs, so load and network spread out.
        return self._actor_class.options(scheduling_strategy="SPREAD").remote(env_cfg, rand_cfg, policy_cfg)

    # -- rollouts --------------------------------------------------------------------------

    def collect(self, tasks: list[RolloutTask], policy_state: bytes | None) -> Iterator[Episode]:
        """Roll out every task once and yield its episode as soon as it finishes.

        Raises:
            RolloutError: When a task raises inside an actor, or its actor died on every one of
                `max_task_attempts` runs.
        """
        if self._closed:
            raise RolloutError("the ray rollout pool is closed")
        ray = self._ray
        stats = CollectStats(tasks=len(tasks))
        self.last_stats = stats
        self._put_policy(policy_state, stats)
        stats.nodes = len({node for node, _pid in self.actor_info()})

        # A collect call abandoned half-way leaves tasks in flight; their results are dropped.
        self._in_flight.clear()
        pending = deque(tasks)
        attempts = {task.index: 0 for task in tasks}
        done: set[int] = set()
        idle = deque(range(len(self._actors)))

        while pending or self._in_flight:
            while pending and idle:
                self._submit(idle.popleft(), pending.popleft(), attempts)
            ready, _ = ray.wait(list(self._in_flight), num_returns=1)
            slot, task = self._in_flight.pop(ready[0])
            idle.append(slot)
            try:
                arrays = ray.get(ready[0])
            except ray.exceptions.RayActorError as error:
                self._replace_actor(slot, task, error, attempts, stats)
                pending.appendleft(task)
                continue
            except ray.exceptions.RayTaskError as error:
                raise RolloutError(
                    f"ray rollout actor {slot} failed on task {task.index} (seed {task.seed}):\n{error}"
                ) from error

            # Hand out the next task before yielding, so the actor works while the caller does.
            while pending and idle:
                self._submit(idle.popleft(), pending.popleft(), attempts)
            if task.index in done:
                # Unreachable while each task has at most one run in flight; kept as a guard.
                logger.warning("dropped a second episode for task %d", task.index)
                continue
            done.add(task.index)
            stats.episode_bytes += len(pickle.dumps(arrays, protocol=pickle.HIGHEST_PROTOCOL))
            yield Episode.from_arrays(arrays)

        if stats.retried:
            logger.info(
                "collect finished: %d episodes, %d actors replaced, tasks re-run: %s",
                len(done), stats.actors_replaced, sorted(stats.retried),
            )

    def _put_policy(self, policy_state: bytes | None, stats: CollectStats) -> None:
        key = None if policy_state is None else hashlib.blake2b(policy_state, digest_size=16).hexdigest()
        stats.weights_bytes = 0 if policy_state is None else len(policy_state)
        if self._policy_ref is not None and key == self._policy_key:
            return
        self._policy_key = key
        self._policy_ref = None if policy_state is None else self._ray.put(policy_state)
        stats.weights_put = policy_state is not None

    def _submit(self, slot: int, task: RolloutTask, attempts: dict[int, int]) -> None:
        attempts[task.index] += 1
        ref = self._actors[slot].run.remote(task, self._policy_key, [self._policy_ref])
        self._in_flight[ref] = (slot, task)

    def _replace_actor(self, slot: int, task: RolloutTask, error: Exception, attempts: dict[int, int], stats) -> None:
        """Start a new actor in `slot` after its actor died running `task`; raise if `task` is out of attempts."""
        where = self._actor_info[slot]
        where_text = f"node {where[0][:12]}, pid {where[1]}" if where else "node unknown"
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__

        self._ray.kill(self._actors[slot], no_restart=True)
        # NOTE: when the dead actor's node left the cluster and no other node has a free CPU, the
        # replacement waits for one and this collect call waits with it.
        self._actors[slot] = self._start_actor()
        self._actor_info[slot] = None
        stats.actors_replaced += 1
        if attempts[task.index] >= self.max_task_attempts:
            raise RolloutError(
                f"task {task.index} (seed {task.seed}) lost its ray rollout actor on all "
                f"{attempts[task.index]} attempts; the last error was:\n{error}"
            ) from error

        stats.retried.append(task.index)
        logger.warning(
            "ray rollout actor %d (%s) died while running task %d (seed %d): %s; started a "
            "replacement actor and re-running the task (attempt %d of %d)",
            slot, where_text, task.index, task.seed, reason, attempts[task.index] + 1, self.max_task_attempts,
        )

    # -- introspection ---------------------------------------------------------------------

    def actor_info(self) -> list[tuple[str, int]]:
        """Return the (Ray node id, process id) of every actor, in slot order."""
        missing = [slot for slot, info in enumerate(self._actor_info) if info is None]
        if missing:
            found = self._ray.get([self._actors[slot].describe.remote() for slot in missing])
            for slot, info in zip(missing, found):
                self._actor_info[slot] = info
        return list(self._actor_info)

    def in_flight(self) -> dict[int, int]:
        """Return the task index each busy actor slot is running, ``{slot: task index}``."""
        return {slot: task.index for slot, task in self._in_flight.values()}

    # -- shutdown --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the actors, and the local Ray instance if this pool started it; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        ray = self._ray
        for actor in self._actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception as error:  # noqa: BLE001 - an actor that is already gone is fine
                logger.debug("could not kill a ray rollout actor: %s", error)
        self._actors.clear()
        self._in_flight.clear()
        self._policy_ref = None
        if self._owns_ray:
            ray.shutdown()
            logger.info("stopped the local Ray instance")

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _import_ray(address: str | None):
    """Import Ray, bound to the loopback interface when the pool will start a local instance.

    On Linux, Ray advertises the address of the default-route interface and listens on it. A local
    instance needs no other host, so before the first import the pool sets Ray's switch for
    single-machine clusters, which makes Ray use 127.0.0.1. That switch is read at import time;
    when Ray was imported earlier the caller's setting stays.
    """
    if address is None and "ray" not in sys.modules:
        os.environ.setdefault(_LOOPBACK_ENV_VAR, "0")
    try:
        import ray
    except ImportError as error:
        raise MissingExtraError("distributed", "ray", "the ray rollout backend (--rollout ray)") from error
    return ray


def check_reachable(address: str, *, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> None:
    """Raise `RolloutError` naming `address` unless a TCP connection to it opens in `timeout_s`.

    `address` is ``HOST:PORT`` or ``ray://HOST:PORT``; a ``ray://`` address without a port means
    the Ray Client default port 10001.
    """
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    default_port = 10001 if parts.scheme == "ray" else None
    try:
        host, port = parts.hostname, parts.port or default_port
    except ValueError as error:
        raise RolloutError(f"invalid Ray cluster address {address!r}: {error}") from error
    if not host or port is None:
        raise RolloutError(
            f"invalid Ray cluster address {address!r}; expected HOST:PORT, ray://HOST:PORT or auto"
        )
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as error:
        raise RolloutError(
            f"the Ray cluster at {address} is unreachable ({error}); check that the head node runs "
            f"(`ray start --head`) and that port {port} on {host} is open from this machine"
        ) from error
