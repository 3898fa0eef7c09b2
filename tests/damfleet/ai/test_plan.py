"""The one AI skip rule: what applies to which media, and the words for a skip."""

from __future__ import annotations

import pytest

from damfleet.ai.plan import EnrichmentPlan, plan_enrichment, skip_reason


@pytest.mark.parametrize(
    ("kind", "has_audio", "transcribe", "detect", "expected"),
    [
        ("video", True, True, True, (True, True)),
        ("video", False, True, False, (False, False)),
        ("audio", True, True, True, (True, False)),
        ("image", False, True, True, (False, True)),
        ("image", True, True, False, (False, False)),  # an image never has a transcript
    ],
)
def test_plan_applies_only_what_the_media_allows(
    kind: str, has_audio: bool, transcribe: bool, detect: bool, expected: tuple[bool, bool]
) -> None:
    plan = plan_enrichment(kind, has_audio, transcribe=transcribe, detect=detect)
    assert (plan.transcribe, plan.detect) == expected
    asked = int(transcribe) + int(detect)
    assert len(plan.skipped) == asked - int(plan.transcribe) - int(plan.detect), "each refusal is said once"


def test_skip_words_name_the_cause() -> None:
    nothing = EnrichmentPlan(False, False)
    common = {"profile": "p", "kind": "audio", "has_audio": False}
    assert skip_reason(nothing, profile_transcribes=True, profile_detects=True, requested_skip=True,
                       **common) == "AI enrichment skipped by request"
    assert skip_reason(nothing, profile_transcribes=False, profile_detects=False, requested_skip=False,
                       **common) == "profile 'p' disables AI enrichment"
    assert "has no audio to transcribe" in skip_reason(
        nothing, profile_transcribes=True, profile_detects=False, requested_skip=False, **common)
    assert skip_reason(EnrichmentPlan(True, False), profile_transcribes=True, profile_detects=False,
                       requested_skip=False, **common) == ""
