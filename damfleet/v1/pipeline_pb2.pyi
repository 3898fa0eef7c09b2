from damfleet.v1 import common_pb2 as _common_pb2
from damfleet.v1 import stages_pb2 as _stages_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PipelineRequest(_message.Message):
    __slots__ = ("source_uri", "expected_sha256", "profile", "metadata", "priority", "targets", "asset_id", "skip_ai", "dedup")
    SOURCE_URI_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SHA256_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    SKIP_AI_FIELD_NUMBER: _ClassVar[int]
    DEDUP_FIELD_NUMBER: _ClassVar[int]
    source_uri: str
    expected_sha256: str
    profile: str
    metadata: _common_pb2.AssetMetadata
    priority: int
    targets: _containers.RepeatedScalarFieldContainer[str]
    asset_id: str
    skip_ai: bool
    dedup: bool
    def __init__(self, source_uri: _Optional[str] = ..., expected_sha256: _Optional[str] = ..., profile: _Optional[str] = ..., metadata: _Optional[_Union[_common_pb2.AssetMetadata, _Mapping]] = ..., priority: _Optional[int] = ..., targets: _Optional[_Iterable[str]] = ..., asset_id: _Optional[str] = ..., skip_ai: _Optional[bool] = ..., dedup: _Optional[bool] = ...) -> None: ...

class StageResult(_message.Message):
    __slots__ = ("stage", "status", "reason", "started_at", "seconds", "outputs", "attempts", "last_error", "waiting", "percent", "detail")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    stage: str
    status: _common_pb2.StageStatus
    reason: str
    started_at: float
    seconds: float
    outputs: _containers.RepeatedCompositeFieldContainer[_common_pb2.Output]
    attempts: int
    last_error: str
    waiting: str
    percent: float
    detail: str
    def __init__(self, stage: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.StageStatus, str]] = ..., reason: _Optional[str] = ..., started_at: _Optional[float] = ..., seconds: _Optional[float] = ..., outputs: _Optional[_Iterable[_Union[_common_pb2.Output, _Mapping]]] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., waiting: _Optional[str] = ..., percent: _Optional[float] = ..., detail: _Optional[str] = ...) -> None: ...

class PipelineResult(_message.Message):
    __slots__ = ("asset_id", "workflow_id", "state", "current_stage", "error", "asset", "stages", "outputs", "receipts", "transcript", "labels", "profile", "failures", "duplicate_of", "redelivered_by", "first_attempts_only")
    class StagesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: StageResult
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[StageResult, _Mapping]] = ...) -> None: ...
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ASSET_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_OF_FIELD_NUMBER: _ClassVar[int]
    REDELIVERED_BY_FIELD_NUMBER: _ClassVar[int]
    FIRST_ATTEMPTS_ONLY_FIELD_NUMBER: _ClassVar[int]
    asset_id: str
    workflow_id: str
    state: _common_pb2.JobState
    current_stage: str
    error: str
    asset: _common_pb2.AssetRecord
    stages: _containers.MessageMap[str, StageResult]
    outputs: _containers.RepeatedCompositeFieldContainer[_common_pb2.Output]
    receipts: _containers.RepeatedCompositeFieldContainer[_stages_pb2.DeliveryReceipt]
    transcript: _stages_pb2.TranscriptSummary
    labels: _containers.RepeatedCompositeFieldContainer[_stages_pb2.DetectedLabel]
    profile: str
    failures: _containers.RepeatedScalarFieldContainer[str]
    duplicate_of: str
    redelivered_by: str
    first_attempts_only: bool
    def __init__(self, asset_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ..., current_stage: _Optional[str] = ..., error: _Optional[str] = ..., asset: _Optional[_Union[_common_pb2.AssetRecord, _Mapping]] = ..., stages: _Optional[_Mapping[str, StageResult]] = ..., outputs: _Optional[_Iterable[_Union[_common_pb2.Output, _Mapping]]] = ..., receipts: _Optional[_Iterable[_Union[_stages_pb2.DeliveryReceipt, _Mapping]]] = ..., transcript: _Optional[_Union[_stages_pb2.TranscriptSummary, _Mapping]] = ..., labels: _Optional[_Iterable[_Union[_stages_pb2.DetectedLabel, _Mapping]]] = ..., profile: _Optional[str] = ..., failures: _Optional[_Iterable[str]] = ..., duplicate_of: _Optional[str] = ..., redelivered_by: _Optional[str] = ..., first_attempts_only: _Optional[bool] = ...) -> None: ...

class RedeliverRequest(_message.Message):
    __slots__ = ("workflow_id", "deliveries", "notifications", "targets")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATIONS_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    deliveries: _containers.RepeatedCompositeFieldContainer[_stages_pb2.DeliverInput]
    notifications: _containers.RepeatedCompositeFieldContainer[_stages_pb2.NotifyInput]
    targets: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, workflow_id: _Optional[str] = ..., deliveries: _Optional[_Iterable[_Union[_stages_pb2.DeliverInput, _Mapping]]] = ..., notifications: _Optional[_Iterable[_Union[_stages_pb2.NotifyInput, _Mapping]]] = ..., targets: _Optional[_Iterable[str]] = ...) -> None: ...

class RedeliverResult(_message.Message):
    __slots__ = ("workflow_id", "asset_id", "state", "receipts", "failures", "reason")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    asset_id: str
    state: _common_pb2.JobState
    receipts: _containers.RepeatedCompositeFieldContainer[_stages_pb2.DeliveryReceipt]
    failures: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    def __init__(self, workflow_id: _Optional[str] = ..., asset_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ..., receipts: _Optional[_Iterable[_Union[_stages_pb2.DeliveryReceipt, _Mapping]]] = ..., failures: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ...) -> None: ...
