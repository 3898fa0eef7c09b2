"""Making one rendition from a local source: the plain function behind the activity.

:class:`Transcoder` turns a :class:`~damfleet.transcode.renditions.RenditionSpec` and a
probed local source into files in an output folder, reporting the rendition's own
percentage as it goes. It knows nothing of Temporal or storage: the activity downloads,
calls :meth:`Transcoder.render` per rendition, uploads, heartbeats and resumes.

Still-image renditions of one asset share one decode: the first image rendition's
``render`` is given the others (``alongside``) and makes them all in one helper request
(:func:`damfleet.transcode.images.render_images`); their own ``render`` calls then find
their file made and return it at once, so the caller still uploads, records and reports
each rendition on its own.

Every tool run carries the worker's limits (``DAMFLEET_TRANSCODE_*``): wall-clock
timeout, address-space limit, stall kill for ffmpeg. A rendition either completes with
all its files or raises with its output folder removed, so nothing half-made is ever
uploaded as if complete.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from damfleet import tracing
from damfleet.errors import CorruptMediaError
from damfleet.settings import TranscodeSettings
from damfleet.transcode import av
from damfleet.transcode.errors import MissingStreamError, TruncatedMediaError
from damfleet.transcode.helper import run_helper, spec_to_dict
from damfleet.transcode.hwaccel import EncoderChoice, software_encoder
from damfleet.transcode.images import IMAGE_MIME
from damfleet.transcode.renditions import (
    AudioProxySpec,
    HlsSpec,
    ImageSpec,
    PosterSpec,
    ProxySpec,
    RenditionSpec,
    StoryboardSpec,
    WaveformSpec,
)
from damfleet.transcode.runner import FfmpegJob, FfmpegProgress, FfmpegResult, run_ffmpeg
from damfleet.transcode.source import SourceInfo

__all__ = ["RenditionFile", "RenditionProgress", "RenditionResult", "Transcoder", "check_coverage"]

log = logging.getLogger(__name__)

#: Called with the rendition's own percentage (0..100).
RenditionProgress = Callable[[float], None]

_HLS_MIME = {".m3u8": "application/vnd.apple.mpegurl", ".mp4": "video/mp4"}


@dataclass(frozen=True)
class RenditionFile:
    """One file of a rendition, with where it goes under the asset's ``renditions/`` prefix."""

    role: str  # Output.role: "thumbnail", "hls_media", "storyboard_vtt", ...
    path: Path
    key: str  # "thumbnail.webp" or "hls/720p.mp4"
    mime_type: str


@dataclass(frozen=True)
class RenditionResult:
    name: str
    files: list[RenditionFile]
    seconds: float
    details: dict[str, object] = field(default_factory=dict)


def check_coverage(result: FfmpegResult, expected_seconds: float, what: str) -> None:
    """Refuse an output that stops well short of what the container promised.

    ffmpeg exits 0 on a truncated file or a container that lies about its length: it
    simply runs out of packets. A rendition covering less than 90% (minus 2 s of slack
    for trailing silence and edit lists) is not a rendition of the asset.
    """
    if expected_seconds <= 0:
        return
    if result.out_time_seconds <= 0 and result.frames == 0:
        raise MissingStreamError(f"{what}: nothing decoded from a file that declares {expected_seconds:.1f}s of media")
    if result.out_time_seconds < expected_seconds * 0.9 - 2.0:
        raise TruncatedMediaError(
            f"{what}: decoding stopped at {result.out_time_seconds:.1f}s of the {expected_seconds:.1f}s the "
            f"container declares (truncated or damaged file)"
        )


@dataclass(frozen=True)
class _Made:
    """An image rendition a shared-decode helper request made, waiting for its own ``render``."""

    file: RenditionFile
    seconds: float


class Transcoder:
    """Renders renditions with the worker's settings and chosen H.264 encoder (one per stage attempt)."""

    def __init__(self, settings: TranscodeSettings, encoder: EncoderChoice | None = None) -> None:
        self.settings = settings
        self.encoder = encoder or software_encoder()
        #: Image renditions made by one shared-decode request, by name, until their ``render``.
        self._made: dict[str, _Made] = {}

    async def render(
        self,
        source: SourceInfo,
        spec: RenditionSpec,
        out_dir: Path,
        progress: RenditionProgress | None = None,
        *,
        alongside: Sequence[tuple[ImageSpec, Path]] = (),
    ) -> RenditionResult:
        """Make ``spec`` from ``source`` inside ``out_dir`` (created, and removed again on failure).

        ``alongside``: further image renditions (each with its own output folder) to make from the
        same decode as this image rendition, in the same helper request; their own ``render``
        later returns the file already made. On failure none of them is left made.
        """
        report = progress or (lambda percent: None)
        out_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            with tracing.span("transcode.rendition", rendition=spec.name, spec=type(spec).__name__):
                files, details = await self._dispatch(source, spec, out_dir, report, alongside)
            for item in files:
                if not item.path.is_file() or item.path.stat().st_size == 0:
                    raise CorruptMediaError(f"{spec.name}: the tool produced no {item.key} (nothing decodable)")
        except BaseException:
            self._made.pop(spec.name, None)
            shutil.rmtree(out_dir, ignore_errors=True)
            raise
        made = self._made.pop(spec.name, None)
        report(100.0)
        return RenditionResult(spec.name, files, made.seconds if made else time.monotonic() - started, details)

    async def _dispatch(
        self,
        source: SourceInfo,
        spec: RenditionSpec,
        out: Path,
        report: RenditionProgress,
        alongside: Sequence[tuple[ImageSpec, Path]] = (),
    ) -> tuple[list[RenditionFile], dict[str, object]]:
        if isinstance(spec, ImageSpec):
            return await self._image(source, spec, out, alongside), {}
        if isinstance(spec, ProxySpec):
            return await self._proxy(source, spec, out, report)
        if isinstance(spec, PosterSpec):
            return await self._poster(source, spec, out), {}
        if isinstance(spec, StoryboardSpec):
            return await self._storyboard(source, spec, out, report)
        if isinstance(spec, HlsSpec):
            return await self._hls(source, spec, out, report)
        if isinstance(spec, AudioProxySpec):
            return await self._audio_proxy(source, spec, out, report), {}
        if isinstance(spec, WaveformSpec):
            return await self._waveform(source, spec, out, report), {}
        raise CorruptMediaError(f"no renderer for rendition {spec.name!r} ({type(spec).__name__})")

    # -- tool runs with this worker's limits -----------------------------------------

    async def run(
        self, job: FfmpegJob, report: RenditionProgress, *, share: tuple[float, float] = (0.0, 100.0)
    ) -> FfmpegResult:
        """Run one ffmpeg job, mapping its percentage into ``share`` of the rendition's progress."""
        low, high = share

        def on_progress(p: FfmpegProgress) -> None:
            report(low + (high - low) * p.percent / 100.0)

        log.debug("ffmpeg %s: %s", job.label, " ".join(job.argv()))
        with tracing.span("ffmpeg", job=job.label):
            return await run_ffmpeg(
                job,
                stall_seconds=self.settings.stall_seconds,
                timeout_seconds=self.settings.tool_timeout_seconds,
                memory_bytes=self.settings.tool_memory_bytes,
                on_progress=on_progress,
            )

    async def helper(self, request: dict[str, object], *, renditions: int = 1) -> dict[str, object]:
        """One helper request with this worker's limits; a request that makes several
        ``renditions`` gets the per-tool timeout for each (it does their work, less the
        decodes they share), so a hung helper is still killed."""
        return await run_helper(
            request,
            timeout_seconds=self.settings.tool_timeout_seconds * renditions,
            memory_bytes=self.settings.tool_memory_bytes,
        )

    # -- renditions --------------------------------------------------------------------

    async def _image(
        self, source: SourceInfo, spec: ImageSpec, out: Path, alongside: Sequence[tuple[ImageSpec, Path]]
    ) -> list[RenditionFile]:
        if spec.name not in self._made:  # not made already by an earlier rendition's request
            await self._images(source, [(spec, out), *alongside])
        return [self._made[spec.name].file]

    async def _images(self, source: SourceInfo, targets: list[tuple[ImageSpec, Path]]) -> None:
        """Make every target from one decode in one helper request; record each as made."""
        files = []
        for spec, out in targets:
            ext, mime = IMAGE_MIME[spec.format]
            dest = out / f"{spec.name}.{ext}"
            files.append(RenditionFile(spec.name, dest, dest.name, mime))
        started = time.monotonic()
        try:
            reply = await self.helper(
                {
                    "op": "images",
                    "source": str(source.path),
                    "targets": [
                        {"dest": str(f.path), "spec": spec_to_dict(spec)} for f, (spec, _) in zip(files, targets)
                    ],
                    "max_pixels": self.settings.max_image_pixels,
                },
                renditions=len(targets),
            )
        except BaseException:
            for _, out in targets[1:]:  # the helper left no file; the folders it made go too
                shutil.rmtree(out, ignore_errors=True)
            raise
        wall = time.monotonic() - started
        results = list(reply["results"])
        # Timings: each rendition is charged the seconds the helper measured for it (the header
        # checks and the one decode go to the largest rendition, whose own decode it is; each
        # smaller one its resample and encode). The rest of the request's wall time (the round
        # trip, a cold helper's start) goes to the rendition whose turn sent it, so the
        # renditions' seconds add up to the request's.
        others = sum(float(r["seconds"]) for r in results[1:])
        for index, (file, result) in enumerate(zip(files, results, strict=True)):
            seconds = max(0.0, wall - others) if index == 0 else float(result["seconds"])
            self._made[file.role] = _Made(file, seconds)

    async def _proxy(
        self, source: SourceInfo, spec: ProxySpec, out: Path, report: RenditionProgress
    ) -> tuple[list[RenditionFile], dict[str, object]]:
        dest = out / f"{spec.name}.mp4"
        job = av.proxy_job(source, spec, self.encoder, dest, threads=self.settings.ffmpeg_threads)
        result = await self.run(job, report)
        check_coverage(result, source.duration_seconds, spec.name)
        return [RenditionFile(spec.name, dest, dest.name, "video/mp4")], {"encoder": self.encoder.codec}

    async def _poster(self, source: SourceInfo, spec: PosterSpec, out: Path) -> list[RenditionFile]:
        dest = out / f"{spec.name}.jpg"
        await self.run(av.poster_job(source, spec, dest), lambda p: None)
        if not dest.is_file() or dest.stat().st_size == 0:
            # The declared duration can exceed the real one; the first frame is still a poster.
            await self.run(av.poster_job(source, spec, dest, offset=0.0), lambda p: None)
        return [RenditionFile(spec.name, dest, dest.name, "image/jpeg")]

    async def _storyboard(
        self, source: SourceInfo, spec: StoryboardSpec, out: Path, report: RenditionProgress
    ) -> tuple[list[RenditionFile], dict[str, object]]:
        sprite = out / f"{spec.name}.jpg"
        job, layout = av.storyboard_job(source, spec, sprite)
        await self.run(job, report, share=(0.0, 99.0))
        vtt = out / f"{spec.name}.vtt"
        vtt.write_text(av.storyboard_vtt(layout, source.duration_seconds, sprite.name))
        files = [
            RenditionFile(spec.name, sprite, sprite.name, "image/jpeg"),
            RenditionFile(f"{spec.name}_vtt", vtt, vtt.name, "text/vtt"),
        ]
        return files, {"tiles": layout.count, "interval_seconds": round(layout.interval_seconds, 3)}

    async def _hls(
        self, source: SourceInfo, spec: HlsSpec, out: Path, report: RenditionProgress
    ) -> tuple[list[RenditionFile], dict[str, object]]:
        ladder = av.hls_ladder(source, spec)
        total_pixels = sum(w * h for _, w, h in ladder)
        done_pixels = 0
        files: list[RenditionFile] = []
        rungs_meta: list[tuple[str, int, int, float, bool]] = []
        for rung, width, height in ladder:
            name = f"{rung.height}p"
            rung_dir = out / name
            share = (99.0 * done_pixels / total_pixels, 99.0 * (done_pixels + width * height) / total_pixels)
            job = av.hls_rung_job(
                source, spec, rung, width, height, self.encoder, rung_dir, name, threads=self.settings.ffmpeg_threads
            )
            result = await self.run(job, report, share=share)
            check_coverage(result, source.duration_seconds, f"{spec.name} {name}")
            done_pixels += width * height
            rungs_meta.append(
                (name, width, height, source.video.frame_rate if source.video else 0.0, source.audio is not None)
            )
            for path in sorted(rung_dir.iterdir()):
                role = "hls_playlist" if path.suffix == ".m3u8" else "hls_media"
                mime = _HLS_MIME.get(path.suffix, "application/octet-stream")
                files.append(RenditionFile(role, path, f"{spec.name}/{path.name}", mime))
        master = out / "master.m3u8"
        master.write_text(av.master_playlist(rungs_meta, out))
        files.insert(0, RenditionFile("hls_master", master, f"{spec.name}/master.m3u8", _HLS_MIME[".m3u8"]))
        return files, {"rungs": [m[0] for m in rungs_meta]}

    async def _audio_proxy(
        self, source: SourceInfo, spec: AudioProxySpec, out: Path, report: RenditionProgress
    ) -> list[RenditionFile]:
        dest = out / f"{spec.name}.m4a"
        result = await self.run(av.audio_proxy_job(source, spec, dest, threads=self.settings.ffmpeg_threads), report)
        check_coverage(result, source.duration_seconds, spec.name)
        return [RenditionFile(spec.name, dest, dest.name, "audio/mp4")]

    async def _waveform(
        self, source: SourceInfo, spec: WaveformSpec, out: Path, report: RenditionProgress
    ) -> list[RenditionFile]:
        pcm = out / "waveform.pcm"
        result = await self.run(av.pcm_job(source, spec, pcm), report, share=(0.0, 90.0))
        check_coverage(result, source.duration_seconds, spec.name)
        json_dest, png_dest = out / f"{spec.name}.json", out / f"{spec.name}.png"
        await self.helper(
            {
                "op": "waveform",
                "pcm": str(pcm),
                "json_dest": str(json_dest),
                "png_dest": str(png_dest),
                "spec": spec_to_dict(spec),
            }
        )
        pcm.unlink(missing_ok=True)
        return [
            RenditionFile(spec.name, json_dest, json_dest.name, "application/json"),
            RenditionFile(f"{spec.name}_png", png_dest, png_dest.name, "image/png"),
        ]
