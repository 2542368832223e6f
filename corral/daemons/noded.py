"""corral-noded: the node daemon (node RPC over HTTPS, port 1811).

    corral-noded [--foreground] [--port 1811] [--bind 0.0.0.0] [--debug]

Without ``--foreground`` it detaches like a classic daemon: double fork +
setsid, stdin from /dev/null, stdout/stderr to ``<log_dir>/noded.log``, so the
process (or test) that started it gets its pipes back at once. The parent only
exits once the daemon listens (or reports why it could not), with status 0/1.

* pidfile ``paths.noded_pidfile``, locked with flock for the daemon's life: a
  second noded refuses to start.
* SIGTERM/SIGINT: clean exit (running VMs are untouched: they are separate
  processes whose state lives in the run directory).
* SIGHUP: reload the TLS material (after `gnt-cluster init` wrote it locally).
* Unjoined (no node certificate): self-signed certificate, only `version` and
  the join calls are served.

Kept light on memory (no numpy, drivers imported on first use).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from corral import constants as C
from corral import errors
from corral.daemons.process import PidFile, Ready, daemonize
from corral.paths import DEFAULT_PATHS, Paths

log = logging.getLogger("corral.noded")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="corral-noded", description="corral node daemon")
    parser.add_argument("-f", "--foreground", action="store_true", help="do not detach")
    parser.add_argument("-p", "--port", type=int, default=C.NODED_PORT, help="TCP port")
    parser.add_argument("-b", "--bind", default="0.0.0.0", help="address to listen on")
    parser.add_argument("-d", "--debug", action="store_true", help="log debug messages")
    # For tests: run with all state below DIR (Paths.under(DIR))
    parser.add_argument("--paths-root", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace, paths: Paths, pidfile: PidFile, ready: Ready) -> None:
    from corral.node.context import NodeContext
    from corral.rpc.server import NodeServer

    ctx = NodeContext(paths)
    server = NodeServer(ctx, host=args.bind, port=args.port)
    try:
        await server.start()
    except OSError as err:
        raise errors.GenericError(f"Cannot listen on {args.bind}:{args.port}: {err}") from err
    pidfile.write_pid()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reloads: set[asyncio.Task[None]] = set()

    def on_hup() -> None:
        task = loop.create_task(server.reload_tls())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, on_hup)
    log.info("corral-noded %s started (pid %d)", C.RELEASE_VERSION, os.getpid())
    ready.notify("ok")
    await stop.wait()
    log.info("shutting down")
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    paths = Paths.under(args.paths_root) if args.paths_root else DEFAULT_PATHS
    pidfile = PidFile(paths.noded_pidfile, "corral-noded")
    try:
        pidfile.acquire()
    except (errors.GenericError, OSError) as err:
        sys.stderr.write(f"{err}\n")
        return 1
    ready = Ready()
    if not args.foreground:
        ready = daemonize(os.path.join(paths.log_dir, "noded.log"), "corral-noded")
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(_serve(args, paths, pidfile, ready))
    except errors.GenericError as err:
        log.error("%s", err)
        pidfile.release()  # before telling the parent, which returns at once
        if ready.fd >= 0:
            ready.notify(str(err))
        elif args.foreground:
            sys.stderr.write(f"{err}\n")
        return 1
    finally:
        pidfile.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
