"""A producer for the fault tests: enqueues single jobs and batches with idempotency keys until
it is killed (or has enqueued --groups groups), logging what it asked for and what was
acknowledged.

Run as `python -m tests.system.faults.producer ACKS RUN SEED` with ERRANDS_BROKER_URL set.
Each group is one enqueue call: `r<run>s<n>` holds one job, `r<run>b<n>` a batch; its jobs'
idempotency keys are `<group>-<j>`. Lines appended to ACKS (one O_APPEND write each):

    intent <group> <size> <t>           before the enqueue call
    ack <group> <key>=<id>,... <t>      right after it returned
    error <group> <ErrorType> <t>       a typed BrokerError; the same group is sent again
    untyped <group> <ErrorType> <t>     any other exception; the producer exits 3
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import errands
from tests.system.faults import faultapp
from tests.system.faults.trail import append


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("acks")
    parser.add_argument("run", type=int)
    parser.add_argument("seed", type=int)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--singles", type=float, default=0.5, help="share of single enqueues")
    parser.add_argument("--groups", type=int, default=0, help="stop after this many (0: never)")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds between groups")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    app = faultapp.app
    n = 0
    while not args.groups or n < args.groups:
        single = rng.random() < args.singles
        group = f"r{args.run}{'s' if single else 'b'}{n}"
        size = 1 if single else args.batch
        keys = [f"{group}-{j}" for j in range(size)]
        append(args.acks, f"intent {group} {size} {time.monotonic():.6f}")
        while True:
            try:
                if single:
                    handles = [faultapp.noop.options(idempotency_key=keys[0]).enqueue(n)]
                else:
                    calls = [faultapp.noop.options(idempotency_key=k).call(n) for k in keys]
                    handles = app.enqueue_many(calls)
            except errands.BrokerError as error:
                append(args.acks, f"error {group} {type(error).__name__} {time.monotonic():.6f}")
                continue  # the same keys again: a stored twin comes back as a duplicate
            except Exception as error:
                append(args.acks, f"untyped {group} {type(error).__name__} {time.monotonic():.6f}")
                return 3
            break
        pairs = ",".join(f"{k}={h.id}" for k, h in zip(keys, handles, strict=True))
        append(args.acks, f"ack {group} {pairs} {time.monotonic():.6f}")
        n += 1
        if args.pause:
            time.sleep(args.pause)  # pacing for the lock test, not a wait for anything
    app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
