"""No unexpected egress (issue 12): what the ingest and AI code connect to, observed from outside.

* Instance-metadata credential lookups: a stand-in metadata service on loopback (botocore's
  ``AWS_EC2_METADATA_SERVICE_ENDPOINT``) counts the connections a storage client with no
  credentials makes: none by default, some when ``DAMFLEET_STORAGE_S3_INSTANCE_METADATA=true``
  (which shows the check can see them). Nothing leaves loopback either way.
* Under strace (``slow``; skipped where strace is missing): a real ingest (ffprobe/libvips/exiftool
  children included) and a real transcription with VAD make no connect or DNS query beyond loopback.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_STAT_S3_WITHOUT_CREDENTIALS = """
import asyncio
from damfleet.settings import load_settings
from damfleet.storage import Storage

async def main():
    storage = Storage.from_settings(load_settings())
    try:
        await storage.stat("s3://bucket/key.jpg")
    except Exception as exc:
        print(type(exc).__name__, exc)
    await storage.aclose()

asyncio.run(main())
"""


@pytest.fixture
def metadata_service() -> Iterator[tuple[int, list[int]]]:
    """A loopback listener standing in for 169.254.169.254; yields (port, accepted connections)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        server.close()


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DAMFLEET_"))}
    env.update(PYTHONPATH=str(REPO), DAMFLEET_STATE_DIR=str(tmp_path / "state"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"), **extra)
    return env


@pytest.mark.parametrize(("enabled", "expect_lookups"), [("false", False), ("true", True)])
def test_instance_metadata_is_asked_only_when_enabled(tmp_path: Path, metadata_service, enabled: str,
                                                      expect_lookups: bool) -> None:
    port, accepted = metadata_service
    env = _clean_env(tmp_path, AWS_EC2_METADATA_SERVICE_ENDPOINT=f"http://127.0.0.1:{port}/",
                     DAMFLEET_STORAGE_S3_ENDPOINT_URL="http://127.0.0.1:9",
                     DAMFLEET_STORAGE_S3_INSTANCE_METADATA=enabled)
    proc = subprocess.run([sys.executable, "-c", _STAT_S3_WITHOUT_CREDENTIALS], env=env, capture_output=True,
                          text=True, timeout=180, check=False)
    assert "no S3 credentials configured" in proc.stdout, (proc.stdout, proc.stderr[-2000:])
    assert bool(accepted) is expect_lookups, f"{len(accepted)} instance-metadata connections"


_INGEST_AND_TRANSCRIBE = """
import asyncio, sys
from pathlib import Path
from damfleet import ingest, samples
from damfleet.ai.backend import LocalInference
from damfleet.settings import load_settings
from damfleet.storage import Storage
from damfleet.v1 import stages_pb2

async def main(image):
    settings = load_settings()
    storage = Storage.from_settings(settings)
    scratch = settings.scratch_path / "egress"
    scratch.mkdir(parents=True, exist_ok=True)
    request = stages_pb2.IngestInput(asset_id="asset-egress-1", source_uri=Path(image).as_uri(), profile="default")
    result = await ingest.ingest_asset(request, storage=storage, settings=settings, scratch=scratch)
    await storage.aclose()
    transcript = LocalInference(settings.ai).transcribe_blocking(samples.speech_path())
    print("ingested", result.asset.media.mime_type, "segments", len(transcript.segments))

asyncio.run(main(sys.argv[1]))
"""

_INET = re.compile(r'connect\(\d+, \{sa_family=AF_INET6?, .*?(?:inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")')


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_ingest_and_transcription_connect_nowhere_but_loopback(tmp_path: Path, media_dir: Path) -> None:
    image = tmp_path / "in" / "small.png"
    image.parent.mkdir()
    shutil.copy(media_dir / "small.png", image)
    env = _clean_env(tmp_path, DAMFLEET_INGEST_SOURCE_ROOTS=str(image.parent), DAMFLEET_AI_WHISPER_CPU_THREADS="2",
                     HF_HUB_OFFLINE="1")
    trace = tmp_path / "strace.log"
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-s", "256", "-e", "trace=connect,sendto,sendmsg,sendmmsg", "-o", str(trace),
         sys.executable, "-c", _INGEST_AND_TRANSCRIBE, str(image)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0 and "ingested image/png" in proc.stdout, proc.stderr[-3000:]
    log = trace.read_text(errors="replace")
    addresses = {a or b for a, b in _INET.findall(log)}
    outside = {a for a in addresses if not (a.startswith("127.") or a == "::1")}
    assert not outside, f"connected outside loopback: {outside}"
    for name in ("microsoft", "169.254.169.254", "amazonaws"):
        assert name not in log, f"{name} appears in the traced traffic"


def test_the_trace_parser_sees_inet_connects() -> None:
    """The strace check reads addresses the way strace prints them (so an empty result means something)."""
    lines = ('7  connect(5, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0\n'
             '7  connect(6, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), '
             'inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), sin6_scope_id=0}, 28) = 0\n')
    assert {a or b for a, b in _INET.findall(lines)} == {"10.255.255.53", "2001:db8::1"}
