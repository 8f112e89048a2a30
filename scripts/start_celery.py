"""Start Aura Render's Celery processes the way the guide does.

  python scripts/start_celery.py default
      Everything through Celery only: Redis (the configured one, else an embedded one), the
      database upgrade, one `celery worker` per queue group, and beat. Ctrl+C stops them warm.
  python scripts/start_celery.py worker video_worker --queue video_generation --concurrency 2
      One worker in the foreground (this process becomes `celery worker`).
  python scripts/start_celery.py start [--beat] [--flower] [--queues q1,q2]
      Workers for every queue group (or just one worker for --queues), plus beat and Flower.
  python scripts/start_celery.py beat | flower | status
      Beat alone, Flower alone (port 5555), or `celery inspect stats`.

Workers started here are not managed by the supervisor; for a fleet you scale from the admin
page, run `python -m worker.supervisor` instead (see docs/deployment.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from launch import prepare_environment, supervise  # noqa: E402

APP = "worker.celery_app:app"


def celery_command(*args: str) -> list[str]:
    """`celery -A worker.celery_app:app ...` with this interpreter."""
    return [sys.executable, "-m", "celery", "-A", APP, *args]


def worker_command(name: str, queues: str, concurrency: int | None, max_tasks: int | None,
                   max_memory_mb: int | None, loglevel: str) -> list[str]:
    cmd = celery_command("worker", "-n", f"{name}@%h", "-Q", queues, "--loglevel", loglevel)
    if concurrency:
        cmd += ["--concurrency", str(concurrency)]
    if max_tasks:
        cmd += ["--max-tasks-per-child", str(max_tasks)]
    if max_memory_mb:
        cmd += ["--max-memory-per-child", str(max_memory_mb * 1024)]
    return cmd


def fleet_commands(queues: str | None, concurrency: int | None, beat: bool, flower: bool,
                   env: dict[str, str], loglevel: str) -> dict[str, list[str]]:
    from webapp.catalog import QUEUES, WORKER_GROUPS

    procs: dict[str, list[str]] = {}
    if queues:
        procs["worker"] = worker_command("worker", queues, concurrency, None, None, loglevel)
    else:
        for group, members in WORKER_GROUPS.items():
            suggested = max(QUEUES[q].concurrency[0] for q in members)
            procs[f"worker-{group}"] = worker_command(group, ",".join(members), concurrency or suggested,
                                                      None, None, loglevel)
    if beat:
        procs["beat"] = celery_command("beat", "--loglevel", loglevel, "-s",
                                       str(Path(env["AURA_INSTANCE"]) / "celerybeat-schedule"))
    if flower:
        command = flower_command(env)
        if command:
            procs["flower"] = command
    return procs


def flower_command(env: dict[str, str]) -> list[str] | None:
    """Flower on 127.0.0.1 only, behind basic auth: FLOWER_BASIC_AUTH (user:password) stays in the
    environment, where Flower reads it, never on the command line. None (with the reason printed)
    when Flower is missing or no credentials are configured."""
    from webapp.config import load_config

    config = load_config(env)
    if importlib.util.find_spec("flower") is None:
        print("Flower is not installed (pip install flower); starting without it.")
        return None
    if not config["FLOWER_BASIC_AUTH"] or ":" not in config["FLOWER_BASIC_AUTH"]:
        print("Flower needs FLOWER_BASIC_AUTH=user:password in the environment; starting without it.")
        return None
    return celery_command("flower", "--address=127.0.0.1", f"--port={config['FLOWER_PORT']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loglevel", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("default", help="workers for every queue group and beat")
    one = commands.add_parser("worker", help="one worker in the foreground")
    one.add_argument("name")
    one.add_argument("--queue", "-Q", default="default", help="queue or comma-separated queues")
    one.add_argument("--concurrency", "-c", type=int)
    one.add_argument("--max-tasks-per-child", type=int)
    one.add_argument("--max-memory-per-child", type=int, help="megabytes (CELERY_WORKER_MAX_MEMORY)")
    start = commands.add_parser("start", help="workers, optionally with beat and Flower")
    start.add_argument("--queues", help="one worker for these comma-separated queues")
    start.add_argument("--concurrency", "-c", type=int)
    start.add_argument("--beat", action="store_true")
    start.add_argument("--flower", action="store_true")
    commands.add_parser("beat", help="beat alone")
    commands.add_parser("flower", help="Flower alone")
    commands.add_parser("status", help="celery inspect stats")
    args = parser.parse_args(argv)

    if args.command == "worker":
        from webapp.catalog import QUEUES

        unknown = [q for q in args.queue.split(",") if q not in QUEUES]
        if unknown:
            parser.error(f"unknown queue {unknown[0]!r}; known: {', '.join(QUEUES)}")
        env, _server = prepare_environment(need_redis=False)
        cmd = worker_command(args.name, args.queue, args.concurrency, args.max_tasks_per_child,
                             args.max_memory_per_child, args.loglevel)
        os.chdir(ROOT)
        os.execve(sys.executable, cmd, env)
    if args.command == "status":
        os.execv(sys.executable, celery_command("inspect", "stats", "--timeout", "2"))
    env, server = prepare_environment(need_redis=args.command in ("default", "start", "beat"))
    if args.command == "default":
        procs = fleet_commands(None, None, True, False, env, args.loglevel)
    elif args.command == "start":
        procs = fleet_commands(args.queues, args.concurrency, args.beat, args.flower, env, args.loglevel)
    elif args.command == "beat":
        procs = fleet_commands(None, None, True, False, env, args.loglevel)
        procs = {"beat": procs["beat"]}
    else:
        procs = {"flower": flower_command(env) or []}
        if not procs["flower"]:
            return 1
    return supervise(procs, env, server)


if __name__ == "__main__":
    sys.exit(main())
