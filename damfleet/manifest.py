"""Batch manifests: CSV or XLSX, one row per asset. Plain parsing, no Temporal.

A manifest has a header row. ``source_uri`` is required; the other known columns are
optional and everything else lands in the asset's ``metadata.extra``::

    source_uri,expected_sha256,title,collection,tenant,profile,photographer
    s3://inbox/a.jpg,9f86d0...,Harbour at dawn,news,acme,,Jane Doe
    clips/b.mov,,,news,acme,web,

Relative sources are resolved against the manifest's own folder (or S3 prefix), so a
manifest can travel with its files.

A bad row never stops the batch: :func:`iter_manifest` yields a :class:`BadRow` naming
its line and what is wrong (malformed, duplicate, empty source, bad checksum...) and
goes on with the next row. Only a manifest that cannot be used at all -- unreadable,
not CSV/XLSX, no header, no ``source_uri`` column -- raises :class:`BadInputError`.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import quote_from_bytes

from damfleet.errors import BadInputError

__all__ = [
    "KNOWN_COLUMNS",
    "REQUIRED_COLUMN",
    "BadRow",
    "Row",
    "iter_manifest",
    "manifest_format",
    "resolve_source",
]

REQUIRED_COLUMN = "source_uri"
#: Accepted spellings of the known columns (lower-cased, spaces and dashes as underscores).
_ALIASES: dict[str, str] = {
    "source_uri": "source_uri",
    "source": "source_uri",
    "uri": "source_uri",
    "path": "source_uri",
    "expected_sha256": "expected_sha256",
    "sha256": "expected_sha256",
    "checksum": "expected_sha256",
    "title": "title",
    "collection": "collection",
    "tenant": "tenant",
    "profile": "profile",
}
KNOWN_COLUMNS: tuple[str, ...] = ("source_uri", "expected_sha256", "title", "collection", "tenant", "profile")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CSV_SNIFF_BYTES = 64 * 1024


@dataclass(frozen=True)
class Row:
    """A good manifest row: one asset to process."""

    line: int
    source_uri: str
    expected_sha256: str = ""
    title: str = ""
    collection: str = ""
    tenant: str = ""
    profile: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BadRow:
    """A row that is reported, not processed."""

    line: int
    reason: str


def manifest_format(name: str) -> str:
    """``"csv"`` or ``"xlsx"`` from a file name; anything else is refused."""
    suffix = PurePosixPath(name.split("?", 1)[0]).suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        return "csv"
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx"
    raise BadInputError(f"manifest {name!r} is neither CSV (.csv) nor Excel (.xlsx)")


def resolve_source(value: str, base_uri: str) -> str:
    """A source as a URI: ``file://`` / ``s3://`` kept, absolute paths made file URIs,
    relative paths joined to ``base_uri`` (the manifest's folder). Raises ValueError."""
    text = value.strip()
    if text.startswith(("file://", "s3://")):
        return text
    if "://" in text:
        raise ValueError(f"unsupported URI scheme {text.split('://', 1)[0]!r}: use file:// or s3://")
    if text.startswith("/"):
        return Path(text).as_uri()
    if text.startswith("~"):
        return Path(text).expanduser().as_uri()
    parts = PurePosixPath(text).parts
    if ".." in parts:
        raise ValueError(f"relative source {text!r} may not leave the manifest's folder")
    if base_uri.startswith("file://"):
        # file:// URIs are percent-decoded when opened: encode the name's bytes, so a "%2f.."
        # in a name stays a literal name instead of becoming a path separator and "..".
        parts = tuple(quote_from_bytes(os.fsencode(part), safe="") for part in parts)
    return base_uri.rstrip("/") + "/" + "/".join(parts)


def iter_manifest(path: Path, *, base_uri: str, fmt: str = "csv", max_rows: int = 0) -> Iterator[Row | BadRow]:
    """Yield each data row of a local manifest file as a :class:`Row` or a :class:`BadRow`.

    Streams the file: memory grows only with the set of sources seen (for duplicate
    detection), never with the file. ``max_rows`` > 0 refuses larger manifests.
    """
    records = _iter_xlsx(path) if fmt == "xlsx" else _iter_csv(path)
    try:
        line, header = next(records)
    except StopIteration:
        raise BadInputError(f"manifest {path.name} is empty: expected a header row with {REQUIRED_COLUMN!r}") from None
    if isinstance(header, str):
        raise BadInputError(f"manifest {path.name} line {line}: header is not valid CSV ({header})")
    columns = [_column_name(cell) for cell in header]
    if REQUIRED_COLUMN not in columns:
        shown = ", ".join(c for c in header if c) or "none"
        raise BadInputError(
            f"manifest {path.name} line {line}: missing required column {REQUIRED_COLUMN!r} (columns: {shown})"
        )
    seen: dict[str, int] = {}
    count = 0
    for line, cells in records:
        if isinstance(cells, str):
            count += 1
            yield BadRow(line, cells)
            continue
        if not any(cell.strip() for cell in cells):
            continue  # blank lines are not rows
        count += 1
        if max_rows and count > max_rows:
            raise BadInputError(f"manifest {path.name} has more than {max_rows} rows; split it into several batches")
        yield _row(line, cells, columns, header, base_uri, seen)


def _column_name(cell: str) -> str:
    key = re.sub(r"[\s\-]+", "_", cell.strip().lower())
    return _ALIASES.get(key, cell.strip())


def _row(line: int, cells: list[str], columns: list[str], header: list[str], base_uri: str,
         seen: dict[str, int]) -> Row | BadRow:
    if len(cells) > len(columns) and any(c.strip() for c in cells[len(columns):]):
        return BadRow(line, f"malformed row: {len(cells)} fields but the header has {len(columns)}")
    values = {col: (cells[i].strip() if i < len(cells) else "") for i, col in enumerate(columns)}
    raw_source = values.get(REQUIRED_COLUMN, "")
    if not raw_source:
        return BadRow(line, f"empty {REQUIRED_COLUMN}")
    try:
        source = resolve_source(raw_source, base_uri)
    except ValueError as exc:
        return BadRow(line, f"bad {REQUIRED_COLUMN} {raw_source!r}: {exc}")
    checksum = values.get("expected_sha256", "").lower()
    if checksum and not _SHA256.match(checksum):
        return BadRow(line, f"expected_sha256 is not 64 hex digits: {checksum[:80]!r}")
    if source in seen:
        return BadRow(line, f"duplicate row: {raw_source!r} already listed on line {seen[source]}")
    seen[source] = line
    extra = {
        col: value for col, value in values.items()
        if col not in KNOWN_COLUMNS and col and value
    }
    return Row(
        line=line,
        source_uri=source,
        expected_sha256=checksum,
        title=values.get("title", ""),
        collection=values.get("collection", ""),
        tenant=values.get("tenant", ""),
        profile=values.get("profile", ""),
        extra=extra,
    )


def _iter_csv(path: Path) -> Iterator[tuple[int, list[str] | str]]:
    """(line number, cells) per CSV record, or (line, error) for one that cannot be parsed."""
    try:
        fh = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise BadInputError(f"manifest {path.name} cannot be read: {exc.strerror or exc}") from exc
    with fh:
        try:
            sample = fh.read(_CSV_SNIFF_BYTES)
        except UnicodeDecodeError as exc:
            raise BadInputError(f"manifest {path.name} is not UTF-8 text (byte {exc.start}): not a CSV file?") from exc
        if "\x00" in sample:
            raise BadInputError(f"manifest {path.name} contains NUL bytes: not a CSV file")
        delimiter = "\t" if path.suffix.lower() == ".tsv" or ("\t" in sample and "," not in sample) else ","
        fh.seek(0)
        reader = csv.reader(fh, delimiter=delimiter, strict=True)
        start = 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                # A broken quote swallows the rest of the record; report it, then go on.
                yield start, f"malformed row: {exc}"
                start = reader.line_num + 1
                continue
            except UnicodeDecodeError as exc:
                raise BadInputError(f"manifest {path.name} is not UTF-8 text after line {reader.line_num}") from exc
            yield start, cells
            start = reader.line_num + 1


def _iter_xlsx(path: Path) -> Iterator[tuple[int, list[str] | str]]:
    """(row number, cells as text) per sheet row of the first worksheet."""
    try:
        import openpyxl
    except ImportError as exc:  # pragma: no cover - openpyxl ships with the ingest extra
        raise BadInputError("XLSX manifests need openpyxl (pip install 'damfleet[ingest]')") from exc
    import zipfile

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise BadInputError(f"manifest {path.name} is not a readable XLSX workbook: {exc}") from exc
    try:
        sheet = book.worksheets[0]
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            yield number, ["" if v is None else str(v) for v in values]
    finally:
        book.close()
