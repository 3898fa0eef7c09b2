"""Manifest parsing (damfleet.manifest) and paging into storage (damfleet.catalog): plain
functions on real files, no Temporal."""

from __future__ import annotations

import hashlib
from pathlib import Path

import openpyxl
import pytest

from damfleet import catalog
from damfleet.errors import BadInputError, SourceNotFoundError
from damfleet.manifest import BadRow, Row, iter_manifest, manifest_format, resolve_source
from damfleet.storage import Storage
from damfleet.v1 import common_pb2, jobs_pb2
from tests.conftest import make_settings

SHA = hashlib.sha256(b"x").hexdigest()


def _parse(path: Path, fmt: str = "csv") -> list[Row | BadRow]:
    return list(iter_manifest(path, base_uri="file:///data/manifests", fmt=fmt))


def test_good_and_bad_rows_each_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(
        "Source URI,Checksum,Title,Collection,photographer\n"   # 1 aliases and an extra column
        f"a.jpg,{SHA.upper()},A,news,Jane\n"                     # 2 good, checksum lower-cased
        "b.jpg,abc,B,,\n"                                        # 3 bad checksum
        '"c.jpg"x,,C,,\n'                                         # 4 malformed quoting
        "d.jpg,,D,,,,surplus\n"                                  # 5 more fields than the header
        "a.jpg,,again,,\n"                                       # 6 duplicate of line 2
        "\n"                                                     # 7 blank: not a row
        "/abs/e.jpg,,E,,\n"                                      # 8 absolute path
        "s3://bucket/f.jpg,,F,,\n"                               # 9 S3 URI
        "http://example.com/g.jpg,,G,,\n"                        # 10 unsupported scheme
        ",,H,,\n"                                                # 11 empty source
        "../escape.jpg,,I,,\n"                                   # 12 leaves the manifest folder
    )
    items = _parse(path)
    good = [i for i in items if isinstance(i, Row)]
    bad = {i.line: i.reason for i in items if isinstance(i, BadRow)}

    assert [(r.line, r.source_uri) for r in good] == [
        (2, "file:///data/manifests/a.jpg"), (8, "file:///abs/e.jpg"), (9, "s3://bucket/f.jpg"),
    ]
    assert good[0].expected_sha256 == SHA
    assert (good[0].title, good[0].collection, good[0].extra) == ("A", "news", {"photographer": "Jane"})
    assert sorted(bad) == [3, 4, 5, 6, 10, 11, 12]
    assert bad[3].startswith("expected_sha256 is not 64 hex digits")
    assert bad[4].startswith("malformed row")
    assert bad[5] == "malformed row: 7 fields but the header has 5"
    assert bad[6] == "duplicate row: 'a.jpg' already listed on line 2"
    assert "unsupported URI scheme 'http'" in bad[10]
    assert bad[11] == "empty source_uri"
    assert "may not leave the manifest's folder" in bad[12]


def test_multiline_quoted_field_keeps_line_numbers_right(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text('source_uri,title\na.jpg,"two\nlines"\nb.jpg,B\n,empty\n')
    items = _parse(path)
    assert [(i.line, type(i).__name__) for i in items] == [(2, "Row"), (4, "Row"), (5, "BadRow")]
    assert items[0].title == "two\nlines"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"path_to_file,title\na.jpg,A\n", "missing required column 'source_uri' (columns: path_to_file, title)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not UTF-8 text"),
        (b"source_uri\x00,title\n", "NUL bytes"),
    ],
    ids=["empty", "missing-column", "binary", "nul"],
)
def test_unusable_manifests_raise_bad_input(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(content)
    with pytest.raises(BadInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _parse(path)


def test_unreadable_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="cannot be read"):
        _parse(tmp_path / "missing.csv")


def test_xlsx_manifest(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["source_uri", "title", "tenant", "shot_on"])
    sheet.append(["clips/a.mov", "A", "acme", 2024])
    sheet.append([None, "no source", None, None])
    sheet.append(["clips/a.mov", "dup", None, None])
    path = tmp_path / "m.xlsx"
    book.save(path)
    items = _parse(path, fmt="xlsx")
    assert items[0] == Row(line=2, source_uri="file:///data/manifests/clips/a.mov", title="A", tenant="acme",
                           extra={"shot_on": "2024"})
    assert items[1:] == [BadRow(3, "empty source_uri"),
                         BadRow(4, "duplicate row: 'clips/a.mov' already listed on line 2")]


def test_not_an_xlsx_workbook(tmp_path: Path) -> None:
    path = tmp_path / "m.xlsx"
    path.write_text("source_uri\na.jpg\n")
    with pytest.raises(BadInputError, match="not a readable XLSX workbook"):
        _parse(path, fmt="xlsx")


def test_format_and_source_resolution() -> None:
    assert manifest_format("s3://b/inbox/2024.CSV") == "csv"
    assert manifest_format("/x/y.xlsx") == "xlsx"
    with pytest.raises(BadInputError, match="neither CSV"):
        manifest_format("/x/y.json")
    assert resolve_source("sub/a.jpg", "s3://bucket/inbox") == "s3://bucket/inbox/sub/a.jpg"
    assert resolve_source("/a b.jpg", "s3://bucket") == "file:///a%20b.jpg"


def test_row_limit(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("source_uri\n" + "".join(f"{i}.jpg\n" for i in range(5)))
    with pytest.raises(BadInputError, match="more than 3 rows"):
        list(iter_manifest(path, base_uri="file:///m", max_rows=3))


async def test_prepare_manifest_pages_rows_and_reports_bad_ones(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, DAMFLEET_JOBS_BAD_ROWS_KEPT="2")
    storage = Storage.from_settings(settings)
    manifest = tmp_path / "in" / "m.csv"
    manifest.parent.mkdir()
    manifest.write_text("source_uri,collection\n" + "".join(f"{i}.jpg,{'own' if i == 0 else ''}\n" for i in range(7))
                        + ",x\n" * 3)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    request = jobs_pb2.PrepareBatchInput(batch_id="batch-1", manifest_uri=manifest.as_uri(), page_size=3,
                                         defaults=common_pb2.AssetMetadata(collection="news", tenant="acme"))
    prepared = await catalog.prepare_manifest(request, storage=storage, settings=settings, scratch=scratch)

    assert (prepared.total_rows, prepared.page_count, prepared.page_size) == (7, 3, 3)
    assert prepared.bad_row_count == 3 and [b.line for b in prepared.bad_rows] == [9, 10]  # two kept
    pages = [await catalog.read_page(jobs_pb2.ManifestPageInput(pages_prefix=prepared.pages_prefix, page=n),
                                     storage=storage) for n in range(3)]
    rows = [row for page in pages for row in page.rows]
    assert [len(p.rows) for p in pages] == [3, 3, 1]
    assert [r.line for r in rows] == list(range(2, 9))
    assert rows[1].source_uri == (manifest.parent / "1.jpg").as_uri()
    assert (rows[0].metadata.collection, rows[1].metadata.collection, rows[1].metadata.tenant) == ("own", "news", "acme")

    with pytest.raises(SourceNotFoundError, match="manifest .* not found"):
        await catalog.prepare_manifest(
            jobs_pb2.PrepareBatchInput(batch_id="b2", manifest_uri=(tmp_path / "none.csv").as_uri()),
            storage=storage, settings=settings, scratch=scratch,
        )


async def test_list_new_sources_uses_a_ledger(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    storage = Storage.from_settings(settings)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (inbox / name).write_bytes(b"data")
    (inbox / "empty.jpg").write_bytes(b"")
    ledger = catalog.ledger_uri_for(storage, inbox.as_uri() + "/")
    request = jobs_pb2.PrepareBatchInput(batch_id="scan-1", source_prefix=inbox.as_uri(), ledger_uri=ledger)

    first = await catalog.list_new_sources(request, storage=storage, settings=settings)
    assert (first.total_rows, first.bad_row_count) == (2, 1)
    assert "empty object" in first.bad_rows[0].reason
    again = await catalog.list_new_sources(request, storage=storage, settings=settings)
    assert (again.total_rows, again.bad_row_count) == (0, 0)

    (inbox / "c.jpg").write_bytes(b"new")
    (inbox / "a.jpg").write_bytes(b"replaced with other content")
    third = await catalog.list_new_sources(request, storage=storage, settings=settings)
    page = await catalog.read_page(jobs_pb2.ManifestPageInput(pages_prefix=third.pages_prefix, page=0),
                                   storage=storage)
    assert sorted(r.source_uri.rsplit("/", 1)[-1] for r in page.rows) == ["a.jpg", "c.jpg"]

    settling = jobs_pb2.PrepareBatchInput(batch_id="scan-2", source_prefix=inbox.as_uri(), settle_seconds=3600)
    assert (await catalog.list_new_sources(settling, storage=storage, settings=settings)).total_rows == 0


async def test_claim_content_links_same_content_in_the_same_collection_only(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    storage = Storage.from_settings(settings)

    async def asset(asset_id: str, collection: str) -> common_pb2.AssetRecord:
        original = await storage.write_bytes(storage.keys(asset_id).original("a.jpg"), b"same bytes")
        return common_pb2.AssetRecord(asset_id=asset_id, sha256=SHA, original_uri=original.uri,
                                      metadata=common_pb2.AssetMetadata(collection=collection))

    first = await asset("asset-first", "news")
    claim = jobs_pb2.ClaimContentInput(asset=first, workflow_id="wf-1")
    assert not (await catalog.claim_content(claim, storage=storage)).duplicate
    assert not (await catalog.claim_content(claim, storage=storage)).duplicate, "a retry is not a duplicate"

    second = await catalog.claim_content(
        jobs_pb2.ClaimContentInput(asset=await asset("asset-second", "news"), workflow_id="wf-2"), storage=storage)
    assert second.duplicate and second.existing.asset_id == "asset-first" and second.existing_workflow_id == "wf-1"

    other = await catalog.claim_content(
        jobs_pb2.ClaimContentInput(asset=await asset("asset-third", "sport"), workflow_id="wf-3"), storage=storage)
    assert not other.duplicate, "another collection is not a duplicate"

    # The first asset is discarded (cancelled): its content can be claimed again.
    await storage.delete_prefix(storage.keys("asset-first").prefix)
    fourth = await catalog.claim_content(
        jobs_pb2.ClaimContentInput(asset=await asset("asset-fourth", "news"), workflow_id="wf-4"), storage=storage)
    assert not fourth.duplicate


async def test_prepare_xlsx_manifest(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    storage = Storage.from_settings(settings)
    book = openpyxl.Workbook()
    book.active.append(["Source", "Title"])
    book.active.append(["clips/a.mov", "A"])
    book.active.append(["clips/a.mov", "again"])
    path = tmp_path / "june.xlsx"
    book.save(path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    prepared = await catalog.prepare_manifest(
        jobs_pb2.PrepareBatchInput(batch_id="xlsx-1", manifest_uri=path.as_uri()),
        storage=storage, settings=settings, scratch=scratch,
    )
    assert (prepared.total_rows, prepared.bad_row_count, prepared.page_count) == (1, 1, 1)
    assert prepared.bad_rows[0].line == 3
    page = await catalog.read_page(jobs_pb2.ManifestPageInput(pages_prefix=prepared.pages_prefix, page=0),
                                   storage=storage)
    assert page.rows[0].source_uri == (tmp_path / "clips" / "a.mov").as_uri() and page.rows[0].metadata.title == "A"
