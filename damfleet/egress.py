"""No outbound surprises: switch off the network lookups libraries make on their own (issue 12).

damfleet talks to what its settings name (Temporal, the storage endpoint, delivery targets,
the inference service) and nothing else. Two libraries reach further by default:

* botocore, with no credentials configured, asks the EC2 instance-metadata service
  (``169.254.169.254``) for some, twice, before failing. That lookup is made only when
  ``DAMFLEET_STORAGE_S3_INSTANCE_METADATA=true`` (hosts that really use an instance role);
  otherwise ``AWS_EC2_METADATA_DISABLED=true`` is set for the process. Web-identity (IRSA) and
  container credentials are unaffected: they are configured explicitly.
* onnxruntime (loaded for Silero VAD) has a telemetry switch; it is turned off before a
  model loads.

``tests/damfleet/test_egress.py`` records the connects of an ingest and a transcription under
strace and finds none but loopback.
"""

from __future__ import annotations

import logging
import os

from damfleet.settings import Settings

__all__ = ["disable_onnxruntime_telemetry", "restrict_egress"]

log = logging.getLogger(__name__)


def restrict_egress(settings: Settings) -> None:
    """Process-wide: no instance-metadata credential lookups unless the setting enables them."""
    if not settings.storage.s3_instance_metadata:
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def disable_onnxruntime_telemetry() -> None:
    """Turn onnxruntime's telemetry events off (a no-op where it is not installed)."""
    try:
        import onnxruntime
    except ImportError:
        return
    onnxruntime.disable_telemetry_events()
