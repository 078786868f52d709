"""Facts derived from one table and the enums keep the values on the wire and on the command line."""

from __future__ import annotations

import argparse

from smartcrop import stack
from smartcrop.cli import build_parser
from smartcrop.core import avro, events
from smartcrop.core.events import EVENT_CLASSES, TOPIC_TYPES
from smartcrop.core.stage import INPUT_TOPICS, PIPELINE, STAGE_NAMES
from smartcrop.runtime.config import TOPICS
from smartcrop.stages import stages


def test_the_stage_table_names_the_stages_and_their_input_topics_in_pipeline_order():
    assert STAGE_NAMES == ("detector", "tracker", "planner", "encoder")
    assert INPUT_TOPICS == {"detector": "jobs", "tracker": "detections", "planner": "tracks", "encoder": "plans"}
    assert [place.span for place in PIPELINE] == [(0.0, 45.0), (45.0, 55.0), (55.0, 60.0), (60.0, 100.0)]
    table = stages()
    assert [(s.name, s.input_topic, s.span) for s in table.values()] == [(p.name, p.input_topic, p.span)
                                                                          for p in PIPELINE]
    assert [s.handler.__name__ for s in table.values()] == ["detect", "track", "plan", "encode"]


def test_the_topics_on_the_wire():
    assert TOPICS == {"jobs": "smartcrop.jobs.v1", "detections": "smartcrop.detections.v1",
                      "tracks": "smartcrop.tracks.v1", "plans": "smartcrop.plans.v1", "status": "smartcrop.status.v1",
                      "control": "smartcrop.control.v1", "dlq": "smartcrop.dlq.v1"}
    assert set(INPUT_TOPICS.values()) <= set(TOPICS)


def test_each_event_is_published_on_one_topic_and_its_type_names_are_the_schemas():
    assert avro.EVENT_TYPES == ("JobRequested", "DetectionsReady", "TracksReady", "CropPlanned", "JobStatus",
                                 "JobControl")
    assert tuple(EVENT_CLASSES) == avro.EVENT_TYPES
    assert TOPIC_TYPES == {"jobs": "JobRequested", "detections": "DetectionsReady", "tracks": "TracksReady",
                           "plans": "CropPlanned", "status": "JobStatus", "control": "JobControl"}
    assert events.JobRequested.TOPIC == INPUT_TOPICS["detector"]
    assert events.CropPlanned.TOPIC == INPUT_TOPICS["encoder"]


def _choices(parser: argparse.ArgumentParser, command: str, dest: str) -> list[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    return list(next(a for a in sub._actions if a.dest == dest).choices)


def test_the_command_line_offers_the_same_choices():
    parser = build_parser()
    assert _choices(parser, "run", "mode") == ["stable", "balanced", "responsive"]
    assert _choices(parser, "run", "method") == ["adaptive", "single_object", "talking_person", "max_weight",
                                                 "max_movement", "gravity"]
    assert _choices(parser, "serve", "stage") == ["detector", "tracker", "planner", "encoder", "gateway"]
    assert stack.SERVICES == ("detector", "tracker", "planner", "encoder")
    assert stack.COMPONENTS == ("kafka", "minio", "detector", "tracker", "planner", "encoder", "gateway")
