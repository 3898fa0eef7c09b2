"""Bounded property-based fuzzing (Hypothesis) of the parsers that see untrusted bytes first (issue 12).

* magic-byte sniffing (:mod:`damfleet.media.detect`): any head classifies without raising,
  consistently, and a known signature keeps its kind whatever follows it;
* manifests (:mod:`damfleet.manifest`): any text yields rows or bad rows, or a clear
  ``BadInputError``, never another exception; a relative source never leaves the manifest's folder;
* the URI round trip (:mod:`damfleet.sources`): any file name's bytes survive
  path → URI → path, and the display form is one printable line.

Runs are derandomized and bounded (``DAMFLEET_FUZZ_EXAMPLES``, default 200 per property) so the
default suite stays fast and reproducible; set ``DAMFLEET_FUZZ_RANDOM=1`` and a larger count to
explore new inputs locally.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from damfleet.errors import BadInputError
from damfleet.manifest import BadRow, Row, iter_manifest, resolve_source
from damfleet.media.detect import SNIFF_BYTES, sniff
from damfleet.sources import display_text, file_uri, local_path_bytes

FUZZ = settings(
    max_examples=int(os.environ.get("DAMFLEET_FUZZ_EXAMPLES", "200")),
    derandomize=os.environ.get("DAMFLEET_FUZZ_RANDOM", "") != "1",
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

SIGNATURES = {
    b"\xff\xd8\xff": "image", b"\x89PNG\r\n\x1a\n": "image", b"GIF89a": "image", b"II*\x00": "image",
    b"\x1a\x45\xdf\xa3": "av", b"OggS": "av", b"fLaC": "av", b"FLV": "av",
}


# ---- magic-byte sniffing ----------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=SNIFF_BYTES + 64))
def test_sniff_classifies_any_head(head: bytes) -> None:
    found = sniff(head)
    assert found.kind in ("", "image", "av")
    assert found.mime_type and found.description
    if found.kind == "image":
        assert found.mime_type.startswith("image/")
    assert sniff(head) == found, "deterministic"
    assert sniff(head[:SNIFF_BYTES]) == found, "only the first SNIFF_BYTES count"


@FUZZ
@given(st.sampled_from(sorted(SIGNATURES)), st.binary(max_size=512))
def test_a_signature_keeps_its_kind_whatever_follows(signature: bytes, tail: bytes) -> None:
    assert sniff(signature + tail).kind == SIGNATURES[signature]


@FUZZ
@given(st.binary(min_size=12, max_size=600))
def test_ftyp_boxes_with_any_size_field_are_handled(body: bytes) -> None:
    head = body[:4] + b"ftyp" + body[4:]
    assert sniff(head).kind in ("image", "av")


# ---- manifests --------------------------------------------------------------------------------

_CELL = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)


@FUZZ
@given(st.lists(st.lists(_CELL, max_size=6), max_size=12), st.sampled_from([",", "\t"]))
def test_any_csv_gives_rows_bad_rows_or_a_clear_error(tmp_path_factory, rows: list[list[str]], sep: str) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    path = folder / ("m.tsv" if sep == "\t" else "m.csv")
    text = "\n".join(sep.join(cells) for cells in [["source_uri", "title"], *rows])
    path.write_text(text, encoding="utf-8")
    try:
        items = list(iter_manifest(path, base_uri=folder.as_uri(), max_rows=1000))
    except BadInputError as exc:
        assert str(exc)
        return
    for item in items:
        assert isinstance(item, (Row, BadRow))
        if isinstance(item, Row):
            assert item.source_uri.startswith(("file://", "s3://"))


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_as_a_manifest_never_crash(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "m.csv"
    path.write_bytes(b"source_uri,title\n" + data)
    try:
        for item in iter_manifest(path, base_uri="file:///base", max_rows=1000):
            assert isinstance(item, (Row, BadRow))
    except BadInputError as exc:
        assert str(exc)


_SEGMENT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"),
                   min_size=1, max_size=12)


@FUZZ
@given(st.lists(st.one_of(_SEGMENT, st.sampled_from(["..", ".", "%2f..", "..%2f..", "%2e%2e", "~"])),
                min_size=1, max_size=5))
def test_a_relative_source_never_leaves_the_manifests_folder(segments: list[str]) -> None:
    text = "/".join(segments).strip()
    if not text or text.startswith(("/", "~")) or "://" in text:
        return
    base = "file:///data/manifests"
    try:
        uri = resolve_source(text, base)
    except ValueError:
        return
    path = posixpath.normpath(os.fsdecode(local_path_bytes(uri)))
    assert path.startswith("/data/manifests/") or path == "/data/manifests", (text, uri)


# ---- the URI round trip -----------------------------------------------------------------------

_NAME = st.binary(min_size=1, max_size=80).filter(lambda b: b"/" not in b and b"\x00" not in b
                                                 and b not in (b".", b".."))


@FUZZ
@given(st.lists(_NAME, min_size=1, max_size=4))
def test_any_name_round_trips_through_a_uri(parts: list[bytes]) -> None:
    path = b"/" + b"/".join(parts)
    uri = file_uri(path)
    assert uri.isascii() and not any(c.isspace() for c in uri)
    assert local_path_bytes(uri) == path
    assert file_uri(os.fsdecode(path)) == uri
    assert Path(os.fsdecode(path)).as_uri() == uri, "pathlib builds the same URI"


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_display_text_is_one_printable_line(value: bytes | str) -> None:
    shown = display_text(value, limit=120)
    assert shown.isprintable() and len(shown) <= 120
    assert not shown.endswith(" ")
