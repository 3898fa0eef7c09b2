"""SFTP target against a real OpenSSH sshd (chrooted when run as root): pinned host keys,
atomic rename into the watch folder, resume after the server is killed mid-upload,
permission and SSRF refusals."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from damfleet.errors import ConfigurationError, TargetRejectedError, TargetUnavailableError
from tests.damfleet.delivery.conftest import FolderWatcher
from tests.file_servers import SshServer

LOOPBACK = {"DAMFLEET_DISTRIBUTION_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32"}
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def sshd() -> Iterator[SshServer]:
    server = SshServer().start()
    yield server
    server.stop()


@pytest.fixture
def fresh_sshd() -> Iterator[SshServer]:
    """A server of the test's own, for tests that kill it or need other settings."""
    servers: list[SshServer] = []

    def make(**options: object) -> SshServer:
        server = SshServer(**options)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield make  # type: ignore[misc]
    for server in servers:
        server.stop()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_delivers_atomically_into_the_folder_with_a_sidecar(distributor_for, stored_rendition, sshd) -> None:
    distributor, _ = distributor_for({"partner": sshd.target(checksum_sidecar="sha256")}, **LOOPBACK)
    item = await stored_rendition(distributor.storage, size=3 * MiB + 7)
    config, result = await distributor.deliver("partner", item)
    landed = sshd.upload / item.asset_id / item.filename
    assert config.type == "sftp"
    assert landed.stat().st_size == item.size_bytes and _sha(landed) == item.sha256
    assert result.sha256 == item.sha256 and result.resumed_from == 0
    assert result.location == f"sftp://127.0.0.1:{sshd.port}{sshd.remote_root}/{item.asset_id}/{item.filename}"
    sidecar = landed.with_name(item.filename + ".sha256").read_text()
    assert sidecar == f"{item.sha256}  {item.filename}\n"
    assert sorted(p.name for p in landed.parent.iterdir()) == [item.filename, item.filename + ".sha256"]
    # a second delivery replaces the file in place (same name, no second copy)
    _, again = await distributor.deliver("partner", item)
    assert again.size_bytes == item.size_bytes and len(list(landed.parent.iterdir())) == 2


async def test_fingerprint_pin_works_and_a_wrong_key_is_refused_naming_both(
    distributor_for, stored_rendition, sshd, tmp_path: Path
) -> None:
    import asyncssh

    real = asyncssh.read_public_key(f"{sshd.host_key}.pub").get_fingerprint("sha256")
    other = asyncssh.generate_private_key("ssh-ed25519")
    wrong = other.export_public_key().decode().strip()
    distributor, _ = distributor_for({
        "by-fingerprint": sshd.target(host_key="", host_key_fingerprint=real),
        "impostor": sshd.target(host_key=wrong),
    }, **LOOPBACK)
    item = await stored_rendition(distributor.storage, size=10_000)
    _, result = await distributor.deliver("by-fingerprint", item)
    assert result.size_bytes == 10_000
    with pytest.raises(TargetRejectedError) as caught:
        await distributor.deliver("impostor", item)
    message = str(caught.value)
    assert "'impostor'" in message and "host key mismatch" in message
    assert real in message and other.get_fingerprint("sha256") in message
    assert not caught.value.retryable


def test_a_target_without_a_pinned_key_or_credentials_is_refused() -> None:
    from damfleet.delivery import parse_target

    base = {"type": "sftp", "host": "sftp.partner.example", "username": "u", "password": "p"}
    with pytest.raises(ConfigurationError, match="'p1'.*no host key pinned"):
        parse_target("p1", base, env={})
    with pytest.raises(ConfigurationError, match="'p2'.*password or a private_key"):
        parse_target("p2", {**base, "password": "", "host_key_fingerprint": "SHA256:abc"}, env={})
    with pytest.raises(ConfigurationError, match="'p3'.*SHA256"):
        parse_target("p3", {**base, "host_key_fingerprint": "MD5:ab:cd"}, env={})
    with pytest.raises(ConfigurationError, match="'p4'.*unknown placeholder"):
        parse_target("p4", {**base, "host_key_fingerprint": "SHA256:abc", "remote_dir": "/in/{nope}"}, env={})
    config = parse_target("ok", {**base, "password_env": "PARTNER_PW", "host_key_fingerprint": "SHA256:abc"},
                          env={"PARTNER_PW": "from-secret"})
    assert config.password.get_secret_value() == "from-secret" and "from-secret" not in repr(config)  # type: ignore[attr-defined]


async def test_read_only_folder_is_a_permanent_refusal(distributor_for, stored_rendition, fresh_sshd) -> None:
    server = fresh_sshd(read_only=True)
    distributor, _ = distributor_for({"ro": server.target(remote_dir=server.remote_root)}, **LOOPBACK)
    item = await stored_rendition(distributor.storage, size=50_000)
    with pytest.raises(TargetRejectedError, match="'ro'.*permission denied") as caught:
        await distributor.deliver("ro", item)
    assert not caught.value.retryable
    assert list(server.upload.iterdir()) == []


async def test_loopback_server_needs_the_allowlist(distributor_for, stored_rendition, sshd) -> None:
    distributor, _ = distributor_for({"partner": sshd.target()})
    item = await stored_rendition(distributor.storage, size=1000)
    with pytest.raises(ConfigurationError, match="loopback"):
        await distributor.deliver("partner", item)


async def test_a_stopped_server_is_retryable(distributor_for, stored_rendition, fresh_sshd) -> None:
    server = fresh_sshd()
    server.kill()
    distributor, _ = distributor_for({"down": server.target()}, **LOOPBACK)
    item = await stored_rendition(distributor.storage, size=1000)
    with pytest.raises(TargetUnavailableError, match="'down'") as caught:
        await distributor.deliver("down", item)
    assert caught.value.retryable


async def test_killed_mid_upload_resumes_on_another_worker(distributor_for, stored_rendition, fresh_sshd) -> None:
    """sshd (and its session process) is killed -9 after ~20 MB of a 50 MB upload; after a
    restart, a second Distributor (another worker) resumes from what the server kept, and the
    watcher on the folder never sees the final name holding fewer bytes than the source."""
    server = fresh_sshd()
    first, _ = distributor_for({"partner": server.target()}, **LOOPBACK)
    item = await stored_rendition(first.storage, size=50 * MiB)
    heartbeats: list[int] = []

    def progress(done: int, total: int) -> None:
        heartbeats.append(done)
        if done >= 20 * MiB and len(heartbeats) and not getattr(progress, "killed", False):
            progress.killed = True  # type: ignore[attr-defined]
            server.kill()

    folder = server.upload / item.asset_id
    with FolderWatcher(server.upload, item.filename) as watcher:
        with pytest.raises(TargetUnavailableError) as caught:
            await first.deliver("partner", item, progress=progress)
        assert caught.value.retryable
        assert not (folder / item.filename).exists()
        partial = [p for p in folder.iterdir() if p.name.endswith(".part")]
        assert len(partial) == 1 and 0 < partial[0].stat().st_size < item.size_bytes
        server.start()
        second, _ = distributor_for({"partner": server.target()}, **LOOPBACK)
        _, result = await second.deliver("partner", item, resume_hint=heartbeats[-1])
    assert 0 < result.resumed_from < item.size_bytes
    landed = folder / item.filename
    assert landed.stat().st_size == item.size_bytes and _sha(landed) == item.sha256
    assert [p.name for p in folder.iterdir()] == [item.filename]
    assert watcher.partial_sightings == [] and watcher.full_sightings > 0
