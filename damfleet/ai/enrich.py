"""The AI enrichment stage as a plain function: transcribe and/or detect, store sidecars.

:func:`enrich_asset` knows nothing of Temporal (``activities/ai_enrich.py`` wraps it). It
runs what the request asks for on the asset's stored original, through an
:class:`InferenceBackend` (local models or the inference service), and writes:

========================================  ==================  ========================
key (``storage.keys(id).enrichment``)       role                 content
========================================  ==================  ========================
``transcript.json``                        transcript_json      segments, words, language
``transcript.vtt``                         transcript_vtt       WebVTT captions
``transcript.srt``                         transcript_srt       SubRip captions
``detections.json``                        detections_json      frames, boxes, labels
========================================  ==================  ========================

Keys depend only on the asset id, so a retried activity overwrites its earlier files.
Audio with no speech gives an empty transcript (valid, empty VTT/SRT), not an error. A
transcript whose words cover less than ``DAMFLEET_AI_WHISPER_MIN_COVERAGE`` of the speech
the VAD found (after the re-decode of :mod:`damfleet.ai.transcribe` had its chance) is
not stored: the stage fails with :class:`IncompleteTranscriptError`, which the pipeline
records as a failed AI stage (COMPLETED_WITH_ERRORS) rather than passing a transcript that
silently dropped speech.
Detection without configured weights is skipped with a reason rather than failing: most
deployments have no detector and should still get transcripts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from damfleet import tracing
from damfleet.ai.backend import InferenceBackend, LocalInference, MediaSource
from damfleet.ai.plan import plan_enrichment
from damfleet.ai.transcribe import to_json, to_srt, to_vtt, transcript_text
from damfleet.errors import IncompleteTranscriptError
from damfleet.settings import Settings
from damfleet.stages import StageName
from damfleet.storage import Storage
from damfleet.storage.keys import safe_name
from damfleet.v1 import common_pb2, inference_pb2, stages_pb2

__all__ = ["STAGE", "backend_from_settings", "check_coverage", "enrich_asset", "summarize_transcript"]

log = logging.getLogger(__name__)

STAGE = StageName.AI_ENRICH

_KINDS = {
    common_pb2.MEDIA_KIND_IMAGE: "image",
    common_pb2.MEDIA_KIND_VIDEO: "video",
    common_pb2.MEDIA_KIND_AUDIO: "audio",
}

#: Called with a progress record (heartbeat details).
ProgressReport = Callable[[dict[str, Any]], None]


def backend_from_settings(settings: Settings) -> InferenceBackend:
    """Remote when ``DAMFLEET_AI_INFERENCE_URL`` is set, else models in this process."""
    if settings.ai.inference_url:
        from damfleet.ai.remote import RemoteInference

        return RemoteInference(settings.ai.inference_url, settings.ai)
    return LocalInference(settings.ai, config_dir=settings.state_path / "ultralytics")


def summarize_transcript(
    transcript: inference_pb2.Transcript, excerpt_chars: int = 300
) -> stages_pb2.TranscriptSummary:
    """What the pipeline result (and the Temporal UI) shows of a transcript."""
    text = transcript_text(transcript)
    excerpt = text if len(text) <= excerpt_chars else text[: excerpt_chars - 1].rsplit(" ", 1)[0] + "…"
    return stages_pb2.TranscriptSummary(
        language=transcript.language,
        language_probability=round(transcript.language_probability, 4),
        text_excerpt=excerpt,
        segment_count=len(transcript.segments),
        word_count=sum(len(s.words) for s in transcript.segments) or len(text.split()),
        duration_seconds=round(transcript.duration_seconds, 3),
        speech_seconds=round(transcript.speech_seconds, 3),
        transcribed_seconds=round(transcript.transcribed_seconds, 3),
        redecoded_count=len(transcript.redecodes),
    )


def check_coverage(transcript: inference_pb2.Transcript, settings: Settings, filename: str) -> None:
    """Refuse a transcript whose words cover too little of the speech (see the module doc).

    Raises:
        IncompleteTranscriptError: coverage below ``DAMFLEET_AI_WHISPER_MIN_COVERAGE``.
    """
    ai = settings.ai
    speech = transcript.speech_seconds
    if speech < max(ai.whisper_min_speech_seconds, 1e-9):
        return
    coverage = transcript.transcribed_seconds / speech
    if coverage >= ai.whisper_min_coverage:
        return
    redecoded = len(transcript.redecodes)
    raise IncompleteTranscriptError(
        f"transcript of {filename} covers {transcript.transcribed_seconds:.1f}s of the {speech:.1f}s of speech "
        f"the VAD found ({coverage:.0%}), below DAMFLEET_AI_WHISPER_MIN_COVERAGE={ai.whisper_min_coverage:g}"
        + (f", even after re-decoding {redecoded} stretch(es) with beam search" if redecoded else "")
        + f" (whisper {ai.whisper_compute_type}, beam {ai.whisper_beam_size}); not stored"
    )


async def _store(
    storage: Storage, uri: str, data: bytes, role: str, mime_type: str
) -> common_pb2.Output:
    written = await storage.write_bytes(uri, data, content_type=mime_type)
    return common_pb2.Output(
        uri=written.uri, size_bytes=written.size_bytes, sha256=written.sha256, role=role, mime_type=mime_type,
        stage=STAGE,
    )


async def enrich_asset(
    request: stages_pb2.EnrichInput,
    *,
    storage: Storage,
    settings: Settings,
    backend: InferenceBackend,
    scratch: Path,
    progress: ProgressReport | None = None,
) -> stages_pb2.EnrichOutput:
    """Run the requested enrichments on one asset and store their sidecars.

    Raises:
        BadInputError (subclasses): corrupt audio, unreadable frames (non-retryable).
        ConfigurationError: the whisper model or the configured YOLO weights are unusable.
        IncompleteTranscriptError: the words cover too little of the speech (nothing stored).
        TransientError: the inference service is unreachable (retryable).
    """
    asset = request.asset
    kind = _KINDS.get(asset.media.kind, "")
    keys = storage.keys(asset.asset_id)
    out = stages_pb2.EnrichOutput()
    skipped: list[str] = []
    total = float(asset.media.duration_seconds)

    def report(**fields: Any) -> None:
        if progress is not None:
            progress({"asset_id": asset.asset_id, **fields})

    plan = plan_enrichment(kind, asset.media.has_audio, transcribe=request.transcribe, detect=request.detect_objects)
    want_transcript, want_detection = plan.transcribe, plan.detect
    skipped.extend(plan.skipped)
    if want_detection and not await backend.detection_available():
        want_detection = False
        skipped.append("object detection skipped: no YOLO weights configured (DAMFLEET_AI_YOLO_WEIGHTS)")
    if not want_transcript and not want_detection:
        out.skipped_reason = "; ".join(skipped) or "nothing requested"
        return out

    media = MediaSource(uri=asset.original_uri, kind=kind, duration_seconds=total)
    if backend.needs_local_file:
        started = time.perf_counter()
        report(phase="download")
        # Named like the original so error messages name the user's file, not a scratch path.
        local = scratch / safe_name(asset.original_filename or Path(asset.original_uri).name)
        await storage.download_file(asset.original_uri, local)
        media = MediaSource(uri=asset.original_uri, kind=kind, path=local, duration_seconds=total)
        out.timings_seconds["download"] = round(time.perf_counter() - started, 3)

    if want_transcript:
        started = time.perf_counter()
        report(phase="transcribe", transcribed_seconds=0.0, total_seconds=total)
        with tracing.span("whisper.transcribe", media_seconds=total):
            transcript = await backend.transcribe(
                media,
                progress=lambda seconds: report(
                    phase="transcribe", transcribed_seconds=round(seconds, 2), total_seconds=total
                ),
            )
        out.timings_seconds["transcribe"] = round(time.perf_counter() - started, 3)
        transcript_keys = [keys.enrichment("transcript", ext) for ext in ("json", "vtt", "srt")]
        try:
            check_coverage(transcript, settings, asset.original_filename or Path(asset.original_uri).name)
        except IncompleteTranscriptError:
            # An earlier attempt may have stored sidecars: none may outlive a refused transcript.
            for uri in transcript_keys:
                await storage.delete(uri)
            raise
        out.transcript.CopyFrom(summarize_transcript(transcript, settings.ai.transcript_excerpt_chars))
        out.outputs.extend([
            await _store(storage, transcript_keys[0], to_json(transcript), "transcript_json", "application/json"),
            await _store(storage, transcript_keys[1], to_vtt(transcript), "transcript_vtt", "text/vtt"),
            await _store(storage, transcript_keys[2], to_srt(transcript), "transcript_srt", "application/x-subrip"),
        ])
        report(phase="transcribed", transcribed_seconds=transcript.duration_seconds, total_seconds=total)

    if want_detection:
        started = time.perf_counter()
        report(phase="detect")
        with tracing.span("yolo.detect", kind=kind):
            detections = await backend.detect(media, scratch=scratch)
        out.timings_seconds["detect"] = round(time.perf_counter() - started, 3)
        body = json_format.MessageToJson(detections, preserving_proto_field_name=True, indent=1)
        out.outputs.append(
            await _store(storage, keys.enrichment("detections", "json"), body.encode("utf-8"),
                         "detections_json", "application/json")
        )
        out.labels.extend(detections.labels)

    if skipped:
        out.skipped_reason = "; ".join(skipped)
    log.info("enriched %s: %d outputs, %d labels, transcript %d words", asset.asset_id, len(out.outputs),
             len(out.labels), out.transcript.word_count)
    return out
