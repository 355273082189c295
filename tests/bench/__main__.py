"""`python -m tests.bench [area ...]`: run the benchmarks and print their figures (areas: see AREAS)."""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
import time

AREAS = ("proxy", "journal", "routing", "viewer", "storage")


def main(argv: list[str]) -> int:
    wanted = argv or list(AREAS)
    for area in wanted:
        if area not in AREAS:
            print(f"unknown area {area!r}; choose from {', '.join(AREAS)}")
            return 2
    for area in wanted:
        module = importlib.import_module(f"tests.bench.{area}")
        started = time.perf_counter()
        print(f"\n== {area}: {(module.__doc__ or '').strip().splitlines()[0]}", flush=True)
        chatter = io.StringIO()  # the harness prints process logs for test failures; show them only on one
        try:
            with contextlib.redirect_stdout(chatter):
                results = module.run()
        except BaseException:
            print(chatter.getvalue())
            raise
        for name, value, unit in results:
            print(f"  {name:<62} {value:>10.3f} {unit}")
        print(f"  ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
