"""A long mutation-fuzzing run of riffd's decoders (the CI test runs a short, seeded one).

    /tmp/venv/bin/python tests/fuzz/long_run.py --seconds 600 --seed 1

Prints cases per decoder, how many were refused, the slowest case and the process's peak
memory; exits 1 and prints the inputs if any case raised something other than a RiffdError.
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]

from fuzz.engine import FuzzReport, Fuzzer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="how long to run (default 120)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=2000, help="cases per decoder between progress lines")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # python-osc warns once per unknown type tag
    fuzzer, report = Fuzzer(args.seed), FuzzReport()
    started = time.monotonic()
    rss_start_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    while time.monotonic() - started < args.seconds:
        fuzzer.run(args.batch, report, deadline_s=args.seconds - (time.monotonic() - started))
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{time.monotonic() - started:7.1f} s  {report.total:9d} cases  {len(report.failures)} failures  "
              f"slowest {report.slowest_case_s * 1000:.1f} ms  peak RSS {peak_mib:.0f} MiB", flush=True)
    elapsed_s = time.monotonic() - started
    print(f"\n{report.total} cases in {elapsed_s:.0f} s ({report.total / elapsed_s:.0f}/s), seed {args.seed}")
    for target, cases in report.cases.items():
        print(f"  {target:12s} {cases:9d} cases, {report.refused.get(target, 0):9d} refused with a RiffdError")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"slowest case {report.slowest_case_s * 1000:.1f} ms; peak RSS {peak_mib:.0f} MiB "
          f"(start {rss_start_mib:.0f} MiB)")
    for target, error, data in report.failures[:20]:
        print(f"FAILURE {target}: {error}\n  input: {data!r:.500}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
