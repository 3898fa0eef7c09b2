from damfleet.v1 import stages_pb2 as _stages_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Word(_message.Message):
    __slots__ = ("start", "end", "word", "probability")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    WORD_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    start: float
    end: float
    word: str
    probability: float
    def __init__(self, start: _Optional[float] = ..., end: _Optional[float] = ..., word: _Optional[str] = ..., probability: _Optional[float] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("id", "start", "end", "text", "avg_logprob", "no_speech_prob", "words", "redecoded")
    ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AVG_LOGPROB_FIELD_NUMBER: _ClassVar[int]
    NO_SPEECH_PROB_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    REDECODED_FIELD_NUMBER: _ClassVar[int]
    id: int
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    words: _containers.RepeatedCompositeFieldContainer[Word]
    redecoded: bool
    def __init__(self, id: _Optional[int] = ..., start: _Optional[float] = ..., end: _Optional[float] = ..., text: _Optional[str] = ..., avg_logprob: _Optional[float] = ..., no_speech_prob: _Optional[float] = ..., words: _Optional[_Iterable[_Union[Word, _Mapping]]] = ..., redecoded: _Optional[bool] = ...) -> None: ...

class Redecode(_message.Message):
    __slots__ = ("start", "end", "missing_seconds", "recovered_seconds", "settings")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    MISSING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RECOVERED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    start: float
    end: float
    missing_seconds: float
    recovered_seconds: float
    settings: str
    def __init__(self, start: _Optional[float] = ..., end: _Optional[float] = ..., missing_seconds: _Optional[float] = ..., recovered_seconds: _Optional[float] = ..., settings: _Optional[str] = ...) -> None: ...

class Transcript(_message.Message):
    __slots__ = ("language", "language_probability", "duration_seconds", "segments", "model", "chunk_count", "speech_seconds", "transcribed_seconds", "redecodes", "chunk_starts")
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CHUNK_COUNT_FIELD_NUMBER: _ClassVar[int]
    SPEECH_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIBED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REDECODES_FIELD_NUMBER: _ClassVar[int]
    CHUNK_STARTS_FIELD_NUMBER: _ClassVar[int]
    language: str
    language_probability: float
    duration_seconds: float
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    model: str
    chunk_count: int
    speech_seconds: float
    transcribed_seconds: float
    redecodes: _containers.RepeatedCompositeFieldContainer[Redecode]
    chunk_starts: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, language: _Optional[str] = ..., language_probability: _Optional[float] = ..., duration_seconds: _Optional[float] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., model: _Optional[str] = ..., chunk_count: _Optional[int] = ..., speech_seconds: _Optional[float] = ..., transcribed_seconds: _Optional[float] = ..., redecodes: _Optional[_Iterable[_Union[Redecode, _Mapping]]] = ..., chunk_starts: _Optional[_Iterable[float]] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("label", "class_id", "confidence", "x0", "y0", "x1", "y1")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CLASS_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    X0_FIELD_NUMBER: _ClassVar[int]
    Y0_FIELD_NUMBER: _ClassVar[int]
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    label: str
    class_id: int
    confidence: float
    x0: float
    y0: float
    x1: float
    y1: float
    def __init__(self, label: _Optional[str] = ..., class_id: _Optional[int] = ..., confidence: _Optional[float] = ..., x0: _Optional[float] = ..., y0: _Optional[float] = ..., x1: _Optional[float] = ..., y1: _Optional[float] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("index", "timestamp_seconds", "width", "height", "boxes")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    BOXES_FIELD_NUMBER: _ClassVar[int]
    index: int
    timestamp_seconds: float
    width: int
    height: int
    boxes: _containers.RepeatedCompositeFieldContainer[Box]
    def __init__(self, index: _Optional[int] = ..., timestamp_seconds: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., boxes: _Optional[_Iterable[_Union[Box, _Mapping]]] = ...) -> None: ...

class Detections(_message.Message):
    __slots__ = ("model", "sampling", "frames", "labels")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    model: str
    sampling: str
    frames: _containers.RepeatedCompositeFieldContainer[Frame]
    labels: _containers.RepeatedCompositeFieldContainer[_stages_pb2.DetectedLabel]
    def __init__(self, model: _Optional[str] = ..., sampling: _Optional[str] = ..., frames: _Optional[_Iterable[_Union[Frame, _Mapping]]] = ..., labels: _Optional[_Iterable[_Union[_stages_pb2.DetectedLabel, _Mapping]]] = ...) -> None: ...

class MediaRef(_message.Message):
    __slots__ = ("uri", "path", "media_kind")
    URI_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    MEDIA_KIND_FIELD_NUMBER: _ClassVar[int]
    uri: str
    path: str
    media_kind: str
    def __init__(self, uri: _Optional[str] = ..., path: _Optional[str] = ..., media_kind: _Optional[str] = ...) -> None: ...

class TranscribeRequest(_message.Message):
    __slots__ = ("media", "request_id")
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    media: MediaRef
    request_id: str
    def __init__(self, media: _Optional[_Union[MediaRef, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class TranscribeProgress(_message.Message):
    __slots__ = ("transcribed_seconds", "total_seconds")
    TRANSCRIBED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    transcribed_seconds: float
    total_seconds: float
    def __init__(self, transcribed_seconds: _Optional[float] = ..., total_seconds: _Optional[float] = ...) -> None: ...

class TranscribeEvent(_message.Message):
    __slots__ = ("progress", "transcript")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    progress: TranscribeProgress
    transcript: Transcript
    def __init__(self, progress: _Optional[_Union[TranscribeProgress, _Mapping]] = ..., transcript: _Optional[_Union[Transcript, _Mapping]] = ...) -> None: ...

class DetectRequest(_message.Message):
    __slots__ = ("media", "request_id")
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    media: MediaRef
    request_id: str
    def __init__(self, media: _Optional[_Union[MediaRef, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class HealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelStatus(_message.Message):
    __slots__ = ("name", "source", "loaded", "load_seconds", "configured")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    LOAD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    name: str
    source: str
    loaded: bool
    load_seconds: float
    configured: bool
    def __init__(self, name: _Optional[str] = ..., source: _Optional[str] = ..., loaded: _Optional[bool] = ..., load_seconds: _Optional[float] = ..., configured: _Optional[bool] = ...) -> None: ...

class HealthResponse(_message.Message):
    __slots__ = ("serving", "models", "version")
    SERVING_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    serving: bool
    models: _containers.RepeatedCompositeFieldContainer[ModelStatus]
    version: str
    def __init__(self, serving: _Optional[bool] = ..., models: _Optional[_Iterable[_Union[ModelStatus, _Mapping]]] = ..., version: _Optional[str] = ...) -> None: ...
