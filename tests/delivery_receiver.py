"""A real HTTP receiver for trying delivery targets: the delivery tests and bench/distribution.py.

:class:`DeliveryReceiver` is an aiohttp server that behaves like a partner endpoint:

- accepts renditions by PUT (raw body) or POST (multipart form), hashing them as they
  stream in (nothing is kept in memory), and honours ``Idempotency-Key`` the way
  payment APIs do: a key already stored answers the stored result without storing again;
- verifies webhook signatures with :func:`damfleet.delivery.webhook.verify_request` and
  answers 401 to a bad one;
- can be scripted to fail (``fail_next(503)``, ``fail_next(429, retry_after=30)``), to
  redirect, to answer any status, or to hold requests until released, and counts the
  requests in flight.

Run standalone (the benchmark does, so its memory is not counted with the sender's)::

    python -m tests.delivery_receiver --port 8099

Test support, not product: it lives under tests/ and its aiohttp is a dev dependency.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import inspect
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

from damfleet.delivery.webhook import WebhookVerificationError, verify_request

__all__ = ["DeliveryReceiver", "ReceivedFile", "ReceivedNotification", "Scripted"]


@dataclass
class ReceivedFile:
    path: str
    method: str
    size_bytes: int
    sha256: str
    headers: dict[str, str]
    fields: dict[str, str] = field(default_factory=dict)    # multipart form fields
    filename: str = ""


@dataclass
class ReceivedNotification:
    path: str
    body: bytes
    payload: dict[str, Any]
    headers: dict[str, str]


@dataclass
class Scripted:
    """A canned answer: status, headers, and optionally only for paths under a prefix."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    paths: str = ""          # "" any path, else only requests whose path starts with this
    stored_first: bool = False   # accept and store the upload, then answer with this status


class DeliveryReceiver:
    """An in-process partner endpoint on 127.0.0.1; ``async with DeliveryReceiver() as r: r.url``."""

    def __init__(
        self, *, webhook_secret: str = "", host: str = "127.0.0.1", port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.webhook_secret = webhook_secret
        self.ssl_context = ssl_context
        self.host = host
        self.port = port
        self.files: list[ReceivedFile] = []
        self.notifications: list[ReceivedNotification] = []
        self.by_key: dict[str, ReceivedFile | ReceivedNotification] = {}
        self.requests = 0
        self.statuses: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.hold: asyncio.Event | None = None        # set: requests wait for it before answering
        #: Decides per request; return ``Scripted(status, headers)`` to answer that, or None.
        self.gate: Callable[[web.Request], Scripted | None | Awaitable[Scripted | None]] | None = None
        self._script: list[Scripted] = []
        self._redirects: dict[str, tuple[int, str]] = {}
        self._runner: web.AppRunner | None = None

    # ---- scripting ----------------------------------------------------------------------

    def fail_next(self, status: int, *, retry_after: str | None = None, count: int = 1, path: str = "") -> None:
        """Answer the next ``count`` requests (optionally under ``path``) with ``status``."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self._script.extend(Scripted(status, headers, path) for _ in range(count))

    def lose_next_responses(self, count: int = 1) -> None:
        """Store the next ``count`` uploads (in turn with other scripted answers), then answer
        502 as if the response was lost on the way back: the sender retries, and only the
        idempotency key prevents a second copy."""
        self._script.extend(Scripted(502, stored_first=True) for _ in range(count))

    def redirect(self, path: str, location: str, status: int = 307) -> None:
        """Answer requests to ``path`` with a redirect to ``location``."""
        self._redirects[path] = (status, location)

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    # ---- server ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=1024**4)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _scripted(self, request: web.Request) -> Scripted | None:
        if self.gate is not None:
            decided = self.gate(request)
            if inspect.isawaitable(decided):
                decided = await decided
            if decided is not None:
                return decided
        for index, entry in enumerate(self._script):
            if not entry.paths or request.path.startswith(entry.paths):
                return self._script.pop(index)
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            response = await self._answer(request)
        finally:
            self.in_flight -= 1
        self.statuses.append(response.status)
        return response

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and request.path == "/_received":
            # What arrived so far, for a sender in another process (the benchmark).
            return web.json_response({
                "files": [{"path": f.path, "size_bytes": f.size_bytes, "sha256": f.sha256} for f in self.files],
                "notifications": len(self.notifications), "requests": self.requests,
            })
        if request.path in self._redirects:
            status, location = self._redirects[request.path]
            return web.Response(status=status, headers={"Location": location})
        scripted = await self._scripted(request)
        if scripted is not None and not scripted.stored_first:
            # Read the body first, as a real server that fails late would.
            async for _ in request.content.iter_chunked(1 << 20):
                pass
            return web.Response(status=scripted.status, headers=scripted.headers, text=f"scripted {scripted.status}")
        if self.hold is not None:
            await self.hold.wait()
        key = request.headers.get("Idempotency-Key", "")
        if request.path.startswith("/hooks/"):
            return await self._webhook(request, key)
        if request.method not in ("PUT", "POST"):
            return web.Response(status=405)
        received = await (self._multipart(request) if request.method == "POST" else self._raw(request))
        if key and key in self.by_key:
            return web.json_response({"stored": False, "duplicate_of": key}, status=200)
        self.files.append(received)
        if key:
            self.by_key[key] = received
        if scripted is not None:
            return web.Response(status=scripted.status, text="stored, but the gateway lost the response")
        return web.json_response(
            {"stored": True, "sha256": received.sha256}, status=201,
            headers={"Location": f"{self.url}/stored{request.path}"},
        )

    async def _raw(self, request: web.Request) -> ReceivedFile:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_chunked(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        return ReceivedFile(request.path, "PUT", size, digest.hexdigest(), dict(request.headers))

    async def _multipart(self, request: web.Request) -> ReceivedFile:
        reader = await request.multipart()
        fields: dict[str, str] = {}
        digest = hashlib.sha256()
        size = 0
        filename = ""
        while True:
            part = await reader.next()
            if part is None:
                break
            if getattr(part, "filename", None):
                filename = part.filename or ""
                while chunk := await part.read_chunk(1 << 20):  # type: ignore[union-attr]
                    digest.update(chunk)
                    size += len(chunk)
            else:
                fields[part.name or ""] = (await part.read()).decode()  # type: ignore[union-attr]
        return ReceivedFile(request.path, "POST", size, digest.hexdigest(), dict(request.headers), fields, filename)

    async def _webhook(self, request: web.Request, key: str) -> web.StreamResponse:
        body = await request.read()
        try:
            verify_request(self.webhook_secret, body, request.headers)
        except WebhookVerificationError as exc:
            return web.Response(status=401, text=str(exc))
        if key and key in self.by_key:
            return web.json_response({"accepted": False, "duplicate_of": key})
        note = ReceivedNotification(request.path, body, json.loads(body), dict(request.headers))
        self.notifications.append(note)
        if key:
            self.by_key[key] = note
        return web.json_response({"accepted": True}, status=202)


async def _serve(port: int) -> None:
    async with DeliveryReceiver(port=port) as receiver:
        print(f"listening on {receiver.url}", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="A delivery receiver (PUT/POST uploads, webhooks) for trials")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    try:
        asyncio.run(_serve(args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
