"""Still-image renditions with libvips: thumbnail, preview, AVIF.

``pyvips.Image.thumbnail`` opens the file itself, so it can shrink on load (JPEG DCT
scaling, WebP/HEIC scaled decode, TIFF/pyramid pages) and streams the rest: a 24 MP
JPEG becomes a 250 px WebP without ever holding the full-size image in memory. It also
applies the EXIF orientation and converts through the embedded ICC profile to sRGB.

Inputs: JPEG, PNG, TIFF, WebP, HEIC/HEIF, GIF (first frame), AVIF, and the other
loaders libvips trusts. Untrusted loaders (ImageMagick, MATLAB, OpenSlide, ...) are
blocked process-wide by :func:`damfleet.media.probe.configure_vips`; the pixel count is
checked from the header before any decode, against decompression bombs.

Several renditions of one image (thumbnail, preview, AVIF) come from one decode,
:func:`render_images`: the largest one's shrink-on-load decode, held in memory, the
smaller ones resampled from it. A noisy camera JPEG's entropy decode is paid in full at
any shrink-on-load scale, so paying it once is the saving (bench/transcode.py).

These functions run inside the transcode helper subprocess
(:mod:`damfleet.transcode.helper`), which carries the time and memory limits and can be
killed on cancellation, but they are plain functions and work in-process too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from damfleet.errors import CorruptMediaError, UnsupportedMediaError
from damfleet.media.probe import configure_vips
from damfleet.transcode.errors import ImageTooLargeError, ToolCrashedError, looks_like_memory_exhaustion
from damfleet.transcode.renditions import ImageSpec

__all__ = ["IMAGE_MIME", "ImageHeader", "ImageResult", "read_header", "render_image", "render_images", "target_box"]

#: File extension and MIME type per output format.
IMAGE_MIME: dict[str, tuple[str, str]] = {
    "webp": ("webp", "image/webp"),
    "jpeg": ("jpg", "image/jpeg"),
    "avif": ("avif", "image/avif"),
    "png": ("png", "image/png"),
}

_UNBOUNDED = 10_000_000

#: Orientation tags 5..8 swap width and height once applied.
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}


@dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    orientation: int
    loader: str

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height after the EXIF orientation is applied."""
        if self.orientation in _SWAPPING_ORIENTATIONS:
            return self.height, self.width
        return self.width, self.height


@dataclass(frozen=True)
class ImageResult:
    path: str
    width: int
    height: int
    size_bytes: int
    mime_type: str
    #: Time spent on this rendition. In a :func:`render_images` call the largest rendition
    #: carries the header checks and the one decode; each smaller one its own resample and encode.
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def read_header(source: Path, *, max_pixels: int) -> ImageHeader:
    """Read the header only (no pixel decode) and enforce the pixel-count limit."""
    pyvips = configure_vips()
    try:
        image = pyvips.Image.new_from_file(str(source), access="sequential")
    except pyvips.Error as exc:
        raise CorruptMediaError(f"libvips cannot read the image: {_first_line(exc)}") from exc
    fields = image.get_fields()
    loader = str(image.get("vips-loader")) if "vips-loader" in fields else ""
    orientation = int(image.get("orientation")) if "orientation" in fields else 1
    if image.width <= 0 or image.height <= 0:
        raise CorruptMediaError(f"image reports no size ({image.width}x{image.height})")
    pixels = image.width * image.height
    if max_pixels and pixels > max_pixels:
        raise ImageTooLargeError(
            f"image of {image.width}x{image.height} pixels ({pixels:,}) exceeds the limit of "
            f"{max_pixels:,} pixels (decompression-bomb guard)"
        )
    return ImageHeader(image.width, image.height, orientation, loader)


def target_box(display_width: int, display_height: int, spec: ImageSpec) -> tuple[int, int]:
    """The (width, height) box to pass to ``thumbnail`` so ``spec.edge`` becomes ``spec.size``.

    ``short`` follows Immich (fit=outside): the shorter side becomes ``size``; ``long`` fits
    the image inside a ``size`` square. Never upscales (callers pass ``size="down"``).
    """
    if spec.edge == "long":
        return spec.size, spec.size
    # Constrain only the short side: thumbnail fits inside the box, so the other side's
    # limit is set beyond any image libvips can hold.
    if display_width <= display_height:
        return spec.size, _UNBOUNDED
    return _UNBOUNDED, spec.size


def render_image(source: Path, dest: Path, spec: ImageSpec, *, max_pixels: int) -> ImageResult:
    """Make one still rendition of ``source`` at ``dest`` (orientation applied, sRGB, stripped)."""
    return render_images(source, [(dest, spec)], max_pixels=max_pixels)[0]


def render_images(source: Path, targets: Sequence[tuple[Path, ImageSpec]], *, max_pixels: int) -> list[ImageResult]:
    """Make several still renditions of ``source`` from ONE decode; results in ``targets`` order.

    Why: shrink-on-load cannot skip a JPEG's entropy decode, which dominates for camera
    photos, so decoding once for all renditions beats one ``thumbnail`` per rendition
    (bench/transcode.py: ``one_decode_vs_per_rendition_ratio``). The largest rendition is
    decoded exactly as a lone :func:`render_image` call decodes it (shrink-on-load for its
    box, EXIF orientation, ICC to sRGB), so its bytes are unchanged. That decode is held in
    memory (the largest rendition's pixels, no more) and every smaller rendition is
    resampled from it with ``thumbnail_image``: their dimensions are exactly what their own
    decode would give (see :func:`_planned_sizes`), their bytes differ (resampled from the
    larger decode instead of their own, coarser shrink-on-load); a rendition as large as the
    largest is saved from the decode itself. One spec is streamed from the file without
    holding anything.

    All or nothing: each file is written under a hidden partial name and renamed into place
    only once every rendition is encoded; on any failure no file of this call remains.
    """
    for _, spec in targets:
        if spec.format not in IMAGE_MIME:
            raise UnsupportedMediaError(f"unknown image rendition format {spec.format!r}")
    if not targets:
        return []
    pyvips = configure_vips()
    header = read_header(source, max_pixels=max_pixels)
    boxes = [target_box(*header.display_size, spec) for _, spec in targets]
    partials = [dest.with_name(f".{dest.name}.partial{dest.suffix}") for dest, _ in targets]
    made: list[tuple[int, int, float]] = [(0, 0, 0.0)] * len(targets)
    mark = time.monotonic()
    try:
        sizes = _planned_sizes(source, header, boxes) if len(set(boxes)) > 1 else None
        # Largest first (stable): the one decode is the largest rendition's own.
        order = sorted(range(len(targets)), key=lambda i: -(sizes[i][0] * sizes[i][1]) if sizes else 0)
        largest_box = boxes[order[0]]
        decoded = _to_srgb(
            pyvips.Image.thumbnail(
                str(source),
                largest_box[0],
                height=largest_box[1],
                size="down",
                export_profile="srgb",
                fail_on="error",
            )
        )
        if len(targets) > 1:
            decoded = decoded.copy_memory()  # the one decode; the smaller renditions read it
        for i in order:
            dest, spec = targets[i]
            image = decoded
            if sizes is not None and boxes[i] != largest_box and sizes[i] != (decoded.width, decoded.height):
                # "force" to the planned size: the aspect ratio is the source's to within
                # the rounding its own decode would have made.
                image = decoded.thumbnail_image(sizes[i][0], height=sizes[i][1], size="force", no_rotate=True)
            if spec.format == "jpeg" and image.hasalpha():
                image = image.flatten(background=[255, 255, 255])
            dest.parent.mkdir(parents=True, exist_ok=True)
            _save(image, partials[i], spec)
            now = time.monotonic()
            made[i], mark = (image.width, image.height, now - mark), now
    except BaseException as exc:
        for partial in partials:
            partial.unlink(missing_ok=True)
        if isinstance(exc, pyvips.Error):
            if looks_like_memory_exhaustion(str(exc)):
                raise ToolCrashedError(f"libvips ran out of memory: {_first_line(exc)}") from exc
            raise CorruptMediaError(f"libvips could not decode the image: {_first_line(exc)}") from exc
        raise
    results = []
    for (dest, spec), partial, (width, height, seconds) in zip(targets, partials, made, strict=True):
        partial.replace(dest)
        mime = IMAGE_MIME[spec.format][1]
        results.append(ImageResult(str(dest), width, height, dest.stat().st_size, mime, round(seconds, 4)))
    return results


def _planned_sizes(source: Path, header: ImageHeader, boxes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The (width, height) each box's own ``thumbnail`` of ``source`` comes out at, decoding nothing.

    Resampling the held decode to a box would round the free side from *its* size, which
    can differ by a pixel from what the rendition's own shrink-on-load decode gives (the
    loader's reduced size enters the rounding). ``thumbnail`` builds its pipeline lazily and
    reads only headers, except that it decodes to memory to apply an EXIF rotation; so it
    is asked unrotated, with the box turned to the stored orientation, and the answer is
    turned back.
    """
    pyvips = configure_vips()
    swap = header.orientation in _SWAPPING_ORIENTATIONS
    planned: dict[tuple[int, int], tuple[int, int]] = {}
    for box in dict.fromkeys(boxes):
        box_w, box_h = (box[1], box[0]) if swap else box
        lazy = pyvips.Image.thumbnail(str(source), box_w, height=box_h, size="down", no_rotate=True, fail_on="error")
        planned[box] = (lazy.height, lazy.width) if swap else (lazy.width, lazy.height)
    return [planned[box] for box in boxes]


def _to_srgb(image: Any) -> Any:
    """8-bit sRGB (or greyscale) whatever came in: CMYK, 16-bit, Lab, scRGB."""
    interpretation = str(image.interpretation)
    if interpretation in ("b-w", "grey16"):
        return image.colourspace("b-w") if interpretation == "grey16" else image
    if interpretation != "srgb" or str(image.format) != "uchar":
        image = image.colourspace("srgb")
    if str(image.format) != "uchar":
        image = image.cast("uchar")
    return image


def _save(image: Any, path: Path, spec: ImageSpec) -> None:
    strip = spec.strip_metadata
    if spec.format == "webp":
        image.webpsave(str(path), Q=spec.quality, effort=spec.effort, strip=strip, smart_subsample=True)
    elif spec.format == "jpeg":
        image.jpegsave(str(path), Q=spec.quality, strip=strip, optimize_coding=True, interlace=True)
    elif spec.format == "avif":
        image.heifsave(str(path), Q=spec.quality, compression="av1", effort=spec.effort, strip=strip)
    else:
        image.pngsave(str(path), strip=strip)


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:400] or type(exc).__name__
