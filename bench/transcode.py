"""Transcode benchmarks: libvips vs Pillow thumbnails, and the activity's orchestration overhead.

    .venv/bin/python bench/transcode.py [--repeats 5] [--clip-seconds 60] [--overhead-repeats 2]

1. A generated 24-megapixel JPEG (6000x4000, noise + gradients, q90) is turned into the
   thumbnail rendition (250 px short side, WebP q80) by libvips (``pyvips.Image.thumbnail``,
   via :func:`damfleet.transcode.images.render_image`) and by Pillow the way
   ``Image.thumbnail`` does it (``draft()``: JPEG DCT-domain shrink-on-load, then a
   Lanczos resize). A second Pillow variant decodes the full image before resizing (the
   naive path libvips' published comparisons measure); it is reported, not headlined.
   Each run is a fresh subprocess; peak memory is its VmHWM; time is the operation only
   (after imports). Medians over ``--repeats`` runs, interleaved.
2. A generated 60 s 720p H.264/AAC clip is transcoded to the proxy rendition twice: once
   by the transcode activity function (ActivityEnvironment: download from file storage,
   probe, encode with progress/heartbeats, upload with sha256) and once by running the
   *same* compiled ffmpeg command directly. Best of ``--overhead-repeats`` each, interleaved.
   On a shared machine separate runs differ by load, so the activity's wall time is also
   divided by its own encode time from the same run (``transcode_overhead_in_run_ratio``:
   download + probe + upload/sha256 + heartbeating, with the noise between runs removed),
   and CPU seconds are compared too (``transcode_overhead_cpu_ratio``: everything the
   activity burned, ffprobe and ffmpeg children included, over the direct ffmpeg's CPU).
3. The default profile's image renditions (preview 1440 px JPEG, thumbnail 250 px WebP) of a
   generated 12 MP JPEG (noise: camera-like entropy), made as the product makes them against
   one decode for all (``one_decode_vs_per_rendition_ratio``; below 1: one decode is faster).

Ends with one JSON line: ratios first (speedup = Pillow time / libvips time; memory
ratio = libvips peak RSS / Pillow peak RSS; overhead = activity wall / direct ffmpeg wall).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Peak resident set of *this* process image. ru_maxrss would not do: Linux carries the
#: parent's high-water mark across fork+exec into the child's ru_maxrss.
_HWM = """
def hwm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0
"""

_VIPS_CHILD = (
    _HWM
    + """
import json, sys, time
from pathlib import Path
from damfleet.transcode.images import render_image
from damfleet.transcode.renditions import rendition_spec
spec = rendition_spec("image", "thumbnail")
base = hwm_kb()
t = time.perf_counter()
r = render_image(Path(sys.argv[1]), Path(sys.argv[2]), spec, max_pixels=10**9)
elapsed = time.perf_counter() - t
peak = hwm_kb()
print(json.dumps({"seconds": elapsed, "peak_kb": peak, "base_kb": base, "size": [r.width, r.height]}))
"""
)

_PILLOW_CHILD = (
    _HWM
    + """
import json, sys, time
from PIL import Image, ImageOps
base = hwm_kb()
t = time.perf_counter()
with Image.open(sys.argv[1]) as im:
    short = min(im.size)
    scale = 250 / short
    target = (round(im.size[0] * scale), round(im.size[1] * scale))
    if sys.argv[3] == "draft":
        im.draft("RGB", target)  # what Image.thumbnail does by itself: JPEG DCT-domain shrink-on-load
    else:
        im.load()  # full decode first: the naive path libvips' published comparisons measure
    im = ImageOps.exif_transpose(im)
    im = im.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0 if sys.argv[3] == "draft" else None)
    im.convert("RGB").save(sys.argv[2], "WEBP", quality=80, method=4)
    size = im.size
elapsed = time.perf_counter() - t
peak = hwm_kb()
print(json.dumps({"seconds": elapsed, "peak_kb": peak, "base_kb": base, "size": list(size)}))
"""
)


def make_24mp_jpeg(path: Path) -> Path:
    import pyvips

    width, height = 6000, 4000
    noise = pyvips.Image.gaussnoise(width, height, sigma=40, mean=128)
    xyz = pyvips.Image.xyz(width, height)
    red = (noise + xyz[0] * 60 / width).cast("uchar")
    green = (noise * 0.5 + xyz[1] * 120 / height).cast("uchar")
    blue = (noise * 0.7 + 40).cast("uchar")
    red.bandjoin([green, blue]).copy(interpretation="srgb").jpegsave(str(path), Q=90)
    return path


def child(code: str, source: Path, dest: Path, mode: str = "") -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", code, str(source), str(dest), mode],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_thumbnails(folder: Path, repeats: int) -> dict[str, float]:
    source = make_24mp_jpeg(folder / "24mp.jpg")
    vips_runs, pillow_runs, naive_runs = [], [], []
    for i in range(repeats):  # interleaved, so background load hits all alike
        vips_runs.append(child(_VIPS_CHILD, source, folder / f"v{i}.webp"))
        pillow_runs.append(child(_PILLOW_CHILD, source, folder / f"p{i}.webp", "draft"))
        naive_runs.append(child(_PILLOW_CHILD, source, folder / f"n{i}.webp", "full"))

    def med(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    figures = {
        "vips_seconds": med(vips_runs, "seconds"),
        "pillow_seconds": med(pillow_runs, "seconds"),
        "pillow_full_decode_seconds": med(naive_runs, "seconds"),
        "vips_peak_rss_mib": med(vips_runs, "peak_kb") / 1024,
        "pillow_peak_rss_mib": med(pillow_runs, "peak_kb") / 1024,
        "pillow_full_decode_peak_rss_mib": med(naive_runs, "peak_kb") / 1024,
        "vips_rss_over_imports_mib": statistics.median(r["peak_kb"] - r["base_kb"] for r in vips_runs) / 1024,
        "pillow_rss_over_imports_mib": statistics.median(r["peak_kb"] - r["base_kb"] for r in pillow_runs) / 1024,
    }
    print(
        "24 MP JPEG -> 250 px WebP q80 (median of {n}): libvips {vips_seconds:.3f}s / {vips_peak_rss_mib:.0f} MiB; "
        "Pillow draft+resize {pillow_seconds:.3f}s / {pillow_peak_rss_mib:.0f} MiB; Pillow full decode "
        "{pillow_full_decode_seconds:.3f}s / {pillow_full_decode_peak_rss_mib:.0f} MiB; sizes {a} {b}".format(
            n=repeats, a=vips_runs[0]["size"], b=pillow_runs[0]["size"], **figures
        ),
        file=sys.stderr,
    )
    return {k: round(v, 4 if k.endswith("seconds") else 1) for k, v in figures.items()}


def bench_one_decode(folder: Path, repeats: int) -> dict[str, float]:
    """The default profile's image renditions of a 12 MP camera JPEG: as the product makes them
    (``render_image`` per rendition: each a shrink-on-load thumbnail from the file, in the warm
    helper's process) against one decode for all (the largest rendition's shrink-on-load
    decode, the smaller ones resampled from it in memory, the same encoder settings).

    JPEG shrink-on-load decodes the 250 px thumbnail at 1/8 scale for almost nothing, so a
    second decode is cheap; the one-decode path also changes the thumbnail's bytes (resampled
    from a 1/2-scale decode). ``one_decode_vs_per_rendition_ratio`` above 1 means one decode
    is slower.
    """
    import pyvips

    from damfleet.profiles import get_profile
    from damfleet.transcode import images
    from damfleet.transcode.renditions import renditions_for

    source = folder / "12mp.jpg"
    (pyvips.Image.gaussnoise(4000, 3000, sigma=40, mean=128).cast("uchar").bandjoin([
        pyvips.Image.xyz(4000, 3000)[0].cast("uchar"), pyvips.Image.xyz(4000, 3000)[1].cast("uchar")])
        .copy(interpretation="srgb").jpegsave(str(source), Q=90))
    specs = sorted(renditions_for("image", get_profile("default").renditions["image"]),
                   key=lambda spec: -spec.size)  # type: ignore[attr-defined]
    pyvips.cache_set_max(0)  # no reuse of a decode between the two paths

    def per_rendition() -> None:
        for spec in specs:
            images.render_image(source, folder / f"a-{spec.name}.{spec.format}", spec, max_pixels=10**9)

    def one_decode() -> None:
        largest = None
        for spec in specs:  # largest first: each smaller one from it
            box_w, box_h = images.target_box(4000, 3000, spec)
            if largest is None:
                largest = images._to_srgb(pyvips.Image.thumbnail(
                    str(source), box_w, height=box_h, size="down", export_profile="srgb", fail_on="error",
                )).copy_memory()
                image = largest
            else:
                image = largest.thumbnail_image(box_w, height=box_h, size="down")
            images._save(image, folder / f"b-{spec.name}.{spec.format}", spec)

    timings: dict[str, list[float]] = {"per_rendition": [], "one_decode": []}
    for _ in range(repeats):  # interleaved
        for name, make in (("per_rendition", per_rendition), ("one_decode", one_decode)):
            started = time.perf_counter()
            make()
            timings[name].append(time.perf_counter() - started)
    per, one = statistics.median(timings["per_rendition"]), statistics.median(timings["one_decode"])
    print(f"12 MP JPEG -> {', '.join(s.name for s in specs)} (median of {repeats}): one shrink-on-load "
          f"decode per rendition {per:.3f}s, one decode for all {one:.3f}s", file=sys.stderr)
    return {"one_decode_vs_per_rendition_ratio": round(one / per, 3),
            "per_rendition_decode_seconds": round(per, 4), "one_decode_seconds": round(one, 4)}


def _cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its reaped children so far."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


async def bench_overhead(folder: Path, clip_seconds: float, repeats: int) -> dict[str, float]:
    from temporalio.testing import ActivityEnvironment

    from activities.common import StageContext
    from activities.transcode import TranscodeActivities
    from damfleet.settings import load_settings
    from damfleet.transcode import av
    from damfleet.transcode.hwaccel import software_encoder
    from damfleet.transcode.renditions import rendition_spec
    from damfleet.transcode.source import inspect_source
    from damfleet.v1 import common_pb2, stages_pb2

    clip = folder / "clip720.mp4"
    subprocess.run(  # noqa: ASYNC221 - setup; nothing else runs on the loop
        [
            "ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=25:duration={clip_seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={clip_seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", str(clip),
        ],
        check=True,
        timeout=600,
    )  # fmt: skip
    settings = load_settings(
        {
            "DAMFLEET_STATE_DIR": str(folder / "state"),
            "DAMFLEET_STORAGE_ROOT": (folder / "storage").as_uri(),
            "DAMFLEET_WORKER_SCRATCH_DIR": str(folder / "scratch"),
        }
    )
    spec = rendition_spec("video", "proxy")
    info = await inspect_source(clip, timeout_seconds=120, max_image_pixels=10**9)
    direct_out = folder / "direct-proxy.mp4"
    job = av.proxy_job(info, spec, software_encoder(settings.transcode.x264_preset), direct_out)  # type: ignore[arg-type]
    argv = job.argv(progress=False)

    asset = common_pb2.AssetRecord(
        asset_id="bench-overhead",
        original_uri=clip.as_uri(),
        sha256=hashlib.sha256(clip.read_bytes()).hexdigest(),
        size_bytes=clip.stat().st_size,
        media=common_pb2.MediaInfo(kind=common_pb2.MEDIA_KIND_VIDEO),
    )
    request = stages_pb2.TranscodeInput(asset=asset, renditions=["proxy"])
    ctx = StageContext(settings=settings)
    acts = TranscodeActivities(ctx)

    direct_runs, activity_runs, in_run_ratios, cpu_ratios = [], [], [], []
    for _ in range(repeats):
        cpu_before = _cpu_seconds()
        started = time.perf_counter()
        subprocess.run(argv, check=True, timeout=1800)  # noqa: ASYNC221 - the bare baseline, deliberately blocking
        direct_runs.append(time.perf_counter() - started)
        direct_cpu = _cpu_seconds() - cpu_before

        env = ActivityEnvironment()
        cpu_before = _cpu_seconds()
        started = time.perf_counter()
        result = await env.run(acts.transcode_asset, request)
        activity_runs.append(time.perf_counter() - started)
        cpu_ratios.append((_cpu_seconds() - cpu_before) / direct_cpu)
        assert result.outputs and result.outputs[0].role == "proxy"
        # The same run's own encode time: immune to load changing between separate runs.
        in_run_ratios.append(activity_runs[-1] / result.timings_seconds["proxy"])
    await ctx.storage.aclose()
    direct_s, activity_s = min(direct_runs), min(activity_runs)
    print(
        f"{clip_seconds:.0f} s 720p -> proxy: direct ffmpeg {direct_runs} s, activity {activity_runs} s "
        f"(best {direct_s:.2f} vs {activity_s:.2f}); command: {' '.join(argv[:6])} ...",
        file=sys.stderr,
    )
    return {
        "direct_ffmpeg_seconds": round(direct_s, 3),
        "activity_seconds": round(activity_s, 3),
        "in_run_ratio": round(min(in_run_ratios), 4),
        "cpu_ratio": round(statistics.median(cpu_ratios), 4),
        "clip_seconds": clip_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clip-seconds", type=float, default=60.0)
    parser.add_argument("--overhead-repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="damfleet-bench-transcode-") as tmp:
        folder = Path(tmp)
        thumbs = bench_thumbnails(folder, args.repeats)
        decode = bench_one_decode(folder, max(args.repeats, 5))
        overhead = asyncio.run(bench_overhead(folder, args.clip_seconds, args.overhead_repeats))
    figures = {
        "vips_vs_pillow_speedup": round(thumbs["pillow_seconds"] / thumbs["vips_seconds"], 3),
        "vips_vs_pillow_memory_ratio": round(thumbs["vips_peak_rss_mib"] / thumbs["pillow_peak_rss_mib"], 3),
        "transcode_overhead_ratio": round(overhead["activity_seconds"] / overhead["direct_ffmpeg_seconds"], 4),
        "transcode_overhead_in_run_ratio": overhead.pop("in_run_ratio"),
        "transcode_overhead_cpu_ratio": overhead.pop("cpu_ratio"),
        "vips_vs_pillow_full_decode_speedup": round(thumbs["pillow_full_decode_seconds"] / thumbs["vips_seconds"], 3),
        "vips_vs_pillow_full_decode_memory_ratio": round(
            thumbs["vips_peak_rss_mib"] / thumbs["pillow_full_decode_peak_rss_mib"], 3
        ),
        "one_decode_vs_per_rendition_ratio": decode.pop("one_decode_vs_per_rendition_ratio"),
        **thumbs,
        **decode,
        **overhead,
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
