"""The stage handlers bound to the table in :mod:`smartcrop.core.stage`: what both runners call."""

from __future__ import annotations

from smartcrop.core.stage import PIPELINE, Stage


def stages() -> dict[str, Stage]:
    """Imported lazily: the detector pulls in torch, which the planner and the CLI's light commands do not need."""
    from smartcrop.detector.stage import detect
    from smartcrop.encoder.stage import encode
    from smartcrop.planner.stage import plan
    from smartcrop.tracker.stage import track

    handlers = {"detector": detect, "tracker": track, "planner": plan, "encoder": encode}
    return {place.name: Stage(place.name, place.input_topic, handlers[place.name], place.span) for place in PIPELINE}
