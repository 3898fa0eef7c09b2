"""Connecting to Temporal from settings: dev server, self-hosted with mTLS, or Temporal Cloud."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from damfleet.codec import EncryptionCodec
from damfleet.errors import ConfigurationError
from damfleet.settings import Settings, TemporalSettings

__all__ = ["connect", "tls_config"]


def tls_config(t: TemporalSettings) -> TLSConfig | bool:
    """TLS settings for the client: mTLS when a cert/key pair is set, plain TLS when asked."""
    if not (t.tls or t.tls_cert_path or t.api_key):
        return False

    def read(path: str, what: str) -> bytes | None:
        if not path:
            return None
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read Temporal {what} {path}: {exc}") from exc

    return TLSConfig(
        server_root_ca_cert=read(t.tls_ca_path, "CA certificate"),
        client_cert=read(t.tls_cert_path, "client certificate"),
        client_private_key=read(t.tls_key_path, "client key"),
        domain=t.tls_server_name or None,
    )


async def connect(settings: Settings, *, runtime: Runtime | None = None, identity: str | None = None) -> Client:
    """A Temporal client for the configured address and namespace."""
    t = settings.temporal
    kwargs: dict[str, object] = {"namespace": t.namespace, "tls": tls_config(t)}
    if t.api_key:
        kwargs["api_key"] = t.api_key
    if runtime is not None:
        kwargs["runtime"] = runtime
    if identity:
        kwargs["identity"] = identity
    codec = EncryptionCodec.from_settings(t)
    if codec is not None:  # payloads encrypted before they reach the server (DAMFLEET_TEMPORAL_CODEC_KEYS)
        kwargs["data_converter"] = dataclasses.replace(DataConverter.default, payload_codec=codec)
    return await Client.connect(t.address, **kwargs)  # type: ignore[arg-type]
