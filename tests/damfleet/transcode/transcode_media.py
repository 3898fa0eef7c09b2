"""Generated media for the transcode tests: odd sizes, rotation, anamorphic, 10-bit/HDR, every
still format libvips reads, and the bad-input corpus. Everything is made here with ffmpeg and
libvips; nothing is downloaded."""

from __future__ import annotations

import json
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

from damfleet.media.tools import find_tool


def ffmpeg(*args: str) -> None:
    subprocess.run(
        [find_tool("ffmpeg"), "-hide_banner", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=300
    )


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [find_tool("ffprobe"), "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return json.loads(out.stdout)


def video(
    path: Path,
    seconds: float = 3.0,
    *,
    size: str = "640x360",
    rate: int = 25,
    audio: bool = True,
    vf: str = "",
    pix_fmt: str = "yuv420p",
    extra: tuple[str, ...] = (),
    preset: str = "ultrafast",
) -> Path:
    """A testsrc2 H.264 (+ AAC tone) MP4."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    if vf:
        args += ["-vf", vf]
    args += ["-c:v", "libx264", "-preset", preset, "-pix_fmt", pix_fmt]
    if audio:
        args += ["-c:a", "aac", "-b:a", "64k"]
    ffmpeg(*args, *extra, str(path))
    return path


def rotated_phone_video(path: Path, seconds: float = 2.0) -> Path:
    """A landscape-coded 640x360 clip whose display matrix says rotate 90 degrees (phone portrait)."""
    plain = video(path.with_name(path.stem + "-plain.mp4"), seconds)
    ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(path))
    return path


def audio(path: Path, seconds: float = 3.0, *, channels: int = 2) -> Path:
    ffmpeg(
        "-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=44100:duration={seconds}", "-ac", str(channels), str(path)
    )
    return path


def still(path: Path, width: int, height: int, **save_options: Any) -> Path:
    """A libvips-made still of any format libvips saves (by suffix), with options such as orientation."""
    import pyvips

    x = pyvips.Image.xyz(width, height)
    red = (x[0] * 255 / max(1, width - 1)).cast("uchar")
    green = (x[1] * 255 / max(1, height - 1)).cast("uchar")
    blue = red.new_from_image(90).cast("uchar")
    image = red.bandjoin([green, blue]).copy(interpretation="srgb")
    orientation = save_options.pop("orientation", None)
    alpha = save_options.pop("alpha", False)
    sixteen = save_options.pop("sixteen_bit", False)
    if alpha:
        image = image.bandjoin(red.new_from_image(128).cast("uchar"))
    if sixteen:
        image = (image.cast("ushort") * 257).copy(interpretation="rgb16")
    if orientation is not None:
        image = image.copy()
        image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    image.write_to_file(str(path), **save_options)
    return path


def png_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A small PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(width // 8 + 1)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(64)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def truncated_copy(source: Path, path: Path, fraction: float) -> Path:
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def garbage_payload_mp4(source: Path, path: Path) -> Path:
    """An MP4 whose moov promises H.264 frames while its mdat holds noise (a lying container)."""
    import random

    data = bytearray(source.read_bytes())
    at = data.find(b"mdat")
    rng = random.Random(7)
    for i in range(at + 4, len(data)):
        data[i] = rng.randrange(256)
    path.write_bytes(bytes(data))
    return path


def hls_in_avi(path: Path, secret: Path) -> Path:
    """The classic exploit shape: an AVI header followed by an HLS playlist naming a local file."""
    playlist = (
        "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\n"
        f"concat:file://{secret}|subfile,,start,0,end,64,,:{secret}\n#EXT-X-ENDLIST\n"
    ).encode()
    riff = b"RIFF" + struct.pack("<I", 4 + len(playlist)) + b"AVI LIST" + struct.pack("<I", len(playlist)) + playlist
    path.write_bytes(riff)
    return path


def silent_wav(path: Path) -> Path:
    """A WAV with a valid header and no audio frames."""
    header = (
        b"RIFF" + struct.pack("<I", 36) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 44100, 88200, 2, 16)
    )
    path.write_bytes(header + b"data" + struct.pack("<I", 0))
    return path


KINDS = {"image": 1, "video": 2, "audio": 3}  # common_pb2.MediaKind values


async def run_stage(
    settings: Any,
    path: Path,
    kind: str,
    renditions: list[str],
    *,
    asset_id: str = "asset-test",
    resume: Any = None,
    progress: Any = None,
) -> Any:
    """Run the plain transcode stage on a local file as an ingested asset of ``kind``."""
    import hashlib

    from damfleet.storage import Storage
    from damfleet.transcode import stage
    from damfleet.v1 import common_pb2, stages_pb2

    asset = common_pb2.AssetRecord(
        asset_id=asset_id,
        original_uri=path.as_uri(),
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        size_bytes=path.stat().st_size,
        media=common_pb2.MediaInfo(kind=KINDS[kind]),
    )
    scratch = settings.scratch_path / f"t-{asset_id}"
    scratch.mkdir(parents=True, exist_ok=True)
    return await stage.transcode_asset(
        stages_pb2.TranscodeInput(asset=asset, renditions=renditions),
        storage=Storage.from_settings(settings),
        settings=settings,
        scratch=scratch,
        progress=progress,
        resume=resume,
    )


def local(uri: str) -> Path:
    from damfleet.storage import path_from_uri

    return Path(path_from_uri(uri))


def stored_files(settings: Any, asset_id: str = "asset-test") -> list[Path]:
    """Every file stored under the asset's renditions/ prefix."""
    from damfleet.storage import AssetKeys

    folder = local(AssetKeys(settings.storage_root, asset_id).rendition_prefix())
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []
