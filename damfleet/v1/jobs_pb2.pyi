from damfleet.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ManifestRow(_message.Message):
    __slots__ = ("line", "source_uri", "expected_sha256", "metadata", "profile")
    LINE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URI_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SHA256_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    line: int
    source_uri: str
    expected_sha256: str
    metadata: _common_pb2.AssetMetadata
    profile: str
    def __init__(self, line: _Optional[int] = ..., source_uri: _Optional[str] = ..., expected_sha256: _Optional[str] = ..., metadata: _Optional[_Union[_common_pb2.AssetMetadata, _Mapping]] = ..., profile: _Optional[str] = ...) -> None: ...

class BadRow(_message.Message):
    __slots__ = ("line", "reason")
    LINE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    line: int
    reason: str
    def __init__(self, line: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class PrepareBatchInput(_message.Message):
    __slots__ = ("batch_id", "manifest_uri", "source_prefix", "page_size", "defaults", "ledger_uri", "settle_seconds")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_URI_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PREFIX_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    DEFAULTS_FIELD_NUMBER: _ClassVar[int]
    LEDGER_URI_FIELD_NUMBER: _ClassVar[int]
    SETTLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    manifest_uri: str
    source_prefix: str
    page_size: int
    defaults: _common_pb2.AssetMetadata
    ledger_uri: str
    settle_seconds: float
    def __init__(self, batch_id: _Optional[str] = ..., manifest_uri: _Optional[str] = ..., source_prefix: _Optional[str] = ..., page_size: _Optional[int] = ..., defaults: _Optional[_Union[_common_pb2.AssetMetadata, _Mapping]] = ..., ledger_uri: _Optional[str] = ..., settle_seconds: _Optional[float] = ...) -> None: ...

class PreparedBatch(_message.Message):
    __slots__ = ("pages_prefix", "page_size", "page_count", "total_rows", "bad_row_count", "bad_rows")
    PAGES_PREFIX_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ROWS_FIELD_NUMBER: _ClassVar[int]
    BAD_ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    BAD_ROWS_FIELD_NUMBER: _ClassVar[int]
    pages_prefix: str
    page_size: int
    page_count: int
    total_rows: int
    bad_row_count: int
    bad_rows: _containers.RepeatedCompositeFieldContainer[BadRow]
    def __init__(self, pages_prefix: _Optional[str] = ..., page_size: _Optional[int] = ..., page_count: _Optional[int] = ..., total_rows: _Optional[int] = ..., bad_row_count: _Optional[int] = ..., bad_rows: _Optional[_Iterable[_Union[BadRow, _Mapping]]] = ...) -> None: ...

class ManifestPageInput(_message.Message):
    __slots__ = ("pages_prefix", "page")
    PAGES_PREFIX_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    pages_prefix: str
    page: int
    def __init__(self, pages_prefix: _Optional[str] = ..., page: _Optional[int] = ...) -> None: ...

class ManifestPage(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[ManifestRow]
    def __init__(self, rows: _Optional[_Iterable[_Union[ManifestRow, _Mapping]]] = ...) -> None: ...

class FailedAsset(_message.Message):
    __slots__ = ("line", "source_uri", "workflow_id", "state", "error", "expected_sha256", "metadata", "profile")
    LINE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URI_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SHA256_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    line: int
    source_uri: str
    workflow_id: str
    state: _common_pb2.JobState
    error: str
    expected_sha256: str
    metadata: _common_pb2.AssetMetadata
    profile: str
    def __init__(self, line: _Optional[int] = ..., source_uri: _Optional[str] = ..., workflow_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ..., error: _Optional[str] = ..., expected_sha256: _Optional[str] = ..., metadata: _Optional[_Union[_common_pb2.AssetMetadata, _Mapping]] = ..., profile: _Optional[str] = ...) -> None: ...

class BatchState(_message.Message):
    __slots__ = ("prepared", "is_prepared", "next_index", "completed", "completed_with_errors", "failed", "cancelled", "duplicates", "failed_assets", "failed_assets_omitted", "runs", "paused", "started_at")
    PREPARED_FIELD_NUMBER: _ClassVar[int]
    IS_PREPARED_FIELD_NUMBER: _ClassVar[int]
    NEXT_INDEX_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_WITH_ERRORS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    FAILED_ASSETS_FIELD_NUMBER: _ClassVar[int]
    FAILED_ASSETS_OMITTED_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    prepared: PreparedBatch
    is_prepared: bool
    next_index: int
    completed: int
    completed_with_errors: int
    failed: int
    cancelled: int
    duplicates: int
    failed_assets: _containers.RepeatedCompositeFieldContainer[FailedAsset]
    failed_assets_omitted: int
    runs: int
    paused: bool
    started_at: float
    def __init__(self, prepared: _Optional[_Union[PreparedBatch, _Mapping]] = ..., is_prepared: _Optional[bool] = ..., next_index: _Optional[int] = ..., completed: _Optional[int] = ..., completed_with_errors: _Optional[int] = ..., failed: _Optional[int] = ..., cancelled: _Optional[int] = ..., duplicates: _Optional[int] = ..., failed_assets: _Optional[_Iterable[_Union[FailedAsset, _Mapping]]] = ..., failed_assets_omitted: _Optional[int] = ..., runs: _Optional[int] = ..., paused: _Optional[bool] = ..., started_at: _Optional[float] = ...) -> None: ...

class BatchRequest(_message.Message):
    __slots__ = ("manifest_uri", "source_prefix", "rows", "prepared", "profile", "metadata", "priority", "max_in_flight", "continue_as_new_after", "skip_ai", "targets", "dedup", "page_size", "retry_of", "state")
    MANIFEST_URI_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PREFIX_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    PREPARED_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    CONTINUE_AS_NEW_AFTER_FIELD_NUMBER: _ClassVar[int]
    SKIP_AI_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    DEDUP_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    RETRY_OF_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    manifest_uri: str
    source_prefix: str
    rows: _containers.RepeatedCompositeFieldContainer[ManifestRow]
    prepared: PreparedBatch
    profile: str
    metadata: _common_pb2.AssetMetadata
    priority: int
    max_in_flight: int
    continue_as_new_after: int
    skip_ai: bool
    targets: _containers.RepeatedScalarFieldContainer[str]
    dedup: bool
    page_size: int
    retry_of: str
    state: BatchState
    def __init__(self, manifest_uri: _Optional[str] = ..., source_prefix: _Optional[str] = ..., rows: _Optional[_Iterable[_Union[ManifestRow, _Mapping]]] = ..., prepared: _Optional[_Union[PreparedBatch, _Mapping]] = ..., profile: _Optional[str] = ..., metadata: _Optional[_Union[_common_pb2.AssetMetadata, _Mapping]] = ..., priority: _Optional[int] = ..., max_in_flight: _Optional[int] = ..., continue_as_new_after: _Optional[int] = ..., skip_ai: _Optional[bool] = ..., targets: _Optional[_Iterable[str]] = ..., dedup: _Optional[bool] = ..., page_size: _Optional[int] = ..., retry_of: _Optional[str] = ..., state: _Optional[_Union[BatchState, _Mapping]] = ...) -> None: ...

class BatchProgress(_message.Message):
    __slots__ = ("batch_id", "state", "total", "completed", "completed_with_errors", "failed", "cancelled", "running", "pending", "duplicates", "percent", "failed_assets", "failed_assets_omitted", "bad_row_count", "bad_rows", "runs", "paused", "retry_of", "error")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_WITH_ERRORS_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    FAILED_ASSETS_FIELD_NUMBER: _ClassVar[int]
    FAILED_ASSETS_OMITTED_FIELD_NUMBER: _ClassVar[int]
    BAD_ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    BAD_ROWS_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    RETRY_OF_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    state: _common_pb2.JobState
    total: int
    completed: int
    completed_with_errors: int
    failed: int
    cancelled: int
    running: int
    pending: int
    duplicates: int
    percent: float
    failed_assets: _containers.RepeatedCompositeFieldContainer[FailedAsset]
    failed_assets_omitted: int
    bad_row_count: int
    bad_rows: _containers.RepeatedCompositeFieldContainer[BadRow]
    runs: int
    paused: bool
    retry_of: str
    error: str
    def __init__(self, batch_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.JobState, str]] = ..., total: _Optional[int] = ..., completed: _Optional[int] = ..., completed_with_errors: _Optional[int] = ..., failed: _Optional[int] = ..., cancelled: _Optional[int] = ..., running: _Optional[int] = ..., pending: _Optional[int] = ..., duplicates: _Optional[int] = ..., percent: _Optional[float] = ..., failed_assets: _Optional[_Iterable[_Union[FailedAsset, _Mapping]]] = ..., failed_assets_omitted: _Optional[int] = ..., bad_row_count: _Optional[int] = ..., bad_rows: _Optional[_Iterable[_Union[BadRow, _Mapping]]] = ..., runs: _Optional[int] = ..., paused: _Optional[bool] = ..., retry_of: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class ClaimContentInput(_message.Message):
    __slots__ = ("asset", "workflow_id")
    ASSET_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    asset: _common_pb2.AssetRecord
    workflow_id: str
    def __init__(self, asset: _Optional[_Union[_common_pb2.AssetRecord, _Mapping]] = ..., workflow_id: _Optional[str] = ...) -> None: ...

class DiscardFailedInput(_message.Message):
    __slots__ = ("asset_id", "reason")
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    asset_id: str
    reason: str
    def __init__(self, asset_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DiscardFailedOutput(_message.Message):
    __slots__ = ("removed", "quarantined")
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_FIELD_NUMBER: _ClassVar[int]
    removed: int
    quarantined: _containers.RepeatedCompositeFieldContainer[_common_pb2.Output]
    def __init__(self, removed: _Optional[int] = ..., quarantined: _Optional[_Iterable[_Union[_common_pb2.Output, _Mapping]]] = ...) -> None: ...

class ClaimContentOutput(_message.Message):
    __slots__ = ("duplicate", "existing", "existing_workflow_id", "attempt")
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    EXISTING_FIELD_NUMBER: _ClassVar[int]
    EXISTING_WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    duplicate: bool
    existing: _common_pb2.AssetRecord
    existing_workflow_id: str
    attempt: int
    def __init__(self, duplicate: _Optional[bool] = ..., existing: _Optional[_Union[_common_pb2.AssetRecord, _Mapping]] = ..., existing_workflow_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class RescanRequest(_message.Message):
    __slots__ = ("source_prefix", "batch", "settle_seconds", "ledger_uri")
    SOURCE_PREFIX_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    SETTLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LEDGER_URI_FIELD_NUMBER: _ClassVar[int]
    source_prefix: str
    batch: BatchRequest
    settle_seconds: float
    ledger_uri: str
    def __init__(self, source_prefix: _Optional[str] = ..., batch: _Optional[_Union[BatchRequest, _Mapping]] = ..., settle_seconds: _Optional[float] = ..., ledger_uri: _Optional[str] = ...) -> None: ...

class RescanResult(_message.Message):
    __slots__ = ("new_sources", "batch_id")
    NEW_SOURCES_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    new_sources: int
    batch_id: str
    def __init__(self, new_sources: _Optional[int] = ..., batch_id: _Optional[str] = ...) -> None: ...
