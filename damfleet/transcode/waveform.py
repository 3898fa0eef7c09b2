"""Waveform peaks (JSON for web players) and a waveform picture (PNG) from decoded PCM.

ffmpeg decodes the audio to mono 16-bit PCM at a low rate into scratch (a separate,
progress-reporting, killable job); this module streams that file in fixed-size blocks,
so memory stays flat however long the recording is. The JSON is BBC audiowaveform's
version-2 format, which peaks.js and wavesurfer-style players load directly::

    {"version": 2, "channels": 1, "sample_rate": 8000, "samples_per_pixel": 64,
     "bits": 8, "length": 1000, "data": [min0, max0, min1, max1, ...]}
"""

from __future__ import annotations

import array
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from damfleet.errors import CorruptMediaError
from damfleet.media.probe import configure_vips
from damfleet.transcode.errors import MissingStreamError
from damfleet.transcode.renditions import WaveformSpec

__all__ = ["WaveformResult", "compute_peaks", "render_waveform", "samples_per_pixel"]

_BYTES_PER_SAMPLE = 2


@dataclass(frozen=True)
class WaveformResult:
    json_path: str
    png_path: str
    points: int
    samples_per_pixel: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def samples_per_pixel(total_samples: int, spec: WaveformSpec) -> int:
    """Samples folded into one peak so the file has about ``spec.target_points`` peaks."""
    return max(spec.min_samples_per_pixel, math.ceil(total_samples / max(1, spec.target_points)))


def compute_peaks(pcm_path: Path, spp: int) -> list[int]:
    """Interleaved 8-bit (min, max) pairs per ``spp`` samples of signed 16-bit mono PCM."""
    data: list[int] = []
    block_samples = spp * 512
    with open(pcm_path, "rb") as fh:
        carry = array.array("h")
        while True:
            raw = fh.read(block_samples * _BYTES_PER_SAMPLE)
            if not raw:
                break
            samples = array.array("h")
            samples.frombytes(raw[: len(raw) - len(raw) % _BYTES_PER_SAMPLE])
            if sys.byteorder == "big":
                samples.byteswap()
            if carry:
                samples = carry + samples
            whole = len(samples) - len(samples) % spp
            for start in range(0, whole, spp):
                chunk = samples[start : start + spp]
                data.append(min(chunk) >> 8)
                data.append(max(chunk) >> 8)
            carry = samples[whole:]
        if carry:
            data.append(min(carry) >> 8)
            data.append(max(carry) >> 8)
    return data


def render_waveform(pcm_path: Path, json_path: Path, png_path: Path, spec: WaveformSpec) -> WaveformResult:
    """Write the peaks JSON and the PNG picture for one decoded PCM file."""
    total_samples = pcm_path.stat().st_size // _BYTES_PER_SAMPLE
    if total_samples == 0:
        raise MissingStreamError("the audio stream has no audio frames (nothing decoded)")
    spp = samples_per_pixel(total_samples, spec)
    peaks = compute_peaks(pcm_path, spp)
    document = {
        "version": 2,
        "channels": 1,
        "sample_rate": spec.sample_rate,
        "samples_per_pixel": spp,
        "bits": 8,
        "length": len(peaks) // 2,
        "data": peaks,
    }
    json_path.write_text(json.dumps(document, separators=(",", ":")))
    _draw_png(peaks, png_path, spec)
    return WaveformResult(str(json_path), str(png_path), len(peaks) // 2, spp)


def _draw_png(peaks: list[int], png_path: Path, spec: WaveformSpec) -> None:
    """Draw one vertical bar per column from the peaks, resampled to the picture width."""
    pyvips = configure_vips()
    width, height = spec.png_width, spec.png_height
    points = len(peaks) // 2
    if points == 0:
        raise CorruptMediaError("no waveform peaks to draw")
    middle = (height - 1) / 2
    columns = bytearray()
    for x in range(width):
        first = x * points // width
        last = max(first + 1, (x + 1) * points // width)
        low = min(peaks[2 * first : 2 * last : 2])
        high = max(peaks[2 * first + 1 : 2 * last : 2])
        top = max(0, min(height - 1, round(middle - high / 128 * middle)))
        bottom = max(top, min(height - 1, round(middle - low / 128 * middle)))
        columns += bytes(top) + b"\xff" * (bottom - top + 1) + bytes(height - 1 - bottom)
    # Built column by column (each column a row of the transposed mask), then turned upright.
    mask = pyvips.Image.new_from_memory(bytes(columns), height, width, 1, "uchar").rot90().fliphor()
    colour = mask.new_from_image(list(spec.png_colour))
    background = mask.new_from_image(list(spec.png_background))
    picture = (mask > 0).ifthenelse(colour, background).cast("uchar").copy(interpretation="srgb")
    partial = png_path.with_name(f".{png_path.name}.partial.png")
    picture.pngsave(str(partial), strip=True)
    partial.replace(png_path)
