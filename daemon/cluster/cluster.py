"""The front daemon's view of a Ray cluster: its workers, where models are resident, placement,
health, and the streams of jobs running on workers. The only module that imports Ray."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from daemon.cluster.items import ErrorItem, EndItem, JobSpec, LoadSettings, ModelInfo, StreamItem, WorkerInfo
from daemon.cluster.worker import ModelWorker
from protocol.errors import ModelUnavailable, RiffdError

log = logging.getLogger(__name__)

#: How often each worker is pinged: a dead one is marked lost, a restarted one rejoins.
PROBE_INTERVAL_S = 2.0
#: How often a job waiting on its worker's next item checks whether it was asked to stop.
STOP_POLL_S = 0.05
#: Items a worker may run ahead of the front before Ray pauses it (back-pressure): a few chunks,
#: so a slow consumer holds the worker back instead of piling audio up in the object store.
BACKPRESSURE_ITEMS = 8
#: A worker's threads: jobs sharing its decode steps, plus loads, pings and stops beside them.
CONTROL_THREADS = 4
#: Longest wait for the workers' first answer at start-up.
START_WAIT_S = 120.0


@dataclass(frozen=True)
class ClusterSettings:
    """Where the cluster is and what each worker takes of it (DaemonConfig's ray_* fields)."""

    address: str = ""  # "": start a local Ray instance; "auto": the cluster this machine is in; else HOST:PORT
    workers: int | None = None  # None: one per GPU of the cluster, at least one
    worker_cpus: float = 1.0
    worker_gpus: float | None = None  # None: one where the cluster has GPUs
    connect_timeout_s: float = 60.0
    call_timeout_s: float = 30.0
    load_timeout_s: float = 900.0
    stream_timeout_s: float = 300.0
    probe_interval_s: float = PROBE_INTERVAL_S


class WorkerGone(Exception):
    """A worker died, lost its node or stopped answering while the front waited on it."""

    def __init__(self, worker: str, node: str, reason: str) -> None:
        super().__init__(f"worker {worker} (node {node[:12] or '?'}): {reason}")
        self.worker, self.node, self.reason = worker, node, reason


@dataclass
class _Worker:
    name: str
    handle: Any  # ray.actor.ActorHandle of a ModelWorker
    pid: int = 0
    node_id: str = ""
    host: str = ""
    health: str = "starting"  # "ok", "lost" (dead or not answering; Ray restarts it) or "starting"
    models: dict[str, ModelInfo] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)  # job id -> model id: placed here, running or loading

    def describe(self) -> str:
        models = ",".join(self.models) or "-"
        jobs = ",".join(sorted(self.jobs)) or "-"
        return (f"{self.name} node={self.node_id[:12] or '?'} host={self.host or '?'} pid={self.pid or '?'} "
                f"health={self.health} load={len(self.jobs)} models={models} jobs={jobs}")


class RayCluster:
    """Workers on a Ray cluster; thread-safe (jobs run on the scheduler's threads)."""

    def __init__(self, settings: ClusterSettings, load_settings: LoadSettings) -> None:
        self.settings = settings
        self._load_settings = load_settings
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._prober: threading.Thread | None = None
        self._owner: threading.Thread | None = None
        self._leave = threading.Event()  # the owner thread leaves the cluster once set
        self._joined = threading.Event()  # ray.init returned (or failed); until then no Ray call is safe
        self._pinned: list[str] = []  # models named at start: on every worker, again after a restart
        self._ray: Any = None
        # Set by `close` when this machine's Ray node had died: Ray was not shut down (see _node_alive),
        # and cannot be at the interpreter's exit either; the process must end without its teardown.
        self.stranded = False

    def _own(self, failed: list[BaseException]) -> None:
        """Join the cluster (or start a local one), then stay until `close`: the Ray processes a local
        start makes die with the thread that started them (Linux's parent-death signal is per thread)."""
        ray = self._ray
        options: dict[str, Any] = dict(namespace="riffd", logging_level=logging.WARNING, log_to_driver=True)
        try:
            if self.settings.address:
                ray.init(address=self.settings.address, **options)
            else:
                ray.init(include_dashboard=False, **options)
        except BaseException as exc:  # noqa: BLE001 - handed to start(), which says it in riffd's terms
            failed.append(exc)
            self._joined.set()
            return
        self._joined.set()
        self._leave.wait()
        ray.shutdown()

    # Life cycle.
    def start(self) -> None:
        """Join (or start) the cluster, start the workers and wait until at least one answers."""
        import ray

        self._ray = ray
        started = time.perf_counter()
        failed: list[BaseException] = []
        where = self.settings.address or "(local)"
        log.info("Ray: joining the cluster %s (for up to %g s)", where, self.settings.connect_timeout_s)
        self._owner = threading.Thread(target=self._own, args=(failed,), name="riffd-ray", daemon=True)
        self._owner.start()
        # Ray itself retries a silent address for many minutes: a wrong --ray is told in seconds. The
        # owner thread is left inside ray.init (a daemon thread: it does not hold the process up).
        if not self._joined.wait(self.settings.connect_timeout_s):
            raise ModelUnavailable(_not_joined(self.settings))
        if failed:
            raise _join_failed(self.settings.address, failed[0]) from None
        resources = ray.cluster_resources()
        gpus = float(resources.get("GPU", 0.0))
        count = self.settings.workers or max(1, int(gpus))
        worker_gpus = self.settings.worker_gpus if self.settings.worker_gpus is not None else (1.0 if gpus >= 1 else 0.0)
        actor = ray.remote(ModelWorker)
        for index in range(count):
            name = f"w{index}"
            # Restarted without end by Ray when its process or node dies (it rejoins empty); a call
            # in flight then fails, never re-runs on its own: the front decides what to retry.
            handle = actor.options(num_cpus=self.settings.worker_cpus, num_gpus=worker_gpus, max_restarts=-1,
                                   max_task_retries=0, max_concurrency=self._load_settings.max_batch + CONTROL_THREADS,
                                   ).remote(name, self._load_settings)
            self._workers.append(_Worker(name, handle))
        # Starting a worker process (and importing riffd in it) takes longer than a call.
        self._probe(timeout_s=min(self.settings.load_timeout_s, max(self.settings.call_timeout_s, START_WAIT_S)))
        healthy = [worker for worker in self._workers if worker.health == "ok"]
        if not healthy:
            self.close()
            raise ModelUnavailable(f"no Ray worker answered (asked for "
                                   f"{count}, {self.settings.worker_cpus:g} CPU and {worker_gpus:g} GPU each; the "
                                   f"cluster has {_resources_text(resources)})")
        log.info("Ray cluster %s: %d of %d workers up in %.1f s (%s)", self.settings.address or "(local)",
                 len(healthy), count, time.perf_counter() - started, _resources_text(resources))
        self._prober = threading.Thread(target=self._probe_forever, name="riffd-ray-probe", daemon=True)
        self._prober.start()

    def close(self) -> None:
        """Stop probing, end the workers (their models go with them) and leave the cluster."""
        self._closing.set()
        if self._prober is not None:
            self._prober.join(self.settings.call_timeout_s)
        ray = self._ray
        if ray is None or not self._joined.is_set():  # still inside ray.init: nothing to end, nothing to wait for
            self._leave.set()
            return
        if not _node_alive(ray):
            self.stranded = True
            log.warning("Ray: this machine's Ray node is gone: leaving the cluster without shutting Ray down")
            return
        for worker in self._workers:
            try:
                ray.kill(worker.handle, no_restart=True)
            except Exception as exc:  # noqa: BLE001 - it may be gone already; the rest still go
                log.debug("killing %s: %s", worker.name, exc)
        self._leave.set()
        if self._owner is not None:
            self._owner.join(self.settings.call_timeout_s)  # it leaves the cluster (a local one stops)
        self._ray = None

    @property
    def worker_count(self) -> int:
        return len(self._workers)

    # What status shows.
    def describe(self) -> tuple[str, ...]:
        """One line per worker: name, node, host, pid, health, load (jobs placed on it), resident models, job ids."""
        with self._lock:
            return tuple(worker.describe() for worker in self._workers)

    def shared_jobs(self, model_id: str) -> tuple[str, ...]:
        """Jobs of `model_id` sharing a worker's decode steps with another job now."""
        with self._lock:
            return tuple(job for worker in self._workers
                         for job in sorted(job for job, model in worker.jobs.items() if model == model_id)
                         if sum(1 for model in worker.jobs.values() if model == model_id) > 1)

    def resident(self) -> dict[str, ModelInfo]:
        with self._lock:
            return {model_id: info for worker in self._workers if worker.health == "ok"
                    for model_id, info in worker.models.items()}

    def slots(self, model_id: str) -> int:
        """Jobs of `model_id` the cluster runs at once: its slots on each worker that is up."""
        with self._lock:
            healthy = [worker for worker in self._workers if worker.health == "ok"]
            per_worker = max((w.models[model_id].slots for w in healthy if model_id in w.models), default=1)
            return max(1, per_worker * len(healthy))

    # Models.
    def ensure_loaded(self, model_id: str) -> ModelInfo:
        """`model_id` resident on some worker (loaded on the least loaded one if nowhere yet)."""
        found = self.resident().get(model_id)
        if found is not None:
            return found
        tried: set[str] = set()
        while True:
            worker = self._pick(model_id, tried, job_id=None)
            try:
                return self._load_on(worker, model_id)
            except WorkerGone as gone:
                self.mark_lost(gone)
                tried.add(worker.name)

    def preload(self, model_id: str) -> None:
        """`model_id` on every worker up, loading in parallel: for the models named at start, so no
        job waits for a load on a worker that has not served that model yet."""
        with self._lock:
            if model_id not in self._pinned:
                self._pinned.append(model_id)
            targets = [w for w in self._workers if w.health == "ok" and model_id not in w.models]
        loads = [(worker, worker.handle.load.remote(model_id)) for worker in targets]
        for worker, ref in loads:
            try:
                answer = self._call(worker, ref, self.settings.load_timeout_s)
            except WorkerGone as gone:
                self.mark_lost(gone)
                continue
            if isinstance(answer, ErrorItem):
                raise RiffdError(answer.message, code=answer.code)
            with self._lock:
                worker.models[model_id] = answer
        log.info("Ray: %s resident on %s", model_id, ", ".join(w.name for w in self._workers if model_id in w.models))

    def unload(self, model_id: str) -> None:
        """Drop `model_id` from every worker holding it (a running job keeps its reference there)."""
        with self._lock:
            holders = [worker for worker in self._workers if worker.models.pop(model_id, None) is not None]
        for worker in holders:
            try:
                self._call(worker, worker.handle.unload.remote(model_id), self.settings.call_timeout_s)
            except WorkerGone as gone:
                self.mark_lost(gone)

    # Jobs.
    def acquire(self, model_id: str, job_id: str, exclude: set[str]) -> tuple[str, ModelInfo]:
        """Place job `job_id`: on a worker with `model_id` resident and a free slot, else the least
        loaded worker up (loading the model there). Returns the worker's name and the model's info."""
        worker = self._pick(model_id, exclude, job_id=job_id)
        try:
            info = self._load_on(worker, model_id)
        except BaseException:
            self.release(worker.name, job_id)
            raise
        return worker.name, info

    def release(self, worker_name: str, job_id: str) -> None:
        with self._lock:
            for worker in self._workers:
                if worker.name == worker_name:
                    worker.jobs.pop(job_id, None)

    def stream(self, worker_name: str, spec: JobSpec,
               should_stop: Callable[[], bool]) -> Generator[StreamItem, None, None]:
        """The items of `spec` running on `worker_name`, as they arrive; ends after its end or error
        item. WorkerGone if the worker dies or sends nothing for ray_stream_timeout_s; a stop asked
        (`should_stop`) is passed on, and the stream then ends with the worker's `cancelled` item."""
        worker = self._worker(worker_name)
        generator = worker.handle.run.options(num_returns="streaming",
                                              _generator_backpressure_num_objects=BACKPRESSURE_ITEMS).remote(spec)
        ended = stop_sent = False
        deadline_s = time.monotonic() + self.settings.stream_timeout_s
        try:
            while True:
                if not stop_sent and should_stop():
                    stop_sent = True
                    worker.handle.stop.remote(spec.job_id)  # not awaited: its answer is the stream's end
                    deadline_s = min(deadline_s, time.monotonic() + self.settings.call_timeout_s)
                item = self._next_item(worker, generator, STOP_POLL_S)
                if item is None:
                    if time.monotonic() > deadline_s:
                        waited = "after a stop" if stop_sent else f"for {self.settings.stream_timeout_s:g} s"
                        raise WorkerGone(worker.name, worker.node_id, f"sent nothing {waited}")
                    continue
                deadline_s = time.monotonic() + (self.settings.call_timeout_s if stop_sent
                                                  else self.settings.stream_timeout_s)
                ended = isinstance(item, (EndItem, ErrorItem))
                yield item
                if ended:
                    return
        finally:
            if not ended:
                self._abandon(worker, spec.job_id, generator)

    def call(self, worker_name: str, method: str, *args: Any) -> Any:
        """`method(*args)` on a worker, answered within ray_call_timeout_s (a jam's step); WorkerGone if not."""
        worker = self._worker(worker_name)
        return self._call(worker, getattr(worker.handle, method).remote(*args), self.settings.call_timeout_s)

    # Health.
    def mark_lost(self, gone: WorkerGone) -> None:
        """`gone.worker` is dead or wedged: nothing more is placed there until a ping answers again
        (Ray restarts a dead actor; it comes back with no model resident)."""
        with self._lock:
            worker = next((w for w in self._workers if w.name == gone.worker), None)
            if worker is None or worker.health == "lost":
                return
            worker.health = "lost"
            worker.models.clear()
        log.warning("Ray %s lost: %s", gone.worker, gone.reason)

    def _probe_forever(self) -> None:
        while not self._closing.wait(self.settings.probe_interval_s):
            try:
                self._probe(timeout_s=self.settings.call_timeout_s)
            except Exception:  # noqa: BLE001 - the prober must outlive a bad round
                log.exception("probing the Ray workers failed")

    def _probe(self, timeout_s: float) -> None:
        """Ping every worker at once; update each one's health, pid and node."""
        ray = self._ray
        refs = {worker.name: worker.handle.ping.remote() for worker in self._workers}
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
        ready_set = set(ready)
        for worker in self._workers:
            ref = refs[worker.name]
            info: WorkerInfo | None = None
            reason = f"no answer to a ping in {timeout_s:g} s"
            if ref in ready_set:
                try:
                    info = ray.get(ref, timeout=timeout_s)
                except ray.exceptions.RayError as exc:
                    reason = _first_line(exc)
            if info is None:
                if worker.health != "starting":
                    self.mark_lost(WorkerGone(worker.name, worker.node_id, reason))
                continue
            self._answered(worker, info)

    def _answered(self, worker: _Worker, info: WorkerInfo) -> None:
        with self._lock:
            restarted = worker.pid not in (0, info.pid)
            if restarted or worker.health != "ok":
                # A restarted process holds no model: forget what the old one had.
                worker.models = {model_id: model for model_id, model in worker.models.items()
                                 if model_id in info.models and not restarted}
            was = worker.health
            worker.pid, worker.node_id, worker.host, worker.health = info.pid, info.node_id, info.host, "ok"
        if was == "lost" or restarted:
            log.info("Ray %s rejoined (pid %d on node %s)", worker.name, info.pid, info.node_id[:12])
            if self._pinned:  # loaded on a thread of its own: the prober goes on pinging the others
                threading.Thread(target=self._reload, args=(worker,), name=f"riffd-ray-reload-{worker.name}",
                                 daemon=True).start()

    def _reload(self, worker: _Worker) -> None:
        """A restarted worker gets the models named at start back, as at start."""
        for model_id in list(self._pinned):
            try:
                self._load_on(worker, model_id)
            except WorkerGone as gone:
                self.mark_lost(gone)
                return
            except RiffdError as exc:
                log.warning("Ray %s: reloading %s failed: %s", worker.name, model_id, exc.message)

    # Helpers.
    def _worker(self, name: str) -> _Worker:
        return next(worker for worker in self._workers if worker.name == name)

    def _pick(self, model_id: str, exclude: set[str], job_id: str | None) -> _Worker:
        with self._lock:
            healthy = [w for w in self._workers if w.health == "ok" and w.name not in exclude]
            if not healthy:
                down = ", ".join(f"{w.name} {w.health}" for w in self._workers)
                raise ModelUnavailable(f"no Ray worker can take {model_id} now ({down})")
            free = [w for w in healthy if model_id in w.models and len(w.jobs) < w.models[model_id].slots]
            without = [w for w in healthy if model_id not in w.models]
            worker = min(free or without or healthy, key=lambda w: (len(w.jobs), w.name))
            if job_id is not None:
                worker.jobs[job_id] = model_id  # counted now, so a job placed meanwhile goes elsewhere
            return worker

    def _load_on(self, worker: _Worker, model_id: str) -> ModelInfo:
        with self._lock:
            info = worker.models.get(model_id)
        if info is not None:
            return info
        started = time.perf_counter()
        answer = self._call(worker, worker.handle.load.remote(model_id), self.settings.load_timeout_s)
        if isinstance(answer, ErrorItem):
            raise RiffdError(answer.message, code=answer.code)
        assert isinstance(answer, ModelInfo)
        with self._lock:
            worker.models[model_id] = answer
        log.info("Ray %s: %s resident (%.1f s, %d slots)", worker.name, model_id, time.perf_counter() - started,
                 answer.slots)
        return answer

    def _call(self, worker: _Worker, ref: Any, timeout_s: float) -> Any:
        """A remote call's answer; WorkerGone if the worker dies or does not answer in `timeout_s`."""
        ray = self._ray
        try:
            return ray.get(ref, timeout=timeout_s)
        except ray.exceptions.GetTimeoutError:
            ray.cancel(ref)
            raise WorkerGone(worker.name, worker.node_id, f"no answer in {timeout_s:g} s") from None
        except ray.exceptions.RayTaskError as exc:  # the worker itself raised: a bug, not a loss
            raise RiffdError(f"{worker.name}: {_first_line(exc)}") from None
        except ray.exceptions.RayError as exc:
            raise WorkerGone(worker.name, worker.node_id, _first_line(exc)) from None

    def _next_item(self, worker: _Worker, generator: Any, timeout_s: float) -> StreamItem | None:
        """The stream's next item, or None if none came within `timeout_s`."""
        ray = self._ray
        try:
            ready, _ = ray.wait([generator], timeout=timeout_s)
            if not ready:
                return None
            ref = next(generator)
            item: StreamItem = ray.get(ref, timeout=self.settings.call_timeout_s)
            return item
        except StopIteration:
            raise WorkerGone(worker.name, worker.node_id, "its stream ended without a result") from None
        except ray.exceptions.RayTaskError as exc:
            raise RiffdError(f"{worker.name}: {_first_line(exc)}") from None
        except ray.exceptions.RayError as exc:
            raise WorkerGone(worker.name, worker.node_id, _first_line(exc)) from None

    def _abandon(self, worker: _Worker, job_id: str, generator: Any) -> None:
        """A stream left early (the job was stopped, or its worker failed): ask the worker to stop
        and take what it still sends, so it is not left paused by back-pressure."""
        ray = self._ray
        try:
            worker.handle.stop.remote(job_id)
            deadline_s = time.monotonic() + self.settings.call_timeout_s
            while time.monotonic() < deadline_s:
                ready, _ = ray.wait([generator], timeout=max(0.0, deadline_s - time.monotonic()))
                if not ready:
                    break
                item = ray.get(next(generator), timeout=self.settings.call_timeout_s)
                if isinstance(item, (EndItem, ErrorItem)):
                    break
        except (StopIteration, Exception):  # noqa: BLE001 - a dead worker has nothing more to send
            pass


def _node_alive(ray: Any) -> bool:
    """Whether the raylet this process joined through (this machine's Ray node) still takes connections.
    Ray's shutdown asks it to let the process go; if it is dead, Ray ends the process (exit 1) where the
    parent's PID is 1 (systemd, containers), before the daemon says it stopped."""
    node = getattr(ray._private.worker.global_worker, "node", None)
    path = getattr(node, "raylet_socket_name", None)
    if not path:
        return True  # not joined, or a Ray that keeps it elsewhere: shut down as usual
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            return False
        except OSError:
            return True  # alive but busy, or not ours to ask: the usual shutdown
    return True


def _not_joined(settings: ClusterSettings) -> str:
    if not settings.address:
        return (f"the local Ray instance did not start within {settings.connect_timeout_s:g} s "
                "(--ray-connect-timeout-s)")
    where = "on this machine" if settings.address == "auto" else f"at {settings.address}"
    return (f"no Ray cluster answered {where} within {settings.connect_timeout_s:g} s (start one with "
            "`ray start --head`, or check --ray)")


def _join_failed(address: str, exc: BaseException) -> ModelUnavailable:
    """ray.init's failure in riffd's terms (Ray's own text names flags riffd does not have)."""
    if address == "auto" and isinstance(exc, ConnectionError):
        return ModelUnavailable("--ray auto found no Ray cluster on this machine (start one with "
                                "`ray start --head`, or give its address: --ray HOST:PORT)")
    if not address:
        return ModelUnavailable(f"could not start a local Ray instance: {_first_line(exc)}")
    return ModelUnavailable(f"could not join the Ray cluster at {address} (--ray): {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def _resources_text(resources: dict[str, float]) -> str:
    return ", ".join(f"{resources.get(key, 0):g} {key}" for key in ("CPU", "GPU"))
