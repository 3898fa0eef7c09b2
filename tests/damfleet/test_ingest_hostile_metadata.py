"""Hostile content that is valid media (issue 12): absurd embedded metadata, audio nothing can downmix."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from damfleet.errors import UnsupportedMediaError
from damfleet.media.probe import MAX_METADATA_CHARS, clean_metadata
from damfleet.settings import Settings
from tests.damfleet.test_ingest_bombs import _ingest  # one helper for both ingest suites


def test_clean_metadata_bounds_strings_escapes_bidi_and_drops_impossible_gps() -> None:
    cleaned = clean_metadata({
        "EXIF:ImageDescription": "x" * 24_000, "XMP:Title": "invoice\u202egpj.exe\nline two",
        "EXIF:GPSLatitude": 300.0, "EXIF:GPSLongitude": 12.5, "Composite:GPSPosition": "300 12.5",
        "EXIF:ISO": 100,
    })
    assert len(cleaned["EXIF:ImageDescription"]) < MAX_METADATA_CHARS + 60
    assert cleaned["EXIF:ImageDescription"].endswith("[22000 more characters dropped]")
    assert cleaned["XMP:Title"] == "invoice\\u202egpj.exe\nline two"
    assert "EXIF:GPSLatitude" not in cleaned and "Composite:GPSPosition" not in cleaned
    assert cleaned["EXIF:GPSLongitude"] == 12.5 and cleaned["EXIF:ISO"] == 100
    assert len(cleaned["damfleet:ignored"]) == 2


async def test_hostile_exif_is_stored_cleaned(settings: Settings, tmp_path: Path) -> None:
    source = tmp_path / "exif.jpg"
    exif = Image.Exif()
    exif[0x010E] = "d" * 24_000                        # ImageDescription
    exif[0x9C9B] = "invoice\u202egpj.exe".encode("utf-16-le")   # XPTitle (UCS-2), a right-to-left override
    exif.get_ifd(0x8825).update({1: "N", 2: (300.0, 0.0, 0.0), 3: "E", 4: (10.0, 0.0, 0.0)})  # GPS
    Image.new("RGB", (64, 48), (90, 90, 90)).save(source, "JPEG", exif=exif)
    result = await _ingest(settings, source, "asset-exif-1")
    sidecar = next(o for o in result.outputs if o.role == "technical_metadata")
    stored = json.loads(Path(sidecar.uri.removeprefix("file://")).read_text())["exif"]
    assert stored["EXIF:ImageDescription"].endswith("more characters dropped]")
    assert "\u202e" not in json.dumps(stored, ensure_ascii=False)
    assert stored["EXIF:XPTitle"] == "invoice\\u202egpj.exe"
    assert "EXIF:GPSLatitude" not in stored and any("GPSLatitude" in i for i in stored["damfleet:ignored"])
    assert stored["EXIF:GPSLongitude"] == pytest.approx(10.0)


def _wav_with_channels(path: Path, channels: int) -> Path:
    """A 1 s WAV of ``channels`` channels with no channel layout (amerge of a split sine)."""
    labels = "".join(f"[a{i}]" for i in range(channels))
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "sine=f=440:d=1",
         "-filter_complex", f"[0]asplit={channels}{labels};{labels}amerge=inputs={channels}",
         "-c:a", "pcm_s16le", str(path)],
        check=True, timeout=120,
    )
    return path


async def test_audio_nothing_can_downmix_is_refused_at_ingest(settings: Settings, tmp_path: Path) -> None:
    source = await asyncio.to_thread(_wav_with_channels, tmp_path / "ch32.wav", 32)
    with pytest.raises(UnsupportedMediaError, match="32 channels and no channel layout: it cannot be downmixed"):
        await _ingest(settings, source, "asset-ch32-1")
