"""The job vocabulary: what is accepted, what is rejected, and how the error names the field."""

import json

import pytest

from smartcrop.job import (
    AspectRatio,
    JobError,
    Method,
    Mode,
    OutputKind,
    Secret,
    check_against_source,
    crop_size,
    load_job_file,
    parse_job,
)


def job(**fmt):
    return {"query": {"source": "https://example.com/in.mp4", "format": [{"output": "mp4", **fmt}]}}


def test_defaults_follow_the_qencode_vocabulary():
    spec = parse_job(job())
    fmt = spec.formats[0]
    assert spec.source == "https://example.com/in.mp4"
    assert fmt.output is OutputKind.MP4
    assert fmt.aspect_ratio == AspectRatio(9, 16)
    assert fmt.smart_crop is False
    assert fmt.mode is Mode.RESPONSIVE
    assert fmt.method is Method.ADAPTIVE
    assert len(spec.job_id) == 32


def test_smart_crop_fields_are_read_from_the_format_or_the_query():
    spec = parse_job({"query": {"source": "/v.mp4", "aspect_ratio": "1:1", "smart_crop": 1,
                                "format": [{"output": "advanced_hls", "smart_crop_mode": "stable",
                                            "smart_crop_method": "talking_person"}]}})
    fmt = spec.formats[0]
    assert (fmt.output, fmt.aspect_ratio, fmt.smart_crop, fmt.mode, fmt.method) == (
        OutputKind.HLS, AspectRatio(1, 1), True, Mode.STABLE, Method.TALKING_PERSON)


def test_unknown_fields_are_ignored():
    assert parse_job({"query": {"source": "/v.mp4", "callback_url": "x", "format": [{"output": "mp4", "foo": 1}]}})


@pytest.mark.parametrize("document, field, expected", [
    ({"query": {}}, "source", "required"),
    ({"query": {"source": "  "}}, "source", "required"),
    ({"query": {"source": "ftp://host/x.mp4"}}, "source", "unsupported scheme 'ftp'"),
    ({"query": {"source": "s3://host/bucket-only"}}, "source", "expected s3://host[:port]/bucket/key"),
    (job(aspect_ratio="9x16"), "format[0].aspect_ratio", 'expected "W:H"'),
    (job(aspect_ratio="0:16"), "format[0].aspect_ratio", 'expected "W:H"'),
    (job(aspect_ratio=916), "format[0].aspect_ratio", 'expected "W:H"'),
    (job(smart_crop_mode="fast"), "format[0].smart_crop_mode", "expected one of stable, balanced, responsive"),
    (job(smart_crop_method="faces"), "format[0].smart_crop_method", "expected one of adaptive, single_object"),
    (job(output="webm"), "format[0].output", "expected one of mp4, advanced_hls, advanced_dash"),
    (job(smart_crop=2), "format[0].smart_crop", "expected 0 or 1"),
    (job(width=-5), "format[0].width", "between 16 and 8192"),
    (job(size="big"), "format[0].size", '"WIDTHxHEIGHT"'),
    (job(quality=99), "format[0].quality", "CRF between 0 and 51"),
    (job(destination={"url": "ftp://x/y"}), "format[0].destination.url", "unsupported scheme"),
    (job(destination={"url": "s3://host/bucket/key", "key": "k"}), "format[0].destination", "both key and secret"),
    ({"query": {"source": "/v.mp4", "format": []}}, "format", "non-empty list"),
    ([], "job", "expected a JSON object"),
])
def test_wrong_values_are_rejected_naming_the_field(document, field, expected):
    with pytest.raises(JobError) as caught:
        parse_job(document)
    assert caught.value.field == field
    assert expected in caught.value.message
    assert str(caught.value).startswith(f"{field}: ")


def test_size_sets_width_and_height():
    fmt = parse_job(job(size="1080x1920")).formats[0]
    assert (fmt.width, fmt.height) == (1080, 1920)


def test_destination_secret_never_prints():
    spec = parse_job(job(destination={"url": "s3://minio:9000/out/v.mp4", "key": "AK", "secret": "TOPSECRET-123"}))
    destination = spec.formats[0].destination
    assert destination.secret == Secret("TOPSECRET-123")
    assert "TOPSECRET" not in repr(spec) and "TOPSECRET" not in str(destination.secret)


def test_job_file_errors_are_specific(tmp_path):
    with pytest.raises(JobError, match="not valid JSON"):
        bad = tmp_path / "bad.json"
        bad.write_text("{nope")
        load_job_file(bad)
    with pytest.raises(JobError, match="file not found"):
        load_job_file(tmp_path / "missing.json")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(job()))
    assert load_job_file(good, job_id="abc").job_id == "abc"


@pytest.mark.parametrize("frame, ratio, expected", [
    ((1920, 1080), AspectRatio(9, 16), (606, 1080)),
    ((1920, 1080), AspectRatio(1, 1), (1080, 1080)),
    ((1920, 1080), AspectRatio(21, 9), (1920, 822)),  # wider than the source: the crop moves vertically
    ((1080, 1920), AspectRatio(16, 9), (1080, 606)),  # portrait source, landscape target
    ((512, 512), AspectRatio(9, 16), (288, 512)),
    ((1280, 720), AspectRatio(16, 9), (1280, 720)),
])
def test_crop_size_is_the_largest_even_window_of_the_ratio(frame, ratio, expected):
    assert crop_size(*frame, ratio) == expected


def test_degenerate_crop_is_an_aspect_ratio_error():
    fmt = parse_job(job(aspect_ratio="1:20")).formats[0]
    with pytest.raises(JobError) as caught:
        check_against_source(fmt, 1280, 720, "format[0]")
    assert caught.value.field == "format[0].aspect_ratio"
    assert "at least 64 px" in caught.value.message
    check_against_source(parse_job(job(aspect_ratio="9:16")).formats[0], 1280, 720, "format[0]")
