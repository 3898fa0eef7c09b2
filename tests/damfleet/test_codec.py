"""Payload encryption (issue 12): AES-GCM codec, key rotation, and the codec server for the UI and CLI.

The end-to-end test runs the real workflows on a dev server that keeps its SQLite database in a file,
with every client and worker built by ``damfleet.temporal.connect`` from settings carrying keys, then
reads that database file: the source URI and title are not there in clear text (while a run
without the codec leaves its own in clear, which shows the check can see them). The ``temporal`` CLI
shows clear text only through ``damfleet``'s codec server, with the token, after a key rotation.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload

from damfleet import search_attributes
from damfleet.binaries import temporal_cli
from damfleet.codec import ENCODING, EncryptionCodec, make_codec_server, parse_keys
from damfleet.errors import ConfigurationError
from damfleet.temporal import connect
from damfleet.v1 import common_pb2
from tests.conftest import make_settings
from tests.jobs_support import run_fleet


def _key(key_id: str) -> str:
    return f"{key_id}={base64.b64encode(os.urandom(32)).decode()}"


def _payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


def test_round_trip_rotation_and_clear_errors() -> None:
    old, new = _key("k1"), _key("k2")
    before = EncryptionCodec(parse_keys(old))
    sealed = before.encode_one(_payload("file:///srv/secret.mov"))
    assert sealed.metadata["encoding"] == ENCODING and b"secret" not in sealed.data
    rotated = EncryptionCodec(parse_keys(f"{new},{old}"))
    assert rotated.decode_one(sealed) == _payload("file:///srv/secret.mov"), "old payloads stay readable"
    assert rotated.encode_one(_payload("x")).metadata["encryption-key-id"] == b"k2", "the first key encrypts"
    assert rotated.decode_one(_payload("clear")) == _payload("clear"), "payloads from before encryption pass"
    with pytest.raises(ConfigurationError, match="key id 'k1'.*no longer lists"):
        EncryptionCodec(parse_keys(new)).decode_one(sealed)
    tampered = Payload(metadata=sealed.metadata, data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(ConfigurationError, match="failed authentication"):
        rotated.decode_one(tampered)
    for bad, message in (("k1", "<key id>=<base64 key>"), ("k1=abc", "16|bytes|base64"),
                         (f"{old},{old}", "listed twice")):
        with pytest.raises(ConfigurationError, match=message):
            parse_keys(bad)


async def test_histories_hold_no_clear_text_and_the_codec_server_decodes(tmp_path: Path) -> None:
    from temporalio.testing import WorkflowEnvironment

    db = tmp_path / "temporal.db"
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), search_attributes=search_attributes.ALL_KEYS,
        dev_server_extra_args=["--db-filename", str(db)],
    )
    try:
        address = env.client.service_client.config.target_host
        first_key = _key("k1")
        settings = make_settings(tmp_path, DAMFLEET_TEMPORAL_ADDRESS=address, DAMFLEET_TEMPORAL_CODEC_KEYS=first_key)
        marker = f"codec-secret-{uuid.uuid4().hex[:12]}"
        async with run_fleet(await connect(settings), tmp_path / "encrypted") as fleet:
            handle = await fleet.fleet.submit(f"/inbox/{marker}.mov", title=f"title-{marker}", profile="archive")
            result = await handle.wait()
            assert result.state == common_pb2.COMPLETED and marker in result.asset.source_uri
            workflow_id = handle.workflow_id
        plain_marker = f"plain-{uuid.uuid4().hex[:12]}"
        async with run_fleet(env.client, tmp_path / "plain") as fleet:
            assert (await (await fleet.fleet.submit(f"/inbox/{plain_marker}.mov", profile="archive")).wait()).state \
                == common_pb2.COMPLETED

        stored = b"".join(p.read_bytes() for p in tmp_path.glob("temporal.db*"))
        assert plain_marker.encode() in stored, "a run without the codec is readable in the database file"
        assert marker.encode() not in stored, "the encrypted run's source URI and title are not"
        raw = (await env.client.get_workflow_handle(workflow_id).fetch_history()).to_json()
        assert marker not in raw

        # The CLI shows clear text through the codec server, after a key rotation, with the token.
        token = uuid.uuid4().hex
        codec = EncryptionCodec(parse_keys(f"{_key('k2')},{first_key}"))
        server = make_codec_server(codec, "127.0.0.1", 0, token=token)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            shown = await _temporal("workflow", "show", "--workflow-id", workflow_id, "--address", address,
                                    "--codec-endpoint", endpoint, "--codec-auth", f"Bearer {token}", "-o", "json")
            assert marker in _payload_text(shown)
            without = await _temporal("workflow", "show", "--workflow-id", workflow_id, "--address", address,
                                      "-o", "json")
            assert "YmluYXJ5L2VuY3J5cHRlZA==" in without and marker not in _payload_text(without)
            request = urllib.request.Request(f"{endpoint}/decode", data=b'{"payloads": []}', method="POST",
                                             headers={"Authorization": "Bearer wrong"})
            with pytest.raises(urllib.error.HTTPError) as refused:
                await asyncio.to_thread(urllib.request.urlopen, request, timeout=30)
            assert refused.value.code == 401
        finally:
            server.shutdown()
            server.server_close()
    finally:
        await env.shutdown()


def _payload_text(cli_json: str) -> str:
    """The CLI's JSON output with every payload's (base64) data decoded, as one string to search."""
    found: list[str] = [cli_json]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("data"), str) and "metadata" in node:
                found.append(base64.b64decode(node["data"]).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(cli_json[cli_json.index("{"):]))
    return "\n".join(found)


async def _temporal(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(str(temporal_cli()), *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    return out.decode()
