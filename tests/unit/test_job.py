"""The job vocabulary: what is accepted, what is rejected, and how the error names the field."""

import json
from dataclasses import replace

import pytest

from smartcrop.core.job import (
    AspectRatio,
    Destination,
    JobError,
    Limits,
    Method,
    Mode,
    OutputKind,
    Secret,
    check_against_source,
    check_source_media,
    check_source_size,
    crop_size,
    load_job_file,
    parse_job,
    validate_spec,
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


@pytest.mark.parametrize("document, field, expected", [
    ({"query": {"source": "http://host:99999/x.mp4"}}, "source", "malformed URL (Port out of range 0-65535)"),
    ({"query": {"source": "http://[::1/x.mp4"}}, "source", "malformed URL (Invalid IPv6 URL)"),
    ({"query": {"source": "/videos/in\x00.mp4"}}, "source", "contains control characters"),
    ({"query": {"source": "https://h/" + "a" * 5000}}, "source", "longer than 4096 characters (5010)"),
    ({"query": {"source": "s3://host/bad..bucket/key.mp4"}}, "source", "bucket 'bad..bucket' is not a valid S3"),
    ({"query": {"source": "/v.mp4", "job_id": "../../etc"}}, "job_id", "expected 1-128 letters, digits"),
    ({"query": {"source": "/v.mp4", "job_id": "a/b"}}, "job_id", "got 'a/b'"),
    (job(destination={"url": "s3://AK:SK@host/bucket/key"}), "format[0].destination.url",
     "credentials belong in key and secret, not in the URL"),
    (job(destination={"url": "s3://host/x/key"}), "format[0].destination.url", "bucket 'x' is not a valid S3 bucket"),
    (job(destination={"url": "https://host/bucket/key"}), "format[0].destination.url",
     "unsupported scheme 'https'; expected s3:// or a local path"),
    (job(destination={"url": "s3://host:port/bucket/key"}), "format[0].destination.url", "malformed URL"),
    (job(destination="s3://host/bucket/key"), "format[0].destination", "expected an object with url"),
    (job(stream=[{"size": "10x10"}]), "format[0].stream[0].size", "between 16 and 8192"),
    (job(bitrate=0), "format[0].bitrate", "expected a positive integer up to 1000000 (kbps), got 0"),
    (job(bitrate=2**31), "format[0].bitrate", "expected a positive integer up to 1000000 (kbps)"),
    (job(height=1080.5), "format[0].height", "expected an integer number of pixels"),
    ({"query": {"source": 42}}, "source", "required"),
    ({"query": "x"}, "query", "expected an object, got a string"),
])
def test_more_wrong_values_are_rejected_naming_the_field(document, field, expected):
    with pytest.raises(JobError) as caught:
        parse_job(document)
    assert (caught.value.field, caught.value.code) == (field, "invalid_job")
    assert expected in caught.value.message


def test_the_number_of_formats_is_limited():
    formats = [{"output": "mp4"}] * 3
    assert len(parse_job({"query": {"source": "/v.mp4", "format": formats}}, limits=Limits(max_formats=3)).formats) == 3
    with pytest.raises(JobError) as caught:
        parse_job({"query": {"source": "/v.mp4", "format": formats}}, limits=Limits(max_formats=2))
    assert str(caught.value) == "format: 3 output formats; a job may have at most 2 (SMARTCROP_MAX_FORMATS)"


@pytest.mark.parametrize("duration, size, expected", [
    (7200.5, (1280, 720), "source: the video lasts 7200 s; the limit is 3600 s (SMARTCROP_MAX_DURATION)"),
    (10.0, (3841, 720), "source: the video is 3841x720; the limit is 3840x2160 in either orientation "
                        "(SMARTCROP_MAX_RESOLUTION)"),
    (10.0, (2161, 2162), "source: the video is 2161x2162; the limit is 3840x2160 in either orientation "
                         "(SMARTCROP_MAX_RESOLUTION)"),
])
def test_duration_and_resolution_limits_are_checked_against_the_source(duration, size, expected):
    limits = Limits(max_duration=3600, max_resolution=(3840, 2160))
    with pytest.raises(JobError) as caught:
        check_source_media(duration, *size, limits)
    assert str(caught.value) == expected
    check_source_media(3600, 2160, 3840, limits)  # portrait 4K fits the same limit


def test_the_source_size_limit():
    check_source_size(1000, Limits(max_source_bytes=1000))
    with pytest.raises(JobError, match=r"^source: the file is larger than the 1000 byte limit"):
        check_source_size(1001, Limits(max_source_bytes=1000))


def test_a_spec_built_without_the_parser_is_checked_by_the_same_rules():
    good = parse_job(job(aspect_ratio="4:5", stream=[{"size": "720x900"}],
                         destination={"url": "s3://minio:9000/out/v.mp4", "key": "AK", "secret": "SK"}))
    sealed = replace(good.formats[0], destination=replace(good.formats[0].destination,
                                                          secret=Secret("gAAAA-sealed", sealed=True)))
    validate_spec(replace(good, formats=(sealed,)))
    cases = [
        (replace(good, source="ftp://x/y.mp4"), "source: unsupported scheme 'ftp'"),
        (replace(good, job_id="../x"), "job_id: expected 1-128 letters"),
        (replace(good, job_id=""), "job_id: required"),
        (replace(good, formats=()), "format: expected a non-empty list"),
        (replace(good, formats=(replace(sealed, aspect_ratio=AspectRatio(0, 16)),)),
         "format[0].aspect_ratio: expected \"W:H\" with positive integers (e.g. \"9:16\"), got '0:16'"),
        (replace(good, formats=(replace(sealed, width=-4),)), "format[0].width: expected an integer number of pixels"),
        (replace(good, formats=(replace(sealed, preset="turbo"),)), "format[0].preset: unknown x264 preset 'turbo'"),
        (replace(good, formats=(replace(sealed, destination=Destination("gopher://x/y")),)),
         "format[0].destination.url: unsupported scheme 'gopher'"),
        (replace(good, formats=(sealed,) * 3), "format: 3 output formats; a job may have at most 2"),
    ]
    for spec, expected in cases:
        with pytest.raises(JobError) as caught:
            validate_spec(spec, Limits(max_formats=2))
        assert str(caught.value).startswith(expected), (spec, str(caught.value))
