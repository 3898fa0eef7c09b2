"""Choosing the H.264 encoder: NVENC, VAAPI or QSV when asked for and working, else libx264.

``DAMFLEET_TRANSCODE_HWACCEL`` names the wanted family. Debian's ffmpeg lists every
hardware encoder whether or not the machine has the device, so a listed encoder is not
proof: the choice is confirmed by encoding a tenth of a second of a test pattern. When
that fails, the worker falls back to software and says why (logged once per process,
and reported in ``TranscodeOutput.hw_accel_fallback_reason``); a misconfigured node
therefore keeps transcoding, slowly, instead of failing every job.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from damfleet.media.tools import find_tool, run_tool

__all__ = ["EncoderChoice", "reset_encoder_cache", "select_encoder", "software_encoder"]

log = logging.getLogger(__name__)

_ENCODERS = {"nvenc": "h264_nvenc", "vaapi": "h264_vaapi", "qsv": "h264_qsv"}


@dataclass(frozen=True)
class EncoderChoice:
    """How to encode H.264 on this worker."""

    family: str  # "software", "nvenc", "vaapi", "qsv"
    codec: str  # ffmpeg encoder name
    input_args: tuple[str, ...] = ()  # global/input options (device setup)
    filter_suffix: tuple[tuple[str, dict[str, str]], ...] = ()  # filters appended after scaling
    fallback_reason: str = ""
    preset: str = "veryfast"
    extra: dict[str, str] = field(default_factory=dict)

    def quality_args(self, crf: int, max_bitrate: str = "") -> dict[str, str | int]:
        """Output options for a constant-quality encode at ``crf`` (mapped per family)."""
        args: dict[str, str | int] = {"c:v": self.codec}
        if self.family == "software":
            args.update({"preset": self.preset, "crf": crf, "profile:v": "high", "pix_fmt": "yuv420p"})
        elif self.family == "nvenc":
            args.update({"preset": "p4", "rc": "vbr", "cq": crf, "b:v": "0", "pix_fmt": "yuv420p", "profile:v": "high"})
        elif self.family == "vaapi":
            args.update({"qp": crf, "profile:v": "high"})
        elif self.family == "qsv":
            args.update({"global_quality": crf, "look_ahead": 0, "profile:v": "high"})
        if max_bitrate:
            args.update({"maxrate": max_bitrate, "bufsize": _double(max_bitrate)})
            if self.family == "nvenc":
                args["b:v"] = max_bitrate
        return args


def _double(bitrate: str) -> str:
    digits = bitrate.rstrip("kKmM")
    unit = bitrate[len(digits) :]
    try:
        return f"{int(float(digits) * 2)}{unit}"
    except ValueError:
        return bitrate


def software_encoder(preset: str = "veryfast", reason: str = "") -> EncoderChoice:
    return EncoderChoice("software", "libx264", fallback_reason=reason, preset=preset)


def _hardware_choice(family: str, vaapi_device: str, preset: str) -> EncoderChoice:
    if family == "vaapi":
        return EncoderChoice(
            "vaapi",
            "h264_vaapi",
            input_args=("-vaapi_device", vaapi_device),
            filter_suffix=(("format", {"pix_fmts": "nv12"}), ("hwupload", {})),
            preset=preset,
        )
    if family == "qsv":
        return EncoderChoice("qsv", "h264_qsv", filter_suffix=(("format", {"pix_fmts": "nv12"}),), preset=preset)
    return EncoderChoice("nvenc", "h264_nvenc", preset=preset)


_cache: dict[tuple[str, str, str], EncoderChoice] = {}
_lock = asyncio.Lock()


def reset_encoder_cache() -> None:
    """Forget probed encoders (tests, or after a driver change)."""
    _cache.clear()


async def select_encoder(wanted: str, *, vaapi_device: str = "", preset: str = "veryfast") -> EncoderChoice:
    """The encoder to use for ``wanted`` ("none", "nvenc", "vaapi", "qsv"), probed once per process."""
    key = (wanted, vaapi_device, preset)
    if key in _cache:
        return _cache[key]
    async with _lock:
        if key not in _cache:
            _cache[key] = await _probe(wanted, vaapi_device, preset)
            choice = _cache[key]
            if choice.fallback_reason:
                log.warning("hardware encoding %r unavailable, using libx264: %s", wanted, choice.fallback_reason)
            else:
                log.info("H.264 encoder: %s (%s)", choice.codec, choice.family)
    return _cache[key]


async def _probe(wanted: str, vaapi_device: str, preset: str) -> EncoderChoice:
    if wanted in ("", "none", "software"):
        return software_encoder(preset)
    codec = _ENCODERS.get(wanted)
    if codec is None:
        return software_encoder(preset, f"unknown hwaccel {wanted!r} (expected none, nvenc, vaapi or qsv)")
    ffmpeg = find_tool("ffmpeg")
    listing = await run_tool([ffmpeg, "-hide_banner", "-encoders"], timeout_seconds=30)
    if codec not in listing.stdout.decode("utf-8", "replace"):
        return software_encoder(preset, f"this ffmpeg build has no {codec} encoder")
    if wanted == "vaapi" and not Path(vaapi_device).exists():
        return software_encoder(preset, f"VAAPI device {vaapi_device} does not exist (DAMFLEET_TRANSCODE_VAAPI_DEVICE)")
    choice = _hardware_choice(wanted, vaapi_device, preset)
    filters = ",".join(
        [
            name + ("=" + ":".join(f"{k}={v}" for k, v in opts.items()) if opts else "")
            for name, opts in choice.filter_suffix
        ]
    )
    test = [
        ffmpeg,
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        *choice.input_args,
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=10:duration=0.2",
        *(["-vf", filters] if filters else []),
        "-c:v",
        codec,
        "-f",
        "null",
        "-",
    ]
    result = await run_tool(test, timeout_seconds=30)
    if result.returncode != 0:
        # The first lines carry the cause ("Cannot load libcuda.so.1"); the last is ffmpeg's generic summary.
        lines = [line.strip() for line in result.stderr_tail.splitlines() if line.strip()] or ["encoder failed"]
        return software_encoder(preset, f"{codec} test encode failed: {' / '.join(lines[:2])[:300]}")
    return choice
