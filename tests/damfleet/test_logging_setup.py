"""Worker logging: JSON lines with ids as fields, expected failures as one line, quiet
third-party loggers, rotation, and error messages without pointers or scratch paths."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from damfleet.errors import CorruptMediaError
from damfleet.logging_setup import ContextFilter, JsonFormatter, asset_context, configure_logging
from damfleet.messages import clean_message
from tests.conftest import make_settings


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_json_lines_carry_activity_and_asset_ids(tmp_path: Path, restore_logging) -> None:
    log_file = tmp_path / "logs" / "transcode.log"
    configure_logging(make_settings(tmp_path, DAMFLEET_LOG_FORMAT="json", DAMFLEET_LOG_FILE=str(log_file)),
                      pool="transcode")

    @activity.defn(name="transcode_asset")
    async def work() -> None:
        with asset_context(asset_id="a1b2"):
            logging.getLogger("damfleet.transcode").info("rendition %s done", "proxy")

    env = ActivityEnvironment()
    env.info = activity.Info(**{**env.info.__dict__, "workflow_id": "asset-42", "attempt": 2, "activity_type": "transcode_asset",
                                "task_queue": "q-transcode"})
    await env.run(work)
    logging.getLogger("outside").warning("no context here")

    inside, outside = _json_lines(log_file)
    assert inside["message"] == "rendition proxy done" and inside["level"] == "INFO"
    assert (inside["workflow_id"], inside["activity"], inside["attempt"], inside["asset_id"], inside["pool"],
            inside["task_queue"]) == ("asset-42", "transcode_asset", 2, "a1b2", "transcode", "q-transcode")
    assert "workflow_id" not in outside and outside["pool"] == "transcode"


def test_expected_failures_are_one_line_unexpected_keep_their_traceback(restore_logging) -> None:
    context, formatter = ContextFilter("ingest"), JsonFormatter()

    def record_for(error: BaseException) -> logging.LogRecord:
        try:
            raise error
        except BaseException:  # noqa: BLE001
            return logging.LogRecord("temporalio.activity", logging.WARNING, __file__, 1,
                                     "Completing activity as failed", None, sys.exc_info())

    expected = ApplicationError("corrupt media: x", type="CorruptMedia", non_retryable=True)
    expected.__cause__ = CorruptMediaError("corrupt media: x")
    assert context.filter(record_for(expected)) is False, "the wrapper already logged it in one line"

    unexpected = record_for(ZeroDivisionError("bug"))
    assert context.filter(unexpected) is True
    entry = json.loads(formatter.format(unexpected))
    assert entry["exception"]["type"] == "ZeroDivisionError" and "Traceback" in entry["exception"]["traceback"]


def test_third_party_chatter_is_quiet_and_files_rotate(tmp_path: Path, restore_logging) -> None:
    log_file = tmp_path / "pool.log"
    configure_logging(make_settings(tmp_path, DAMFLEET_LOG_FILE=str(log_file), DAMFLEET_LOG_FILE_MAX_BYTES="2000",
                                    DAMFLEET_LOG_FILE_BACKUPS="2"))
    assert logging.getLogger("pyvips").getEffectiveLevel() == logging.WARNING
    logging.getLogger("pyvips").info("VIPS-INFO: threadpool ...")
    for i in range(200):
        logging.getLogger("damfleet").info("line %d of a long run", i)
    assert "VIPS-INFO" not in log_file.read_text()
    assert (tmp_path / "pool.log.1").exists() and (tmp_path / "pool.log.2").exists()
    assert not (tmp_path / "pool.log.3").exists(), "backups are capped"
    assert log_file.stat().st_size <= 2000


def test_bad_log_format_is_refused(tmp_path: Path) -> None:
    from damfleet.settings import SettingsError

    with pytest.raises(SettingsError, match="DAMFLEET_LOG_FORMAT must be text or json"):
        make_settings(tmp_path, DAMFLEET_LOG_FORMAT="xml")


def test_error_messages_lose_pointers_and_scratch_paths() -> None:
    raw = "corrupt: [h264 @ 0x55d0c3a1e2c0] Invalid NAL unit in /var/scratch/transcode-3fa2b91c04de/clip.mov"
    assert clean_message(raw) == "corrupt: [h264] Invalid NAL unit in clip.mov"
    assert clean_message("no such file: /srv/media/clip.mov") == "no such file: /srv/media/clip.mov"
