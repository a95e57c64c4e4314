"""The ``runstream`` console script: one entry point, one subcommand per process kind."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from runstream.schemas.errors import RunstreamError
from runstream.services.settings import Settings

log = logging.getLogger("runstream")


def _logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def cmd_broker(settings: Settings, args: argparse.Namespace) -> int:
    """Run the local Kafka broker in the foreground until SIGINT/SIGTERM.

    The first signal stops it gracefully within a bound (SIGTERM, then SIGKILL);
    a second one kills it at once.
    """
    from runstream.services.broker import LocalBroker
    from runstream.streams.topics import ensure_topics

    broker = LocalBroker(settings)
    if args.fetch_only:
        broker.fetch()
        print(f"Kafka {broker.version} jars cached in {broker.libs}")
        return 0
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if stop.is_set():
            log.warning("second signal: killing the broker now")
            broker.kill()
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        broker.start()
        created = asyncio.run(ensure_topics(settings))
        print(f"Kafka {broker.version} ready on {broker.host}:{broker.port}"
              f" (topics created: {', '.join(created) or 'none, all existed'})", flush=True)
        while not stop.wait(0.5):
            if broker.proc is not None and broker.proc.poll() is not None:
                log.error("the broker exited with %s; see %s", broker.proc.returncode,
                          broker.log_file)
                return 1
    finally:
        took = broker.stop()
        print(f"Kafka stopped in {took:.1f}s", flush=True)
    return 0


def cmd_topics(settings: Settings, args: argparse.Namespace) -> int:
    from runstream.streams.topics import ensure_topics

    created = asyncio.run(ensure_topics(settings))
    print("created:", ", ".join(created) or "none (all existed)")
    return 0


def cmd_ingress(settings: Settings, args: argparse.Namespace) -> int:
    from runstream.services.ingress.serve import serve

    return serve(settings)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from runstream.services.worker import run_worker

    return run_worker(settings)


def cmd_reap(settings: Settings, args: argparse.Namespace) -> int:
    """Remove what dead workers' sandboxes left (cgroups, workspaces, containers)."""
    from runstream.services.execution.sandbox.factory import create_sandbox

    async def reap() -> None:
        sandbox = create_sandbox(settings)
        await sandbox.start()  # start-up reaps the scopes of workers that no longer run
        await sandbox.stop()

    asyncio.run(reap())
    return 0


def cmd_settings(settings: Settings, args: argparse.Namespace) -> int:
    print(Settings.markdown_table())
    return 0


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    from runstream.services.bench.cli import main as bench_main

    return asyncio.run(bench_main(settings, list(args.bench_args)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runstream", description="Remote code execution on Apache Kafka. "
        "Configuration comes from RUNSTREAM_* variables (see `runstream settings`).")
    sub = parser.add_subparsers(dest="command", required=True)
    broker = sub.add_parser("broker", help="run a local single-node Kafka broker (KRaft)")
    broker.add_argument("--fetch-only", action="store_true", help="only download the jars")
    broker.set_defaults(func=cmd_broker)
    sub.add_parser("topics", help="create runstream's topics if missing").set_defaults(
        func=cmd_topics)
    sub.add_parser("ingress", help="run the HTTP ingress").set_defaults(func=cmd_ingress)
    sub.add_parser("worker", help="run an execution worker").set_defaults(
        func=cmd_worker)
    sub.add_parser("reap", help="remove what dead workers' sandboxes left behind").set_defaults(
        func=cmd_reap)
    sub.add_parser("settings", help="print every setting as a Markdown table").set_defaults(
        func=cmd_settings)
    bench = sub.add_parser("bench", help="benchmarks: run, replay, report, compare, latency "
                           "(see `runstream bench run --help`)", add_help=False)
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        # `bench` has its own sub-CLI (run, replay, report, compare, latency): everything
        # after it, flags included, is its business.
        args = argparse.Namespace(command="bench", func=cmd_bench, bench_args=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        _logging(settings)
        return int(args.func(settings, args))
    except RunstreamError as e:
        print(f"runstream {args.command}: {e.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
