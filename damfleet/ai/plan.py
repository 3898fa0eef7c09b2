"""What AI enrichment does for one asset: the one skip rule.

The workflow decides, before scheduling anything, whether the AI stage runs at all and
which enrichments it asks for (a transcript needs an audio track, detection needs
pictures); the stage function applies the same rule to whatever request reaches it (the
workflow's, or a direct caller's such as bench/pipeline.py) so it never starts work that
cannot apply. Both call :func:`plan_enrichment`; the words a user reads for a skip are
written here once.

Pure and free of heavy imports: the workflow sandbox imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EnrichmentPlan", "plan_enrichment", "skip_reason"]


@dataclass(frozen=True)
class EnrichmentPlan:
    """The enrichments that apply, and what was asked for but cannot apply, in words."""

    transcribe: bool
    detect: bool
    skipped: tuple[str, ...] = ()

    @property
    def anything(self) -> bool:
        return self.transcribe or self.detect


def plan_enrichment(kind: str, has_audio: bool, *, transcribe: bool, detect: bool) -> EnrichmentPlan:
    """Which of the requested enrichments apply to media of ``kind`` ("image", "video",
    "audio"): a transcript needs an audio track (an image never has one), detection needs
    pictures (images and video frames)."""
    skipped: list[str] = []
    do_transcribe = transcribe and has_audio and kind != "image"
    if transcribe and not do_transcribe:
        skipped.append("transcription skipped: an image has no audio" if kind == "image"
                       else f"transcription skipped: the {kind or 'media'} has no audio track")
    do_detect = detect and kind in ("image", "video")
    if detect and not do_detect:
        skipped.append("object detection skipped: audio has no pictures" if kind == "audio"
                       else f"object detection skipped: the {kind or 'media'} has no pictures")
    return EnrichmentPlan(do_transcribe, do_detect, tuple(skipped))


def skip_reason(
    plan: EnrichmentPlan, *, profile: str, profile_transcribes: bool, profile_detects: bool,
    kind: str, has_audio: bool, requested_skip: bool,
) -> str:
    """Why the pipeline skips the AI stage for this asset, or "" when it runs.

    ``plan`` is :func:`plan_enrichment` of the profile's enrichments for this media."""
    if requested_skip:
        return "AI enrichment skipped by request"
    if plan.anything:
        return ""
    kind = kind or "media"
    if not profile_transcribes and not profile_detects:
        return f"profile {profile!r} disables AI enrichment"
    if not has_audio and not profile_detects:
        return f"{kind} has no audio to transcribe and profile {profile!r} does not detect objects"
    return f"nothing to enrich for this {kind}"
