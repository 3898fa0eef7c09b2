"""The enrichment stage function (no Temporal): progress reports, sidecars, summaries, skips."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from damfleet import samples
from damfleet.ai.backend import LocalInference
from damfleet.ai.enrich import enrich_asset
from damfleet.ai.models import ModelRegistry
from damfleet.errors import IncompleteTranscriptError
from damfleet.settings import SettingsError
from damfleet.storage import Storage
from damfleet.v1 import common_pb2, stages_pb2
from tests.conftest import make_settings


async def _asset(storage: Storage, path: Path, kind: int, duration: float) -> common_pb2.AssetRecord:
    asset_id = f"e{uuid.uuid4().hex[:12]}"
    uri = storage.keys(asset_id).original(path.name)
    await storage.upload_file(path, uri)
    return common_pb2.AssetRecord(
        asset_id=asset_id, original_uri=uri, original_filename=path.name,
        media=common_pb2.MediaInfo(kind=kind, has_audio=True, duration_seconds=duration),
    )


async def test_progress_reports_grow_chunk_by_chunk_to_the_duration(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, DAMFLEET_AI_WHISPER_CHUNK_SECONDS="5", DAMFLEET_AI_WHISPER_CPU_THREADS="2")
    storage = Storage.from_settings(settings)
    asset = await _asset(storage, samples.speech_path(), common_pb2.MEDIA_KIND_AUDIO, 11.4)
    reports: list[dict[str, Any]] = []
    scratch = tmp_path / "scratch-run"
    scratch.mkdir()
    result = await enrich_asset(
        stages_pb2.EnrichInput(asset=asset, transcribe=True), storage=storage, settings=settings,
        backend=LocalInference(settings.ai, registry=ModelRegistry()), scratch=scratch, progress=reports.append,
    )
    seconds = [r["transcribed_seconds"] for r in reports if r.get("phase") == "transcribe"]
    print(f"\nprogress reports (s): {seconds}")
    assert seconds == sorted(seconds) and seconds[0] == 0.0
    # one report per 5 s chunk at least; chunks end at a pause up to 1.25 s before each 5 s mark
    assert any(3.7 <= s <= 5.0 for s in seconds) and any(7.4 <= s <= 10.0 for s in seconds), seconds
    assert seconds[-1] == pytest.approx(11.43, abs=0.05)
    final = next(r for r in reports if r.get("phase") == "transcribed")
    assert final["transcribed_seconds"] == pytest.approx(11.43, abs=0.05)
    assert result.transcript.duration_seconds == pytest.approx(11.43, abs=0.05)
    assert result.transcript.speech_seconds > 8.0
    assert result.transcript.transcribed_seconds >= 0.9 * result.transcript.speech_seconds
    assert {"download", "transcribe"} <= set(result.timings_seconds)
    await storage.aclose()


#: A first pass that stops after 3 tokens per window, with the re-decode off: most speech has no text.
TRUNCATING = {"DAMFLEET_AI_WHISPER_BEAM_SIZE": "1", "DAMFLEET_AI_WHISPER_MAX_NEW_TOKENS": "3",
              "DAMFLEET_AI_WHISPER_REDECODE_GAP_SECONDS": "0", "DAMFLEET_AI_WHISPER_CPU_THREADS": "2"}


async def test_a_transcript_missing_most_speech_fails_and_leaves_no_sidecars(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, **TRUNCATING)
    storage = Storage.from_settings(settings)
    asset = await _asset(storage, samples.speech_path(), common_pb2.MEDIA_KIND_AUDIO, 11.4)
    stale = storage.keys(asset.asset_id).enrichment("transcript", "vtt")
    await storage.write_bytes(stale, b"WEBVTT\n\n00:00:10.000 --> 00:00:11.400\nWelcome\n")  # an earlier attempt's
    scratch = tmp_path / "scratch-run"
    scratch.mkdir()
    with pytest.raises(IncompleteTranscriptError) as caught:
        await enrich_asset(
            stages_pb2.EnrichInput(asset=asset, transcribe=True), storage=storage, settings=settings,
            backend=LocalInference(settings.ai, registry=ModelRegistry()), scratch=scratch,
        )
    message = str(caught.value)
    print(f"\n{message}")
    assert "speech_en.opus" in message and "DAMFLEET_AI_WHISPER_MIN_COVERAGE=0.6" in message
    assert not caught.value.retryable
    assert [o async for o in storage.list(storage.keys(asset.asset_id).prefix) if "/enrichment/" in o.uri] == []

    # The same settings with the re-decode on: the guard recovers the speech and the stage passes.
    settings = make_settings(tmp_path, **{**TRUNCATING, "DAMFLEET_AI_WHISPER_REDECODE_GAP_SECONDS": "2"})
    result = await enrich_asset(
        stages_pb2.EnrichInput(asset=asset, transcribe=True), storage=storage, settings=settings,
        backend=LocalInference(settings.ai, registry=ModelRegistry()), scratch=scratch,
    )
    assert result.transcript.redecoded_count >= 1
    assert result.transcript.transcribed_seconds >= 0.9 * result.transcript.speech_seconds
    assert {o.role for o in result.outputs} == {"transcript_json", "transcript_vtt", "transcript_srt"}
    await storage.aclose()


def test_coverage_setting_is_validated(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="DAMFLEET_AI_WHISPER_MIN_COVERAGE"):
        make_settings(tmp_path, DAMFLEET_AI_WHISPER_MIN_COVERAGE="1.5")


async def test_no_speech_stores_empty_captions_and_an_empty_summary(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    storage = Storage.from_settings(settings)
    quiet = tmp_path / "room-tone.m4a"
    await asyncio.to_thread(
        subprocess.run,
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "anoisesrc=c=brown:a=0.05", "-t", "4", str(quiet)],
        check=True, timeout=60,
    )
    asset = await _asset(storage, quiet, common_pb2.MEDIA_KIND_AUDIO, 4.0)
    scratch = tmp_path / "scratch-run"
    scratch.mkdir()
    result = await enrich_asset(
        stages_pb2.EnrichInput(asset=asset, transcribe=True), storage=storage, settings=settings,
        backend=LocalInference(settings.ai), scratch=scratch,
    )
    assert result.HasField("transcript") and result.transcript.segment_count == 0
    assert result.transcript.language == "" and result.transcript.text_excerpt == ""
    vtt = next(o for o in result.outputs if o.role == "transcript_vtt")
    assert await storage.read_bytes(vtt.uri) == b"WEBVTT\n"
    await storage.aclose()


async def test_nothing_requested_is_a_skip_with_a_reason(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    storage = Storage.from_settings(settings)
    asset = common_pb2.AssetRecord(asset_id="e-nothing-1", original_uri="file:///absent.wav",
                                   media=common_pb2.MediaInfo(kind=common_pb2.MEDIA_KIND_AUDIO))
    result = await enrich_asset(
        stages_pb2.EnrichInput(asset=asset, detect_objects=True), storage=storage, settings=settings,
        backend=LocalInference(settings.ai), scratch=tmp_path,
    )
    assert not result.outputs and "audio has no pictures" in result.skipped_reason
    await storage.aclose()
