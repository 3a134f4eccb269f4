"""`riffstudio engine serve|status|stop|jobs`, and `generate --engine`'s trip through the engine.

Everything here talks to the engine through `engine.client`; no socket or journal is opened here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from engine.process.launch import add_serve_arguments

    parser = subparsers.add_parser(
        "engine", help="the engine process: serve, status, stop, jobs",
        description="The engine process keeps a model warm and runs jobs from the app, the command line "
        "and batch renders one at a time, with a journal that survives crashes. Clients start it when "
        "needed; it exits after a while with nothing to do.")
    commands = parser.add_subparsers(dest="engine_command", metavar="ACTION", required=True)
    serve = commands.add_parser("serve", help="run the engine in the foreground (one per user)")
    add_serve_arguments(serve)
    serve.set_defaults(run=run_serve)
    status = commands.add_parser("status", help="the running engine: pid, versions, model, job, queue")
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(run=run_status)
    stop = commands.add_parser("stop", help="stop the engine (queued jobs wait in the journal)")
    stop.set_defaults(run=run_stop)
    jobs = commands.add_parser("jobs", help="recent jobs and their states")
    jobs.add_argument("--limit", type=int, default=20)
    jobs.add_argument("--json", action="store_true", help="one JSON list")
    jobs.set_defaults(run=run_jobs)


def run_serve(args: argparse.Namespace) -> int:
    from engine.process.launch import run_serve, settings_from_args

    return run_serve(settings_from_args(args))


def run_status(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from engine.client import EngineClient, EngineNotRunning

    try:
        client = EngineClient(start=False, supervise=False, name="riffstudio-status")
    except EngineNotRunning:
        if args.json:
            print(json.dumps({"pid": None, "protocol": None, "running": None, "queue": [], "engine": "not running"}))
        else:
            print("no engine is running")
        return 0
    with client:
        status = client.status()
    data = asdict(status)
    data.pop("re")
    if args.json:
        print(json.dumps(data))
        return 0
    running = status.running
    job = f"{running.job} ({running.stage} {running.step}/{running.total})" if running else "none"
    print(f"engine pid {status.pid}, riffstudio {status.engine_version}, protocol {status.protocol}, "
          f"up {_duration(status.uptime_s)}, {status.clients} client(s)")
    print(f"model: {status.bundle or 'none loaded'}" + (f" on {status.provider}" if status.provider else ""))
    print(f"running: {job}")
    print(f"queue: {len(status.queue)} job(s)" + (f": {', '.join(status.queue)}" if status.queue else ""))
    limit = f"{status.memory_limit_mb} MB" if status.memory_limit_mb else "none"
    print(f"threads: {status.intra_op_threads or 'auto'}, memory ceiling: {limit}, "
          f"idle timeout: {status.idle_timeout_s:g} s")
    for note in status.notes:
        print(f"note: {note}")
    return 0


def say_engine_notes(client) -> None:
    """What the engine did about its own state (a damaged journal replaced), once, on stderr."""
    for note in client.notes:
        print(f"note: {note}", file=sys.stderr)


def run_stop(args: argparse.Namespace) -> int:
    from engine.client import EngineClient, EngineNotRunning

    try:
        client = EngineClient(start=False, supervise=False, name="riffstudio-stop")
    except EngineNotRunning:
        print("no engine is running")
        return 0
    pid = client.pid
    client.shutdown()
    print(f"engine (pid {pid}) stopped")
    return 0


def run_jobs(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from engine.client import EngineClient, EngineNotRunning, recent_jobs_offline

    try:
        with EngineClient(start=False, supervise=False, name="riffstudio-jobs") as client:
            jobs = client.jobs(args.limit)
    except EngineNotRunning:
        jobs = recent_jobs_offline(args.limit)
    if args.json:
        print(json.dumps([asdict(job) for job in jobs]))
        return 0
    if not jobs:
        print("no jobs yet")
    for job in jobs:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(job.created))
        where = job.folder or job.error or ""
        print(f"{job.job}  {job.state:<9} {job.priority:<11} {when}  {job.prompt[:40]!r}  {where}")
    return 0


def run_generate_in_engine(args: argparse.Namespace, settings) -> int:
    """`generate --engine`: the same job through the engine, then the same files at --out (and --image)."""
    from dataclasses import replace

    from engine.client import EngineClient, EngineRestarted
    from engine.codec.audio_io import audio_format
    from engine.errors import InvalidInputError
    from engine.process import protocol as p
    from ui.cli.progress import TerminalProgress
    from ui.cli.provider_args import npu_options

    if args.latents:
        raise InvalidInputError("--latents cannot go through the engine: leave out --engine")
    if settings.init_audio:
        settings = replace(settings, init_audio=str(Path(settings.init_audio).resolve()))
    bar = TerminalProgress()

    def show(event) -> None:
        if isinstance(event, p.Progress):
            bar(f"{event.stage} {event.step}/{event.total}", event.fraction)
        elif isinstance(event, EngineRestarted):
            print(f"\nnote: {event.reason}; a new engine carries on with the job", file=sys.stderr)

    with EngineClient(name="riffstudio-generate") as client:
        say_engine_notes(client)
        job = client.submit(settings, args.model, provider=args.provider, audio_format=audio_format(args.out).lower(),
                            session_options=npu_options(args))
        try:
            done = job.outcome(show)
        finally:
            bar.close()
    for note in done.notes:
        print(f"note: {note}", file=sys.stderr)
    sidecar = copy_results(done, args.out, args.image)
    from ui.cli.generate import remembered

    remembered(args.out, done.job)
    timings = done.timings
    seconds = sidecar["audio"]["samples"] / sidecar["audio"]["sample_rate"]
    print(f"wrote {args.out} (seed {done.seed}, {seconds:.2f} s, "
          f"{timings.get('denoise_s', 0) + timings.get('vae_decode_s', 0) + timings.get('audio_s', 0):.1f} s, "
          f"engine job {done.job})")
    return 0


def copy_results(done, out: Path, image: Path | None) -> dict:
    """The engine's finished loop at the names `generate` was given, through the one loop writer; its sidecar."""
    from engine.atomic import write_errors
    from engine.loop_files import copied_file, write_loop
    from engine.process.results import results_of

    found = results_of(done)
    with write_errors(out):
        return write_loop(out, copied_file(found.audio, found.sidecar["audio"]), found.sidecar, image=image,
                          write_image=copied_file(found.image) if image is not None else None)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
