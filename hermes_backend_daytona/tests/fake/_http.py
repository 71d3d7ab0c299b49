"""Error bodies as the real service writes them: NestJS-style from the API, structured from the daemon."""

from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web

_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
            409: "Conflict", 410: "Gone", 429: "Too Many Requests", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable"}


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def api_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"statusCode": status, "message": message, "error": _REASONS.get(status, "Error")}
    return web.json_response(body, status=status, headers=headers)


def daemon_error(request: web.Request, status: int, message: str, code: str | None = None) -> web.Response:
    body = {"statusCode": status, "message": message, "path": request.path, "method": request.method,
            "timestamp": _now_iso(), "source": "DAYTONA_DAEMON"}
    if code:
        body["code"] = code
    return web.json_response(body, status=status)
