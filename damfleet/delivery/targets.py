"""The table of delivery target types: the one place that lists them.

Adding a type (see docs/delivery-targets.md): write ``damfleet/delivery/<type>.py``
exporting ``TARGET_TYPE`` (its pydantic config model and ``deliver()``), add it below,
and add its client library to the ``distribution`` extra in pyproject.toml.
"""

from __future__ import annotations

from damfleet.delivery import ftp, http, local, s3, sftp, webhook
from damfleet.delivery.base import TargetType

__all__ = ["TARGET_TYPES"]

TARGET_TYPES: dict[str, TargetType] = {
    t.name: t
    for t in (
        local.TARGET_TYPE,
        s3.TARGET_TYPE,
        http.TARGET_TYPE,
        webhook.TARGET_TYPE,
        sftp.TARGET_TYPE,
        ftp.FTP_TARGET_TYPE,
        ftp.FTPS_TARGET_TYPE,
    )
}
