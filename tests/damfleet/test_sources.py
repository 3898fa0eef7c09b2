"""Source roots (deny by default), path resolution, error classes and names as bytes (issue 12).

Every escape the issue found is tried against a real folder tree: ``..``, ``%2f``-encoded
traversal, a link inside a root pointing outside, a link loop, an over-long name, a NUL
byte, special files. Names that are not UTF-8 or end in spaces go through the real ingest.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from damfleet import ingest
from damfleet.errors import BadInputError, SourceNotFoundError, TransientError
from damfleet.settings import Settings
from damfleet.sources import (
    SOURCE_ROOTS_SETTING,
    SourceRefusedError,
    SourceRoots,
    check_before_submit,
    classify_os_error,
    display_text,
    file_uri,
    local_path_bytes,
    open_local_source,
)
from damfleet.storage import Storage, normalize_uri, path_from_uri
from damfleet.v1 import stages_pb2
from tests.conftest import make_settings


@pytest.fixture
def tree(tmp_path: Path, media_dir: Path) -> Path:
    """``root/`` (the only source root) with a real image, a secret outside it, and escape hatches."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    shutil.copy(media_dir / "small.png", root / "ok.png")
    outside = tmp_path / "secret"
    outside.mkdir()
    shutil.copy(media_dir / "small.png", outside / "id_rsa.png")
    (root / "escape.png").symlink_to(outside / "id_rsa.png")
    (root / "outdir").symlink_to(outside)
    (root / "inside.png").symlink_to(root / "ok.png")
    (root / "loop-a").symlink_to(root / "loop-b")
    (root / "loop-b").symlink_to(root / "loop-a")
    os.mkfifo(root / "fifo.png")
    return root


def _roots(root: Path, **kw: bool) -> SourceRoots:
    return SourceRoots.parse([str(root)], **kw)


def _settings(tmp_path: Path, root: Path, **env: str) -> Settings:
    return make_settings(tmp_path, DAMFLEET_INGEST_SOURCE_ROOTS=json.dumps([str(root)]), **env)


async def _ingest(settings: Settings, uri: str, asset_id: str = "asset-src-1") -> stages_pb2.IngestOutput:
    storage = Storage.from_settings(settings)
    scratch = settings.scratch_path / asset_id
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        request = stages_pb2.IngestInput(asset_id=asset_id, source_uri=uri, profile="default")
        return await ingest.ingest_asset(request, storage=storage, settings=settings, scratch=scratch)
    finally:
        await storage.aclose()


# ---- escapes out of a root --------------------------------------------------------------------


@pytest.mark.parametrize("tail", [
    "/../secret/id_rsa.png",               # plain ..
    "/sub/../../secret/id_rsa.png",        # .. after a real folder
    "/..%2fsecret%2fid_rsa.png",           # %2f-encoded traversal (decoded before the open)
    "/%2e%2e/secret/id_rsa.png",           # encoded dots
    "/escape.png",                         # a link inside the root to a file outside
    "/outdir/id_rsa.png",                  # a linked folder inside the root pointing outside
])
def test_escapes_out_of_the_root_are_refused(tree: Path, tail: str) -> None:
    uri = tree.as_uri() + tail
    with pytest.raises(SourceRefusedError) as info:
        open_local_source(uri, _roots(tree))
    message = str(info.value)
    assert "outside the source roots" in message and SOURCE_ROOTS_SETTING in message
    assert "secret" in message, "the message says where the path really leads"
    assert not info.value.retryable


async def test_escapes_fail_the_real_ingest_and_store_nothing(tmp_path: Path, tree: Path) -> None:
    settings = _settings(tmp_path, tree)
    for tail in ("/../secret/id_rsa.png", "/..%2fsecret%2fid_rsa.png", "/escape.png"):
        with pytest.raises(SourceRefusedError, match="outside the source roots"):
            await _ingest(settings, tree.as_uri() + tail)
    assert not (tmp_path / "storage").exists() or not any((tmp_path / "storage").rglob("*.png"))


def test_links_and_folders_inside_the_root_are_fine(tree: Path) -> None:
    with open_local_source((tree / "inside.png").as_uri(), _roots(tree)) as source:
        assert source.size_bytes == (tree / "ok.png").stat().st_size
        assert source.read(8) == b"\x89PNG\r\n\x1a\n"
    with open_local_source((tree / "sub" / ".." / "ok.png").as_uri(), _roots(tree)) as source:
        assert source.size_bytes > 0


def test_links_refused_when_the_setting_forbids_them(tree: Path, tmp_path: Path) -> None:
    strict = _roots(tree, follow_symlinks=False)
    with pytest.raises(SourceRefusedError, match="symbolic link .*DAMFLEET_INGEST_FOLLOW_SYMLINKS=false"):
        open_local_source((tree / "inside.png").as_uri(), strict)
    with open_local_source((tree / "ok.png").as_uri(), strict) as source:
        assert source.size_bytes > 0
    settings = _settings(tmp_path, tree, DAMFLEET_INGEST_FOLLOW_SYMLINKS="false")
    assert SourceRoots.from_settings(settings).follow_symlinks is False


def test_no_roots_refuses_everything_and_names_the_setting(tree: Path) -> None:
    with pytest.raises(SourceRefusedError) as info:
        open_local_source((tree / "ok.png").as_uri(), SourceRoots())
    assert "no source roots are configured" in str(info.value) and SOURCE_ROOTS_SETTING in str(info.value)
    with pytest.raises(SourceRefusedError):
        SourceRoots().check("s3://bucket/a.jpg")


def test_a_missing_file_outside_the_roots_reads_as_outside_not_missing(tree: Path) -> None:
    """Probing for files outside the roots learns nothing from the error."""
    with pytest.raises(SourceRefusedError, match="outside"):
        open_local_source((tree.parent / "secret" / "nope.png").as_uri(), _roots(tree))
    with pytest.raises(SourceNotFoundError, match="no such file"):
        open_local_source((tree / "nope.png").as_uri(), _roots(tree))


def test_legacy_prefix_setting_still_counts(tmp_path: Path, tree: Path) -> None:
    settings = make_settings(tmp_path, DAMFLEET_INGEST_SOURCE_ROOTS="",
                             DAMFLEET_INGEST_ALLOWED_SOURCE_PREFIXES=tree.as_uri() + "/")
    roots = SourceRoots.from_settings(settings)
    assert roots.check((tree / "ok.png").as_uri()) == os.fsencode(os.path.realpath(tree / "ok.png"))
    with pytest.raises(SourceRefusedError):
        roots.check(tree.as_uri() + "/../secret/id_rsa.png")


def test_s3_roots_by_bucket_and_prefix() -> None:
    roots = SourceRoots.parse(["s3://uploads", "s3://shared/inbox"])
    assert roots.check("s3://uploads/any/key.mov") is None
    assert roots.check("s3://shared/inbox/a.jpg") is None
    for uri in ("s3://shared/inboxes/a.jpg", "s3://shared/other/a.jpg", "s3://elsewhere/a.jpg"):
        with pytest.raises(SourceRefusedError, match="outside the source roots"):
            roots.check(uri)
    with pytest.raises(SourceRefusedError, match=r"'\.\.' segment"):
        roots.check("s3://shared/inbox/../other/a.jpg")


def test_bad_root_entries_are_refused_clearly() -> None:
    with pytest.raises(BadInputError, match="neither a file:// folder nor an s3:// bucket"):
        SourceRoots.parse(["http://example.com/"])
    with pytest.raises(BadInputError, match="not an absolute path"):
        SourceRoots.parse(["relative/folder"])


# ---- errors classified right ------------------------------------------------------------------


def test_special_files_and_folders_are_refused(tree: Path) -> None:
    with pytest.raises(SourceRefusedError, match="special file"):
        open_local_source((tree / "fifo.png").as_uri(), _roots(tree))
    with pytest.raises(SourceRefusedError, match="is a folder"):
        open_local_source((tree / "sub").as_uri(), _roots(tree))


def test_link_loop_is_permanent(tree: Path) -> None:
    with pytest.raises(SourceRefusedError, match="symbolic links") as info:
        open_local_source((tree / "loop-a").as_uri(), _roots(tree))
    assert not info.value.retryable


def test_over_long_name_is_permanent(tree: Path) -> None:
    with pytest.raises(SourceRefusedError, match="file name too long") as info:
        open_local_source((tree / ("x" * 300 + ".png")).as_uri(), _roots(tree))
    assert not info.value.retryable


@pytest.mark.parametrize("uri", ["file:///srv/a%00b.png", "file:///srv/a\x00b.png"])
def test_nul_byte_is_a_clear_permanent_error(uri: str) -> None:
    with pytest.raises(SourceRefusedError, match="NUL byte") as info:
        local_path_bytes(uri)
    assert "\x00" not in str(info.value)


def test_nul_in_a_relative_path_is_a_clear_error_not_a_value_error() -> None:
    with pytest.raises(BadInputError, match="NUL byte"):
        normalize_uri("clips/a\x00.mp4")


def test_permission_errors_are_permanent_and_io_errors_transient() -> None:
    """EACCES cannot be provoked as root (these tests run as root in CI): classify it directly."""
    for code in (errno.EACCES, errno.EPERM, errno.ELOOP, errno.ENAMETOOLONG, errno.ENOTDIR):
        error = classify_os_error(OSError(code, os.strerror(code)), "file:///srv/a.png")
        assert isinstance(error, BadInputError) and not error.retryable, code
        assert "file:///srv/a.png" in str(error)
    assert isinstance(classify_os_error(OSError(errno.ENOENT, "x"), "file:///a"), SourceNotFoundError)
    for code in (errno.EIO, errno.EMFILE, errno.ESTALE):
        assert isinstance(classify_os_error(OSError(code, os.strerror(code)), "file:///a"), TransientError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file regardless of its mode")
def test_unreadable_file_is_permanent(tree: Path) -> None:
    (tree / "ok.png").chmod(0)
    with pytest.raises(SourceRefusedError, match="permission denied"):
        open_local_source((tree / "ok.png").as_uri(), _roots(tree))


# ---- names as bytes ---------------------------------------------------------------------------

HOSTILE_NAMES = [
    b"trailing space.png ",
    b"new\nline.png",
    b"latin1-\xe9t\xe9.png",          # not UTF-8
    b"-rf --leading-dash.png",
    b"\xff\xfe.png",
    b"percent%2f%00literal.png",      # percent signs in the name itself
    b"caf\xc3\xa9 \xe2\x80\xae.png",    # UTF-8 with a bidi override
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: n.decode("utf-8", "backslashreplace"))
def test_uri_round_trips_any_name(tmp_path: Path, name: bytes) -> None:
    path = os.fsencode(tmp_path) + b"/" + name
    uri = file_uri(path)
    assert uri.isascii() and " " not in uri and "\n" not in uri
    assert local_path_bytes(uri) == path
    assert os.fsencode(path_from_uri(uri)) == path
    assert os.fsencode(Path(os.fsdecode(path)).as_uri().removeprefix("file://")) == os.fsencode(
        uri.removeprefix("file://"))


async def test_hostile_names_are_ingested(tmp_path: Path, media_dir: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    settings = _settings(tmp_path, root)
    for index, name in enumerate(HOSTILE_NAMES):
        path = os.fsencode(root) + b"/" + name
        shutil.copy(media_dir / "small.png", os.fsdecode(path))
        result = await _ingest(settings, file_uri(path), asset_id=f"asset-name-{index}")
        shown = result.asset.original_filename
        assert shown.isprintable() and "\n" not in shown and "\u202e" not in shown, shown
        original = next(o for o in result.outputs if o.role == "original")
        assert original.sha256 == result.asset.sha256 and "/original/" in original.uri


def test_a_local_path_with_a_trailing_space_is_kept(tmp_path: Path) -> None:
    spaced = tmp_path / "clip.mp4 "
    spaced.write_bytes(b"x")
    assert path_from_uri(normalize_uri(str(spaced))) == spaced
    assert normalize_uri(f"  {tmp_path / 'other.mp4'}  ") == (tmp_path / "other.mp4").as_uri()


def test_display_text_is_one_safe_line() -> None:
    assert display_text(b"a\nb\xff \xe2\x80\xae.png ") == "a\\nb\\xff \\u202e.png\\x20"
    assert display_text("x" * 1000, limit=50).count("…") == 1 and len(display_text("x" * 1000, limit=50)) <= 50


# ---- the client checks before a run starts ----------------------------------------------------


def test_client_check_uses_the_same_words_as_ingest(tmp_path: Path, tree: Path) -> None:
    settings = _settings(tmp_path, tree)
    uri = tree.as_uri() + "/../secret/id_rsa.png"
    with pytest.raises(SourceRefusedError) as at_submit:
        check_before_submit(uri, settings)
    with pytest.raises(SourceRefusedError) as at_ingest:
        open_local_source(uri, SourceRoots.from_settings(settings))
    assert str(at_submit.value) == str(at_ingest.value)
    # A client without roots leaves the decision to the workers; one with roots does not need the file.
    check_before_submit(uri, make_settings(tmp_path, DAMFLEET_INGEST_SOURCE_ROOTS=""))
    check_before_submit((tree / "not-uploaded-yet.png").as_uri(), settings)


# ---- the same refusal at submit (CLI, exit 2) and at ingest (a run started by the temporal CLI) --


async def test_outside_the_roots_refused_at_submit_and_at_ingest_on_attempt_one(
    temporal_env, tmp_path: Path, tree: Path
) -> None:
    import asyncio
    import sys

    from temporalio.api.enums.v1 import EventType

    from damfleet.binaries import temporal_cli
    from damfleet.v1 import common_pb2
    from tests.jobs_support import REPO, run_fleet

    uri = tree.as_uri() + "/..%2fsecret%2fid_rsa.png"
    roots = json.dumps([str(tree)])
    async with run_fleet(temporal_env.client, tmp_path, real_ingest=True,
                         env={"DAMFLEET_INGEST_SOURCE_ROOTS": roots}) as fleet:
        address = fleet.client.service_client.config.target_host
        env = {**os.environ, "DAMFLEET_TEMPORAL_ADDRESS": address, "DAMFLEET_STATE_DIR": str(tmp_path / "cli"),
               "DAMFLEET_WORKER_QUEUE_SUFFIX": fleet.lane, "DAMFLEET_INGEST_SOURCE_ROOTS": roots, "COLUMNS": "80"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "damfleet.cli", "submit", uri, cwd=REPO, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
        line = err.decode().strip()
        assert proc.returncode == 2, (out, err)
        assert "\n" not in line and "Traceback" not in line, line
        assert "outside the source roots" in line and SOURCE_ROOTS_SETTING in line
        assert line.startswith("error: "), line  # the CLI's one-line error form
        message = line.removeprefix("error: ")

        # The same request from the `temporal` CLI (no client-side check) fails at ingest, once.
        workflow_id = f"asset-outside{fleet.lane}"
        cli = await asyncio.create_subprocess_exec(
            str(temporal_cli()), "workflow", "start", "--address", address, "--task-queue", fleet.pipeline_queue,
            "--type", "AssetPipeline", "--workflow-id", workflow_id, "--input", json.dumps({"sourceUri": uri}),
            "--input-meta", "encoding=json/protobuf", "--input-meta", "messageType=damfleet.v1.PipelineRequest",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        _, cli_err = await asyncio.wait_for(cli.communicate(), timeout=60)
        assert cli.returncode == 0, cli_err
        result = await fleet.fleet.wait(workflow_id)
        assert result.state == common_pb2.FAILED
        assert result.error == f"ingest failed: {message}"
        history = await fleet.client.get_workflow_handle(workflow_id).fetch_history()
        ingest_events = {e.event_id for e in history.events
                         if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                         and e.activity_task_scheduled_event_attributes.activity_type.name == "ingest_asset"}
        started = [e.activity_task_started_event_attributes for e in history.events
                   if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
                   and e.activity_task_started_event_attributes.scheduled_event_id in ingest_events]
        assert [s.attempt for s in started] == [1], "refused on the first attempt, never retried"
