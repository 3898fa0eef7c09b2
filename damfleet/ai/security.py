"""TLS and bearer-token authentication for the gRPC inference service (issue 12).

The service reads media by reference, so an unauthenticated caller on its network could make
it transcribe whatever lies under its storage root. Both ends take their material from
settings (mounted Secrets in Kubernetes):

========================================  =========================================================
server (``damfleet inference serve``)     client (AI workers, ``damfleet inference health``)
========================================  =========================================================
``DAMFLEET_AI_INFERENCE_TLS_CERT_PATH``   ``DAMFLEET_AI_INFERENCE_TLS_CA_PATH`` (the CA that
and ``_TLS_KEY_PATH``: serve TLS          signed the server's certificate; turns TLS on) or
                                          ``DAMFLEET_AI_INFERENCE_TLS=true`` (system roots)
``DAMFLEET_AI_INFERENCE_TLS_CLIENT_CA_``  ``DAMFLEET_AI_INFERENCE_TLS_CLIENT_CERT_PATH`` and
``PATH``: require client certificates     ``_TLS_CLIENT_KEY_PATH``: present one
signed by this CA (mutual TLS)
``DAMFLEET_AI_INFERENCE_TOKEN``           ``DAMFLEET_AI_INFERENCE_TOKEN``: sent as
: required on every call                  ``authorization: Bearer <token>``
========================================  =========================================================

The standard ``grpc.health.v1.Health`` service stays open without a token, so Kubernetes'
gRPC probes keep working; ``damfleet.v1.Inference`` (Health included) needs the token. A
missing or wrong token is refused with ``UNAUTHENTICATED`` and the damfleet error type
``ConfigurationError``, so the calling activity fails permanently with a message naming
the setting instead of retrying forever.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from damfleet.errors import ConfigurationError
from damfleet.settings import AISettings, read_setting_file

__all__ = [
    "ERROR_TYPE_METADATA",
    "HEALTH_SERVICE_PREFIX",
    "TOKEN_SETTING",
    "BearerTokenInterceptor",
    "call_metadata",
    "channel_credentials",
    "channel_options",
    "server_credentials",
]

log = logging.getLogger(__name__)

TOKEN_SETTING = "DAMFLEET_AI_INFERENCE_TOKEN"
HEALTH_SERVICE_PREFIX = "/grpc.health.v1.Health/"
#: Trailing-metadata key carrying the damfleet error type of a refused call (read by damfleet.ai.remote).
ERROR_TYPE_METADATA = "damfleet-error-type"


def _read(path: str, what: str) -> bytes | None:
    return read_setting_file(path, f"the inference service's {what}")


def server_credentials(ai: AISettings) -> grpc.ServerCredentials | None:
    """TLS credentials for ``add_secure_port``, or ``None`` when the service serves plaintext."""
    cert = _read(ai.inference_tls_cert_path, "TLS certificate (DAMFLEET_AI_INFERENCE_TLS_CERT_PATH)")
    key = _read(ai.inference_tls_key_path, "TLS key (DAMFLEET_AI_INFERENCE_TLS_KEY_PATH)")
    client_ca = _read(ai.inference_tls_client_ca_path, "client CA (DAMFLEET_AI_INFERENCE_TLS_CLIENT_CA_PATH)")
    if cert is None or key is None:
        if client_ca is not None:
            raise ConfigurationError(
                "DAMFLEET_AI_INFERENCE_TLS_CLIENT_CA_PATH needs DAMFLEET_AI_INFERENCE_TLS_CERT_PATH and _KEY_PATH"
            )
        return None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


def channel_credentials(ai: AISettings) -> grpc.ChannelCredentials | None:
    """TLS credentials for the client's channel, or ``None`` for a plaintext channel."""
    ca = _read(ai.inference_tls_ca_path, "CA certificate (DAMFLEET_AI_INFERENCE_TLS_CA_PATH)")
    cert = _read(ai.inference_tls_client_cert_path, "client certificate (DAMFLEET_AI_INFERENCE_TLS_CLIENT_CERT_PATH)")
    key = _read(ai.inference_tls_client_key_path, "client key (DAMFLEET_AI_INFERENCE_TLS_CLIENT_KEY_PATH)")
    if not (ai.inference_tls or ca or cert):
        return None
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def channel_options(ai: AISettings) -> list[tuple[str, Any]]:
    """Channel options: the message size limit, and the TLS name override when one is set."""
    options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
    if ai.inference_tls_server_name:
        options.append(("grpc.ssl_target_name_override", ai.inference_tls_server_name))
    return options


def call_metadata(ai: AISettings) -> tuple[tuple[str, str], ...]:
    """Per-call metadata: the bearer token, when one is configured."""
    token = ai.inference_token.get_secret_value()
    return (("authorization", f"Bearer {token}"),) if token else ()


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls to damfleet's service without ``authorization: Bearer <token>``.

    The comparison is constant-time. The standard health service is exempt (probes).
    """

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(HEALTH_SERVICE_PREFIX):
            return handler
        presented = ""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                presented = value if isinstance(value, str) else value.decode(errors="replace")
        if presented and hmac.compare_digest(presented.encode(), self._expected):
            return handler
        reason = "wrong bearer token" if presented else "no bearer token"
        log.warning("refused %s: %s", handler_call_details.method, reason)
        return _refusal(handler, f"inference service refused the call: {reason}; set {TOKEN_SETTING} on the caller "
                                 "to the service's token")


def _refusal(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that aborts with UNAUTHENTICATED."""
    trailing = ((ERROR_TYPE_METADATA, ConfigurationError.error_type),)

    async def abort(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message, trailing_metadata=trailing)

    async def abort_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message, trailing_metadata=trailing)
        yield  # pragma: no cover - abort raises

    kwargs = {"request_deserializer": handler.request_deserializer,
              "response_serializer": handler.response_serializer}
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(abort_stream, **kwargs)
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(abort, **kwargs)
    raise ConfigurationError("the inference service has only unary and server-streaming methods")
