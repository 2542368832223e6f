"""corral-masterd: the master daemon (config, job queue, locks, executor, local API).

    corral-masterd [--foreground] [--debug]

Runs only on the master node: if the config names another node as master it
exits with "This is not the master node" (exit code 11, Ganeti's
EXIT_NOTMASTER). Without ``--foreground`` it detaches (double fork + setsid,
stdio to ``<log_dir>/masterd.log``); the starting process exits 0 once the
local API socket listens, or 1 with the reason. The pidfile
``paths.masterd_pidfile`` is flock-ed for the daemon's life, so a second
masterd refuses to start.

SIGTERM/SIGINT shut down cleanly: the API socket closes, running jobs get
`SHUTDOWN_TIMEOUT` seconds to finish and are otherwise stopped and marked
"error" (queued jobs stay queued for the next start), pending config and queue
replication is flushed.

The read-only RAPI v2 listener (`corral.rapi`, HTTPS, ``--rapi-port``,
default 5080, 0 disables it) starts with the local API. A port that cannot
be bound (or a missing node certificate) is logged and masterd runs on
without RAPI: the local API is what the cluster needs to work.

`Master` assembles the parts and is what tests run in-process (with a fake
RPC runner and ``Paths.under(tmp)``). Heavy modules (numpy, the htools
allocator, drivers) are only imported by the LUs that need them, keeping the
idle daemon small.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import sys
import time
from typing import TYPE_CHECKING, Any, Final

from corral import constants as C
from corral import errors
from corral.api.cluster_info import ClusterQueryResource
from corral.api.server import ApiHandlers, ApiServer
from corral.cli._htools_start import prepare as prepare_htools
from corral.cmdlib import registry
from corral.cmdlib.base import MasterContext
from corral.cmdlib.query_base import QueryResource
from corral.config.file_store import FileConfigStore
from corral.config.names import match_name_component
from corral.daemons.process import PidFile, Ready, daemonize
from corral.jobs.autofailover import DEAD_AFTER
from corral.jobs.executor import Executor
from corral.jobs.locking import LockManager
from corral.jobs.query import JobQueryResource
from corral.jobs.queue import JobQueue
from corral.jobs.replication import RpcConfigDistributor, RpcQueueReplicator
from corral.jobs.watcher import Watcher
from corral.paths import DEFAULT_PATHS, Paths
from corral.rpc.client import RpcRunner

if TYPE_CHECKING:
    from corral.rapi.server import RapiServer

log = logging.getLogger("corral.masterd")

SHUTDOWN_TIMEOUT: Final = 30.0
WATCHER_INTERVAL: Final = 30.0
NOT_MASTER_MSG: Final = "This is not the master node"


class NotMasterError(errors.GenericError):
    """This node is not the master according to the configuration."""


def this_node_names() -> list[str]:
    """Names this host may have in the config (hostname and FQDN)."""
    names = [socket.gethostname()]
    with contextlib.suppress(OSError):
        fqdn = socket.getfqdn()
        if fqdn not in names:
            names.append(fqdn)
    return names


class Master:
    """All master-side parts, wired together; `start` then `stop`."""

    def __init__(
        self,
        paths: Paths,
        *,
        rpc: RpcRunner | None = None,
        node_name: str | None = None,
        max_running: int | None = None,
        watcher_interval: float | None = WATCHER_INTERVAL,
        rapi_port: int | None = None,
    ) -> None:
        self.paths = paths
        self._rpc = rpc
        self._node_name = node_name
        self._max_running = max_running
        self._watcher_interval = watcher_interval
        self.cfg: FileConfigStore | None = None
        self.queue: JobQueue | None = None
        self.executor: Executor | None = None
        self.server: ApiServer | None = None
        self.handlers: ApiHandlers | None = None
        self.locks = LockManager()
        self._replicator: RpcQueueReplicator | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._startup_push: asyncio.Task[None] | None = None
        self._owns_rpc = rpc is None
        #: RAPI port (None or 0: no RAPI listener; in-process tests default to none)
        self.rapi_port = rapi_port
        self.rapi: RapiServer | None = None

    @property
    def rpc(self) -> RpcRunner:
        assert self._rpc is not None
        return self._rpc

    def _check_master(self, cfg: FileConfigStore) -> None:
        master = cfg.master_node()
        candidates = [self._node_name] if self._node_name else this_node_names()
        for name in candidates:
            if name == master.name or match_name_component(name, [master.name]) == master.name:
                return
            if match_name_component(master.name, [name]) == name:
                return
        raise NotMasterError(NOT_MASTER_MSG)

    async def start(self) -> None:
        """Load the config, recover the queue, start executor and API server."""
        paths = self.paths
        cfg = FileConfigStore.load(paths.config_file)
        self._check_master(cfg)
        if self._rpc is None:
            from corral.rpc.client import ClientTLS

            self._rpc = RpcRunner(ClientTLS.from_paths(paths))
        rpc = self._rpc
        cfg.set_distributor(RpcConfigDistributor(rpc))
        self.cfg = cfg
        self._replicator = RpcQueueReplicator(rpc, cfg)
        queue = JobQueue(paths.queue_db, replicator=self._replicator)
        queue.open()
        self.queue = queue
        self._replicator.watch_candidates(
            lambda: [(job.id, job.encode()) for job in queue.jobs(None)]
        )
        imported = queue.import_files(os.path.join(paths.data_dir, "queue"))
        if imported:
            log.info("Imported %d replicated jobs", len(imported))
        to_run = queue.recover()
        registry.load_all()
        ctx = MasterContext(cfg=cfg, rpc=rpc, paths=paths)
        queries: dict[str, QueryResource] = dict(registry.QUERY_REGISTRY)
        queries["job"] = JobQueryResource(queue)
        queries["cluster"] = ClusterQueryResource()
        executor = Executor(
            queue=queue,
            cfg=cfg,
            rpc=rpc,
            paths=paths,
            locks=self.locks,
            max_running=self._max_running,
        )
        self.executor = executor
        self.handlers = ApiHandlers(ctx=ctx, queue=queue, executor=executor, queries=queries)
        self.server = ApiServer(self.handlers, paths.master_socket)
        await self.server.start()
        await self._start_rapi(ctx, queries)
        executor.start(to_run)
        # Candidates may have missed pushes while this master was down or new:
        # send them the current config once, in the background.
        self._startup_push = asyncio.get_running_loop().create_task(cfg.redistribute())
        if self._watcher_interval:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        log.info("corral-masterd %s started (pid %d)", C.RELEASE_VERSION, os.getpid())

    async def _start_rapi(self, ctx: MasterContext, queries: dict[str, QueryResource]) -> None:
        """Serve RAPI v2 on `rapi_port`; log and go on without it when that fails."""
        if not self.rapi_port:
            return
        from corral.rapi.resources import RapiResources
        from corral.rapi.server import RapiServer, server_ssl_context

        try:
            rapi = RapiServer(
                RapiResources(ctx, queries),
                port=self.rapi_port,
                ssl_context=server_ssl_context(self.paths),
            )
            await rapi.start()
        except (OSError, ssl.SSLError, OverflowError, ValueError) as err:
            log.error("RAPI not started, cannot listen on port %d: %s", self.rapi_port, err)
            return
        self.rapi = rapi
        log.info("RAPI listening on port %d", self.rapi_port)

    async def _watch(self) -> None:
        """Periodic upkeep (Ganeti's ganeti-watcher, see `corral.jobs.watcher`):
        restart instances marked up that are down, repair degraded mirrors,
        archive jobs that finished more than six hours ago."""
        assert self._watcher_interval is not None
        assert self.cfg is not None and self.executor is not None and self.queue is not None
        queue = self.queue

        def job_done(job_id: int) -> bool:
            job = queue.get(job_id)
            return job is None or job.finalized

        def job_result(job_id: int) -> Any:
            job = queue.get(job_id)
            if job is None or job.calc_status() != C.JOB_STATUS_SUCCESS or not job.ops:
                return None
            return job.ops[-1].result

        cfg = self.cfg
        replicator = self._replicator

        async def resync(names: set[str]) -> None:
            await cfg.redistribute()
            if replicator is not None:
                replicator.resync(names)

        def paused() -> bool:
            until = queue.watcher_pause()
            return queue.is_drained() or (until is not None and until > time.time())

        watcher = Watcher(
            MasterContext(cfg=cfg, rpc=self.rpc, paths=self.paths),
            self.executor.submit,
            job_done,
            resync,
            job_result,
            paused=paused,
            dead_after=_env_seconds("CORRAL_AUTO_FAILOVER_AFTER", DEAD_AFTER),
        )
        while True:
            await asyncio.sleep(self._watcher_interval)
            try:
                await watcher.run_once()
            except Exception:
                log.exception("watcher: round failed")
            try:
                queue.auto_archive(6 * 3600, time.time())
            except Exception:
                log.exception("watcher: job archiving failed")

    async def stop(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """Stop serving, let running jobs end (or mark them), flush replication."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self.rapi is not None:
            await self.rapi.stop()
            self.rapi = None
        if self.server is not None:
            await self.server.stop()
        if self.executor is not None:
            await self.executor.shutdown(timeout)
        flushes = []
        if self.cfg is not None:
            flushes.append(self.cfg.flush())
        if self._replicator is not None:
            flushes.append(self._replicator.flush())
        if flushes:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*flushes, return_exceptions=True), 10)
        if self.queue is not None:
            self.queue.close()
        if self._owns_rpc and self._rpc is not None:
            await self._rpc.close()
        log.info("corral-masterd stopped")


# --- process management ---------------------------------------------------------------


async def _serve(master: Master, pidfile: PidFile, ready: Ready) -> None:
    # Handlers first: a SIGTERM while starting (the API socket already listens
    # while RAPI still starts) must mean "stop cleanly", not the default death.
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await master.start()
    pidfile.write_pid()
    ready.notify("ok")
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await master.stop()


def _env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment, else `default`.

    ``CORRAL_WATCHER_INTERVAL`` (between watcher rounds) and
    ``CORRAL_AUTO_FAILOVER_AFTER`` (how long a node must be silent before
    automatic failover fences it) are read this way: for tests and impatient
    clusters, inherited by the masterd ``gnt-cluster init`` or
    ``master-failover`` starts."""
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port '{text}'")
    return port


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="corral-masterd", description="corral master daemon")
    parser.add_argument("-f", "--foreground", action="store_true", help="do not detach")
    parser.add_argument("-d", "--debug", action="store_true", help="log debug messages")
    parser.add_argument(
        "--rapi-port",
        type=_port,
        default=C.RAPI_PORT,
        metavar="PORT",
        help=f"RAPI v2 (HTTPS) port, default {C.RAPI_PORT}; 0 disables RAPI",
    )
    # For tests: all state below DIR (Paths.under(DIR)) and a forced node name
    parser.add_argument("--paths-root", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--node-name", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    prepare_htools()  # hail runs in-process: one BLAS thread, not one per core
    paths = Paths.under(args.paths_root) if args.paths_root else DEFAULT_PATHS
    # Check the master role before detaching so the caller sees the answer.
    try:
        cfg = FileConfigStore.load(paths.config_file)
        Master(paths, node_name=args.node_name)._check_master(cfg)
    except NotMasterError as err:
        sys.stderr.write(f"{err}\n")
        return C.EXIT_NOTMASTER
    except errors.GenericError as err:
        sys.stderr.write(f"{err}\n")
        return C.EXIT_FAILURE
    pidfile = PidFile(paths.masterd_pidfile, "corral-masterd")
    try:
        pidfile.acquire()
    except (errors.GenericError, OSError) as err:
        sys.stderr.write(f"{err}\n")
        return C.EXIT_FAILURE
    ready = Ready()
    if not args.foreground:
        ready = daemonize(
            os.path.join(paths.log_dir, "masterd.log"),
            "corral-masterd",
            {NOT_MASTER_MSG: C.EXIT_NOTMASTER},
        )
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    master = Master(
        paths,
        node_name=args.node_name,
        rapi_port=args.rapi_port,
        watcher_interval=_env_seconds("CORRAL_WATCHER_INTERVAL", WATCHER_INTERVAL),
    )
    code = 0
    try:
        asyncio.run(_serve(master, pidfile, ready))
    except NotMasterError as err:
        pidfile.release()  # before telling the parent, which returns at once
        ready.notify(str(err))
        code = C.EXIT_NOTMASTER
    except (errors.GenericError, OSError) as err:
        log.error("%s", err)
        pidfile.release()
        if ready.fd >= 0:
            ready.notify(str(err))
        elif args.foreground:
            sys.stderr.write(f"{err}\n")
        code = C.EXIT_FAILURE
    finally:
        pidfile.release()
    return code


if __name__ == "__main__":
    sys.exit(main())
