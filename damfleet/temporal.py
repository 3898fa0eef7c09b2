"""Connecting to Temporal from settings: dev server, self-hosted with mTLS, or Temporal Cloud."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from damfleet.codec import EncryptionCodec
from damfleet.errors import ConfigurationError
from damfleet.settings import Settings, TemporalSettings, read_setting_file

__all__ = ["connect", "tls_config"]

log = logging.getLogger(__name__)


def tls_config(t: TemporalSettings) -> TLSConfig | bool:
    """TLS settings for the client: mTLS when a cert/key pair is set, plain TLS when asked."""
    if not (t.tls or t.tls_cert_path or t.api_key.get_secret_value()):
        return False
    return TLSConfig(
        server_root_ca_cert=read_setting_file(t.tls_ca_path, "Temporal CA certificate (DAMFLEET_TEMPORAL_TLS_CA_PATH)"),
        client_cert=read_setting_file(t.tls_cert_path, "Temporal client certificate (DAMFLEET_TEMPORAL_TLS_CERT_PATH)"),
        client_private_key=read_setting_file(t.tls_key_path, "Temporal client key (DAMFLEET_TEMPORAL_TLS_KEY_PATH)"),
        domain=t.tls_server_name or None,
    )


async def connect(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    identity: str | None = None,
    retry_seconds: float | None = None,
) -> Client:
    """A Temporal client for the configured address and namespace.

    An unreachable frontend is retried for ``retry_seconds`` (default: the setting
    ``DAMFLEET_TEMPORAL_CONNECT_TIMEOUT_SECONDS``), then a ConfigurationError names it.
    """
    t = settings.temporal
    kwargs: dict[str, object] = {"namespace": t.namespace, "tls": tls_config(t)}
    if t.api_key.get_secret_value():
        kwargs["api_key"] = t.api_key.get_secret_value()
    if runtime is not None:
        kwargs["runtime"] = runtime
    if identity:
        kwargs["identity"] = identity
    codec = EncryptionCodec.from_settings(t)
    if codec is not None:  # payloads encrypted before they reach the server (DAMFLEET_TEMPORAL_CODEC_KEYS)
        kwargs["data_converter"] = dataclasses.replace(DataConverter.default, payload_codec=codec)
    if settings.tracing != "off":  # OpenTelemetry only when asked for (DAMFLEET_TRACING): no import otherwise
        from damfleet import tracing

        kwargs["interceptors"] = tracing.client_interceptors(settings)
    # A frontend restarting (a dev server restart, a rolling upgrade) refuses connections
    # for seconds: wait for it, within DAMFLEET_TEMPORAL_CONNECT_TIMEOUT_SECONDS, rather
    # than fail a submit or a worker start.
    patience = t.connect_timeout_seconds if retry_seconds is None else retry_seconds
    deadline = time.monotonic() + max(0.0, patience)
    delay = 0.25
    while True:
        try:
            return await Client.connect(t.address, **kwargs)  # type: ignore[arg-type]
        except RuntimeError as exc:  # the SDK's "Failed client connect"
            if time.monotonic() + delay > deadline:
                raise ConfigurationError(
                    f"cannot reach Temporal at {t.address} (tried for {patience:g}s, "
                    f"DAMFLEET_TEMPORAL_CONNECT_TIMEOUT_SECONDS): {exc}"
                ) from exc
            log.info("Temporal at %s not reachable yet (%s); retrying in %.1fs", t.address, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 4.0)
