"""`python -m edgeloop.demo` (what `make demo` runs). See ``edgeloop/demo/__init__.py``."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from edgeloop.core.errors import EdgeloopError
from edgeloop.demo.run import Demo


class Progress:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        s = int(time.monotonic() - self.t0)
        print(f"[{s // 60:02d}:{s % 60:02d}] {message}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="edgeloop-demo", description="Run the whole loop on the shipped data.")
    ap.add_argument("--rounds", type=int, default=5, help="discovery rounds this run (default 5)")
    # A fresh strategy model needs about a dozen usable samples: 20 makes the first round
    # train it reliably (some candidates never find a bet).
    ap.add_argument("--candidates", type=int, default=20, help="strategies generated per round (default 20)")
    ap.add_argument("--out", type=Path, default=Path("demo-report"), help="report folder (default demo-report/)")
    ap.add_argument("--var", type=Path, default=Path("var/demo"), help="state folder (default var/demo/)")
    ap.add_argument("--round-timeout", type=float, default=600.0, help="seconds one round may take")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.candidates < 1:
        ap.error("--rounds and --candidates must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    progress = Progress()
    demo = Demo(root=Path.cwd(), var=args.var, out=args.out, progress=progress)
    try:
        demo.run(rounds=args.rounds, candidates=args.candidates, round_timeout=args.round_timeout)
    except KeyboardInterrupt:
        progress("interrupted: stopping every child process (run `make demo` again to continue)")
        return 130
    except EdgeloopError as exc:
        print(f"edgeloop demo: error: {exc}", file=sys.stderr)
        return 1
    finally:
        demo.stack.close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
