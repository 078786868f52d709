"""``make bench``: the quality and speed harness.

    .venv/bin/python -m benchmarks.run [all|quality|talking|speed|test] [--clips WORDS] [--reps N] [--long]
                                       [--model PATH]

- quality  part A: every method x mode at 9:16 and 1:1 on every clip in ../shared/media, beside a centre crop
- talking  part B: talking_person (and adaptive) on a composite of two talking heads with a known speaker
- speakers part B: talking_person and adaptive on real conversations with human-labelled speaker turns
- speed    part C: cold and warm time vs a plain centre-crop transcode on the 1080p, 720p and crowd clips, per-stage
           times, start-up, peak memory, time per second of video against length (10 min with --long)
- services part D: jobs/min and p50/p95 latency over Kafka with 1 vs 2 heavy-stage instances; services vs embedded
- all      A, B, C and D (the default)
- test     the metric unit tests (benchmarks/test_metrics.py)

Results go into benchmarks/README.md (each part replaces its own section) and benchmarks/results/PART.json.
Benchmarks measure; they never assert time limits.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from benchmarks import common

PARTS = ("quality", "talking", "speakers", "speed", "services")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", nargs="?", default="all", choices=("all", *PARTS, "test"),
                        help="which part to run (default: all)")
    parser.add_argument("--clips", help="comma-separated words: only clips whose file name contains one "
                        "(quality: all clips; speed: its own clip lists)")
    parser.add_argument("--reps", type=int, default=3, help="speed: repetitions of each A/B timing (default 3); "
                        "services: batches per set-up and overhead runs per clip")
    parser.add_argument("--long", action="store_true", help="speed: also the 10-minute clip built from real footage "
                        "(cold and warm once each; about 18 min on 2 cores)")
    parser.add_argument("--batch", type=int, default=12, help="services: short jobs published at once (default 12)")
    parser.add_argument("--model", help="detector model (default: $SMARTCROP_DETECTOR_MODEL, else "
                        "../shared/models/yolo11n_int8_openvino_model), e.g. ../shared/models/yolov8n_int8.onnx")
    parser.add_argument("--refresh", action="store_true", help="recompute cached references and the talking composite")
    parser.add_argument("--no-readme", action="store_true", help="print the tables instead of updating README.md")
    parser.add_argument("--debug", action="store_true", help="debug logging")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.part == "test":
        import pytest

        return pytest.main(["-q", str(common.BENCH / "test_metrics.py")])
    model = common.configure_environment(args.model)
    info = common.machine()
    print(f"machine: {common.machine_line(info)}")
    print(f"model:   {model}")
    parts = PARTS if args.part == "all" else (args.part,)
    failed = []
    for part in parts:
        started = time.perf_counter()
        print(f"== {part}")
        try:
            runner = {"quality": run_quality, "talking": run_talking, "speakers": run_speakers, "speed": run_speed,
                      "services": run_services}[part]
            body = runner(args, model, info, started)
        except Exception as exc:  # noqa: BLE001 - one part failing does not stop the others
            logging.getLogger(__name__).debug("part %s failed", part, exc_info=True)
            print(f"== {part} FAILED: {common.describe(exc)}")
            failed.append(part)
            continue
        print(f"== {part} done in {time.perf_counter() - started:.0f} s")
        if args.no_readme:
            print(body)
    return 1 if failed else 0


def _publish(args, part: str, body: str) -> str:
    from benchmarks import report

    if not args.no_readme:
        report.update_readme(part, body)
    return body


def run_quality(args, model: str, info: dict, started: float) -> str:
    from benchmarks import quality, report

    clips = common.select(common.all_clips(), args.clips)
    if not clips:
        raise RuntimeError(f"no clip matches --clips {args.clips!r}")
    results = quality.run(clips, model, refresh=args.refresh)
    body, numbers = quality.report(results)
    report.save_json("quality", {"machine": info, "model": model, "command": report.command_line(),
                                 "headline": numbers, "clips": results})
    elapsed = time.perf_counter() - started
    print(f"  headline: primary coverage 9:16 adaptive/responsive {report.pct(numbers['primary_9x16_default'])} % "
          f"(centre {report.pct(numbers['primary_9x16_centre'])} %), |Δ²| balanced "
          f"{report.num(numbers['acceleration_balanced'], 3)} %, stable moves/min "
          f"{report.num(numbers['moves_per_min_stable'], 1)}")
    return _publish(args, "quality", report.header("A. Quality on every clip", info, model, elapsed) + "\n" + body)


def run_talking(args, model: str, info: dict, started: float) -> str:
    from benchmarks import report, talking

    result = talking.run(refresh=args.refresh)
    body = talking.report(result)
    report.save_json("talking", {"machine": info, "model": model, "command": report.command_line(), "result": result})
    elapsed = time.perf_counter() - started
    return _publish(args, "talking", report.header("B. talking_person against known truth", info, model, elapsed)
                    + "\n" + body)


def run_speakers(args, model: str, info: dict, started: float) -> str:
    from benchmarks import report, speakers

    result = speakers.run()
    body = speakers.report(result)
    report.save_json("speakers", {"machine": info, "model": model, "command": report.command_line(),
                                  "result": result})
    elapsed = time.perf_counter() - started
    return _publish(args, "speakers", report.header("B. Speakers on real conversations", info, model, elapsed)
                    + "\n" + body)


def run_speed(args, model: str, info: dict, started: float) -> str:
    from benchmarks import report, speed

    result = speed.run(reps=max(1, args.reps), clip_filter=args.clips, long=args.long)
    body = speed.report(result)
    report.save_json("speed", {"machine": info, "model": model, "command": report.command_line(), "result": result})
    elapsed = time.perf_counter() - started
    return _publish(args, "speed", report.header("C. Speed", info, model, elapsed) + "\n" + body)


def run_services(args, model: str, info: dict, started: float) -> str:
    from benchmarks import report, services

    result = services.run(reps=max(1, args.reps), batch_size=max(2, args.batch))
    body = services.report(result)
    report.save_json("services", {"machine": info, "model": model, "command": report.command_line(),
                                  "result": result})
    elapsed = time.perf_counter() - started
    return _publish(args, "services", report.header("D. Services over Kafka", info, model, elapsed) + "\n" + body)


if __name__ == "__main__":
    sys.exit(main())
