"""Still renditions through the plain stage: every image rendition of an asset from one decode,
in one helper request, still uploaded, timed, reported and resumed one rendition at a time."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import pytest
import pyvips

sys.path.insert(0, str(Path(__file__).parent))  # tests run with --import-mode=importlib
import transcode_media as tm

from damfleet.settings import Settings
from damfleet.transcode import engine
from damfleet.v1 import stages_pb2


@pytest.fixture
def helper_requests(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every request the stage's renditions send to the warm helper (they still run)."""
    sent: list[dict[str, Any]] = []
    real = engine.run_helper

    async def recording(request: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        sent.append(request)
        return await real(request, **kwargs)

    monkeypatch.setattr(engine, "run_helper", recording)
    return sent


async def test_image_renditions_come_from_one_helper_request(
    settings: Settings, tmp_path: Path, helper_requests: list[dict[str, Any]]
) -> None:
    source = tm.still(tmp_path / "photo.jpg", 2400, 1600, Q=90, orientation=6)
    seen: list[stages_pb2.TranscodeHeartbeat] = []
    result = await tm.run_stage(settings, source, "image", ["thumbnail", "preview", "avif"], progress=seen.append)
    assert [r["op"] for r in helper_requests] == ["images"]
    assert [t["spec"]["name"] for t in helper_requests[0]["targets"]] == ["thumbnail", "preview", "avif"]
    assert list(result.renditions) == ["thumbnail", "preview", "avif"]
    assert [o.role for o in result.outputs] == ["thumbnail", "preview", "avif"]
    for output in result.outputs:  # each uploaded on its own, with its own checksum
        stored = tm.local(output.uri)
        assert output.sha256 == hashlib.sha256(stored.read_bytes()).hexdigest()
        assert output.size_bytes == stored.stat().st_size
    sizes = [pyvips.Image.new_from_file(str(tm.local(o.uri))) for o in result.outputs]
    assert [(i.width, i.height) for i in sizes] == [(250, 375), (1440, 2160), (1440, 2160)]  # portrait, upright
    assert set(result.timings_seconds) == {"thumbnail", "preview", "avif"}
    assert all(seconds >= 0 for seconds in result.timings_seconds.values())
    # One heartbeat per rendition finished, in order, as when each was its own request.
    done_lists = [[d.name for d in beat.done] for beat in seen]
    assert ["thumbnail"] in done_lists and ["thumbnail", "preview"] in done_lists
    assert done_lists[-1] == ["thumbnail", "preview", "avif"] and seen[-1].percent == 100.0
    assert [p for p in (settings.scratch_path / "t-asset-test" / "out").rglob("*")] == []


async def test_resume_decodes_only_for_the_renditions_still_to_make(
    settings: Settings, tmp_path: Path, helper_requests: list[dict[str, Any]]
) -> None:
    source = tm.still(tmp_path / "photo.png", 1800, 1200, alpha=True)
    seen: list[stages_pb2.TranscodeHeartbeat] = []
    first = await tm.run_stage(settings, source, "image", ["thumbnail", "preview"], progress=seen.append)
    after_thumbnail = next(b for b in seen if [d.name for d in b.done] == ["thumbnail"])
    helper_requests.clear()
    resumed = await tm.run_stage(settings, source, "image", ["thumbnail", "preview"], resume=after_thumbnail)
    assert [[t["spec"]["name"] for t in r["targets"]] for r in helper_requests] == [["preview"]]
    assert list(resumed.resumed_renditions) == ["thumbnail"] and set(resumed.timings_seconds) == {"preview"}
    assert [o.uri for o in resumed.outputs] == [o.uri for o in first.outputs]  # same keys, overwritten
    # The preview is the largest rendition either way: the same decode, the same bytes.
    assert resumed.outputs[1].sha256 == first.outputs[1].sha256
    preview = pyvips.Image.new_from_file(str(tm.local(resumed.outputs[1].uri)))
    assert preview.bands == 3  # alpha flattened for JPEG


async def test_a_failed_shared_request_leaves_no_rendition(settings: Settings, tmp_path: Path) -> None:
    from damfleet.errors import CorruptMediaError

    whole = tm.still(tmp_path / "whole.jpg", 2400, 1600, Q=90)
    cut = tm.truncated_copy(whole, tmp_path / "cut.jpg", 0.5)
    with pytest.raises(CorruptMediaError, match="could not decode"):
        await tm.run_stage(settings, cut, "image", ["thumbnail", "preview"])
    assert tm.stored_files(settings) == []
    assert [p for p in (settings.scratch_path / "t-asset-test").rglob("*") if p.is_file()] == [
        settings.scratch_path / "t-asset-test" / "original"
    ]
