"""Command line: ``python -m disciplined_widgets search worker --study NAME --storage URL``.

A worker joins an existing study (made by :class:`~disciplined_widgets.search.Search`) and runs
its trials until the study is done; start as many as you like, on any machine that reaches
the storage. A worker with nothing left to claim waits for the trials other workers still run
(or, when their worker died, until the grace period queues them again and it runs them).
The storage URL may name ``$VARS`` (read from the environment) instead of a password;
``$DISCIPLINED_WIDGETS_STORAGE`` is used when ``--storage`` is left out.
"""

from __future__ import annotations

import argparse
import math
import sys


def _positive(kind):
    """An argparse type: a finite number of ``kind`` above zero."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"must be above zero, got {text}")
        return value
    return parse


def _worker(args: argparse.Namespace) -> int:
    import torch

    from .search import Search, masked

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    from .checks import existing_device

    if args.device is not None:
        existing_device(args.device)
    if args.grace_period <= 2 * args.heartbeat:
        raise ValueError(f"--heartbeat {args.heartbeat:g} must be under half of --grace-period "
                         f"{args.grace_period:g}, or peers would fail healthy trials")
    search = Search.join(args.study, args.storage, device=args.device,
                         grace_period=args.grace_period)

    def report(number, value):
        error = search.errors().get(number) if value is None else None
        outcome = (f"{search.metric} {value}" if value is not None
                   else f"failed: {error}" if error else "interrupted, queued again")
        print(f"trial {number}: {outcome}", flush=True)

    print(f"joined {args.study!r} in {masked(search.storage_url)}: {search.progress()}", flush=True)
    try:
        progress = search.run(args.trials, on_trial=report, heartbeat=args.heartbeat)
    except KeyboardInterrupt:
        print("interrupted; the running trial was queued again", file=sys.stderr)
        return 130
    print(f"done: {progress}", flush=True)
    return 1 if progress.failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m disciplined_widgets")
    commands = parser.add_subparsers(dest="command", required=True)
    search = commands.add_parser("search", help="hyper-parameter searches on Optuna")
    search_commands = search.add_subparsers(dest="search_command", required=True)
    worker = search_commands.add_parser("worker", help="run trials of an existing study")
    worker.add_argument("--study", required=True, help="the study's name")
    worker.add_argument("--storage", default=None,
                        help="Optuna storage URL or journal:PATH "
                             "(default: $DISCIPLINED_WIDGETS_STORAGE)")
    worker.add_argument("--trials", type=_positive(int), default=None,
                        help="stop after this many trials (default: until the study is done)")
    worker.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best)")
    worker.add_argument("--threads", type=_positive(int), default=None, help="torch CPU threads")
    worker.add_argument("--heartbeat", type=_positive(float), default=5.0,
                        help="seconds between a running trial's heartbeats")
    worker.add_argument("--grace-period", type=_positive(float), default=60.0,
                        help="seconds without a heartbeat before a trial counts as failed")
    args = parser.parse_args(argv)
    try:
        return _worker(args)
    except (ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
