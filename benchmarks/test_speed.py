"""Exact expectations for part C's clip sets, ratios and target verdicts (benchmarks/speed.py), and for the long clip
built from real footage (benchmarks/longclip.py)."""

from pathlib import Path

import pytest

from benchmarks.common import clip_path
from benchmarks.longclip import Recipe, build
from benchmarks.report import _plain
from benchmarks.speed import ABResult, BenchClip, SpeedResult, Timed, group_of, load, per_second, targets


def test_clip_sets_by_displayed_short_side():
    assert group_of(1920, 1080, "a.mp4") == "1080p"
    assert group_of(1080, 1920, "portrait.mp4") == "1080p"
    assert group_of(1280, 720, "b.mp4") == "720p"
    assert group_of(544, 1280, "rotated.mp4") is None
    assert group_of(768, 576, "C_pedestrians_vtest_opencvdoc.avi") == "crowd"


def _cold(name: str, group: str, a: list[float], b: list[float], rss: float = 900.0) -> ABResult:
    return ABResult(name, group, 10.0, "1920x1080", [Timed(s, rss, 0) for s in a], [Timed(s, 150.0, 0) for s in b])


def _warm(name: str, duration: float, a: list[float], b: list[float]) -> dict:
    return {"clip": name, "duration": duration, "smartcrop": [{"seconds": s, "max_rss_mb": 1.0, "stages": {}}
                                                              for s in a],
            "baseline": [{"seconds": s, "max_rss_mb": 1.0} for s in b]}


def _result() -> SpeedResult:
    clips = [BenchClip(Path("hd.mp4"), "1080p", 10.0, "1920x1080"), BenchClip(Path("sd.mp4"), "720p", 10.0, "1280x720"),
             BenchClip(Path("long_10s.mp4"), "length", 10.0, "1280x720"),
             BenchClip(Path("long_600s.mp4"), "length", 600.0, "1280x720")]
    result = SpeedResult(clips=clips)
    result.ab = [_cold("hd.mp4", "1080p", [5.0, 7.0], [3.0, 3.0], rss=1100.0), _cold("sd.mp4", "720p", [8.0], [2.0])]
    result.warm = {"runs": [_warm("hd.mp4", 10.0, [4.0, 4.0], [2.0, 2.0]), _warm("sd.mp4", 10.0, [3.0], [2.0]),
                            _warm("long_600s.mp4", 600.0, [540.0], [120.0]),
                            _warm("long_10s.mp4", 10.0, [9.0, 11.0], [2.0, 2.0])]}
    return result


def test_targets_use_mean_over_mean_ratios_and_the_worst_clip():
    cold, warm, every, rss, flat = targets(_result())
    assert cold[1:] == ["2.00×", "yes"]  # mean 6 s / mean 3 s: at the limit
    assert warm[1:] == ["2.00×; worst 5.00× (long_10s.mp4)", "no"]
    assert every[1:] == ["worst cold 4.00× (sd.mp4); worst warm 5.00×", "no"]
    assert rss[1:] == ["1100–1100 MB", "no"]
    assert flat[1:] == ["1.000 → 0.900 s/s (-10.0%); 5.00× → 4.50× the centre crop (-10.0%)", "yes"]  # at the limit


def test_time_per_second_is_sorted_by_length_and_only_built_clips():
    curve = per_second(_result())
    assert [r["clip"] for r in curve] == ["long_10s.mp4", "long_600s.mp4"]
    assert curve[0]["warm"] == pytest.approx(1.0) and curve[0]["warm_baseline"] == pytest.approx(0.2)
    assert curve[1]["warm"] == pytest.approx(0.9) and curve[1]["runs"] == 1
    assert curve[1]["warm_ratio"] == pytest.approx(4.5)
    assert curve[0]["cold"] != curve[0]["cold"]  # no cold run of it: NaN, shown as "-"


def test_saved_results_load_back_to_the_same_verdicts():
    result = _result()
    assert targets(load(_plain(result))) == targets(result)


def test_long_clip_has_the_recipe_length_size_rate_and_audio(tmp_path):
    import av

    recipe = Recipe(9.0)  # 7.45 s of the talking head, then 1.55 s of the 1080p pedestrians
    for name in recipe.sources[:2]:
        assert clip_path(name).exists(), f"needs ../shared/media/{name}"
    out = tmp_path / "long.mp4"
    build(recipe, out)
    with av.open(str(out)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        frames = sum(1 for _ in container.decode(video))
        assert (video.codec_context.width, video.codec_context.height) == (1280, 720)
        assert frames == 225
        assert audio.rate == 48000 and audio.channels == 2
    with av.open(str(out)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
    assert abs(samples - 9.0 * 48000) <= 2048  # AAC priming and the last partial frame
