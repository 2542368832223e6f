"""The RAPI v2 HTTPS listener of masterd (aiohttp), read-only for now.

    GET /version  /  /2  /2/info  /2/features  /2/os  /2/tags
    GET /2/nodes[?bulk=1]      /2/nodes/NAME      /2/nodes/NAME/role
    GET /2/instances[?bulk=1]  /2/instances/NAME
    GET /2/groups[?bulk=1]     /2/groups/NAME

Behaviour follows Ganeti 3.0.2's ganeti-rapi (``lib/server/rapi.py``):

* bodies are JSON (``Content-Type: application/json``), errors are
  ``{"code": N, "message": "<reason phrase>", "explain": "..."}``;
* a path that matches no resource is 404 ("Nothing matches the given URI");
* a method a resource does not implement is 501 "Method POST is unsupported
  for path /2/instances". corral implements no write method yet, so every
  POST/PUT/DELETE gets that answer: honest (nothing was done) and what Ganeti
  itself says for a method it lacks. Ganeti's other resources (jobs,
  networks, filters, tags of objects, instance actions, ...; `UNIMPLEMENTED`)
  answer 501 the same way for every method, rather than a misleading 404;
* GETs need no authentication, as in Ganeti without
  ``--require-authentication`` (there is no users file yet, see
  docs/decisions.md);
* TLS with the master node's certificate (`ssl_context`), peers are not
  verified (Ganeti serves RAPI with ``ssl_verify_peer=False`` too).

aiohttp's server half (``aiohttp.web``) is imported only when the listener
starts, so code importing this module stays light. `RapiServer` is what
masterd starts and stops; `build_app` is what tests serve in-process.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

from corral import errors
from corral.paths import Paths
from corral.rapi.resources import RapiError, RapiResources, not_found

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("corral.rapi")

Handler = Callable[[RapiResources, list[str], bool], Awaitable[Any]]


ROUTES: Final[list[tuple[re.Pattern[str], Handler]]] = [
    (re.compile(pattern), handler)
    for pattern, handler in [
        (r"/", lambda r, _a, _b: r.root()),
        (r"/2", lambda r, _a, _b: r.root()),
        (r"/version", lambda r, _a, _b: r.version()),
        (r"/2/info", lambda r, _a, _b: r.info()),
        (r"/2/features", lambda r, _a, _b: r.features()),
        (r"/2/os", lambda r, _a, _b: r.os()),
        (r"/2/tags", lambda r, _a, _b: r.tags()),
        (r"/2/nodes", lambda r, _a, bulk: r.nodes(bulk)),
        (r"/2/nodes/([^/]+)", lambda r, a, _b: r.node(a[0])),
        (r"/2/nodes/([^/]+)/role", lambda r, a, _b: r.node_role(a[0])),
        (r"/2/instances", lambda r, _a, bulk: r.instances(bulk)),
        (r"/2/instances/([^/]+)", lambda r, a, _b: r.instance(a[0])),
        (r"/2/groups", lambda r, _a, bulk: r.groups(bulk)),
        (r"/2/groups/([^/]+)", lambda r, a, _b: r.group(a[0])),
    ]
]
"""Path patterns (whole path) and the GET that answers them."""

_NAME = r"[^/]+"
UNIMPLEMENTED: Final[list[re.Pattern[str]]] = [
    re.compile(p.replace("NAME", _NAME))
    for p in [
        r"/2/redistribute-config", r"/2/modify", r"/2/instances-multi-alloc",
        r"/2/nodes/NAME/(powercycle|tags|evacuate|migrate|modify|storage)",
        r"/2/nodes/NAME/storage/(modify|repair)",
        r"/2/instances/NAME/(info|tags|reboot|reinstall|replace-disks|shutdown|startup"
        r"|activate-disks|deactivate-disks|recreate-disks|prepare-export|export|migrate"
        r"|failover|rename|modify|console|snapshot)",
        r"/2/instances/NAME/disk/NAME/grow",
        r"/2/groups/NAME/(modify|rename|assign-nodes|tags)",
        r"/2/networks", r"/2/networks/NAME", r"/2/networks/NAME/(connect|disconnect|modify|tags)",
        r"/2/jobs", r"/2/jobs/NAME", r"/2/jobs/NAME/wait",
        r"/2/filters", r"/2/filters/NAME",
        r"/2/query/NAME", r"/2/query/NAME/fields",
    ]
]  # fmt: skip
"""Ganeti 3.0.2 resources corral does not serve yet: any method is 501 there
(a 404 would wrongly say that the object does not exist)."""


def match(path: str) -> tuple[Handler | None, list[str]] | None:
    """The GET handler of `path` and its path items, or None (404).

    The handler is None for a Ganeti resource corral does not serve yet.
    """
    for pattern, handler in ROUTES:
        found = pattern.fullmatch(path)
        if found is not None:
            return handler, list(found.groups())
    if any(p.fullmatch(path) for p in UNIMPLEMENTED):
        return None, []
    return None


def parse_bulk(query: dict[str, str]) -> bool:
    """Ganeti's ``bulk`` query argument: an integer, true when non-zero."""
    value = query.get("bulk")
    if value is None:
        return False
    try:
        return int(value) != 0
    except ValueError:
        raise RapiError(HTTPStatus.BAD_REQUEST, "Invalid value for the 'bulk' parameter") from None


async def answer(
    resources: RapiResources, method: str, path: str, query: dict[str, str]
) -> tuple[int, Any]:
    """(HTTP status, JSON body) of one request; never raises."""
    try:
        found = match(path)
        if found is None:
            raise not_found()
        handler, items = found
        if method.upper() != "GET" or handler is None:
            raise RapiError(
                HTTPStatus.NOT_IMPLEMENTED,
                f"Method {method.upper()} is unsupported for path {path}",
            )
        return HTTPStatus.OK, await handler(resources, items, parse_bulk(query))
    except RapiError as err:
        return err.code, err.body()
    except errors.GenericError as err:
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        return HTTPStatus.INTERNAL_SERVER_ERROR, RapiError(500, text).body()
    except Exception:
        log.exception("RAPI: %s %s failed", method, path)
        return HTTPStatus.INTERNAL_SERVER_ERROR, RapiError(500).body()


def build_app(resources: RapiResources) -> web.Application:
    """The aiohttp application serving `resources` (every path, every method)."""
    from aiohttp import web

    async def serve(request: web.Request) -> web.Response:
        status, body = await answer(resources, request.method, request.path, dict(request.query))
        return web.Response(status=status, text=json.dumps(body), content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", serve)
    return app


def server_ssl_context(paths: Paths) -> ssl.SSLContext:
    """TLS server context with this node's certificate (raises OSError/ssl.SSLError)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(paths.node_cert, paths.node_key)
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class RapiServer:
    """The listener: `start` binds (raising OSError when it cannot), `stop` closes.

    `port` 0 picks a free port (tests); `bound_port` tells which one.
    `ssl_context` None serves plain HTTP (tests only).
    """

    def __init__(
        self,
        resources: RapiResources,
        *,
        port: int,
        address: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.resources = resources
        self.port = port
        self.address = address
        self.ssl_context = ssl_context
        self.bound_port: int | None = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        from aiohttp import web

        runner = web.AppRunner(build_app(self.resources), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(
                runner, self.address, self.port, ssl_context=self.ssl_context, reuse_address=True
            )
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        for addr in runner.addresses:
            if isinstance(addr, tuple) and len(addr) >= 2:
                self.bound_port = int(addr[1])
                break

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


__all__ = ["ROUTES", "RapiServer", "answer", "build_app", "match", "server_ssl_context"]
