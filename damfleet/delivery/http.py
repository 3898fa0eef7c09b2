"""HTTP endpoint target: each rendition PUT as the raw body, or POSTed as a multipart form,
streamed from storage through the guarded client (:mod:`damfleet.delivery.netguard`).

Every request carries ``Idempotency-Key`` (asset id + target + rendition), so a receiver
that keys on it stores one copy however many times a retry re-sends, plus the rendition's
sha256 (``X-Damfleet-SHA256`` and RFC 9530 ``Repr-Digest``) so it can verify what arrived.

Redirects are followed here, not by httpx, so that each hop is re-checked by the network
guard, the body is re-streamed from storage (307/308 keep the method and body; 301/302
are re-sent with the same method too, since silently turning an upload into a GET would
lose it), and credentials are dropped when a redirect leaves the original origin.
A 303 means the receiver accepted the request and points at the result.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Self
from urllib.parse import quote, urljoin, urlsplit

import httpx
from pydantic import Field, SecretStr, model_validator

from damfleet.delivery.base import (
    DeliveryContext,
    DeliveryItem,
    DeliveryResult,
    TargetConfig,
    TargetType,
    VerifiedStream,
    check_url,
    raise_for_status,
    redact_url,
)
from damfleet.delivery.netguard import OutboundBlockedError, guarded_client
from damfleet.errors import TargetRejectedError, TargetUnavailableError

__all__ = [
    "TARGET_TYPE",
    "URL_PLACEHOLDERS",
    "HttpExchange",
    "HttpTargetConfig",
    "auth_headers",
    "deliver_http",
    "open_http_client",
    "render_url",
    "send_with_redirects",
]

_NO_SECRET = SecretStr("")

#: Fields an HTTP target's URL template may use; values are percent-encoded.
URL_PLACEHOLDERS = frozenset({"asset_id", "role", "filename", "target"})


class HttpTargetConfig(TargetConfig):
    """An HTTP endpoint receiving each rendition by PUT (raw body) or POST (multipart form)."""

    url: str
    method: str = "PUT"
    bearer_token: SecretStr = SecretStr("")
    username: str = ""
    password: SecretStr = SecretStr("")
    headers: dict[str, SecretStr] = Field(default_factory=dict)   # may hold API keys
    form_field: str = "file"      # multipart field name of the file (POST)
    verify_tls: bool = True
    ca_bundle: str = ""
    timeout_seconds: float = Field(default=0.0, ge=0)  # 0: DAMFLEET_DISTRIBUTION_HTTP_TIMEOUT_SECONDS

    @model_validator(mode="after")
    def _check(self) -> Self:
        check_url(self.url, placeholders=URL_PLACEHOLDERS)
        if self.method.upper() not in ("PUT", "POST"):
            raise ValueError(f"method must be PUT or POST, got {self.method!r}")
        if self.bearer_token and (self.username or self.password):
            raise ValueError("give bearer_token or username/password, not both")
        return self


def open_http_client(config: HttpTargetConfig | TargetConfig, ctx: DeliveryContext) -> httpx.AsyncClient:
    """The target's pooled client; every connection it opens passes the network guard."""
    return guarded_client(
        ctx.policy,
        verify_tls=ctx.settings.verify_tls and getattr(config, "verify_tls", True),
        ca_bundle=getattr(config, "ca_bundle", ""),
        timeout_seconds=getattr(config, "timeout_seconds", 0.0) or ctx.settings.http_timeout_seconds,
        max_connections=ctx.limit,
    )

_REDIRECTS = frozenset({301, 302, 307, 308})
_MAX_ERROR_DETAIL = 300

#: Builds a fresh request body for each attempt at a hop (bodies are streams, read once).
BodyFactory = Callable[[], AsyncIterator[bytes]]


@dataclass(frozen=True)
class HttpExchange:
    """The final answer of a (possibly redirected) request."""

    status: int
    url: str                 # the URL that answered, redacted
    location: str            # where the receiver says the result lives (Location), redacted
    hops: int


def render_url(template: str, *, asset_id: str, role: str, filename: str, target: str) -> str:
    """Fill a target's URL template; every value is percent-encoded as one path segment."""
    return template.format(
        asset_id=quote(asset_id, safe=""), role=quote(role, safe=""),
        filename=quote(filename, safe=""), target=quote(target, safe=""),
    )


def auth_headers(
    headers: Mapping[str, SecretStr],
    bearer_token: SecretStr = _NO_SECRET,
    username: str = "",
    password: SecretStr = _NO_SECRET,
) -> dict[str, str]:
    """A target's own headers plus its Authorization header, from its settings (never from a
    request): the one place their secret values are read, to go on the wire to the configured
    origin only (:func:`send_with_redirects` drops them on a redirect elsewhere)."""
    private = {name: value.get_secret_value() for name, value in headers.items()}
    if bearer_token:
        private["Authorization"] = f"Bearer {bearer_token.get_secret_value()}"
    elif username or password:
        token = base64.b64encode(f"{username}:{password.get_secret_value()}".encode()).decode()
        private["Authorization"] = f"Basic {token}"
    return private


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


async def _error_detail(response: httpx.Response) -> str:
    """The start of an error body, for the message (bounded; never the whole body)."""
    collected = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            collected.extend(chunk)
            if len(collected) >= _MAX_ERROR_DETAIL:
                break
    except httpx.HTTPError:
        pass
    text = collected[:_MAX_ERROR_DETAIL].decode("utf-8", "replace").strip()
    return " ".join(text.split())


async def send_with_redirects(
    client: httpx.AsyncClient,
    *,
    target: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    private_headers: Mapping[str, str],
    body: BodyFactory,
    max_redirects: int,
    max_retry_after_seconds: float,
) -> HttpExchange:
    """Send one request, following redirects by hand; raise damfleet errors for failures.

    ``private_headers`` (Authorization, API keys) are sent only to the configured origin.
    """
    current = url
    first_origin = _origin(url)
    for hop in range(max_redirects + 1):
        shown = redact_url(current)
        action = f"{method} {shown}"
        send_headers = dict(headers)
        if _origin(current) == first_origin:
            send_headers.update(private_headers)
        request = client.build_request(method, current, headers=send_headers, content=body())
        try:
            response = await client.send(request, stream=True)
        except OutboundBlockedError as exc:
            via = f" (redirected from {redact_url(url)})" if hop else ""
            raise OutboundBlockedError(f"target {target!r}: {action}{via}: {exc}") from None
        except httpx.TimeoutException as exc:
            raise TargetUnavailableError(f"target {target!r}: {action} timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise TargetUnavailableError(f"target {target!r}: {action} failed: {type(exc).__name__}: {exc}") from exc
        try:
            status = response.status_code
            location_header = response.headers.get("location", "")
            if status in _REDIRECTS and location_header:
                following = urljoin(current, location_header)
                if urlsplit(following).scheme not in ("http", "https"):
                    raise TargetRejectedError(
                        f"target {target!r}: {action} redirected to a non-HTTP URL {redact_url(following)}"
                    )
                current = following
                continue
            if status == 303:
                return HttpExchange(status, shown, redact_url(urljoin(current, location_header)) or shown, hop)
            if not 200 <= status < 300:
                detail = await _error_detail(response)
                if 300 <= status < 400:
                    raise TargetRejectedError(f"target {target!r} answered {status} to {action} without a usable Location")
                raise_for_status(
                    target, status, action=action, retry_after=response.headers.get("retry-after"),
                    detail=detail, cap_seconds=max_retry_after_seconds,
                )
            async for _ in response.aiter_raw():   # drain so the connection can be reused
                pass
            location = redact_url(urljoin(current, location_header)) if location_header else shown
            return HttpExchange(status, shown, location, hop)
        finally:
            await response.aclose()
    raise TargetRejectedError(f"target {target!r}: more than {max_redirects} redirects from {redact_url(url)}")


def _multipart_envelope(
    boundary: str, fields: Mapping[str, str], file_field: str, item: DeliveryItem
) -> tuple[bytes, bytes]:
    """The multipart/form-data bytes before and after the file's content.

    Knowing them up front gives an exact Content-Length, so the upload streams without
    chunked encoding (which some upload endpoints refuse).
    """
    head = bytearray()
    for name, value in fields.items():
        head += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        head += value.encode() + b"\r\n"
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{item.filename}"\r\n'
        f"Content-Type: {item.mime_type or 'application/octet-stream'}\r\n\r\n"
    ).encode()
    return bytes(head), f"\r\n--{boundary}--\r\n".encode()


async def _framed(head: bytes, stream: VerifiedStream, tail: bytes) -> AsyncIterator[bytes]:
    yield head
    async for chunk in stream:
        yield chunk
    yield tail


async def deliver_http(config: HttpTargetConfig, item: DeliveryItem, ctx: DeliveryContext) -> DeliveryResult:
    """PUT or POST one rendition, following redirects hop by hop through the guard."""
    client: httpx.AsyncClient = ctx.client
    url = render_url(config.url, asset_id=item.asset_id, role=item.role, filename=item.filename, target=config.name)
    method = config.method.upper()
    digest_b64 = base64.b64encode(bytes.fromhex(item.sha256)).decode() if item.sha256 else ""
    common = {
        "Idempotency-Key": item.idempotency_key,
        "X-Damfleet-Asset-Id": item.asset_id,
        "X-Damfleet-Role": item.role,
        "User-Agent": "damfleet-distribution/1",
    }
    if item.sha256:
        common["X-Damfleet-SHA256"] = item.sha256
        common["Repr-Digest"] = f"sha-256=:{digest_b64}:"
    private = auth_headers(config.headers, config.bearer_token, config.username, config.password)
    streams: list[VerifiedStream] = []

    def new_stream() -> VerifiedStream:
        stream = ctx.stream(item)
        streams.append(stream)
        return stream

    boundary = f"damfleet-{uuid.uuid4().hex}"
    if method == "PUT":
        headers = {**common, "Content-Type": item.mime_type or "application/octet-stream",
                   "Content-Length": str(item.size_bytes)}

        def body() -> AsyncIterator[bytes]:
            return new_stream().__aiter__()
    else:
        fields = {
            "asset_id": item.asset_id, "role": item.role, "sha256": item.sha256,
            "size_bytes": str(item.size_bytes), "idempotency_key": item.idempotency_key,
            "metadata": json.dumps(item.metadata, sort_keys=True),
        }
        head, tail = _multipart_envelope(boundary, fields, config.form_field, item)
        length = len(head) + item.size_bytes + len(tail)
        headers = {**common, "Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(length)}

        def body() -> AsyncIterator[bytes]:
            return _framed(head, new_stream(), tail)

    exchange = await send_with_redirects(
        client, target=config.name, method=method, url=url, headers=headers, private_headers=private,
        body=body, max_redirects=ctx.settings.max_redirects,
        max_retry_after_seconds=ctx.settings.max_retry_after_seconds,
    )
    sent = streams[-1]
    sent.verify()
    return DeliveryResult(location=exchange.location, size_bytes=sent.size, sha256=sent.sha256)



TARGET_TYPE = TargetType("http", HttpTargetConfig, deliver=deliver_http, open_client=open_http_client)
