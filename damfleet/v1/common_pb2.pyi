from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    PENDING: _ClassVar[JobState]
    VALIDATING: _ClassVar[JobState]
    RUNNING: _ClassVar[JobState]
    PAUSED: _ClassVar[JobState]
    CANCELLED: _ClassVar[JobState]
    COMPLETED: _ClassVar[JobState]
    COMPLETED_WITH_ERRORS: _ClassVar[JobState]
    FAILED: _ClassVar[JobState]
    PAUSE_PENDING: _ClassVar[JobState]

class MediaKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEDIA_KIND_UNSPECIFIED: _ClassVar[MediaKind]
    MEDIA_KIND_IMAGE: _ClassVar[MediaKind]
    MEDIA_KIND_VIDEO: _ClassVar[MediaKind]
    MEDIA_KIND_AUDIO: _ClassVar[MediaKind]

class StageStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAGE_STATUS_UNSPECIFIED: _ClassVar[StageStatus]
    STAGE_STATUS_PENDING: _ClassVar[StageStatus]
    STAGE_STATUS_RUNNING: _ClassVar[StageStatus]
    STAGE_STATUS_COMPLETED: _ClassVar[StageStatus]
    STAGE_STATUS_SKIPPED: _ClassVar[StageStatus]
    STAGE_STATUS_FAILED: _ClassVar[StageStatus]
    STAGE_STATUS_CANCELLED: _ClassVar[StageStatus]
    STAGE_STATUS_COMPLETED_WITH_ERRORS: _ClassVar[StageStatus]
JOB_STATE_UNSPECIFIED: JobState
PENDING: JobState
VALIDATING: JobState
RUNNING: JobState
PAUSED: JobState
CANCELLED: JobState
COMPLETED: JobState
COMPLETED_WITH_ERRORS: JobState
FAILED: JobState
PAUSE_PENDING: JobState
MEDIA_KIND_UNSPECIFIED: MediaKind
MEDIA_KIND_IMAGE: MediaKind
MEDIA_KIND_VIDEO: MediaKind
MEDIA_KIND_AUDIO: MediaKind
STAGE_STATUS_UNSPECIFIED: StageStatus
STAGE_STATUS_PENDING: StageStatus
STAGE_STATUS_RUNNING: StageStatus
STAGE_STATUS_COMPLETED: StageStatus
STAGE_STATUS_SKIPPED: StageStatus
STAGE_STATUS_FAILED: StageStatus
STAGE_STATUS_CANCELLED: StageStatus
STAGE_STATUS_COMPLETED_WITH_ERRORS: StageStatus

class AssetMetadata(_message.Message):
    __slots__ = ("title", "collection", "tenant", "extra")
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TITLE_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    title: str
    collection: str
    tenant: str
    extra: _containers.ScalarMap[str, str]
    def __init__(self, title: _Optional[str] = ..., collection: _Optional[str] = ..., tenant: _Optional[str] = ..., extra: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Output(_message.Message):
    __slots__ = ("uri", "size_bytes", "sha256", "role", "mime_type", "stage")
    URI_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    uri: str
    size_bytes: int
    sha256: str
    role: str
    mime_type: str
    stage: str
    def __init__(self, uri: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., role: _Optional[str] = ..., mime_type: _Optional[str] = ..., stage: _Optional[str] = ...) -> None: ...

class MediaInfo(_message.Message):
    __slots__ = ("kind", "mime_type", "format_name", "duration_seconds", "width", "height", "has_video", "has_audio", "video_codec", "audio_codec", "rotation", "frame_rate", "audio_channels", "audio_sample_rate", "bit_depth")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_NAME_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    HAS_VIDEO_FIELD_NUMBER: _ClassVar[int]
    HAS_AUDIO_FIELD_NUMBER: _ClassVar[int]
    VIDEO_CODEC_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CODEC_FIELD_NUMBER: _ClassVar[int]
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    FRAME_RATE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    BIT_DEPTH_FIELD_NUMBER: _ClassVar[int]
    kind: MediaKind
    mime_type: str
    format_name: str
    duration_seconds: float
    width: int
    height: int
    has_video: bool
    has_audio: bool
    video_codec: str
    audio_codec: str
    rotation: int
    frame_rate: float
    audio_channels: int
    audio_sample_rate: int
    bit_depth: int
    def __init__(self, kind: _Optional[_Union[MediaKind, str]] = ..., mime_type: _Optional[str] = ..., format_name: _Optional[str] = ..., duration_seconds: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., has_video: _Optional[bool] = ..., has_audio: _Optional[bool] = ..., video_codec: _Optional[str] = ..., audio_codec: _Optional[str] = ..., rotation: _Optional[int] = ..., frame_rate: _Optional[float] = ..., audio_channels: _Optional[int] = ..., audio_sample_rate: _Optional[int] = ..., bit_depth: _Optional[int] = ...) -> None: ...

class AssetRecord(_message.Message):
    __slots__ = ("asset_id", "source_uri", "original_uri", "sha256", "size_bytes", "original_filename", "media", "metadata", "technical_metadata_uri", "profile")
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URI_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_URI_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_FILENAME_FIELD_NUMBER: _ClassVar[int]
    MEDIA_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TECHNICAL_METADATA_URI_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    asset_id: str
    source_uri: str
    original_uri: str
    sha256: str
    size_bytes: int
    original_filename: str
    media: MediaInfo
    metadata: AssetMetadata
    technical_metadata_uri: str
    profile: str
    def __init__(self, asset_id: _Optional[str] = ..., source_uri: _Optional[str] = ..., original_uri: _Optional[str] = ..., sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., original_filename: _Optional[str] = ..., media: _Optional[_Union[MediaInfo, _Mapping]] = ..., metadata: _Optional[_Union[AssetMetadata, _Mapping]] = ..., technical_metadata_uri: _Optional[str] = ..., profile: _Optional[str] = ...) -> None: ...
