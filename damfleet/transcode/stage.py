"""The transcode stage as one plain function: download, check, render, upload, resume.

:func:`transcode_asset` knows nothing of Temporal. It reports progress as a JSON-able
dict (the activity heartbeats it) and accepts the last such dict from an earlier
attempt (``resume``): renditions recorded there as finished, whose stored files still
exist with the recorded size, are reused, and work restarts at the next unfinished
rendition instead of from the beginning.

Storage keys are deterministic (``renditions/<name>.<ext>`` or ``renditions/<name>/...``)
so a retry overwrites. A rendition's files are uploaded only once it is complete; if
anything fails or is cancelled during a rendition, whatever of it was already uploaded
is deleted again before the error propagates, so no partial rendition is ever left
looking finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from damfleet.errors import BadInputError, ChecksumMismatchError, ConfigurationError, UnsupportedMediaError
from damfleet.profiles import get_profile
from damfleet.settings import Settings
from damfleet.stages import StageName
from damfleet.storage import Storage
from damfleet.storage.keys import AssetKeys
from damfleet.transcode.engine import RenditionFile, Transcoder
from damfleet.transcode.hwaccel import EncoderChoice, select_encoder, software_encoder
from damfleet.transcode.renditions import HlsSpec, ImageSpec, ProxySpec, RenditionSpec, renditions_for
from damfleet.transcode.scratch import check_scratch_space
from damfleet.transcode.source import inspect_source
from damfleet.v1 import common_pb2, stages_pb2

__all__ = ["STAGE", "TranscodeProgress", "as_heartbeat", "planned_renditions", "transcode_asset"]

log = logging.getLogger(__name__)

STAGE = StageName.TRANSCODE

#: Called with each progress record (the message the activity heartbeats).
TranscodeProgress = Callable[[stages_pb2.TranscodeHeartbeat], None]

_KIND_NAMES = {
    common_pb2.MEDIA_KIND_IMAGE: "image",
    common_pb2.MEDIA_KIND_VIDEO: "video",
    common_pb2.MEDIA_KIND_AUDIO: "audio",
}


def planned_renditions(request: stages_pb2.TranscodeInput) -> tuple[str, list[RenditionSpec]]:
    """The media kind and the rendition specs a request asks for.

    The workflow sets ``request.renditions`` from the profile; the profile is read here only
    when the list is empty: runs started before the workflow set it (their retries carry
    the old input) and direct callers such as bench/pipeline.py."""
    kind = _KIND_NAMES.get(request.asset.media.kind)
    if kind is None:
        raise UnsupportedMediaError(
            f"asset {request.asset.asset_id} has no media kind; it must go through ingest before transcode"
        )
    names = list(request.renditions)
    if not names:
        try:
            profile = get_profile(request.profile)
        except KeyError as exc:
            raise ConfigurationError(str(exc.args[0])) from None
        names = list(profile.renditions.get(kind, ()))
    try:
        return kind, renditions_for(kind, names)
    except KeyError as exc:
        raise ConfigurationError(str(exc.args[0])) from None


@dataclass
class _Done:
    name: str
    outputs: list[common_pb2.Output]
    seconds: float = 0.0
    resumed: bool = False

    def to_proto(self) -> stages_pb2.FinishedRendition:
        return stages_pb2.FinishedRendition(name=self.name, outputs=self.outputs)


@dataclass
class _Tracker:
    """Turns per-rendition percentages into one overall percentage and the heartbeat record."""

    request: stages_pb2.TranscodeInput
    specs: list[RenditionSpec]
    report: TranscodeProgress
    done: dict[str, _Done] = field(default_factory=dict)
    current: str = ""
    current_percent: float = 0.0
    hw_accel: str = ""

    @property
    def percent(self) -> float:
        total = sum(s.weight for s in self.specs) or 1.0
        finished = sum(s.weight for s in self.specs if s.name in self.done)
        running = next((s.weight for s in self.specs if s.name == self.current and s.name not in self.done), 0.0)
        return round(100.0 * (finished + running * self.current_percent / 100.0) / total, 2)

    def details(self) -> stages_pb2.TranscodeHeartbeat:
        return stages_pb2.TranscodeHeartbeat(
            asset_id=self.request.asset.asset_id,
            sha256=self.request.asset.sha256,
            renditions=[s.name for s in self.specs],
            done=[self.done[s.name].to_proto() for s in self.specs if s.name in self.done],
            current=self.current,
            rendition_percent=round(self.current_percent, 2),
            percent=self.percent,
            hw_accel=self.hw_accel,
        )

    def update(self, current: str, percent: float) -> None:
        self.current, self.current_percent = current, max(0.0, min(100.0, percent))
        self.report(self.details())


def as_heartbeat(details: Any) -> stages_pb2.TranscodeHeartbeat | None:
    """An earlier attempt's last heartbeat as the message, or None when it is not one.

    Workers before the message existed heartbeated the same fields as a JSON dict; an
    attempt retried across that upgrade still resumes from it.
    """
    if isinstance(details, stages_pb2.TranscodeHeartbeat):
        return details
    if isinstance(details, dict):
        try:
            return json_format.ParseDict(details, stages_pb2.TranscodeHeartbeat(), ignore_unknown_fields=True)
        except (json_format.ParseError, TypeError, ValueError):
            return None
    return None


def _resumable(
    resume: stages_pb2.TranscodeHeartbeat | None, request: stages_pb2.TranscodeInput
) -> dict[str, list[common_pb2.Output]]:
    """Finished renditions recorded by an earlier attempt at *this* asset's bytes."""
    if resume is None:
        return {}
    if resume.asset_id != request.asset.asset_id or resume.sha256 != request.asset.sha256:
        return {}
    return {entry.name: list(entry.outputs) for entry in resume.done if entry.name}


async def _still_stored(storage: Storage, outputs: list[common_pb2.Output]) -> bool:
    """True when every recorded output still exists with its recorded size."""
    for output in outputs:
        try:
            info = await storage.stat(output.uri)
        except BadInputError:
            return False
        if info.size_bytes != output.size_bytes:
            return False
    return bool(outputs)


def _key_for(keys: AssetKeys, item: RenditionFile) -> str:
    if "/" in item.key:
        folder, filename = item.key.split("/", 1)
        return keys.rendition_file(folder, filename)
    stem, _, ext = item.key.rpartition(".")
    return keys.rendition(stem, ext)


async def _discard(storage: Storage, uris: list[str], folder: str | None) -> None:
    """Best-effort removal of a rendition's uploaded files (runs shielded from cancellation)."""
    for uri in uris:
        with contextlib.suppress(Exception):
            await storage.delete(uri)
    if folder:
        with contextlib.suppress(Exception):
            await storage.delete_prefix(folder)


def _needs_encoder(specs: list[RenditionSpec]) -> bool:
    return any(isinstance(s, (ProxySpec, HlsSpec)) for s in specs)


async def transcode_asset(
    request: stages_pb2.TranscodeInput,
    *,
    storage: Storage,
    settings: Settings,
    scratch: Path,
    progress: TranscodeProgress | None = None,
    resume: stages_pb2.TranscodeHeartbeat | dict[str, Any] | None = None,
) -> stages_pb2.TranscodeOutput:
    """Make every requested rendition of one ingested asset and store it under the asset's keys."""
    asset = request.asset
    if not asset.original_uri:
        raise BadInputError(f"asset {asset.asset_id} has no stored original (original_uri is empty)")
    kind, specs = planned_renditions(request)
    resume = as_heartbeat(resume)
    keys = storage.keys(asset.asset_id)
    tracker = _Tracker(request, specs, progress or (lambda details: None))
    result = stages_pb2.TranscodeOutput()

    for name, outputs in _resumable(resume, request).items():
        if any(s.name == name for s in specs) and await _still_stored(storage, outputs):
            tracker.done[name] = _Done(name, outputs, resumed=True)
    if tracker.done:
        log.info("asset %s: resuming after %s", asset.asset_id, ", ".join(tracker.done))
    todo = [s for s in specs if s.name not in tracker.done]

    encoder: EncoderChoice = software_encoder(settings.transcode.x264_preset)
    if todo:
        source_bytes = asset.size_bytes or (await storage.stat(asset.original_uri)).size_bytes
        check_scratch_space(scratch, source_bytes, settings.transcode)
        tracker.update(todo[0].name, 0.0)
        local = scratch / "original"
        fetched = await storage.download_file(asset.original_uri, local)
        if asset.sha256 and fetched.sha256 != asset.sha256.lower():
            raise ChecksumMismatchError(
                f"stored original {asset.original_uri} has sha256 {fetched.sha256}, not the {asset.sha256} "
                f"recorded at ingest: it was replaced or damaged in storage"
            )
        source = await inspect_source(
            local,
            timeout_seconds=min(settings.transcode.tool_timeout_seconds, 600.0),
            max_image_pixels=settings.transcode.max_image_pixels,
            memory_bytes=settings.transcode.tool_memory_bytes,
        )
        if (kind == "image") != (source.kind == "image"):
            raise UnsupportedMediaError(f"asset was ingested as {kind}, but the stored original is {source.kind}")
        if _needs_encoder(todo):
            encoder = await select_encoder(
                settings.transcode.hwaccel,
                vaapi_device=settings.transcode.vaapi_device,
                preset=settings.transcode.x264_preset,
            )
        tracker.hw_accel = encoder.family
        transcoder = Transcoder(settings.transcode, encoder)
        # Every still image rendition still to make comes from one decode: the first one's turn
        # makes them all in one helper request; the others' turns find their file made and
        # are uploaded, recorded and reported one by one as before.
        stills = [s for s in todo if isinstance(s, ImageSpec)]
        for spec in todo:
            tracker.update(spec.name, 0.0)
            uploaded: list[str] = []
            folder = keys.rendition_folder(spec.name) if isinstance(spec, HlsSpec) else None
            alongside = [(s, scratch / "out" / s.name) for s in stills[1:]] if stills and spec is stills[0] else []
            try:
                if folder:
                    await storage.delete_prefix(folder)  # stale segments of an earlier attempt
                rendered = await transcoder.render(
                    source,
                    spec,
                    scratch / "out" / spec.name,
                    lambda p, n=spec.name: tracker.update(n, p),
                    alongside=alongside,
                )
                outputs = []
                for item in rendered.files:
                    uri = _key_for(keys, item)
                    uploaded.append(uri)  # before the await: a cancel landing as it completes still cleans it
                    written = await storage.upload_file(item.path, uri, content_type=item.mime_type)
                    outputs.append(
                        common_pb2.Output(
                            uri=written.uri,
                            size_bytes=written.size_bytes,
                            sha256=written.sha256,
                            role=item.role,
                            mime_type=item.mime_type,
                            stage=STAGE,
                        )
                    )
            except BaseException:
                await asyncio.shield(_discard(storage, uploaded, folder))
                shutil.rmtree(scratch / "out", ignore_errors=True)  # with any still made alongside it
                raise
            shutil.rmtree(scratch / "out" / spec.name, ignore_errors=True)
            tracker.done[spec.name] = _Done(spec.name, outputs, rendered.seconds)
            tracker.update(spec.name, 100.0)
            log.info("asset %s: %s done in %.1fs (%d files)", asset.asset_id, spec.name, rendered.seconds, len(outputs))

    for spec in specs:
        done = tracker.done[spec.name]
        result.renditions.append(spec.name)
        result.outputs.extend(done.outputs)
        if done.resumed:
            result.resumed_renditions.append(spec.name)
        else:
            result.timings_seconds[spec.name] = round(done.seconds, 3)
    if not todo and resume is not None and resume.hw_accel:
        result.hw_accel = resume.hw_accel  # everything reused: report what made it
    else:
        result.hw_accel = encoder.family
    result.hw_accel_fallback_reason = encoder.fallback_reason
    return result
