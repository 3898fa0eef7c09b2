from damfleet.v1 import common_pb2 as _common_pb2
from damfleet.v1 import jobs_pb2 as _jobs_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IngestInput(_message.Message):
    __slots__ = ("asset_id", "source_uri", "expected_sha256", "profile", "metadata", "claim_content")
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URI_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SHA256_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CLAIM_CONTENT_FIELD_NUMBER: _ClassVar[int]
    asset_id: str
    source_uri: str
    expected_sha256: str
    profile: str
    metadata: _common_pb2.AssetMetadata
    claim_content: bool
    def __init__(self, asset_id: _Optional[str] = ..., source_uri: _Optional[str] = ..., expected_sha256: _Optional[str] = ..., profile: _Optional[str] = ..., metadata: _Optional[_Union[_common_pb2.AssetMetadata, _Mapping]] = ..., claim_content: _Optional[bool] = ...) -> None: ...

class IngestOutput(_message.Message):
    __slots__ = ("asset", "outputs", "attempt", "claim")
    ASSET_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CLAIM_FIELD_NUMBER: _ClassVar[int]
    asset: _common_pb2.AssetRecord
    outputs: _containers.RepeatedCompositeFieldContainer[_common_pb2.Output]
    attempt: int
    claim: _jobs_pb2.ClaimContentOutput
    def __init__(self, asset: _Optional[_Union[_common_pb2.AssetRecord, _Mapping]] = ..., outputs: _Optional[_Iterable[_Union[_common_pb2.Output, _Mapping]]] = ..., attempt: _Optional[int] = ..., claim: _Optional[_Union[_jobs_pb2.ClaimContentOutput, _Mapping]] = ...) -> None: ...

class TranscodeInput(_message.Message):
    __slots__ = ("asset", "profile", "renditions")
    ASSET_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    RENDITIONS_FIELD_NUMBER: _ClassVar[int]
    asset: _common_pb2.AssetRecord
    profile: str
    renditions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, asset: _Optional[_Union[_common_pb2.AssetRecord, _Mapping]] = ..., profile: _Optional[str] = ..., renditions: _Optional[_Iterable[str]] = ...) -> None: ...

class TranscodeHeartbeat(_message.Message):
    __slots__ = ("asset_id", "sha256", "renditions", "done", "current", "rendition_percent", "percent", "hw_accel")
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    RENDITIONS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    RENDITION_PERCENT_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    HW_ACCEL_FIELD_NUMBER: _ClassVar[int]
    asset_id: str
    sha256: str
    renditions: _containers.RepeatedScalarFieldContainer[str]
    done: _containers.RepeatedCompositeFieldContainer[FinishedRendition]
    current: str
    rendition_percent: float
    percent: float
    hw_accel: str
    def __init__(self, asset_id: _Optional[str] = ..., sha256: _Optional[str] = ..., renditions: _Optional[_Iterable[str]] = ..., done: _Optional[_Iterable[_Union[FinishedRendition, _Mapping]]] = ..., current: _Optional[str] = ..., rendition_percent: _Optional[float] = ..., percent: _Optional[float] = ..., hw_accel: _Optional[str] = ...) -> None: ...

class FinishedRendition(_message.Message):
    __slots__ = ("name", "outputs")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    outputs: _containers.RepeatedCompositeFieldContainer[_common_pb2.Output]
    def __init__(self, name: _Optional[str] = ..., outputs: _Optional[_Iterable[_Union[_common_pb2.Output, _Mapping]]] = ...) -> None: ...

class TranscodeOutput(_message.Message):
    __slots__ = ("outputs", "renditions", "hw_accel", "hw_accel_fallback_reason", "timings_seconds", "resumed_renditions", "attempt")
    class TimingsSecondsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    RENDITIONS_FIELD_NUMBER: _ClassVar[int]
    HW_ACCEL_FIELD_NUMBER: _ClassVar[int]
    HW_ACCEL_FALLBACK_REASON_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RESUMED_RENDITIONS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    outputs: _containers.RepeatedCompositeFieldContainer[_common_pb2.Output]
    renditions: _containers.RepeatedScalarFieldContainer[str]
    hw_accel: str
    hw_accel_fallback_reason: str
    timings_seconds: _containers.ScalarMap[str, float]
    resumed_renditions: _containers.RepeatedScalarFieldContainer[str]
    attempt: int
    def __init__(self, outputs: _Optional[_Iterable[_Union[_common_pb2.Output, _Mapping]]] = ..., renditions: _Optional[_Iterable[str]] = ..., hw_accel: _Optional[str] = ..., hw_accel_fallback_reason: _Optional[str] = ..., timings_seconds: _Optional[_Mapping[str, float]] = ..., resumed_renditions: _Optional[_Iterable[str]] = ..., attempt: _Optional[int] = ...) -> None: ...

class TranscriptSummary(_message.Message):
    __slots__ = ("language", "language_probability", "text_excerpt", "segment_count", "word_count", "duration_seconds", "speech_seconds", "transcribed_seconds", "redecoded_count")
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    TEXT_EXCERPT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    WORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SPEECH_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIBED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    REDECODED_COUNT_FIELD_NUMBER: _ClassVar[int]
    language: str
    language_probability: float
    text_excerpt: str
    segment_count: int
    word_count: int
    duration_seconds: float
    speech_seconds: float
    transcribed_seconds: float
    redecoded_count: int
    def __init__(self, language: _Optional[str] = ..., language_probability: _Optional[float] = ..., text_excerpt: _Optional[str] = ..., segment_count: _Optional[int] = ..., word_count: _Optional[int] = ..., duration_seconds: _Optional[float] = ..., speech_seconds: _Optional[float] = ..., transcribed_seconds: _Optional[float] = ..., redecoded_count: _Optional[int] = ...) -> None: ...

class DetectedLabel(_message.Message):
    __slots__ = ("label", "max_confidence", "count")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    MAX_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    label: str
    max_confidence: float
    count: int
    def __init__(self, label: _Optional[str] = ..., max_confidence: _Optional[float] = ..., count: _Optional[int] = ...) -> None: ...

class EnrichInput(_message.Message):
    __slots__ = ("asset", "profile", "transcribe", "detect_objects")
    ASSET_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIBE_FIELD_NUMBER: _ClassVar[int]
    DETECT_OBJECTS_FIELD_NUMBER: _ClassVar[int]
    asset: _common_pb2.AssetRecord
    profile: str
    transcribe: bool
    detect_objects: bool
    def __init__(self, asset: _Optional[_Union[_common_pb2.AssetRecord, _Mapping]] = ..., profile: _Optional[str] = ..., transcribe: _Optional[bool] = ..., detect_objects: _Optional[bool] = ...) -> None: ...

class EnrichOutput(_message.Message):
    __slots__ = ("outputs", "transcript", "labels", "skipped_reason", "timings_seconds", "attempt")
    class TimingsSecondsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_REASON_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    outputs: _containers.RepeatedCompositeFieldContainer[_common_pb2.Output]
    transcript: TranscriptSummary
    labels: _containers.RepeatedCompositeFieldContainer[DetectedLabel]
    skipped_reason: str
    timings_seconds: _containers.ScalarMap[str, float]
    attempt: int
    def __init__(self, outputs: _Optional[_Iterable[_Union[_common_pb2.Output, _Mapping]]] = ..., transcript: _Optional[_Union[TranscriptSummary, _Mapping]] = ..., labels: _Optional[_Iterable[_Union[DetectedLabel, _Mapping]]] = ..., skipped_reason: _Optional[str] = ..., timings_seconds: _Optional[_Mapping[str, float]] = ..., attempt: _Optional[int] = ...) -> None: ...

class DeliverInput(_message.Message):
    __slots__ = ("asset_id", "target", "output", "metadata", "idempotency_key")
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    asset_id: str
    target: str
    output: _common_pb2.Output
    metadata: _common_pb2.AssetMetadata
    idempotency_key: str
    def __init__(self, asset_id: _Optional[str] = ..., target: _Optional[str] = ..., output: _Optional[_Union[_common_pb2.Output, _Mapping]] = ..., metadata: _Optional[_Union[_common_pb2.AssetMetadata, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class DeliverBatchInput(_message.Message):
    __slots__ = ("asset_id", "target", "deliveries")
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    asset_id: str
    target: str
    deliveries: _containers.RepeatedCompositeFieldContainer[DeliverInput]
    def __init__(self, asset_id: _Optional[str] = ..., target: _Optional[str] = ..., deliveries: _Optional[_Iterable[_Union[DeliverInput, _Mapping]]] = ...) -> None: ...

class DeliverBatchOutput(_message.Message):
    __slots__ = ("receipts",)
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    receipts: _containers.RepeatedCompositeFieldContainer[DeliveryReceipt]
    def __init__(self, receipts: _Optional[_Iterable[_Union[DeliveryReceipt, _Mapping]]] = ...) -> None: ...

class NotifyInput(_message.Message):
    __slots__ = ("asset_id", "target", "workflow_id", "state", "asset", "outputs", "receipts", "idempotency_key")
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    asset_id: str
    target: str
    workflow_id: str
    state: _common_pb2.JobState
    asset: _common_pb2.AssetRecord
    outputs: _containers.RepeatedCompositeFieldContainer[_common_pb2.Output]
    receipts: _containers.RepeatedCompositeFieldContainer[DeliveryReceipt]
    idempotency_key: str
    def __init__(self, asset_id: _Optional[str] = ..., target: _Optional[str] = ..., workflow_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ..., asset: _Optional[_Union[_common_pb2.AssetRecord, _Mapping]] = ..., outputs: _Optional[_Iterable[_Union[_common_pb2.Output, _Mapping]]] = ..., receipts: _Optional[_Iterable[_Union[DeliveryReceipt, _Mapping]]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class DeliveryReceipt(_message.Message):
    __slots__ = ("target", "target_type", "role", "location", "size_bytes", "sha256", "attempts", "seconds", "ok", "error", "idempotency_key", "source_uri", "resumed_from", "already_present", "verified_checksum")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    TARGET_TYPE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URI_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FROM_FIELD_NUMBER: _ClassVar[int]
    ALREADY_PRESENT_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    target: str
    target_type: str
    role: str
    location: str
    size_bytes: int
    sha256: str
    attempts: int
    seconds: float
    ok: bool
    error: str
    idempotency_key: str
    source_uri: str
    resumed_from: int
    already_present: bool
    verified_checksum: str
    def __init__(self, target: _Optional[str] = ..., target_type: _Optional[str] = ..., role: _Optional[str] = ..., location: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., attempts: _Optional[int] = ..., seconds: _Optional[float] = ..., ok: _Optional[bool] = ..., error: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., source_uri: _Optional[str] = ..., resumed_from: _Optional[int] = ..., already_present: _Optional[bool] = ..., verified_checksum: _Optional[str] = ...) -> None: ...

class RedeliverPlan(_message.Message):
    __slots__ = ("workflow_id", "asset_id", "deliveries", "notifications", "original_state", "delivered_before")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_STATE_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    asset_id: str
    deliveries: _containers.RepeatedCompositeFieldContainer[DeliverInput]
    notifications: _containers.RepeatedCompositeFieldContainer[NotifyInput]
    original_state: str
    delivered_before: _containers.RepeatedCompositeFieldContainer[DeliveryReceipt]
    def __init__(self, workflow_id: _Optional[str] = ..., asset_id: _Optional[str] = ..., deliveries: _Optional[_Iterable[_Union[DeliverInput, _Mapping]]] = ..., notifications: _Optional[_Iterable[_Union[NotifyInput, _Mapping]]] = ..., original_state: _Optional[str] = ..., delivered_before: _Optional[_Iterable[_Union[DeliveryReceipt, _Mapping]]] = ...) -> None: ...
