from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FixityStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FIXITY_STATUS_UNSPECIFIED: _ClassVar[FixityStatus]
    FIXITY_OK: _ClassVar[FixityStatus]
    FIXITY_MISMATCH: _ClassVar[FixityStatus]
    FIXITY_MISSING: _ClassVar[FixityStatus]
    FIXITY_UNREADABLE: _ClassVar[FixityStatus]

class FixityRepair(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FIXITY_REPAIR_NONE: _ClassVar[FixityRepair]
    FIXITY_REPAIR_REPAIRED: _ClassVar[FixityRepair]
    FIXITY_REPAIR_QUARANTINED: _ClassVar[FixityRepair]
    FIXITY_REPAIR_MARKED: _ClassVar[FixityRepair]
FIXITY_STATUS_UNSPECIFIED: FixityStatus
FIXITY_OK: FixityStatus
FIXITY_MISMATCH: FixityStatus
FIXITY_MISSING: FixityStatus
FIXITY_UNREADABLE: FixityStatus
FIXITY_REPAIR_NONE: FixityRepair
FIXITY_REPAIR_REPAIRED: FixityRepair
FIXITY_REPAIR_QUARANTINED: FixityRepair
FIXITY_REPAIR_MARKED: FixityRepair

class FixityCounts(_message.Message):
    __slots__ = ("checked", "ok", "mismatch", "missing", "unreadable", "repaired", "quarantined", "skipped", "bytes_read", "renditions_checked", "renditions_unverified")
    CHECKED_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    MISMATCH_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    UNREADABLE_FIELD_NUMBER: _ClassVar[int]
    REPAIRED_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    BYTES_READ_FIELD_NUMBER: _ClassVar[int]
    RENDITIONS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    RENDITIONS_UNVERIFIED_FIELD_NUMBER: _ClassVar[int]
    checked: int
    ok: int
    mismatch: int
    missing: int
    unreadable: int
    repaired: int
    quarantined: int
    skipped: int
    bytes_read: int
    renditions_checked: int
    renditions_unverified: int
    def __init__(self, checked: _Optional[int] = ..., ok: _Optional[int] = ..., mismatch: _Optional[int] = ..., missing: _Optional[int] = ..., unreadable: _Optional[int] = ..., repaired: _Optional[int] = ..., quarantined: _Optional[int] = ..., skipped: _Optional[int] = ..., bytes_read: _Optional[int] = ..., renditions_checked: _Optional[int] = ..., renditions_unverified: _Optional[int] = ...) -> None: ...

class FixityFinding(_message.Message):
    __slots__ = ("asset_id", "status", "uri", "expected_sha256", "actual_sha256", "metadata_sha256", "size_bytes", "detail", "repair", "repaired_from", "quarantine_uri", "checked_at", "role")
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SHA256_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_SHA256_FIELD_NUMBER: _ClassVar[int]
    METADATA_SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    REPAIR_FIELD_NUMBER: _ClassVar[int]
    REPAIRED_FROM_FIELD_NUMBER: _ClassVar[int]
    QUARANTINE_URI_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    asset_id: str
    status: FixityStatus
    uri: str
    expected_sha256: str
    actual_sha256: str
    metadata_sha256: str
    size_bytes: int
    detail: str
    repair: FixityRepair
    repaired_from: str
    quarantine_uri: str
    checked_at: float
    role: str
    def __init__(self, asset_id: _Optional[str] = ..., status: _Optional[_Union[FixityStatus, str]] = ..., uri: _Optional[str] = ..., expected_sha256: _Optional[str] = ..., actual_sha256: _Optional[str] = ..., metadata_sha256: _Optional[str] = ..., size_bytes: _Optional[int] = ..., detail: _Optional[str] = ..., repair: _Optional[_Union[FixityRepair, str]] = ..., repaired_from: _Optional[str] = ..., quarantine_uri: _Optional[str] = ..., checked_at: _Optional[float] = ..., role: _Optional[str] = ...) -> None: ...

class FixityAuditRequest(_message.Message):
    __slots__ = ("prefix", "collection", "sample_buckets", "bucket", "repair", "page_size", "max_in_flight", "continue_as_new_after", "state", "include_renditions")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_BUCKETS_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    REPAIR_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    CONTINUE_AS_NEW_AFTER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RENDITIONS_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    collection: str
    sample_buckets: int
    bucket: int
    repair: bool
    page_size: int
    max_in_flight: int
    continue_as_new_after: int
    state: FixityAuditState
    include_renditions: bool
    def __init__(self, prefix: _Optional[str] = ..., collection: _Optional[str] = ..., sample_buckets: _Optional[int] = ..., bucket: _Optional[int] = ..., repair: _Optional[bool] = ..., page_size: _Optional[int] = ..., max_in_flight: _Optional[int] = ..., continue_as_new_after: _Optional[int] = ..., state: _Optional[_Union[FixityAuditState, _Mapping]] = ..., include_renditions: _Optional[bool] = ...) -> None: ...

class FixityPlan(_message.Message):
    __slots__ = ("audit_prefix", "pages_prefix", "page_count", "page_size", "total_assets", "listed_assets", "bucket", "buckets", "cycle_uri")
    AUDIT_PREFIX_FIELD_NUMBER: _ClassVar[int]
    PAGES_PREFIX_FIELD_NUMBER: _ClassVar[int]
    PAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ASSETS_FIELD_NUMBER: _ClassVar[int]
    LISTED_ASSETS_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    CYCLE_URI_FIELD_NUMBER: _ClassVar[int]
    audit_prefix: str
    pages_prefix: str
    page_count: int
    page_size: int
    total_assets: int
    listed_assets: int
    bucket: int
    buckets: int
    cycle_uri: str
    def __init__(self, audit_prefix: _Optional[str] = ..., pages_prefix: _Optional[str] = ..., page_count: _Optional[int] = ..., page_size: _Optional[int] = ..., total_assets: _Optional[int] = ..., listed_assets: _Optional[int] = ..., bucket: _Optional[int] = ..., buckets: _Optional[int] = ..., cycle_uri: _Optional[str] = ...) -> None: ...

class FixityAuditState(_message.Message):
    __slots__ = ("planned", "plan", "next_page", "counts", "failures", "failures_omitted", "runs", "started_at")
    PLANNED_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    FAILURES_OMITTED_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    planned: bool
    plan: FixityPlan
    next_page: int
    counts: FixityCounts
    failures: _containers.RepeatedCompositeFieldContainer[FixityFinding]
    failures_omitted: int
    runs: int
    started_at: float
    def __init__(self, planned: _Optional[bool] = ..., plan: _Optional[_Union[FixityPlan, _Mapping]] = ..., next_page: _Optional[int] = ..., counts: _Optional[_Union[FixityCounts, _Mapping]] = ..., failures: _Optional[_Iterable[_Union[FixityFinding, _Mapping]]] = ..., failures_omitted: _Optional[int] = ..., runs: _Optional[int] = ..., started_at: _Optional[float] = ...) -> None: ...

class FixityPlanInput(_message.Message):
    __slots__ = ("audit_id", "prefix", "sample_buckets", "bucket", "page_size", "collection")
    AUDIT_ID_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_BUCKETS_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    audit_id: str
    prefix: str
    sample_buckets: int
    bucket: int
    page_size: int
    collection: str
    def __init__(self, audit_id: _Optional[str] = ..., prefix: _Optional[str] = ..., sample_buckets: _Optional[int] = ..., bucket: _Optional[int] = ..., page_size: _Optional[int] = ..., collection: _Optional[str] = ...) -> None: ...

class FixityPage(_message.Message):
    __slots__ = ("asset_ids",)
    ASSET_IDS_FIELD_NUMBER: _ClassVar[int]
    asset_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, asset_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class FixityPageInput(_message.Message):
    __slots__ = ("audit_id", "pages_prefix", "page", "findings_prefix", "collection", "repair", "include_renditions")
    AUDIT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGES_PREFIX_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_PREFIX_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    REPAIR_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RENDITIONS_FIELD_NUMBER: _ClassVar[int]
    audit_id: str
    pages_prefix: str
    page: int
    findings_prefix: str
    collection: str
    repair: bool
    include_renditions: bool
    def __init__(self, audit_id: _Optional[str] = ..., pages_prefix: _Optional[str] = ..., page: _Optional[int] = ..., findings_prefix: _Optional[str] = ..., collection: _Optional[str] = ..., repair: _Optional[bool] = ..., include_renditions: _Optional[bool] = ...) -> None: ...

class FixityPageResult(_message.Message):
    __slots__ = ("page", "counts", "failures", "findings_uri")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_URI_FIELD_NUMBER: _ClassVar[int]
    page: int
    counts: FixityCounts
    failures: _containers.RepeatedCompositeFieldContainer[FixityFinding]
    findings_uri: str
    def __init__(self, page: _Optional[int] = ..., counts: _Optional[_Union[FixityCounts, _Mapping]] = ..., failures: _Optional[_Iterable[_Union[FixityFinding, _Mapping]]] = ..., findings_uri: _Optional[str] = ...) -> None: ...

class FixityReportInput(_message.Message):
    __slots__ = ("audit_id", "plan", "counts", "started_at", "runs", "request")
    AUDIT_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    audit_id: str
    plan: FixityPlan
    counts: FixityCounts
    started_at: float
    runs: int
    request: FixityAuditRequest
    def __init__(self, audit_id: _Optional[str] = ..., plan: _Optional[_Union[FixityPlan, _Mapping]] = ..., counts: _Optional[_Union[FixityCounts, _Mapping]] = ..., started_at: _Optional[float] = ..., runs: _Optional[int] = ..., request: _Optional[_Union[FixityAuditRequest, _Mapping]] = ...) -> None: ...

class FixityAuditResult(_message.Message):
    __slots__ = ("audit_id", "counts", "failures", "failed", "failures_omitted", "report_uri", "bucket", "buckets", "runs", "total_assets", "seconds")
    AUDIT_ID_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    FAILURES_OMITTED_FIELD_NUMBER: _ClassVar[int]
    REPORT_URI_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_ASSETS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    audit_id: str
    counts: FixityCounts
    failures: int
    failed: _containers.RepeatedCompositeFieldContainer[FixityFinding]
    failures_omitted: int
    report_uri: str
    bucket: int
    buckets: int
    runs: int
    total_assets: int
    seconds: float
    def __init__(self, audit_id: _Optional[str] = ..., counts: _Optional[_Union[FixityCounts, _Mapping]] = ..., failures: _Optional[int] = ..., failed: _Optional[_Iterable[_Union[FixityFinding, _Mapping]]] = ..., failures_omitted: _Optional[int] = ..., report_uri: _Optional[str] = ..., bucket: _Optional[int] = ..., buckets: _Optional[int] = ..., runs: _Optional[int] = ..., total_assets: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...
