"""Still renditions with libvips on generated images of every input format, orientation, depth."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import pyvips

sys.path.insert(0, str(Path(__file__).parent))  # tests run with --import-mode=importlib
import transcode_media as tm

from damfleet.errors import CorruptMediaError
from damfleet.profiles import PROFILES
from damfleet.transcode.errors import ImageTooLargeError
from damfleet.transcode.images import read_header, render_image, target_box
from damfleet.transcode.renditions import RENDITIONS, ImageSpec, rendition_spec

THUMB = rendition_spec("image", "thumbnail")
PREVIEW = rendition_spec("image", "preview")
AVIF = rendition_spec("image", "avif")


def test_table_matches_the_published_anchors_and_covers_every_profile() -> None:
    assert isinstance(THUMB, ImageSpec) and (THUMB.format, THUMB.size, THUMB.quality) == ("webp", 250, 80)
    assert isinstance(PREVIEW, ImageSpec) and (PREVIEW.format, PREVIEW.size, PREVIEW.quality) == ("jpeg", 1440, 80)
    proxy = rendition_spec("video", "proxy")
    assert (proxy.height, proxy.crf) == (720, 23)  # type: ignore[attr-defined]
    for profile in PROFILES.values():
        for kind, names in profile.renditions.items():
            for name in names:
                assert name in RENDITIONS[kind], f"profile {profile.name} names unknown {kind} rendition {name}"
    with pytest.raises(KeyError, match="known: avif, preview, thumbnail"):
        rendition_spec("image", "proxy")


def test_target_box_constrains_the_short_side() -> None:
    assert target_box(4000, 3000, THUMB)[1] == 250
    assert target_box(3000, 4000, THUMB)[0] == 250


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("in.jpg", {"Q": 90}),
        ("in.png", {"alpha": True}),
        ("in.tif", {"sixteen_bit": True}),
        ("in.webp", {"Q": 90}),
        ("in.heic", {"compression": "hevc"}),
        ("in.avif", {"compression": "av1"}),
        ("in.gif", {}),
    ],
)
def test_thumbnail_from_every_input_format(tmp_path: Path, name: str, options: dict[str, object]) -> None:
    source = tm.still(tmp_path / name, 1000, 600, **options)
    result = render_image(source, tmp_path / "thumb.webp", THUMB, max_pixels=10**9)
    out = pyvips.Image.new_from_file(result.path)
    assert out.get("vips-loader") == "webpload"
    assert (out.width, out.height) == (417, 250)
    assert str(out.interpretation) == "srgb" and str(out.format) == "uchar"
    assert result.mime_type == "image/webp"
    assert not (tmp_path / ".thumb.webp.partial.webp").exists()


def test_heic_loader_reports_heif(tmp_path: Path) -> None:
    source = tm.still(tmp_path / "phone.heic", 800, 600, compression="hevc")
    assert read_header(source, max_pixels=10**9).loader == "heifload"


def test_exif_orientation_applied_and_metadata_stripped(tmp_path: Path) -> None:
    # Coded landscape 1200x600, orientation 6: displayed as portrait 600x1200.
    source = tm.still(tmp_path / "rotated.jpg", 1200, 600, orientation=6, Q=90)
    assert "exif-data" in pyvips.Image.new_from_file(str(source)).get_fields()
    thumb = render_image(source, tmp_path / "t.webp", THUMB, max_pixels=10**9)
    assert (thumb.width, thumb.height) == (250, 500)
    preview = render_image(source, tmp_path / "p.jpg", PREVIEW, max_pixels=10**9)
    assert (preview.width, preview.height) == (600, 1200)  # never upscaled
    out = pyvips.Image.new_from_file(preview.path)
    assert "exif-data" not in out.get_fields()
    assert "orientation" not in out.get_fields() or out.get("orientation") == 1


def test_preview_and_avif_of_a_large_jpeg(tmp_path: Path) -> None:
    source = tm.still(tmp_path / "big.jpg", 3000, 2000, Q=85)
    preview = render_image(source, tmp_path / "p.jpg", PREVIEW, max_pixels=10**9)
    assert (preview.width, preview.height) == (2160, 1440)
    assert pyvips.Image.new_from_file(preview.path).get("vips-loader") == "jpegload"


def test_avif_rendition(tmp_path: Path) -> None:
    source = tm.still(tmp_path / "mid.png", 900, 600)
    avif = render_image(source, tmp_path / "p.avif", AVIF, max_pixels=10**9)
    loaded = pyvips.Image.new_from_file(avif.path)
    assert loaded.get("vips-loader") == "heifload" and loaded.get("heif-compression") == "av1"
    assert (loaded.width, loaded.height) == (900, 600)  # below 1440: never upscaled
    assert avif.mime_type == "image/avif"


def test_cmyk_input_comes_out_srgb(tmp_path: Path) -> None:
    rgb = tm.still(tmp_path / "rgb.tif", 600, 400)
    cmyk = pyvips.Image.new_from_file(str(rgb)).colourspace("cmyk")
    cmyk.tiffsave(str(tmp_path / "cmyk.tif"))
    result = render_image(tmp_path / "cmyk.tif", tmp_path / "c.jpg", PREVIEW, max_pixels=10**9)
    out = pyvips.Image.new_from_file(result.path)
    assert out.bands == 3 and str(out.interpretation) == "srgb"


def test_pixel_limit_refuses_a_decompression_bomb_from_the_header(tmp_path: Path) -> None:
    bomb = tm.png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 200_000
    with pytest.raises(ImageTooLargeError, match="100000x100000"):
        render_image(bomb, tmp_path / "t.webp", THUMB, max_pixels=268_402_689)
    assert not any(tmp_path.glob("*.webp"))


def test_truncated_image_fails_as_corrupt(tmp_path: Path) -> None:
    source = tm.still(tmp_path / "whole.png", 800, 600)
    cut = tm.truncated_copy(source, tmp_path / "cut.png", 0.5)
    with pytest.raises(CorruptMediaError):
        render_image(cut, tmp_path / "t.webp", THUMB, max_pixels=10**9)
    assert not (tmp_path / "t.webp").exists()


def test_untrusted_loaders_are_blocked_in_the_helper_process(tmp_path: Path) -> None:
    import subprocess
    import sys

    # ImageMagick's loader (magickload) is an untrusted operation: blocked in every damfleet process.
    code = (
        "from damfleet.media.probe import configure_vips; v = configure_vips();"
        "import sys\n"
        "try:\n    v.Image.magickload(sys.argv[1])\nexcept v.Error as e:\n    print('blocked', e)\n"
    )
    source = tm.still(tmp_path / "x.png", 10, 10)
    out = subprocess.run(
        [sys.executable, "-c", code, str(source)], capture_output=True, text=True, timeout=60, check=False
    )
    assert "operation is blocked" in out.stdout, out.stdout + out.stderr
