"""The ``smartcrop`` command: embedded runs, job submission, services and the local stack."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from smartcrop.core.job import (
    Destination,
    JobError,
    JobSpec,
    Method,
    Mode,
    OutputKind,
    job_from_options,
    load_job_file,
    with_destination,
)
from smartcrop.core.stage import STAGE_NAMES

FORMAT_CHOICES = {"mp4": "mp4", "hls": "advanced_hls", "dash": "advanced_dash"}


class CliError(Exception):
    """A user-facing problem: printed as one line, exit code 2."""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "debug", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (JobError, CliError) as exc:
        if getattr(args, "debug", False):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line for users; the traceback with --debug
        if getattr(args, "debug", False):
            raise
        code = getattr(exc, "code", None)
        print(f"error: {'[' + code + '] ' if isinstance(code, str) else ''}{exc or type(exc).__name__}",
              file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smartcrop", description="Reframe video to any aspect ratio, keeping "
                                     "people in view.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="crop a video in this process (no services needed)")
    run.add_argument("input", nargs="?", help="video path or URL (http(s)://, s3://, file://)")
    run.add_argument("-o", "--output", help="output file (mp4) or directory (hls/dash, or several formats)")
    run.add_argument("--job", type=Path, help='a Qencode start_encode2-style job file ({"query": {...}})')
    run.add_argument("--aspect-ratio", default="9:16", help="target W:H (default 9:16)")
    run.add_argument("--mode", choices=[mode.value for mode in Mode], help="camera behaviour")
    run.add_argument("--method", choices=[method.value for method in Method], help="what to keep in frame")
    run.add_argument("--format", choices=sorted(FORMAT_CHOICES), default="mp4")
    run.add_argument("--preset", help="x264 preset (default veryfast)")
    run.add_argument("--width", type=int, help="output width in pixels")
    run.add_argument("--height", type=int, help="output height in pixels")
    run.add_argument("--no-smart-crop", action="store_true", help="plain centre crop (the baseline)")
    run.add_argument("--plan-json", type=Path, help="write the crop window of every frame as JSON")
    run.add_argument("--preview", type=Path, help="write a PNG contact sheet of source frames and crops")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    demo = commands.add_parser("demo", help="crop a demo clip (made from ultralytics' sample photos) to 9:16")
    demo.add_argument("--video", type=Path, help="use this video instead of the generated demo clip")
    demo.add_argument("--out", type=Path, default=Path("demo-output"))
    demo.set_defaults(func=cmd_demo)

    submit = commands.add_parser("submit", help="publish a job to the services over Kafka")
    submit.add_argument("job", type=Path)
    submit.add_argument("--wait", action="store_true", help="follow the job and print its final status")
    submit.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds")
    submit.set_defaults(func=cmd_submit)

    status = commands.add_parser("status", help="the latest status of a job")
    status.add_argument("job_id")
    status.add_argument("--wait", action="store_true",
                        help="follow the job until it ends (a progress bar on a terminal)")
    status.add_argument("--timeout", type=float, default=None)
    status.set_defaults(func=cmd_status)

    cancel = commands.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("job_id")
    cancel.add_argument("--reason", default="cancelled on request", help="recorded with the request")
    cancel.add_argument("--via", choices=("both", "kafka", "store"), default="both",
                        help="a request on the control topic, a marker object, or both (default)")
    cancel.add_argument("--wait", action="store_true", help="wait until a stage reports the job cancelled")
    cancel.add_argument("--timeout", type=float, default=None)
    cancel.set_defaults(func=cmd_cancel)

    serve = commands.add_parser("serve", help="run one stage as a Kafka service, or the Qencode-compatible gateway")
    serve.add_argument("stage", choices=[*STAGE_NAMES, "gateway"])
    serve.set_defaults(func=cmd_serve)

    key = commands.add_parser("gateway-key", help="make a gateway API key: the key for the caller, the entry for "
                              "SMARTCROP_GATEWAY_API_KEYS (its hash) and the webhook secret")
    key.add_argument("name", help="the key's name (letters, digits, '_' or '-')")
    key.add_argument("--operator", action="store_true", help="the key may read the status of every job, not only "
                     "of the tasks it started")
    key.set_defaults(func=cmd_gateway_key)

    init = commands.add_parser("init", help="create the topics and the bucket if missing (deployments run it once)")
    init.add_argument("--partitions", type=int, default=6, help="partitions per new topic: the most replicas a "
                      "stage can use (default 6)")
    init.add_argument("--wait", type=float, default=60, help="seconds to wait for Kafka (default 60)")
    init.set_defaults(func=cmd_init)

    stack = commands.add_parser("stack", help="the local Kafka + MinIO stack (no Docker needed)")
    stack_commands = stack.add_subparsers(dest="stack_command", required=True)
    up = stack_commands.add_parser("up", help="start what is not running")
    up.add_argument("--with-services", action="store_true", help="also start the four services")
    up.add_argument("--replicas", help="instances per stage, e.g. detector=2,encoder=2")
    up.set_defaults(func=cmd_stack_up)
    stack_commands.add_parser("down", help="stop everything").set_defaults(func=cmd_stack_down)
    st = stack_commands.add_parser("status", help="what runs")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_stack_status)
    stack_commands.add_parser("env", help="export lines for the stack's endpoints and credentials").set_defaults(
        func=cmd_stack_env)
    logs = stack_commands.add_parser("logs", help="where each process logs (or the tail of one)")
    logs.add_argument("component", nargs="?")
    logs.set_defaults(func=cmd_stack_logs)
    return parser


# ---------------------------------------------------------------------------------------------------------------------
# run


def _job_for_run(args, settings) -> JobSpec:
    if args.job is not None:
        job = load_job_file(args.job, limits=settings.limits)
        if args.input:
            raise CliError("give either INPUT or --job, not both")
    elif args.input:
        job = job_from_options(args.input, output=FORMAT_CHOICES[args.format], aspect_ratio=args.aspect_ratio,
                               mode=args.mode, method=args.method, preset=args.preset,
                               smart_crop=not args.no_smart_crop, width=args.width, height=args.height)
    else:
        raise CliError("give an INPUT video or --job JOB.json")
    if args.output:
        out = Path(args.output).resolve()
        for index, fmt in enumerate(job.formats):
            if fmt.destination is not None and fmt.destination.is_s3:
                continue
            if len(job.formats) == 1:
                target = out
            else:
                target = out / (f"{index}.mp4" if fmt.output is OutputKind.MP4 else str(index))
            job = with_destination(job, index, Destination(url=str(target)))
    missing = [i for i, fmt in enumerate(job.formats) if fmt.destination is None]
    if missing:
        raise CliError(f"format[{missing[0]}] has no destination: give -o OUTPUT")
    return job


def cmd_run(args) -> int:
    from smartcrop.runtime.admission import admit
    from smartcrop.runtime.config import Settings

    settings = replace(Settings.from_env(), embedded=True)
    job = _job_for_run(args, settings)
    admit(job, settings)
    result = _run_with_progress(job, settings, quiet=args.quiet)
    status = result.status
    if status.error is not None:
        print(f"error: [{status.error.code}] {status.error.message}", file=sys.stderr)
        return 1
    _write_extras(job, result, plan_json=args.plan_json, preview=args.preview)
    for uri in status.outputs:
        print(uri)
    return 0


def _run_with_progress(job: JobSpec, settings, quiet: bool):
    from smartcrop.pipeline import run_job

    if quiet or not sys.stderr.isatty() and os.environ.get("SMARTCROP_PROGRESS") != "1":
        return run_job(job, settings=settings)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:<10}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                  TimeElapsedColumn(), transient=False) as bar:
        task = bar.add_task("starting", total=100)
        return run_job(job, settings=settings,
                       progress=lambda stage, percent: bar.update(task, completed=percent, description=stage))


def _write_extras(job: JobSpec, result, *, plan_json: Path | None, preview: Path | None) -> None:
    if plan_json is None and preview is None:
        return
    import numpy as np

    if 0 not in result.paths:
        raise CliError("no crop plan was produced")
    path = result.paths[0]
    t, windows = path.t, path.windows
    media = result.plans[0].media
    if plan_json is not None:
        fmt = job.formats[0]
        document = {"width": media.display_width, "height": media.display_height, "fps": media.fps,
                    "aspect_ratio": str(fmt.aspect_ratio), "mode": fmt.mode.value, "method": fmt.method.value,
                    "cuts": np.flatnonzero(path.cut).tolist(),
                    "frames": [{"t": round(float(ti), 6), "x": round(float(x), 2), "y": round(float(y), 2),
                                "w": round(float(w), 2), "h": round(float(h), 2)}
                               for ti, (x, y, w, h) in zip(t, windows)]}
        plan_json.parent.mkdir(parents=True, exist_ok=True)
        plan_json.write_text(json.dumps(document))
    if preview is not None:
        from smartcrop.media.preview import contact_sheet
        from smartcrop.runtime.storage import file_path

        source = job.source if "://" not in job.source or job.source.startswith("file://") else None
        if source is None:
            raise CliError("--preview needs a local source file")
        contact_sheet(file_path(source), media, windows, preview)


def cmd_demo(args) -> int:
    from smartcrop.demo import make_demo_clip
    from smartcrop.runtime.config import Settings

    out = args.out.resolve()
    video = args.video.resolve() if args.video else make_demo_clip(out / "demo-source.mp4")
    if not video.exists():
        raise CliError(f"video not found: {video}")
    job = job_from_options(str(video), aspect_ratio="9:16", mode="balanced")
    job = with_destination(job, 0, Destination(url=str(out / "demo-9x16.mp4")))
    settings = Settings.from_env()
    print(f"source:  {video}")
    print(f"model:   {settings.detector_model}")
    result = _run_with_progress(job, settings, quiet=False)
    if result.status.error is not None:
        print(f"error: [{result.status.error.code}] {result.status.error.message}", file=sys.stderr)
        return 1
    _write_extras(job, result, plan_json=out / "crop-path.json", preview=out / "preview.png")
    print(f"output:  {out / 'demo-9x16.mp4'}")
    print(f"preview: {out / 'preview.png'}")
    print(f"path:    {out / 'crop-path.json'}")
    return 0


# ---------------------------------------------------------------------------------------------------------------------
# services


def cmd_submit(args) -> int:
    from smartcrop.core.events import JobState
    from smartcrop.runtime.config import Settings
    from smartcrop.runtime.kafka import EventPublisher, latest_status
    from smartcrop.runtime.storage import S3Storage
    from smartcrop.submission import admit_and_claim, publish_job

    settings = Settings.from_env()
    job = load_job_file(args.job, limits=settings.limits)
    # a different job under a taken id stops here (job_id_conflict) with nothing published
    claimed = admit_and_claim(job, settings, S3Storage.from_settings(settings))
    publish_job(job, claimed, EventPublisher(settings), lambda job_id: latest_status(settings, job_id))
    print(json.dumps({"job_id": job.job_id}), flush=True)
    if not args.wait:
        return 0
    final = _follow_to_the_end(settings, job.job_id, args.timeout)
    print(json.dumps(final.to_json()), flush=True)
    return 0 if final.status is JobState.COMPLETED else 1


def cmd_status(args) -> int:
    from smartcrop.runtime.config import Settings

    settings = Settings.from_env()
    if args.wait:
        document = _follow_to_the_end(settings, args.job_id, args.timeout).to_json()
    else:
        document = _current_status(settings, args.job_id)
    if document is None:
        print(json.dumps({"job_id": args.job_id, "status": "unknown"}))
        return 3
    print(json.dumps(document))
    return 1 if document["status"] == "failed" else 0


def _current_status(settings, job_id: str) -> dict | None:
    """From the gateway's status view when ``SMARTCROP_GATEWAY_URL`` and ``SMARTCROP_API_KEY`` are set (a lookup),
    else, or while the gateway cannot answer, from the status topic (a read to its end)."""
    from smartcrop.runtime.kafka import latest_status

    url, api_key = os.environ.get("SMARTCROP_GATEWAY_URL", ""), os.environ.get("SMARTCROP_API_KEY", "")
    if url and api_key:
        from smartcrop.gateway.client import GatewayClient, GatewayRefused, GatewayUnavailable

        try:
            document = GatewayClient(url, api_key, (settings.http_connect_timeout, 30.0)).job_status(job_id)
        except GatewayRefused as exc:
            raise CliError(str(exc)) from None
        except GatewayUnavailable as exc:
            _echo(f"warning: the gateway at {url} did not answer ({exc}); reading {settings.topic('status')}")
        else:
            if document is None:
                _echo(f"error: no job {job_id!r} that this API key may read")
            return document
    status = latest_status(settings, job_id)
    if status is None:
        _echo(f"error: no job {job_id!r} on {settings.topic('status')}")
    return None if status is None else status.to_json()


def cmd_cancel(args) -> int:
    from smartcrop.core.events import ControlAction, JobControl, JobState
    from smartcrop.runtime.cancellation import request_cancel
    from smartcrop.runtime.config import Settings
    from smartcrop.runtime.kafka import DeliveryError, EventPublisher, latest_status
    from smartcrop.runtime.storage import S3Storage

    settings = Settings.from_env()
    current = latest_status(settings, args.job_id)
    if current is None:
        raise CliError(f"no job {args.job_id!r}: it has no status on {settings.topic('status')}")
    if current.status.is_final:
        print(json.dumps(current.to_json()))
        if current.status is JobState.CANCELLED:
            return 0
        raise CliError(f"job {args.job_id} has already {current.status.value}; there is nothing to cancel")
    if args.via in ("both", "store"):
        request_cancel(S3Storage.from_settings(settings), args.job_id, reason=args.reason)
    if args.via in ("both", "kafka"):
        try:
            EventPublisher(settings).publish_confirmed(JobControl(args.job_id, ControlAction.CANCEL, args.reason))
        except DeliveryError as exc:  # with the marker written, the job is cancelled all the same
            if args.via == "kafka":
                raise
            print(f"warning: {exc}; the marker object cancels the job", file=sys.stderr)
    print(json.dumps({"job_id": args.job_id, "cancel": "requested"}), flush=True)
    if not args.wait:
        return 0
    final = _follow_to_the_end(settings, args.job_id, args.timeout)
    print(json.dumps(final.to_json()))
    return 0 if final.status is JobState.CANCELLED else 1


def _follow_to_the_end(settings, job_id: str, timeout: float | None):
    """The job's final status; a progress bar on a terminal while it runs."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from smartcrop.runtime.kafka import follow_status

    last = None
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), disable=not sys.stderr.isatty(), console=_stderr_console()) as bar:
        task = bar.add_task(job_id, total=100)
        for status in follow_status(settings, job_id, wait=True, timeout=timeout):
            last = status
            bar.update(task, completed=status.percent, description=f"{job_id} {status.stage} {status.status.value}")
    if last is None or not last.status.is_final:
        raise CliError(f"job {job_id} did not finish within {timeout:g}s" if timeout else f"no status for job {job_id}")
    return last


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def cmd_serve(args) -> int:
    if args.stage == "gateway":
        from smartcrop.gateway.app import serve as serve_gateway

        serve_gateway()
        return 0
    from smartcrop.runtime.service import serve

    serve(args.stage)
    return 0


def cmd_gateway_key(args) -> int:
    import secrets

    from smartcrop.gateway.keys import OPERATOR, hash_key, parse_api_keys

    api_key, webhook_secret = secrets.token_hex(24), secrets.token_hex(32)
    entry = f"{args.name}:{hash_key(api_key)}:{webhook_secret}{':' + OPERATOR if args.operator else ''}"
    try:
        parse_api_keys(entry)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(json.dumps({"api_key": api_key, "webhook_secret": webhook_secret, "entry": entry}))
    return 0


def cmd_init(args) -> int:
    from smartcrop.runtime.config import Settings
    from smartcrop.runtime.kafka import ensure_topics, wait_for_broker
    from smartcrop.runtime.storage import S3Storage

    settings = Settings.from_env()
    wait_for_broker(settings, args.wait)
    created = ensure_topics(settings, partitions=args.partitions)
    S3Storage.from_settings(settings).ensure_bucket()
    print(json.dumps({"topics_created": created, "bucket": settings.s3_bucket}))
    return 0


# ---------------------------------------------------------------------------------------------------------------------
# stack


def _echo(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_stack_up(args) -> int:
    from smartcrop import stack

    stack.up(with_services=args.with_services, replicas=stack.parse_replicas(args.replicas), echo=_echo)
    _print_stack_status(as_json=False)
    return 0


def cmd_stack_down(args) -> int:
    from smartcrop import stack

    stack.down(echo=_echo)
    return 0


def cmd_stack_status(args) -> int:
    _print_stack_status(as_json=args.json)
    return 0


def _print_stack_status(as_json: bool) -> None:
    from smartcrop import stack

    state = stack.status()
    if as_json:
        print(json.dumps({name: {"up": entry["up"], "pid": entry["pid"]} for name, entry in state.items()}))
        return
    for name, entry in state.items():
        print(f"{name:<12} {'up' if entry['up'] else 'down':<5} {entry['pid'] or '':<8} {entry['log']}")


def cmd_stack_env(args) -> int:
    from smartcrop import stack

    for key, value in stack.stack_env().items():
        print(f"export {key}={value}")
    return 0


def cmd_stack_logs(args) -> int:
    from smartcrop import stack

    config = stack.StackConfig.from_env()
    if args.component:
        path = config.log_file(args.component)
        if not path.exists():
            raise CliError(f"no log for {args.component} at {path}")
        sys.stdout.write("\n".join(path.read_text(errors="replace").splitlines()[-50:]) + "\n")
        return 0
    for name in stack.status():
        print(f"{name:<12} {config.log_file(name)}")
    return 0
