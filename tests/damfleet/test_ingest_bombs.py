"""Probes in a box and declared canvases (issue 12): bombs are refused, and the worker stays small.

The files are generated here: a PNG whose zTXt chunk inflates to 256 MiB, images whose declared
canvas (GIF logical screen, PNG IHDR, WebP VP8X) is far over the pixel limit while their frames are
tiny, and an animation whose pages together exceed it. The ingest runs in this process, as in a
worker; its tools run in children under ``DAMFLEET_INGEST_TOOL_MEMORY_BYTES``.
"""

from __future__ import annotations

import io
import json
import resource
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from damfleet import ingest
from damfleet.errors import UnsafeMediaError
from damfleet.media.probe import declared_canvas
from damfleet.settings import Settings
from damfleet.storage import Storage
from damfleet.v1 import stages_pb2
from tests.conftest import make_settings


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(width: int = 8, height: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def ztxt_bomb(path: Path, inflated_mib: int) -> None:
    """A valid small PNG with a zTXt chunk (before IDAT) holding ``inflated_mib`` MiB of zeros, deflated (~1000:1)."""
    packer = zlib.compressobj(9)
    block = bytes(1024 * 1024)
    compressed = b"".join(packer.compress(block) for _ in range(inflated_mib)) + packer.flush()
    png = _png()
    after_ihdr = 8 + 25  # signature, then IHDR (length, type, 13 bytes, CRC): text chunks may follow it
    path.write_bytes(png[:after_ihdr] + _chunk(b"zTXt", b"Comment\x00\x00" + compressed) + png[after_ihdr:])


def _with_canvas(data: bytes, width: int, height: int) -> bytes:
    """Patch the declared canvas of a GIF, PNG or WebP (VP8X) file."""
    out = bytearray(data)
    if data[:3] == b"GIF":
        out[6:10] = struct.pack("<HH", width, height)
    elif data[:4] == b"\x89PNG":
        out[16:24] = struct.pack(">II", width, height)
        out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])) & 0xFFFFFFFF)
    else:
        assert data[12:16] == b"VP8X", "a WebP with an extended header"
        out[24:27] = (width - 1).to_bytes(3, "little")
        out[27:30] = (height - 1).to_bytes(3, "little")
    return bytes(out)


async def _ingest(settings: Settings, source: Path, asset_id: str) -> stages_pb2.IngestOutput:
    storage = Storage.from_settings(settings)
    scratch = settings.scratch_path / asset_id
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        request = stages_pb2.IngestInput(asset_id=asset_id, source_uri=source.as_uri(), profile="default")
        return await ingest.ingest_asset(request, storage=storage, settings=settings, scratch=scratch)
    finally:
        await storage.aclose()


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def test_ztxt_bomb_is_refused_and_the_worker_stays_small(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    ztxt_bomb(bomb, inflated_mib=256)
    assert bomb.stat().st_size < 1024 * 1024
    settings = make_settings(tmp_path, DAMFLEET_INGEST_TOOL_MEMORY_BYTES=str(384 * 2**20))
    before = _peak_rss_mib()
    with pytest.raises(UnsafeMediaError, match="memory limit .*DAMFLEET_INGEST_TOOL_MEMORY_BYTES"):
        await _ingest(settings, bomb, "asset-bomb-ztxt")
    grew = _peak_rss_mib() - before
    assert grew < 128, f"the worker's own peak RSS grew by {grew:.0f} MiB: the bomb went off in-process"
    storage = Storage.from_settings(settings)
    assert [o async for o in storage.list(storage.keys("asset-bomb-ztxt").prefix)] == [], "nothing stored"


@pytest.mark.parametrize(("fmt", "what"), [("GIF", "GIF logical screen"), ("PNG", "PNG canvas"),
                                           ("WEBP", "WebP canvas")])
async def test_a_declared_canvas_over_the_limit_is_refused_before_decoding(tmp_path: Path, fmt: str,
                                                                            what: str) -> None:
    buffer = io.BytesIO()
    kwargs = {"exif": Image.Exif()} if fmt == "WEBP" else {}
    Image.new("RGBA" if fmt == "WEBP" else "RGB", (4, 4)).save(buffer, fmt, **kwargs)
    data = buffer.getvalue()
    if fmt == "WEBP" and data[12:16] != b"VP8X":
        pytest.skip("this Pillow wrote a simple WebP without a VP8X canvas")
    source = tmp_path / f"canvas.{fmt.lower()}"
    source.write_bytes(_with_canvas(data, 65535, 65535))
    assert declared_canvas(source.read_bytes()[:64])[1:] == (65535, 65535)
    with pytest.raises(UnsafeMediaError, match=f"{what} of 65535x65535 .*refused before decoding"):
        await _ingest(make_settings(tmp_path), source, f"asset-canvas-{fmt.lower()}")


async def test_pages_together_are_held_to_the_limit(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (100, 100), (i * 20, 0, 0)) for i in range(10)]
    source = tmp_path / "animation.gif"
    frames[0].save(source, "GIF", save_all=True, append_images=frames[1:], duration=100)
    strict = make_settings(tmp_path / "strict", DAMFLEET_INGEST_MAX_IMAGE_PIXELS="50000")
    with pytest.raises(UnsafeMediaError, match=r"all pages\) of 100x100 x 10 pages = 100000 pixels"):
        await _ingest(strict, source, "asset-pages-1")
    roomy = await _ingest(make_settings(tmp_path / "roomy"), source, "asset-pages-2")
    sidecar = next(o for o in roomy.outputs if o.role == "technical_metadata")
    assert json.loads(Path(sidecar.uri.removeprefix("file://")).read_text())["vips"]["pages"] == 10


@pytest.mark.parametrize("source", ["harbour-still.jpg", "short.mp4"])
async def test_a_limit_too_low_for_the_tools_is_a_configuration_error_not_bad_media(
    tmp_path: Path, media_dir: Path, source: str
) -> None:
    """Tools that cannot even start under the limit do not blame the file: the setting is named."""
    from damfleet.transcode.errors import ToolResourceLimitError

    tight = make_settings(tmp_path, DAMFLEET_INGEST_TOOL_MEMORY_BYTES=str(48 * 2**20))
    with pytest.raises(ToolResourceLimitError, match="DAMFLEET_INGEST_TOOL_MEMORY_BYTES=50331648") as caught:
        await _ingest(tight, media_dir / source, "asset-tight-1")
    assert not caught.value.retryable
