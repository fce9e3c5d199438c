"""``python -m benchmarks [--smoke] [--only NAME ...] [--reps N] [--write-baseline]``.

Runs the scenario families in order (never two at once), writes
``benchmarks/results/<mode>-<timestamp>.json`` (environment, quiet-machine guards, every
figure) and prints a summary.

Exit status: 1 if any scenario produced incorrect results (lost or duplicated runs) or, in
``--smoke`` mode, if a ratio fell below half of the one stored in
``benchmarks/baseline-ratios.json`` (or, for lower-is-better ratios, rose above twice the
larger of it and 1).
Absolute speed never fails a run. ``--write-baseline`` (full mode) stores this run's ratios.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from datetime import UTC, datetime
from typing import Any

from . import _harness as h

#: Scenario families in run order: module name, what it covers.
FAMILIES = (
    ("lifecycle", "issue #2: storage lifecycle vs B-SQ-2/3, B-PG-2/3"),
    ("pagination", "issue #2: list and log pages at depth"),
    ("e2e", "issue #3: real workers, dispatch latency (S1, S2, S3-lite, S4)"),
    ("peers", "issue #3: pgqueuer, procrastinate, DBOS in the same run"),
    ("http", "issue #4: HTTP API (S9, S10, S11) under wrk"),
    ("sse", "issue #4: SSE append -> client latency (S8)"),
    ("streams", "issue #12: GET latency and idle CPU with 0 vs 1,000 idle SSE streams"),
    ("automations", "call_automation: steps/s beside flat runs, parent wake-up latency"),
    ("file_sync", "issue #11: file_sync vs cp -r (2,000 small files, one 500 MB file)"),
    ("duckdb_transform", "issue #11: duckdb_transform overhead per run vs DuckDB direct"),
    ("memory", "issue #16: worker RSS over 100,000 runs, SSE API RSS with 100 clients"),
)
#: A smoke ratio may fall to this fraction of the stored one before the run fails.
REGRESSION_FACTOR = 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="1 repetition, small sizes")
    parser.add_argument(
        "--only", action="append", default=[], help="family or scenario prefix (repeatable)"
    )
    parser.add_argument("--reps", type=int, default=3, help="measured repetitions (full mode)")
    parser.add_argument(
        "--write-baseline", action="store_true", help="store this run's ratios (full mode)"
    )
    parser.add_argument("--no-quiet-check", action="store_true", help="skip the CPU guard")
    args = parser.parse_args(argv)

    ctx = h.Context(smoke=args.smoke, reps=max(3, args.reps) if not args.smoke else 1)
    ctx.quiet_seconds = 0.5 if args.smoke else 2.0
    h.RESULTS_DIR.mkdir(exist_ok=True)
    mode = "smoke" if args.smoke else "full"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    log_path = h.RESULTS_DIR / f"{mode}-{stamp}.log"
    started = time.monotonic()
    failures: list[str] = []
    with log_path.open("w") as log_file:
        ctx.log_file = log_file
        env = h.environment()
        ctx.say(f"runkit benchmarks ({mode}), {env['cpu_model']} x{env['nproc']}")
        ctx.say(f"  python {env['python']}, sqlite {env['sqlite_version']}, {env['pg_version']}")
        for name, what in FAMILIES:
            if args.only and not any(name.startswith(o) or o.startswith(name) for o in args.only):
                continue
            ctx.say(f"\n== {name}: {what}")
            if not args.no_quiet_check:
                guard = h.quiet_check(ctx.quiet_seconds)
                ctx.guards[name] = guard
                if guard["noisy"]:
                    ctx.say(f"  NOISY machine before {name}: {guard['busy'][:3]}")
            t0 = time.monotonic()
            try:
                module = importlib.import_module(f"benchmarks.{name}")
                module.run(ctx)
            except Exception as err:  # one broken family must not hide the others
                ctx.say(f"  {name} FAILED: {err!r}")
                ctx.say(traceback.format_exc())
                failures.append(f"{name}: crashed: {err!r}")
            ctx.say(f"  ({name}: {time.monotonic() - t0:.0f} s)")

        failures += [f"{r.scenario}/{r.system}: {e}" for r in ctx.results for e in r.errors]
        ratios = {r.ratio_key: r for r in ctx.results if r.ratio_key and r.ratio is not None}
        regressions = _regressions(ratios) if args.smoke else []
        failures += regressions
        elapsed = time.monotonic() - started
        out = {
            "mode": mode,
            "started_at": stamp,
            "elapsed_s": round(elapsed, 1),
            "git": h.git_revision(),
            "environment": env,
            "quiet_guards": ctx.guards,
            "results": [r.as_dict() for r in ctx.results],
            "failures": failures,
        }
        json_path = h.RESULTS_DIR / f"{mode}-{stamp}.json"
        json_path.write_text(json.dumps(out, indent=1, default=str))
        if args.write_baseline and not args.smoke:
            _write_baseline(ratios, stamp)
            ctx.say(f"ratios stored in {h.BASELINE_RATIOS}")
        ctx.say(f"\n{len(ctx.results)} results in {elapsed:.0f} s -> {json_path}")
        for failure in failures:
            ctx.say(f"FAIL: {failure}")
    return 1 if failures else 0


def _regressions(ratios: dict[str, h.Result]) -> list[str]:
    if not h.BASELINE_RATIOS.exists():
        return []
    stored: dict[str, Any] = json.loads(h.BASELINE_RATIOS.read_text())["ratios"]
    out: list[str] = []
    for key, result in ratios.items():
        ref = stored.get(key)
        if ref is None or result.ratio is None:
            continue
        value, higher = ref["ratio"], ref.get("higher_is_better", True)
        if higher and result.ratio < REGRESSION_FACTOR * value:
            out.append(f"{key}: ratio {result.ratio:.2f} < {REGRESSION_FACTOR} x {value:.2f}")
        # Lower-is-better ratios (deep page / first page) are allowed up to 2x the stored
        # one or 2x parity, whichever is larger: a stored ratio far below 1 comes from a
        # slow first page, and fixing that must not fail CI.
        ceiling = max(value, 1.0) / REGRESSION_FACTOR
        if not higher and result.ratio > ceiling:
            out.append(f"{key}: ratio {result.ratio:.2f} > {ceiling:.2f}")
    return out


def _write_baseline(ratios: dict[str, h.Result], stamp: str) -> None:
    """Store this run's ratios, keeping stored ones this run did not measure (``--only``)."""
    kept: dict[str, Any] = {}
    if h.BASELINE_RATIOS.exists():
        kept = json.loads(h.BASELINE_RATIOS.read_text()).get("ratios", {})
    kept.update(
        {
            key: {"ratio": round(r.ratio or 0.0, 4), "higher_is_better": r.higher_is_better}
            for key, r in ratios.items()
        }
    )
    data = {
        "comment": "Ratios of the last full run; smoke runs fail below half of these "
        "(above twice, for lower-is-better ratios). Regenerate: python -m benchmarks "
        "--write-baseline",
        "from_run": stamp,
        "ratios": dict(sorted(kept.items())),
    }
    h.BASELINE_RATIOS.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
