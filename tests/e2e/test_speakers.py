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
# balanced, 9:16; measured: talking_person S1 100 %, S2 98.3 %; adaptive the same. A centre crop scores 73.1 % on S1
# (it holds the boy throughout) and 0 % on S2; picking speakers by mouth movement alone scored 87.7 % and 94.5 %.
SHOWN_BAR = 0.90
SWITCH_DELAY = 0.5  # seconds from a labelled turn start to the window holding the new speaker (measured: <= 0.2 s)
FALSE_SWITCHES_PER_MIN = 2.0  # the window turns to someone who neither speaks nor is about to (measured: 0)


@dataclass(frozen=True)
class Conversation:
    key: str
    labels: Labels
    plan: Plan
    method: str

    def score(self):
        """The speaker benchmark's score of this plan."""
        return score_path(self.labels, self.method, "balanced", "9:16", self.plan.t, self.plan.windows)

    def shown(self) -> float:
        """Share of labelled frames whose window fully contains the speaker's face."""
        return self.score().shown


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
def adaptive(request, detector_model) -> Conversation:
    return conversation(request.param, "adaptive")


def test_every_labelled_clip_is_judged():
    assert [p.stem for p in label_files(SHARED / "speakers")] == list(CLIPS.values())


@pytest.mark.parametrize("talking", sorted(CLIPS), indirect=True)
def test_talking_person_keeps_the_speaker_in_the_window(talking):
    shown = talking.shown()
    assert shown >= SHOWN_BAR, f"{talking.key}: speaker shown in {shown:.1%} of labelled frames"


@pytest.mark.parametrize("talking", sorted(CLIPS), indirect=True)
def test_talking_person_turns_to_a_new_speaker_on_time_and_only_then(talking):
    score = talking.score()
    assert score.missed == 0, f"{talking.key}: {score.missed} of {score.switches} turns never reached"
    assert score.delay_max <= SWITCH_DELAY, f"{talking.key}: a switch came {score.delay_max:.2f} s late"
    assert score.false_per_min <= FALSE_SWITCHES_PER_MIN, f"{talking.key}: {score.false_per_min:.1f} false/min"


# S2's B has one clean turn of 0.6 s (6.08-6.70 s) inside a longer stretch of her talking over A.
@pytest.mark.parametrize("talking, speaker", [("S1", "A"), ("S1", "B"), ("S2", "A"), ("S2", "B")],
                         indirect=["talking"])
def test_the_window_reaches_each_speaker_during_their_turns(talking, speaker):
    hits = shown_in_own_turns(talking, speaker)
    assert len(hits) > 0
    assert hits.any(), f"{talking.key}: {speaker} is never in the window during their {len(hits)} labelled frames"


@pytest.mark.parametrize("adaptive", sorted(CLIPS), indirect=True)
def test_adaptive_follows_the_speaker_when_people_talk(adaptive):
    shown = adaptive.shown()
    assert shown >= SHOWN_BAR, f"{adaptive.key} adaptive: speaker shown in {shown:.1%} of labelled frames"
    for speaker in sorted({seg["speaker"] for seg in adaptive.labels.segments}):
        assert shown_in_own_turns(adaptive, speaker).any(), f"{adaptive.key} adaptive never shows {speaker}"
