"""Sample media for the demo and the tests, generated on the spot with ffmpeg.

Everything is synthesised locally (test patterns, tones, and a shipped 11 s clip of
English speech made with espeak-ng), so the demo and tests need no downloads.
"""

from __future__ import annotations

import subprocess
from importlib import resources
from pathlib import Path

from damfleet.media.tools import find_tool

__all__ = [
    "SPEECH_TEXT",
    "make_audio",
    "make_demo_set",
    "make_image",
    "make_video",
    "speech_path",
]

#: What the shipped speech clip says (for word-error-rate checks).
SPEECH_TEXT = (
    "Welcome to the damfleet media archive. This short clip shows a red bicycle parked beside the old "
    "harbour. Every asset is checked, transcoded, and delivered."
)


def speech_path() -> Path:
    """The shipped speech clip (Opus, 16 kHz mono, 11.4 s)."""
    return Path(str(resources.files("damfleet.samples") / "speech_en.opus"))


def _ffmpeg(*args: str) -> None:
    cmd = [find_tool("ffmpeg"), "-hide_banner", "-nostdin", "-v", "error", "-y", *args]
    subprocess.run(cmd, check=True, timeout=300)


def make_image(path: Path, width: int = 1920, height: int = 1080, *, pattern: str = "testsrc2") -> Path:
    """A JPEG/PNG/WebP (by suffix) test pattern of the given size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _ffmpeg("-f", "lavfi", "-i", f"{pattern}=size={width}x{height}:rate=1", "-frames:v", "1", str(path))
    return path


def make_video(
    path: Path,
    seconds: float = 6.0,
    *,
    width: int = 1280,
    height: int = 720,
    rate: int = 25,
    speech: bool = True,
    extra_args: tuple[str, ...] = (),
) -> Path:
    """An H.264/AAC MP4 test pattern; with ``speech`` its audio is the shipped speech clip."""
    path.parent.mkdir(parents=True, exist_ok=True)
    video = ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={rate}:duration={seconds}"]
    if speech:
        audio = ["-stream_loop", "-1", "-i", str(speech_path())]
    else:
        audio = ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    _ffmpeg(
        *video, *audio, "-map", "0:v", "-map", "1:a", "-t", str(seconds),
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k",
        "-movflags", "+faststart", *extra_args, str(path),
    )
    return path


def make_audio(path: Path, seconds: float | None = None, *, speech: bool = True) -> Path:
    """An audio file (format by suffix): the speech clip, or a tone of ``seconds``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if speech:
        args = ["-i", str(speech_path())] + (["-t", str(seconds)] if seconds else [])
    else:
        args = ["-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=44100:duration={seconds or 5}"]
    _ffmpeg(*args, "-ac", "1", str(path))
    return path


def make_demo_set(folder: Path) -> list[Path]:
    """The demo's sample set: an image, a short video with speech, an audio clip."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        make_image(folder / "harbour-still.jpg", 2400, 1600),
        make_video(folder / "harbour-clip.mp4", 8.0),
        make_audio(folder / "harbour-interview.m4a"),
    ]
