"""FTP and FTPS targets against a real FTP server (pyftpdlib in a child process, explicit
TLS with a generated CA): verified TLS, atomic rename, resume after the server is killed
mid-upload, and how 421/530/550 replies are classified."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from damfleet.delivery import OutboundBlockedError
from damfleet.errors import TargetRejectedError, TargetUnavailableError
from tests.damfleet.delivery.conftest import FolderWatcher
from tests.file_servers import FtpServer

LOOPBACK = {"DAMFLEET_DISTRIBUTION_ALLOW_PRIVATE_NETWORKS": "127.0.0.1/32"}
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def ftps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FtpServer]:
    server = FtpServer(tmp_path_factory.mktemp("ftps")).start()
    yield server
    server.stop()


@pytest.fixture
def ftp_server(tmp_path: Path) -> Iterator[Callable[..., FtpServer]]:
    """A server of the test's own (killed, limited or read-only)."""
    servers: list[FtpServer] = []

    def make(**options: object) -> FtpServer:
        server = FtpServer(tmp_path / f"srv{len(servers)}", **options)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_ftps_delivers_over_verified_tls_with_an_md5_sidecar(distributor_for, stored_rendition, ftps) -> None:
    distributor, _ = distributor_for({"playout": ftps.target(checksum_sidecar="md5")}, **LOOPBACK)
    item = await stored_rendition(distributor.storage, size=3 * MiB + 11)
    config, result = await distributor.deliver("playout", item)
    landed = ftps.upload / item.asset_id / item.filename
    assert config.type == "ftps" and result.resumed_from == 0
    assert _sha(landed) == item.sha256 and result.sha256 == item.sha256
    assert result.location == f"ftps://127.0.0.1:{ftps.port}/upload/{item.asset_id}/{item.filename}"
    md5 = hashlib.md5(landed.read_bytes(), usedforsecurity=False).hexdigest()
    assert landed.with_name(item.filename + ".md5").read_text() == f"{md5}  {item.filename}\n"
    assert sorted(p.name for p in landed.parent.iterdir()) == [item.filename, item.filename + ".md5"]
    # delivering again replaces the file through the same rename (no second copy, no leftovers)
    _, again = await distributor.deliver("playout", item)
    assert again.size_bytes == item.size_bytes and _sha(landed) == item.sha256
    assert sorted(p.name for p in landed.parent.iterdir()) == [item.filename, item.filename + ".md5"]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"remote_dir": "/in/../etc"}, "must not contain '..'"),
        ({"remote_dir": "/in/{title}"}, "unknown placeholder(s) ['title']"),
        ({"temp_name": "upload.tmp"}, "temp_name must be a file name using {filename}"),
        ({"temp_name": "{filename}"}, "must differ from the final name"),
        ({"checksum_sidecar": "crc32"}, "checksum_sidecar must be one of"),
        ({"host": "user@host"}, "host must be a host name"),
        ({"port": 70000}, "port must be at most 65535"),
        ({"verify_tls": "no"}, "verify_tls must be true or false"),
        ({"passive": True}, "unknown setting 'passive'"),
    ],
)
def test_bad_ftp_definitions_name_the_target_and_setting(changes: dict[str, object], words: str) -> None:
    from damfleet.delivery import parse_target
    from damfleet.errors import ConfigurationError

    base = {"type": "ftps", "host": "ftp.station.example", "username": "u", "password": "p"}
    with pytest.raises(ConfigurationError, match="'station'") as caught:
        parse_target("station", {**base, **changes}, env={})
    assert words in str(caught.value)


async def test_untrusted_certificate_and_wrong_password_are_permanent(distributor_for, stored_rendition, ftps
                                                                      ) -> None:
    distributor, _ = distributor_for({
        "no-ca": ftps.target(ca_bundle=""),
        "bad-login": ftps.target(password="wrong"),
    }, **LOOPBACK)
    item = await stored_rendition(distributor.storage, size=1000)
    with pytest.raises(TargetRejectedError, match="'no-ca'.*certificate not trusted") as caught:
        await distributor.deliver("no-ca", item)
    assert not caught.value.retryable
    with pytest.raises(TargetRejectedError, match="'bad-login'.*login refused.*530") as caught:
        await distributor.deliver("bad-login", item)
    assert not caught.value.retryable


async def test_plain_ftp_and_a_read_only_folder(distributor_for, stored_rendition, ftp_server) -> None:
    plain = ftp_server(tls=False)
    read_only = ftp_server(tls=False, read_only=True)
    distributor, _ = distributor_for({
        "plain": plain.target(),
        "ro": read_only.target(remote_dir="/upload"),
    }, **LOOPBACK)
    item = await stored_rendition(distributor.storage, size=200_000)
    _, result = await distributor.deliver("plain", item)
    assert _sha(plain.upload / item.asset_id / item.filename) == item.sha256
    assert result.location.startswith("ftp://")
    with pytest.raises(TargetRejectedError, match="'ro'.*550") as caught:
        await distributor.deliver("ro", item)
    assert not caught.value.retryable
    assert list(read_only.upload.iterdir()) == []


async def test_server_at_its_session_limit_answers_421_then_recovers(distributor_for, stored_rendition, ftp_server
                                                                     ) -> None:
    server = ftp_server(max_cons=4)
    held: list[socket.socket] = []
    try:
        for _ in range(20):      # take sessions until the server says it is full
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            greeting = sock.recv(200)
            held.append(sock)
            if greeting.startswith(b"421"):
                break
        assert greeting.startswith(b"421")
        distributor, _ = distributor_for({"busy": server.target()}, **LOOPBACK)
        item = await stored_rendition(distributor.storage, size=100_000)
        with pytest.raises(TargetUnavailableError, match="'busy'.*421") as caught:
            await distributor.deliver("busy", item)
        assert caught.value.retryable
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 60      # Temporal would retry with backoff; so does this loop
    while True:
        try:
            _, result = await distributor.deliver("busy", item)
            break
        except TargetUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    assert result.size_bytes == item.size_bytes
    assert _sha(server.upload / item.asset_id / item.filename) == item.sha256


async def test_killed_mid_upload_resumes_with_rest(distributor_for, stored_rendition, ftp_server) -> None:
    """The FTPS server is killed -9 after ~20 MB of a 50 MB upload and restarted; the next
    attempt (another Distributor, as on another worker) resumes from the server's SIZE, and
    a watcher on the folder never sees the final name with fewer bytes than the source."""
    server = ftp_server()
    first, _ = distributor_for({"playout": server.target()}, **LOOPBACK)
    item = await stored_rendition(first.storage, size=50 * MiB)
    killed: list[int] = []

    def progress(done: int, total: int) -> None:
        if done >= 20 * MiB and not killed:
            killed.append(done)
            server.kill()

    folder = server.upload / item.asset_id
    with FolderWatcher(server.upload, item.filename) as watcher:
        with pytest.raises(TargetUnavailableError, match="'playout'") as caught:
            await first.deliver("playout", item, progress=progress)
        assert caught.value.retryable and killed
        partial = [p for p in folder.iterdir() if p.name.endswith(".part")]
        assert len(partial) == 1 and 0 < partial[0].stat().st_size < item.size_bytes
        server.start()
        second, _ = distributor_for({"playout": server.target()}, **LOOPBACK)
        _, result = await second.deliver("playout", item)
    assert 0 < result.resumed_from < item.size_bytes
    landed = folder / item.filename
    assert landed.stat().st_size == item.size_bytes and _sha(landed) == item.sha256
    assert [p.name for p in folder.iterdir()] == [item.filename]
    assert watcher.partial_sightings == [] and watcher.full_sightings > 0


async def test_loopback_ftp_server_needs_the_allowlist(distributor_for, stored_rendition, ftps) -> None:
    distributor, _ = distributor_for({"playout": ftps.target()})
    item = await stored_rendition(distributor.storage, size=1000)
    with pytest.raises(OutboundBlockedError, match="refusing to connect to 127.0.0.1: a loopback address") as caught:
        await distributor.deliver("playout", item)
    assert not caught.value.retryable
