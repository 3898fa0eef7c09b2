"""HTTP, webhook and local-folder targets against real servers (DeliveryReceiver on loopback,
allowlisted), and the per-target concurrency limit."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from damfleet.delivery import build_notification, verify_request
from damfleet.errors import (
    ChecksumMismatchError,
    ConfigurationError,
    TargetRejectedError,
    TargetUnavailableError,
)
from damfleet.v1 import common_pb2, stages_pb2
from tests.delivery_receiver import DeliveryReceiver

LOOPBACK = {"DAMFLEET_DISTRIBUTION_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32"}


async def test_builtin_local_target_copies_atomically_into_state_dir(distributor_for, stored_rendition) -> None:
    distributor, settings = distributor_for({})
    item = await stored_rendition(distributor.storage, size=300_000)
    config, result = await distributor.deliver("local", item)
    expected = settings.state_path / "delivered" / item.asset_id / item.filename
    assert config.type == "local"
    assert result.location == str(expected)
    assert hashlib.sha256(expected.read_bytes()).hexdigest() == item.sha256 == result.sha256
    # A retry overwrites the same file: still one copy, no partial files left behind.
    await distributor.deliver("local", item)
    assert sorted(p.name for p in expected.parent.iterdir()) == [item.filename]


async def test_local_target_refuses_a_corrupted_rendition_and_leaves_nothing(
    distributor_for, stored_rendition, tmp_path: Path
) -> None:
    folder = tmp_path / "drop"
    distributor, _ = distributor_for({"nas": {"type": "local", "path": str(folder)}})
    item = await stored_rendition(distributor.storage)
    bad = item.__class__(**{**item.__dict__, "sha256": "0" * 64})
    with pytest.raises(ChecksumMismatchError):
        await distributor.deliver("nas", bad)
    assert list((folder / item.asset_id).iterdir()) == []


@pytest.mark.parametrize("verify_source", ["true", "false"])
async def test_source_verification_is_an_operator_choice(
    distributor_for, stored_rendition, verify_source: str
) -> None:
    """Default: every byte is re-hashed and a rendition that no longer matches its recorded
    checksum is refused. With DAMFLEET_DISTRIBUTION_VERIFY_SOURCE=false only the size is checked
    and the receipt carries the recorded checksum (receivers can still check X-Damfleet-SHA256)."""
    async with DeliveryReceiver() as receiver:
        targets = {"partner": {"type": "http", "url": receiver.url + "/in/{asset_id}/{filename}"}}
        distributor, _ = distributor_for(targets, DAMFLEET_DISTRIBUTION_VERIFY_SOURCE=verify_source, **LOOPBACK)
        item = await stored_rendition(distributor.storage, size=100_000)
        stale = item.__class__(**{**item.__dict__, "sha256": "0" * 64})  # recorded != stored bytes
        if verify_source == "true":
            with pytest.raises(ChecksumMismatchError, match="differs from the recorded"):
                await distributor.deliver("partner", stale)
            assert receiver.files == [], "a refused rendition must not arrive"
        else:
            _, result = await distributor.deliver("partner", stale)
            assert result.sha256 == "0" * 64
            short = item.__class__(**{**item.__dict__, "size_bytes": item.size_bytes - 1})
            with pytest.raises(ChecksumMismatchError, match="larger than the recorded"):
                await distributor.deliver("partner", short)


@pytest.mark.parametrize("method", ["PUT", "POST"])
async def test_http_target_streams_with_auth_checksum_and_idempotency_key(
    distributor_for, stored_rendition, method: str
) -> None:
    async with DeliveryReceiver() as receiver:
        targets = {"partner": {
            "type": "http", "url": receiver.url + "/in/{asset_id}/{filename}", "method": method,
            "bearer_token": "s3cr3t-token",
        }}
        distributor, _ = distributor_for(targets, **LOOPBACK)
        item = await stored_rendition(distributor.storage, size=3_000_000)
        config, result = await distributor.deliver("partner", item)
    assert config.type == "http"
    [got] = receiver.files
    assert (got.size_bytes, got.sha256) == (item.size_bytes, item.sha256)
    assert got.path == f"/in/{item.asset_id}/{item.filename}"
    assert got.headers["Authorization"] == "Bearer s3cr3t-token"
    assert got.headers["Idempotency-Key"] == item.idempotency_key
    assert got.headers["X-Damfleet-SHA256"] == item.sha256
    assert result.location.endswith(f"/stored/in/{item.asset_id}/{item.filename}")
    assert "s3cr3t" not in result.location
    if method == "POST":
        assert got.filename == item.filename
        assert got.fields["sha256"] == item.sha256
        assert json.loads(got.fields["metadata"]) == {"title": "Été à Paris"}


async def test_basic_auth_and_redirect_within_origin_keeps_credentials(distributor_for, stored_rendition) -> None:
    async with DeliveryReceiver() as receiver:
        receiver.redirect("/old/drop", receiver.url + "/new/drop", status=308)
        targets = {"p": {"type": "http", "url": receiver.url + "/old/drop", "username": "u", "password": "pw"}}
        distributor, _ = distributor_for(targets, **LOOPBACK)
        item = await stored_rendition(distributor.storage)
        await distributor.deliver("p", item)
    [got] = receiver.files
    assert got.path == "/new/drop" and got.sha256 == item.sha256
    assert got.headers["Authorization"].startswith("Basic ")


async def test_redirect_to_another_origin_drops_credentials(distributor_for, stored_rendition) -> None:
    async with DeliveryReceiver() as first, DeliveryReceiver() as second:
        first.redirect("/drop", second.url + "/elsewhere", status=307)
        targets = {"p": {"type": "http", "url": first.url + "/drop", "bearer_token": "tok",
                         "headers": {"X-Api-Key": "k"}}}
        distributor, _ = distributor_for(targets, **LOOPBACK)
        item = await stored_rendition(distributor.storage)
        await distributor.deliver("p", item)
    [got] = second.files
    assert "Authorization" not in got.headers and "X-Api-Key" not in got.headers
    assert got.sha256 == item.sha256


@pytest.mark.parametrize(
    ("status", "retry_after", "expected_delay"),
    [(500, None, None), (503, "7", 7.0), (429, "120", 120.0), (408, None, None), (425, None, None)],
)
async def test_retryable_answers_raise_target_unavailable_with_retry_after(
    distributor_for, stored_rendition, status: int, retry_after: str | None, expected_delay: float | None
) -> None:
    async with DeliveryReceiver() as receiver:
        receiver.fail_next(status, retry_after=retry_after)
        distributor, _ = distributor_for({"p": {"type": "http", "url": receiver.url + "/x"}}, **LOOPBACK)
        item = await stored_rendition(distributor.storage)
        with pytest.raises(TargetUnavailableError) as caught:
            await distributor.deliver("p", item)
        assert caught.value.retry_after_seconds == expected_delay
        assert "'p'" in str(caught.value) and str(status) in str(caught.value)
        await distributor.deliver("p", item)            # the next attempt succeeds
    assert len(receiver.files) == 1


@pytest.mark.parametrize(("status", "words"), [(400, "400"), (403, "credentials"), (404, "404"), (413, "413")])
async def test_other_4xx_are_permanent_and_name_target_and_status(
    distributor_for, stored_rendition, status: int, words: str
) -> None:
    async with DeliveryReceiver() as receiver:
        receiver.fail_next(status)
        distributor, _ = distributor_for({"partner": {"type": "http", "url": receiver.url + "/x"}}, **LOOPBACK)
        item = await stored_rendition(distributor.storage)
        with pytest.raises(TargetRejectedError) as caught:
            await distributor.deliver("partner", item)
    assert "'partner'" in str(caught.value) and words in str(caught.value)
    assert not caught.value.retryable


async def test_unreachable_endpoint_is_retryable(distributor_for, stored_rendition) -> None:
    from tests.conftest import free_port

    distributor, _ = distributor_for({"p": {"type": "http", "url": f"http://127.0.0.1:{free_port()}/x"}}, **LOOPBACK)
    item = await stored_rendition(distributor.storage)
    with pytest.raises(TargetUnavailableError, match="'p'"):
        await distributor.deliver("p", item)


async def test_lost_response_retry_does_not_store_a_second_copy(distributor_for, stored_rendition) -> None:
    async with DeliveryReceiver() as receiver:
        receiver.lose_next_responses(1)
        distributor, _ = distributor_for({"p": {"type": "http", "url": receiver.url + "/x/{filename}"}}, **LOOPBACK)
        item = await stored_rendition(distributor.storage)
        with pytest.raises(TargetUnavailableError):
            await distributor.deliver("p", item)
        await distributor.deliver("p", item)
    assert receiver.requests == 2 and len(receiver.files) == 1


async def test_webhook_is_signed_and_verifiable(distributor_for) -> None:
    async with DeliveryReceiver(webhook_secret="hook-secret") as receiver:
        distributor, _ = distributor_for(
            {"hook": {"type": "webhook", "url": receiver.url + "/hooks/a", "secret": "hook-secret"}}, **LOOPBACK
        )
        notify = stages_pb2.NotifyInput(
            asset_id="asset0001", target="hook", workflow_id="wf-1", state=common_pb2.COMPLETED,
            outputs=[common_pb2.Output(uri="file:///x/proxy.mp4", size_bytes=10, sha256="ab" * 32, role="proxy")],
            receipts=[stages_pb2.DeliveryReceipt(target="cdn", role="proxy", location="s3://b/k", ok=True)],
            idempotency_key="asset0001:hook:webhook",
        )
        body = build_notification(notify)
        _config, result = await distributor.notify("hook", body, idempotency_key=notify.idempotency_key)
    [note] = receiver.notifications
    assert note.body == body and result.sha256 == hashlib.sha256(body).hexdigest()
    assert note.payload["asset_id"] == "asset0001" and note.payload["state"] == "COMPLETED"
    assert note.payload["outputs"][0]["sha256"] == "ab" * 32
    assert note.payload["receipts"][0]["location"] == "s3://b/k"
    verify_request("hook-secret", note.body, note.headers)           # what a receiver does


async def test_webhook_with_wrong_secret_is_rejected_by_receiver(distributor_for) -> None:
    async with DeliveryReceiver(webhook_secret="right") as receiver:
        distributor, _ = distributor_for(
            {"hook": {"type": "webhook", "url": receiver.url + "/hooks/a", "secret": "wrong"}}, **LOOPBACK
        )
        with pytest.raises(TargetRejectedError, match="401"):
            await distributor.notify("hook", b"{}", idempotency_key="k")
    assert receiver.notifications == []


async def test_webhook_without_secret_is_a_configuration_error(distributor_for) -> None:
    distributor, _ = distributor_for({"hook": {"type": "webhook", "url": "https://hooks.example.com/x"}})
    with pytest.raises(ConfigurationError, match="'hook'.*secret"):
        await distributor.notify("hook", b"{}", idempotency_key="k")


async def test_slow_target_does_not_starve_another(distributor_for, stored_rendition) -> None:
    """Per-target limit: the slow partner never sees more than its limit in flight, and
    deliveries to a fast partner finish while the slow one is still held."""
    async with DeliveryReceiver() as slow, DeliveryReceiver() as fast:
        slow.hold = asyncio.Event()
        targets = {
            "slow": {"type": "http", "url": slow.url + "/{filename}", "concurrency": 2},
            "fast": {"type": "http", "url": fast.url + "/{filename}"},
        }
        distributor, _ = distributor_for(targets, **LOOPBACK)
        items = [await stored_rendition(distributor.storage, name=f"r{i}.bin", role=f"r{i}", size=50_000)
                 for i in range(6)]
        slow_tasks = [asyncio.create_task(distributor.deliver("slow", item)) for item in items]
        await asyncio.wait_for(asyncio.gather(*(distributor.deliver("fast", item) for item in items)), 60)
        assert len(fast.files) == 6
        assert slow.files == [] and slow.max_in_flight == 2
        slow.hold.set()
        await asyncio.wait_for(asyncio.gather(*slow_tasks), 60)
    assert len(slow.files) == 6 and slow.max_in_flight == 2


async def test_busy_target_hands_the_task_back(distributor_for, stored_rendition) -> None:
    async with DeliveryReceiver() as slow:
        slow.hold = asyncio.Event()
        distributor, _ = distributor_for(
            {"slow": {"type": "http", "url": slow.url + "/{filename}", "concurrency": 1}},
            DAMFLEET_DISTRIBUTION_PER_TARGET_WAIT_SECONDS="0.2", **LOOPBACK,
        )
        first = await stored_rendition(distributor.storage, name="a.bin", role="a")
        second = await stored_rendition(distributor.storage, name="b.bin", role="b")
        held = asyncio.create_task(distributor.deliver("slow", first))
        while slow.in_flight == 0:
            await asyncio.sleep(0.01)
        with pytest.raises(TargetUnavailableError, match="busy") as caught:
            await distributor.deliver("slow", second)
        assert caught.value.retry_after_seconds and caught.value.retry_after_seconds > 0
        slow.hold.set()
        await held


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl CLI)."""
    import subprocess

    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


async def test_tls_is_verified_by_default(distributor_for, stored_rendition, self_signed) -> None:
    import ssl

    cert, key = self_signed
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    async with DeliveryReceiver(ssl_context=context) as receiver:
        distributor, _ = distributor_for({
            "untrusted": {"type": "http", "url": receiver.url + "/x"},
            "pinned": {"type": "http", "url": receiver.url + "/y", "ca_bundle": str(cert)},
        }, **LOOPBACK)
        item = await stored_rendition(distributor.storage)
        with pytest.raises(TargetUnavailableError, match="'untrusted'.*CERTIFICATE_VERIFY_FAILED"):
            await distributor.deliver("untrusted", item)
        assert receiver.files == []
        await distributor.deliver("pinned", item)          # trusted through the target's CA bundle
    assert [f.path for f in receiver.files] == ["/y"]
