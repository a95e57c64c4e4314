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
from runstream.services.logs import configure as configure_logging
from runstream.services.process import EXIT_OK, StopSignals, killed_by
from runstream.services.settings import Settings

log = logging.getLogger("runstream")


def _logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)


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
    # Synchronous handlers: this process's main thread waits on ``stop``, not on a loop.
    StopSignals(lambda _: stop.set(), on_second=lambda _: broker.kill(),
                second="second signal: killing the broker now", log=log).install()
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


def cmd_callbacks(settings: Settings, args: argparse.Namespace) -> int:
    """Run a webhook deliverer without HTTP until SIGINT/SIGTERM (docs/webhooks.md)."""
    from runstream.services.ingress.webhooks import run_deliverer

    async def deliver() -> None:
        stop = asyncio.Event()
        # run_deliverer bounds its own stop; a second signal changes nothing.
        StopSignals(lambda _: stop.set(), on_second=None, log=log).install(
            asyncio.get_running_loop())
        await run_deliverer(settings, stop)

    asyncio.run(deliver())
    return EXIT_OK


def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    """API keys (docs/keys.md): create (the key is shown once), list, revoke."""
    import orjson
    from runstream.schemas.keys import record_to_doc
    from runstream.services.execution.languages import Registry
    from runstream.streams.keys import create_key, read_keys, revoke_key

    def public(doc: dict[str, object]) -> dict[str, object]:  # never a secret, nor its hash
        return {k: v for k, v in doc.items() if k not in ("hash", "webhook_secret", "schema")}

    if args.keys_command == "create":
        languages = None
        if args.languages:
            registry = Registry.from_settings(settings)
            languages = tuple(sorted({registry.resolve(name.strip()).name
                                      for name in args.languages.split(",") if name.strip()}))
        record, key = asyncio.run(create_key(
            settings, args.name, rate_per_s=args.rate, burst=args.burst,
            max_concurrent=args.concurrency, languages=languages))
        if args.json:
            print(orjson.dumps(public(record_to_doc(record)) | {
                "key": key, "webhook_secret": record.webhook_secret}).decode())
            return 0
        rate = f"{record.rate_per_s:g}/s, bursts of {record.burst}" if record.rate_per_s else (
            "unlimited")
        print(f"created API key {record.id} ({record.name})\n"
              f"  key:            {key}\n"
              f"  webhook secret: {record.webhook_secret}\n"
              f"  rate: {rate}; concurrency: {record.max_concurrent or 'unlimited'}; "
              f"languages: {', '.join(record.languages or ()) or 'all'}\n"
              "Store the key and the webhook secret now: they are not shown again.")
        return 0
    if args.keys_command == "list":
        records = asyncio.run(read_keys(settings))
        if args.json:
            print(orjson.dumps([public(record_to_doc(r)) for r in records]).decode())
            return 0
        rows = [("ID", "NAME", "CREATED", "REVOKED", "RATE/S", "BURST", "CONCURRENCY",
                 "LANGUAGES")]
        rows += [(r.id, r.name, f"{r.created_at:%Y-%m-%d %H:%M:%S}",
                  f"{r.revoked_at:%Y-%m-%d %H:%M:%S}" if r.revoked_at else "-",
                  f"{r.rate_per_s:g}" if r.rate_per_s else "unlimited", str(r.burst),
                  str(r.max_concurrent or "unlimited"), ",".join(r.languages or ()) or "all")
                 for r in records]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        return 0
    revoked = asyncio.run(revoke_key(settings, args.key_id))
    if revoked is None or revoked.revoked_at is None:
        print(f"runstream keys: no API key {args.key_id!r}", file=sys.stderr)
        return 2
    print(f"revoked API key {revoked.id} ({revoked.name}) at "
          f"{revoked.revoked_at:%Y-%m-%d %H:%M:%S} UTC")
    return 0


def _keys_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="API keys: create, list, revoke "
                          "(docs/keys.md)")
    keys.set_defaults(func=cmd_keys)
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="create a key; prints it once")
    create.add_argument("--name", required=True, help="a label for people (1-128 characters)")
    create.add_argument("--rate", type=float, default=10.0,
                        help="requests per second that create work, sustained (0: unlimited; "
                        "default 10)")
    create.add_argument("--burst", type=int, default=None,
                        help="requests at once after a quiet period (default: 2 s of --rate)")
    create.add_argument("--concurrency", type=int, default=4,
                        help="executions in flight per ingress (0: unlimited; default 4)")
    create.add_argument("--languages", default="",
                        help="comma-separated languages the key may run (default: all)")
    create.add_argument("--json", action="store_true", help="print JSON")
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    revoke = actions.add_parser("revoke", help="revoke a key (every ingress within ~1 s)")
    revoke.add_argument("key_id", help="the key's id (rs_<id>_...)")


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
    sub.add_parser("callbacks", help="deliver webhooks only (the ingresses do it too, "
                   "unless RUNSTREAM_CALLBACK_DELIVER=false)").set_defaults(func=cmd_callbacks)
    sub.add_parser("reap", help="remove what dead workers' sandboxes left behind").set_defaults(
        func=cmd_reap)
    _keys_parser(sub)
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
        return killed_by(signal.SIGINT)


if __name__ == "__main__":
    sys.exit(main())
