"""The worker's HTTP port: the grade lookup, health (`/health`, `/health/grading`) and
metrics, and nothing else.

Faust serves views of its own on the same port (`/table/...` returns stored states,
`/router/` the cluster's layout, `/` a status page); the product serves only its own
routes, so the app here is built with none of faust's (`App`, `RoutesOnlyWeb`). The
server listens on `GRADESTREAM_WEB_BIND`, by default `GRADESTREAM_WEB_HOST`.

A request aiohttp cannot parse (a URL over 8 KB, say) is the client's error: it is
answered 4xx and logged as one line, not as an ERROR with a traceback each time, which
any client could use to flood the log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import faust
import orjson
from aiohttp import ClientError
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import AppRunner
from faust.web import Request, Response, View
from faust.web.drivers.aiohttp import Web as AiohttpWeb
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.core import engine
from streams.core.policy import Policy
from streams.core.state import CustomerState

log = logging.getLogger(__name__)


class _BadRequestsInOneLine(logging.Filter):
    """Turns aiohttp's ERROR-with-traceback for an unparsable request into one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = (
                "refused a bad HTTP request (%s %s)",
                (
                    error.code,
                    type(error).__name__,
                ),
            )
            record.exc_info, record.exc_text = None, None
        return True


# aiohttp's request handler logs its errors to this logger (given to it below).
HTTP_LOG = logging.getLogger("streams.app.web.http")
HTTP_LOG.addFilter(_BadRequestsInOneLine())


class RoutesOnlyWeb(AiohttpWeb):
    """faust's aiohttp web server with none of faust's own views."""

    default_blueprints = production_blueprints = debug_blueprints = optional_blueprints = ()

    def __init__(self, app: faust.App, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._runner = AppRunner(self.web_app, access_log=None, logger=HTTP_LOG)


class App(faust.App):
    """A faust app whose web server serves only the routes registered on it."""

    def _new_web(self) -> RoutesOnlyWeb:
        return RoutesOnlyWeb(self)


def _no_error() -> str | None:
    return None


@dataclass
class Status:
    """Ready once the first assignment has been recovered and indexed (/health); moving
    from a rebalance's start until its partitions are recovered and indexed. The Redis
    view's error (None: it writes) and lag, as last measured (None: not yet)."""

    ready: bool = False
    moving: bool = True
    view_error: Callable[[], str | None] = _no_error
    view_lag: int | None = None


def health(status: Status) -> tuple[int, dict[str, Any]]:
    """The answer to /health: each part's state, 200 only when all are ok.

    Grading ("starting" until the first assignment is recovered and indexed) and the
    Redis view ("failing" while its writes or reads fail, with the error's class) are
    told apart: a view that cannot write is not healthy, while grading, the output
    topics and the grade lookup (which reads the table) may be."""
    error = status.view_error()
    body: dict[str, Any] = {
        "status": "starting" if not status.ready else "ok" if error is None else "degraded",
        "grading": "ok" if status.ready else "starting",
        "view": "ok" if error is None else "failing",
        "view_lag": status.view_lag,
    }
    if error is not None:
        body["view_error"] = error
    return (200 if body["status"] == "ok" else 503), body


def retry_later(web: View, error: str) -> Response:
    """503 with `Retry-After: 1`: a lookup a client asks again, as it would a moment later."""
    return web.json({"error": error}, status=503, headers={"Retry-After": "1"})


def register_routes(
    app: faust.App,
    table: Any,
    status: Status,
    policy: Policy,
    find: Callable[[str], CustomerState | None],
) -> None:
    """GET /customers/{id} (from the worker that owns the customer), /health, /metrics."""

    async def lookup(web: View, request: Request, customer_id: str) -> Response:
        state = find(customer_id)
        if state is None:
            return web.json({"error": f"no customer {customer_id!r}"}, status=404)
        grade = engine.snapshot(state, policy)
        return web.bytes(orjson.dumps(grade), content_type="application/json")

    # Answered here if this worker owns the customer, else forwarded to the owner.
    # (faust types a view handler with no path arguments; table_route passes them on.)
    routed: Callable[..., Awaitable[Response]] = app.table_route(
        table=table, match_info="customer_id"
    )(lookup)

    @app.page("/customers/{customer_id}")
    async def customer(web: View, request: Request, customer_id: str) -> Response:
        if status.moving:
            # Partitions are moving and the table recovering (or not assigned yet: then
            # there is nowhere to route to): "no such customer" would be a wrong answer,
            # not a late one.
            return retry_later(web, "rebalancing: partitions are moving, retry")
        try:
            return await routed(web, request, customer_id)
        except ClientError as error:
            # Forwarded to the owner the assignment names, which did not answer: killed,
            # or not serving yet, while the group settles.
            log.info("customer lookup: the owning worker did not answer (%s)", error)
            return retry_later(web, "the worker that owns this customer did not answer, retry")

    @app.page("/health")
    async def whole(web: View, request: Request) -> Response:
        code, body = health(status)
        return web.json(body, status=code)

    # Grading alone, for probes that restart a worker or route lookups to it: a Redis
    # outage must do neither (a restart does not bring Redis back).
    @app.page("/health/grading")
    async def grading(web: View, request: Request) -> Response:
        ok = status.ready
        return web.json({"status": "ok" if ok else "starting"}, status=200 if ok else 503)

    @app.page("/metrics")
    async def prometheus(web: View, request: Request) -> Response:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])
