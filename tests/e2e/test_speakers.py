"""Active-speaker framing on real conversations with human-labelled turns (``../shared/speakers``, see its README).

Only labelled time is judged. A frame *shows* the speaker when its window fully contains the speaker's labelled face
box for that segment (``benchmarks.speakers.contains``, no tolerance), exactly as the speaker benchmark scores it. At
9:16 the window is 404 px wide on these 1280x720 clips, too narrow for two of the people at once, so a window that
stays put misses whole turns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from benchmarks.speakers import Labels, contains, label_files, score_path

from ..conftest import SHARED, shared_speakers
from .planning import Plan, plan

pytestmark = pytest.mark.e2e

CLIPS = {"S1": "S1_msdwild00001_interview_3people", "S2": "S2_msdwild00115_two_women_table"}
SHOWN_BAR = 0.85  # talking_person, balanced, 9:16 (measured: S1 87.7 %, S2 94.5 %)
# adaptive, balanced, 9:16 on S1 (measured: 69.0 %; it swings back to the host during the boy's last turn). A centre
# crop scores 73.1 % here, since it holds the boy throughout, so the turn checks are what fail one.
ADAPTIVE_BAR = 0.65


@dataclass(frozen=True)
class Conversation:
    key: str
    labels: Labels
    plan: Plan
    method: str

    def shown(self) -> float:
        """Share of labelled frames whose window fully contains the speaker's face (the benchmark's score)."""
        return score_path(self.labels, self.method, "balanced", "9:16", self.plan.t, self.plan.windows).shown


def conversation(key: str, method: str) -> Conversation:
    labels = Labels.load(shared_speakers(CLIPS[key] + ".json"))
    return Conversation(key, labels, plan(shared_speakers(labels.clip), method), method)


def shown_in_own_turns(talk: Conversation, speaker: str) -> np.ndarray:
    """Per frame inside ``speaker``'s segments: does the window contain that segment's face box?"""
    hits = []
    for seg in talk.labels.segments:
        if seg["speaker"] == speaker:
            inside = (talk.plan.t >= seg["from"]) & (talk.plan.t <= seg["to"])
            hits.append(contains(talk.plan.windows[inside], seg["face_box_median"]))
    return np.concatenate(hits)


@pytest.fixture(scope="module")
def talking(request, detector_model) -> Conversation:
    return conversation(request.param, "talking_person")


@pytest.fixture(scope="module")
def adaptive_s1(detector_model) -> Conversation:
    return conversation("S1", "adaptive")


def test_every_labelled_clip_is_judged():
    assert [p.stem for p in label_files(SHARED / "speakers")] == list(CLIPS.values())


@pytest.mark.parametrize("talking", sorted(CLIPS), indirect=True)
def test_talking_person_keeps_the_speaker_in_the_window(talking):
    shown = talking.shown()
    assert shown >= SHOWN_BAR, f"{talking.key}: speaker shown in {shown:.1%} of labelled frames"


@pytest.mark.parametrize("talking, speaker", [
    ("S1", "A"), ("S1", "B"), ("S2", "A"),
    pytest.param("S2", "B", marks=pytest.mark.xfail(
        strict=True, reason="B's one clean turn lasts 0.6 s (6.08-6.70 s) and the window stays on A")),
], indirect=["talking"])
def test_the_window_reaches_each_speaker_during_their_turns(talking, speaker):
    hits = shown_in_own_turns(talking, speaker)
    assert len(hits) > 0
    assert hits.any(), f"{talking.key}: {speaker} is never in the window during their {len(hits)} labelled frames"


def test_adaptive_follows_the_speaker_on_s1(adaptive_s1):
    shown = adaptive_s1.shown()
    assert shown >= ADAPTIVE_BAR, f"S1 adaptive: speaker shown in {shown:.1%} of labelled frames"
    for speaker in ("A", "B"):
        assert shown_in_own_turns(adaptive_s1, speaker).any(), f"S1 adaptive never shows {speaker} in their turns"
