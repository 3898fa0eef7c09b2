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
from damfleet.transcode import images
from damfleet.transcode.errors import ImageTooLargeError
from damfleet.transcode.images import read_header, render_image, render_images, target_box
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


# -- every rendition from one decode (render_images) -----------------------------------------

#: Sources where resampling the held decode to a box would round the free side one pixel away
#: from the rendition's own decode (found by scanning sizes), plus rotation, alpha, panorama,
#: an image smaller than every box, and the loaders with shrink-on-load (JPEG, WebP).
ONE_DECODE_SOURCES = [
    ("landscape.jpg", 3409, 2019, {"Q": 90}),
    ("portrait.jpg", 2288, 3611, {"Q": 90}),
    ("rotated.jpg", 2000, 1500, {"Q": 90, "orientation": 6}),
    ("mirrored.jpg", 1681, 1414, {"Q": 90, "orientation": 3}),
    ("alpha.png", 2045, 2483, {"alpha": True}),
    ("panorama.webp", 4662, 622, {"Q": 90}),
    ("small.png", 300, 200, {}),
]


def _spy_decodes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Record every ``pyvips.Image.thumbnail`` call (it still runs): the count of pixel decodes
    is the calls without ``no_rotate`` (the size plans, which read headers only, pass it)."""
    calls: list[dict[str, object]] = []
    real = pyvips.Image.thumbnail

    def spy(filename: str, width: int, **kwargs: object) -> pyvips.Image:
        calls.append(kwargs)
        return real(filename, width, **kwargs)

    monkeypatch.setattr(pyvips.Image, "thumbnail", spy)
    return calls


@pytest.mark.parametrize(("name", "width", "height", "options"), ONE_DECODE_SOURCES, ids=lambda v: str(v))
def test_one_decode_gives_each_rendition_its_own_size_and_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, width: int, height: int, options: dict[str, object]
) -> None:
    """Same sizes, formats and colour as one ``render_image`` per rendition; the largest
    rendition's bytes are unchanged (it is the same decode); one pixel decode in all."""
    pyvips.cache_set_max(0)  # files below are rewritten under the same names
    source = tm.still(tmp_path / name, width, height, **options)
    specs = [THUMB, PREVIEW]
    alone = [render_image(source, tmp_path / f"alone-{s.name}.{s.format}", s, max_pixels=10**9) for s in specs]
    decodes = _spy_decodes(monkeypatch)
    together = render_images(source, [(tmp_path / f"one-{s.name}.{s.format}", s) for s in specs], max_pixels=10**9)
    assert len([c for c in decodes if not c.get("no_rotate")]) == 1
    for spec, one, own in zip(specs, together, alone, strict=True):
        out = pyvips.Image.new_from_file(one.path)
        assert (one.width, one.height) == (own.width, own.height) == (out.width, out.height), spec.name
        assert one.mime_type == own.mime_type and out.get("vips-loader") == f"{spec.format}load"
        assert str(out.interpretation) == "srgb" and str(out.format) == "uchar"
        assert out.bands == (3 if spec.format == "jpeg" or not options.get("alpha") else 4)
        assert one.seconds >= 0
        # Resampled from the larger decode rather than its own: the same picture, to within
        # resampling (a smooth gradient: a few levels of 255 on average at most).
        assert (out - pyvips.Image.new_from_file(own.path)).abs().avg() < 4, spec.name
    largest = max(range(len(specs)), key=lambda i: alone[i].width * alone[i].height)
    assert Path(together[largest].path).read_bytes() == Path(alone[largest].path).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_one_decode_with_avif_keeps_both_full_size_renditions_byte_identical(tmp_path: Path) -> None:
    """preview and avif share the largest box: both are saved from the one decode itself."""
    source = tm.still(tmp_path / "mid.jpg", 1800, 1200, Q=90)
    specs = [THUMB, PREVIEW, AVIF]
    together = render_images(source, [(tmp_path / f"one-{s.name}.{s.format}", s) for s in specs], max_pixels=10**9)
    for spec, one in zip(specs[1:], together[1:], strict=True):
        alone = render_image(source, tmp_path / f"alone-{spec.name}.{spec.format}", spec, max_pixels=10**9)
        assert Path(one.path).read_bytes() == Path(alone.path).read_bytes(), spec.name
    assert [(r.width, r.height) for r in together] == [(375, 250), (1800, 1200), (1800, 1200)]


def test_one_decode_refuses_bad_input_as_one_render_does_and_leaves_nothing(tmp_path: Path) -> None:
    targets = [(tmp_path / "out" / "t.webp", THUMB), (tmp_path / "out" / "p.jpg", PREVIEW)]
    bomb = tm.png_bomb(tmp_path / "bomb.png")
    with pytest.raises(ImageTooLargeError, match="100000x100000"):
        render_images(bomb, targets, max_pixels=268_402_689)
    # A cut JPEG keeps its header: the size plans pass (they decode nothing) and the one
    # decode fails, as a single render's would.
    whole = tm.still(tmp_path / "whole.jpg", 2400, 1600, Q=90)
    cut = tm.truncated_copy(whole, tmp_path / "cut.jpg", 0.5)
    assert images._planned_sizes(cut, read_header(cut, max_pixels=10**9), [(250, 10**7), (1440, 10**7)])
    for bad in (cut, tm.truncated_copy(tm.still(tmp_path / "whole.png", 800, 600), tmp_path / "cut.png", 0.5)):
        with pytest.raises(CorruptMediaError) as together:
            render_images(bad, targets, max_pixels=10**9)
        with pytest.raises(CorruptMediaError) as alone:
            render_image(bad, tmp_path / "out" / "t.webp", THUMB, max_pixels=10**9)
        assert str(together.value).split(":")[0] == str(alone.value).split(":")[0]
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff" + bytes(range(256)) * 8)
    with pytest.raises(CorruptMediaError, match="libvips cannot read the image"):
        render_images(garbage, targets, max_pixels=10**9)
    left = sorted(p.name for p in (tmp_path / "out").rglob("*")) if (tmp_path / "out").exists() else []
    assert left == [], "no rendition and no partial file may remain"
