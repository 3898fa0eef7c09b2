"""TranscribeOptions and DetectOptions are views of the AI settings: one default per knob."""

from __future__ import annotations

from damfleet.ai.detect import DetectOptions
from damfleet.ai.transcribe import TranscribeOptions
from damfleet.settings import MAX_IMAGE_PIXELS, AISettings, load_settings


def test_options_read_the_settings_variables() -> None:
    ai = load_settings({
        "DAMFLEET_AI_WHISPER_BEAM_SIZE": "2", "DAMFLEET_AI_WHISPER_LANGUAGE": "de",
        "DAMFLEET_AI_YOLO_SAMPLING": "scene", "DAMFLEET_AI_YOLO_SCENE_THRESHOLD": "0.4",
        "DAMFLEET_AI_MAX_IMAGE_PIXELS": "1000",
    }).ai
    transcribe, detect = TranscribeOptions.from_settings(ai), DetectOptions.from_settings(ai)
    assert (transcribe.beam_size, transcribe.language) == (2, "de")
    assert (detect.sampling_label, detect.max_image_pixels) == ("scene:0.4", 1000)


def test_defaults_are_the_settings_defaults() -> None:
    transcribe, detect, ai = TranscribeOptions(), DetectOptions(), AISettings()
    assert transcribe.beam_size == ai.whisper_beam_size and transcribe.chunk_seconds == ai.whisper_chunk_seconds
    assert detect.max_image_pixels == MAX_IMAGE_PIXELS == ai.max_image_pixels
    assert detect.timeout_seconds == transcribe.timeout_seconds == ai.tool_timeout_seconds


def test_values_are_clamped_to_what_decoding_can_use() -> None:
    ai = AISettings(whisper_beam_size=0, whisper_chunk_seconds=1, whisper_redecode_gap_seconds=-1,
                    yolo_max_frames=0, yolo_frame_interval_seconds=0, yolo_max_frame_side=8)
    transcribe, detect = TranscribeOptions(ai), DetectOptions(ai)
    assert (transcribe.beam_size, transcribe.chunk_seconds, transcribe.redecode_gap_seconds) == (1, 5.0, 0.0)
    assert (detect.max_frames, detect.interval_seconds, detect.max_frame_side) == (1, 0.04, 64)
