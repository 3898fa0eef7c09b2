"""The transcode stage as plain functions: rendition table, libvips stills, ffmpeg A/V.

Public surface::

    RENDITIONS, rendition_spec, renditions_for    the declarative rendition table
    inspect_source, SourceInfo                     re-probe the stored original safely
    Transcoder, RenditionResult, RenditionFile     make one rendition into a folder
    select_encoder, EncoderChoice                  NVENC/VAAPI/QSV or libx264, with fallback reason
    run_ffmpeg, FfmpegJob                          progress, stall kill, cancellation cleanup
    check_scratch_space                            fail fast when scratch is too small

Nothing here imports Temporal; :mod:`activities.transcode` wraps it.
"""

from damfleet.transcode.engine import RenditionFile, RenditionResult, Transcoder
from damfleet.transcode.hwaccel import EncoderChoice, select_encoder
from damfleet.transcode.renditions import RENDITIONS, RenditionSpec, rendition_spec, renditions_for
from damfleet.transcode.runner import FfmpegJob, FfmpegResult, run_ffmpeg
from damfleet.transcode.scratch import check_scratch_space
from damfleet.transcode.source import SourceInfo, inspect_source

__all__ = [
    "RENDITIONS",
    "EncoderChoice",
    "FfmpegJob",
    "FfmpegResult",
    "RenditionFile",
    "RenditionResult",
    "RenditionSpec",
    "SourceInfo",
    "Transcoder",
    "check_scratch_space",
    "inspect_source",
    "rendition_spec",
    "renditions_for",
    "run_ffmpeg",
    "select_encoder",
]
