"""``avlora``: start the studio and run each engine step without the web app."""

from __future__ import annotations

import argparse
import sys


def _cmd_migrate(_args: argparse.Namespace) -> int:
    from core.migrate import upgrade

    upgrade()
    print("database is up to date")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from avlora.serve import serve

    return serve(host=args.host, port=args.port, with_worker=not args.no_worker, open_queues=args.queues)


def _cmd_worker(args: argparse.Namespace) -> int:
    from avlora.serve import run_worker

    return run_worker(queues=args.queues, concurrency=args.concurrency)


def build_parser() -> argparse.ArgumentParser:
    from core.names import QUEUES

    every_queue = ",".join(QUEUES)
    parser = argparse.ArgumentParser(prog="avlora", description="AV-LoRA Studio")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="web studio + migrations + (embedded) worker; prints the URL")
    p.add_argument("--host", default=None, help="default: AVLORA_HOST or 127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="default: AVLORA_PORT or 8000")
    p.add_argument("--no-worker", action="store_true", help="do not start a worker subprocess")
    p.add_argument("--queues", default=every_queue, help="queues of the embedded worker")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("worker", help="a Celery worker")
    p.add_argument("--queues", default=every_queue, help=f"comma-separated: {', '.join(QUEUES)}")
    p.add_argument("--concurrency", type=int, default=1)
    p.set_defaults(func=_cmd_worker)

    p = sub.add_parser("migrate", help="apply database migrations")
    p.set_defaults(func=_cmd_migrate)

    from worker.engine.commands import register_all
    from worker.speech.cli import register as register_speech

    register_all(sub)
    register_speech(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
