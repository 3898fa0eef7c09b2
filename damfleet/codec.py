"""Payload encryption for everything damfleet puts in Temporal histories (issue 12), and its codec server.

Workflow inputs and results carry source URIs, titles, collections, transcript excerpts and
delivery receipts; Temporal stores them in its database and shows them to anyone with
namespace access. With ``DAMFLEET_TEMPORAL_CODEC_KEYS`` set, every client and worker built by
:func:`damfleet.temporal.connect` encrypts payloads with AES-256-GCM before they leave the
process, so the server holds only ciphertext:

* ``DAMFLEET_TEMPORAL_CODEC_KEYS="k2=<base64 32 bytes>,k1=<base64 32 bytes>"``: the first key
  encrypts; every listed key decrypts. Rotate by putting a new key first and keeping the old ones
  until no open run (or history you still need to read) uses them. Each payload names its key id.
* Payloads that are not encrypted (written before the codec was turned on) pass through, so
  turning encryption on does not strand runs in flight.
* ``damfleet codec-server`` serves ``POST /encode`` and ``POST /decode`` (the Temporal codec-server
  protocol) so the Temporal UI (``Codec Server`` setting) and CLI (``--codec-endpoint``) can show
  clear text to people who hold ``DAMFLEET_TEMPORAL_CODEC_SERVER_TOKEN``.

Search attributes are not payloads: they stay readable (and searchable) on the server, so put
nothing secret in them (damfleet's hold states, stages, kinds, labels, collections and tenants).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from damfleet.errors import ConfigurationError
from damfleet.settings import TemporalSettings

__all__ = ["ENCODING", "KEYS_SETTING", "EncryptionCodec", "make_codec_server", "parse_keys"]

log = logging.getLogger(__name__)

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEYS_SETTING = "DAMFLEET_TEMPORAL_CODEC_KEYS"
TOKEN_SETTING = "DAMFLEET_TEMPORAL_CODEC_SERVER_TOKEN"
_NONCE_BYTES = 12


def parse_keys(text: str) -> list[tuple[str, bytes]]:
    """``"id=<base64>,id2=<base64>"`` → [(id, 32-byte key), ...], in order (the first encrypts)."""
    keys: list[tuple[str, bytes]] = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        key_id, sep, encoded = entry.partition("=")
        key_id = key_id.strip()
        if not sep or not key_id:
            raise ConfigurationError(f"{KEYS_SETTING}: entries are <key id>=<base64 key>, got {key_id or entry[:8]!r}…")
        try:
            key = base64.b64decode(encoded.strip() + "=" * (-len(encoded.strip()) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigurationError(f"{KEYS_SETTING}: key {key_id!r} is not base64") from exc
        if len(key) != 32:
            raise ConfigurationError(f"{KEYS_SETTING}: key {key_id!r} is {len(key)} bytes; AES-256 needs 32")
        if any(existing == key_id for existing, _ in keys):
            raise ConfigurationError(f"{KEYS_SETTING}: key id {key_id!r} is listed twice")
        keys.append((key_id, key))
    return keys


@dataclass
class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over each whole serialized payload; the key id travels in the metadata."""

    keys: Sequence[tuple[str, bytes]]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigurationError(f"{KEYS_SETTING} holds no key")
        self._active_id, active = self.keys[0]
        self._active = AESGCM(active)
        self._by_id = {key_id: AESGCM(key) for key_id, key in self.keys}

    @classmethod
    def from_settings(cls, temporal: TemporalSettings) -> EncryptionCodec | None:
        """The codec the settings ask for, or ``None`` when payloads stay clear text."""
        keys = parse_keys(temporal.codec_keys.get_secret_value())
        return cls(keys) if keys else None

    def encode_one(self, payload: Payload) -> Payload:
        nonce = os.urandom(_NONCE_BYTES)
        key_id = self._active_id.encode()
        sealed = self._active.encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id}, data=nonce + sealed)

    def decode_one(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before encryption was turned on
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode()
        cipher = self._by_id.get(key_id)
        if cipher is None:
            raise ConfigurationError(
                f"payload encrypted with key id {key_id!r}, which {KEYS_SETTING} no longer lists "
                f"(known: {', '.join(self._by_id)}); keep retired keys until their runs are gone"
            )
        data = payload.data
        try:
            clear = cipher.decrypt(data[:_NONCE_BYTES], data[_NONCE_BYTES:], key_id.encode())
        except Exception as exc:  # cryptography raises InvalidTag without a message
            raise ConfigurationError(f"payload under key id {key_id!r} failed authentication (tampered?)") from exc
        return Payload.FromString(clear)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encode_one(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decode_one(p) for p in payloads]


def make_codec_server(
    codec: EncryptionCodec, host: str, port: int, *, token: str, allow_origin: str = "http://localhost:8233"
) -> ThreadingHTTPServer:
    """An HTTP codec server (``POST /encode``, ``POST /decode``) for the Temporal UI and CLI.

    Requests must carry ``Authorization: Bearer <token>`` when a token is set; CORS allows the
    UI's origin. Bodies are ``{"payloads": [...]}`` in protobuf JSON, as Temporal sends them.
    """
    expected = f"Bearer {token}".encode()

    class Handler(BaseHTTPRequestHandler):
        def _cors(self) -> None:
            self.send_header("Access-Control-Allow-Origin", allow_origin)
            self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Namespace")
            self.send_header("Access-Control-Allow-Credentials", "true")

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self._cors()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_OPTIONS(self) -> None:
            self.send_response(204)
            self._cors()
            self.end_headers()

        def do_POST(self) -> None:
            if self.path not in ("/encode", "/decode"):
                self._reply(404, {"message": f"no such endpoint {self.path}: use /encode or /decode"})
                return
            presented = self.headers.get("Authorization", "").encode()
            if token and not hmac.compare_digest(presented, expected):
                self._reply(401, {"message": f"missing or wrong bearer token ({TOKEN_SETTING})"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                if length > 64 * 1024 * 1024:
                    raise ValueError("request larger than 64 MiB")
                payloads = json_format.Parse(self.rfile.read(length), Payloads())
                convert = codec.encode_one if self.path == "/encode" else codec.decode_one
                out = Payloads(payloads=[convert(p) for p in payloads.payloads])
            except (ValueError, json_format.ParseError, ConfigurationError) as exc:
                self._reply(400, {"message": str(exc)})
                return
            self._reply(200, json.loads(json_format.MessageToJson(out)))

        def log_message(self, fmt: str, *args: Any) -> None:
            log.info("codec server: " + fmt, *args)

    return ThreadingHTTPServer((host, port), Handler)
