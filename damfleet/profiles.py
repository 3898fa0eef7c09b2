"""Processing profiles: which renditions, which enrichments, which delivery targets.

A profile is chosen per request (``PipelineRequest.profile``). It names renditions from
the rendition table (:mod:`damfleet.transcode.renditions`, media kind x purpose -> spec) and
delivery targets defined in settings (``DAMFLEET_DISTRIBUTION_TARGETS_*``), so requests
never carry credentials and operators change encodings in one declarative place.

Pure data: imported by workflows inside the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DEFAULT_PROFILE", "PROFILES", "Profile", "get_profile"]


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    #: Rendition names per media kind ("image", "video", "audio").
    renditions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    transcribe: bool = True          # speech-to-text for media with audio
    detect_objects: bool = False     # YOLO on images and sampled video frames (needs weights)
    targets: tuple[str, ...] = ("local",)
    webhooks: tuple[str, ...] = ()
    #: Output roles delivered to targets; empty means every rendition and enrichment output.
    deliver_roles: tuple[str, ...] = ()


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="default",
            description="Web renditions, transcript, delivery to the local folder",
            renditions={
                "image": ("thumbnail", "preview"),
                "video": ("proxy", "poster"),
                "audio": ("audio_proxy",),
            },
        ),
        Profile(
            name="web",
            description="Web renditions with storyboards and waveforms, plus object tags",
            renditions={
                "image": ("thumbnail", "preview", "avif"),
                "video": ("proxy", "poster", "storyboard"),
                "audio": ("audio_proxy", "waveform"),
            },
            detect_objects=True,
        ),
        Profile(
            name="hls",
            description="Adaptive streaming ladder (HLS, capped at the source height)",
            renditions={
                "image": ("thumbnail", "preview"),
                "video": ("poster", "hls"),
                "audio": ("audio_proxy",),
            },
        ),
        Profile(
            name="archive",
            description="Preservation ingest: thumbnails only, no AI, no delivery",
            renditions={"image": ("thumbnail",), "video": ("poster",), "audio": ("waveform",)},
            transcribe=False,
            targets=(),
        ),
        Profile(
            name="preservation",
            description="Archive ingest plus a copy of the original at the targets, which fixity audits repair from",
            renditions={"image": ("thumbnail",), "video": ("poster",), "audio": ("waveform",)},
            transcribe=False,
            deliver_roles=("original",),
        ),
    )
}

DEFAULT_PROFILE = "default"


def get_profile(name: str) -> Profile:
    """The named profile ("" means default); KeyError lists the known names."""
    key = name or DEFAULT_PROFILE
    try:
        return PROFILES[key]
    except KeyError:
        raise KeyError(f"unknown profile {name!r}; known profiles: {', '.join(sorted(PROFILES))}") from None
