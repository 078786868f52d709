"""``JobSpec.to_document()`` is the inverse of ``parse_job``: a spec written out reads back as itself."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from smartcrop.core.job import (
    X264_PRESETS,
    AspectRatio,
    Destination,
    JobSpec,
    Method,
    Mode,
    OutputFormat,
    OutputKind,
    Rendition,
    Secret,
    parse_job,
)

dimensions = st.none() | st.integers(16, 8192)
bitrates = st.none() | st.integers(1, 1_000_000)
text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF, exclude_characters="\x7f"), max_size=12)
s3_url = st.builds(lambda host, bucket, key: f"s3://{host}/{bucket}/{key}",
                   st.sampled_from(["minio:9000", "s3.example.com", "10.0.0.5:9000"]),
                   st.from_regex(r"\A[a-z0-9][a-z0-9-]{1,20}[a-z0-9]\Z"), st.from_regex(r"\A[a-z0-9/._-]{0,20}\Z"))
s3_destination = st.builds(lambda url, creds, permissions: Destination(url, *creds, permissions), s3_url,
                           st.none().map(lambda _: (None, None)) | st.tuples(text, text.map(Secret)),
                           st.none() | text)
local_destination = st.builds(Destination, st.sampled_from(["/tmp/out.mp4", "out/dir/", "file:///v/out.mp4"]))
formats = st.builds(
    OutputFormat, output=st.sampled_from(OutputKind), aspect_ratio=st.builds(AspectRatio, st.integers(1, 64),
                                                                               st.integers(1, 64)),
    smart_crop=st.booleans(), mode=st.sampled_from(Mode), method=st.sampled_from(Method), width=dimensions,
    height=dimensions, video_codec=st.just("libx264"), preset=st.sampled_from(X264_PRESETS), bitrate_kbps=bitrates,
    quality=st.none() | st.integers(0, 51),
    streams=st.lists(st.builds(Rendition, dimensions, dimensions, bitrates), max_size=3).map(tuple),
    destination=st.none() | s3_destination | local_destination)
specs = st.builds(JobSpec, job_id=st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,40}\Z"),
                  source=st.sampled_from(["s3://minio:9000/media/in.mp4", "https://example.com/a/in.mp4",
                                          "/videos/in.mp4", "file:///v/in.mp4"]),
                  formats=st.lists(formats, min_size=1, max_size=4).map(tuple))


@settings(max_examples=300, deadline=None)
@given(specs)
def test_a_spec_written_out_reads_back_as_itself(spec):
    assert parse_job(spec.to_document()) == spec


def test_the_document_is_the_qencode_query_the_parser_reads():
    spec = JobSpec("job-1", "/videos/in.mp4", (OutputFormat(
        OutputKind.HLS, AspectRatio(9, 16), True, Mode.STABLE, Method.GRAVITY, streams=(Rendition(720, 1280, 2500),),
        destination=Destination("s3://minio:9000/out/x/", "AK", Secret("SK"))),))
    assert spec.to_document() == {"query": {"job_id": "job-1", "source": "/videos/in.mp4", "format": [{
        "output": "advanced_hls", "aspect_ratio": "9:16", "smart_crop": 1, "smart_crop_mode": "stable",
        "smart_crop_method": "gravity", "width": None, "height": None, "video_codec": "libx264",
        "preset": "veryfast", "bitrate": None, "quality": None,
        "stream": [{"width": 720, "height": 1280, "bitrate": 2500}],
        "destination": {"url": "s3://minio:9000/out/x/", "key": "AK", "secret": "SK", "permissions": None}}]}}
    redacted = spec.to_document(redact_secrets=True)["query"]["format"][0]["destination"]
    assert redacted["secret"] == "-"
