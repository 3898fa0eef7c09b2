"""The bad-input corpus: each file ends in a non-retryable BadInputError naming the problem, no
partial rendition stored, nothing left in scratch, no file outside the input read."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests run with --import-mode=importlib
import transcode_media as tm

from activities.common import to_application_error
from damfleet.errors import BadInputError, CorruptMediaError, UnsafeMediaError, UnsupportedMediaError
from damfleet.settings import Settings
from damfleet.transcode.errors import MissingStreamError, TruncatedMediaError
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def good_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("good")
    return tm.video(folder / "good.mp4", 10.0, size="320x240", extra=("-movflags", "+faststart"))


async def _expect_refusal(
    settings: Settings, path: Path, kind: str, renditions: list[str], error: type[BadInputError] | tuple, match: str
) -> BadInputError:
    with pytest.raises(error, match=match) as caught:
        await tm.run_stage(settings, path, kind, renditions)
    exc = caught.value
    assert isinstance(exc, BadInputError) and not exc.retryable
    assert to_application_error(exc).non_retryable
    assert tm.stored_files(settings) == [], "no partial rendition may be left in storage"
    return exc


async def test_truncated_mp4_without_index(settings: Settings, tmp_path: Path) -> None:
    plain = tm.video(tmp_path / "moov-at-end.mp4", 6.0, size="320x240")  # moov written last
    cut = tm.truncated_copy(plain, tmp_path / "cut.mp4", 0.6)
    await _expect_refusal(settings, cut, "video", ["proxy", "poster"], CorruptMediaError, "moov atom not found")


async def test_truncated_mp4_with_index_first(settings: Settings, tmp_path: Path, good_mp4: Path) -> None:
    # The index (moov) survives and promises 10 s; only the first ~half of the media data is there.
    cut = tm.truncated_copy(good_mp4, tmp_path / "cut-faststart.mp4", 0.45)
    await _expect_refusal(settings, cut, "video", ["poster", "proxy"], CorruptMediaError, "truncated or damaged")


def test_output_short_of_the_declared_duration_is_refused_as_truncated() -> None:
    """Second line of defence after the probe: ffmpeg exits 0 when it simply runs out of packets."""
    from damfleet.transcode.engine import check_coverage
    from damfleet.transcode.runner import FfmpegResult

    check_coverage(FfmpegResult("proxy", 9.6, 240, 1, 1.0), 10.0, "proxy")  # within tolerance
    with pytest.raises(TruncatedMediaError, match="stopped at 4.0s of the 10.0s the container declares"):
        check_coverage(FfmpegResult("proxy", 4.0, 100, 1, 1.0), 10.0, "proxy")
    with pytest.raises(MissingStreamError, match="nothing decoded"):
        check_coverage(FfmpegResult("audio_proxy", 0.0, 0, 0, 1.0), 10.0, "audio_proxy")


async def test_container_lying_about_its_codec(settings: Settings, tmp_path: Path, good_mp4: Path) -> None:
    liar = tm.garbage_payload_mp4(good_mp4, tmp_path / "liar.mp4")
    await _expect_refusal(settings, liar, "video", ["proxy"], CorruptMediaError, "does not decode")


async def test_hundred_thousand_square_image(settings: Settings, tmp_path: Path) -> None:
    bomb = tm.png_bomb(tmp_path / "bomb.png")
    exc = await _expect_refusal(settings, bomb, "image", ["thumbnail", "preview"], UnsafeMediaError, "100000x100000")
    assert isinstance(exc, UnsafeMediaError)


async def test_transcode_pixel_limit_is_its_own_setting(tmp_path: Path) -> None:
    """DAMFLEET_TRANSCODE_MAX_IMAGE_PIXELS applies to transcode whatever ingest allowed."""
    strict = make_settings(tmp_path, DAMFLEET_TRANSCODE_MAX_IMAGE_PIXELS="50000")
    picture = tm.still(tmp_path / "big-enough.png", 400, 300)
    await _expect_refusal(strict, picture, "image", ["thumbnail"], UnsafeMediaError, "400x300")


async def test_hls_playlist_dressed_as_avi(settings: Settings, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENTS\n" * 10)
    crafted = tm.hls_in_avi(tmp_path / "movie.avi", secret)
    await _expect_refusal(
        settings, crafted, "video", ["proxy", "poster"], CorruptMediaError, "no audio or video streams"
    )
    bare = tmp_path / "playlist.avi"
    bare.write_text(f"#EXTM3U\n#EXTINF:10.0,\nfile://{secret}\n#EXT-X-ENDLIST\n")
    await _expect_refusal(settings, bare, "video", ["proxy"], UnsupportedMediaError, "playlist")


async def test_video_asset_without_a_video_stream(settings: Settings, tmp_path: Path) -> None:
    sound = tm.audio(tmp_path / "only-sound.m4a", 2.0)
    await _expect_refusal(settings, sound, "video", ["proxy"], MissingStreamError, "needs a video stream")
    await _expect_refusal(settings, sound, "video", ["storyboard"], MissingStreamError, "needs a video stream")


async def test_audio_file_without_audio_frames(settings: Settings, tmp_path: Path) -> None:
    empty = tm.silent_wav(tmp_path / "empty.wav")
    await _expect_refusal(
        settings, empty, "audio", ["audio_proxy", "waveform"], MissingStreamError, "needs media frames"
    )


async def test_image_asset_whose_original_is_not_an_image(settings: Settings, tmp_path: Path, good_mp4: Path) -> None:
    await _expect_refusal(settings, good_mp4, "image", ["thumbnail"], UnsupportedMediaError, "ingested as image")


async def test_stored_original_changed_since_ingest(settings: Settings, tmp_path: Path, good_mp4: Path) -> None:
    from damfleet.errors import ChecksumMismatchError
    from damfleet.storage import Storage
    from damfleet.transcode import stage
    from damfleet.v1 import common_pb2, stages_pb2

    asset = common_pb2.AssetRecord(
        asset_id="asset-test",
        original_uri=good_mp4.as_uri(),
        sha256="0" * 64,
        size_bytes=good_mp4.stat().st_size,
        media=common_pb2.MediaInfo(kind=common_pb2.MEDIA_KIND_VIDEO),
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(ChecksumMismatchError, match="replaced or damaged in storage"):
        await stage.transcode_asset(
            stages_pb2.TranscodeInput(asset=asset, renditions=["poster"]),
            storage=Storage.from_settings(settings),
            settings=settings,
            scratch=scratch,
        )
    assert tm.stored_files(settings) == []
