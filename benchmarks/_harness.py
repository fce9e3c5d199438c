"""The harness: what every scenario shares.

* :class:`Context`: the run's mode (full or ``--smoke``), sizes, repetitions, and the
  collected :class:`Result` records.
* :func:`repeat`: one warm-up (full mode) plus the measured repetitions of a callable that
  returns a dict of metrics; each metric is summarized by :class:`Stats` (median, min, max,
  coefficient of variation; ``noisy`` when CV > 10%).
* :func:`environment` and :func:`quiet_check`: the record every result file carries, and
  the guard against foreign load before each scenario.
* PostgreSQL: :func:`fresh_database` drops and recreates one system's database
  (``bench_runkit``, ``bench_raw``, ``bench_pgqueuer``, ...) in the cluster at 127.0.0.1:5432,
  so every repetition starts empty; :func:`pg_counters` reads commit and WAL counters.
* SQLite: :func:`fresh_sqlite` gives a new file per repetition.

Absolute numbers are never asserted here: a scenario records figures and ratios, and marks
a result ``incorrect`` only when runs were lost or duplicated.
"""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

PG_HOST = os.environ.get("BENCH_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("BENCH_PG_USER", "postgres")
#: Databases to connect to when creating the per-system ones, in order of preference.
ADMIN_DATABASES = ("postgres", "test")
#: CV above which a figure is flagged noisy.
NOISY_CV = 0.10
PG_SETTINGS = (
    "shared_buffers",
    "synchronous_commit",
    "fsync",
    "full_page_writes",
    "wal_level",
    "max_wal_size",
    "checkpoint_timeout",
    "commit_delay",
    "max_connections",
    "autovacuum",
    "autovacuum_vacuum_scale_factor",
    "autovacuum_vacuum_cost_delay",
)
PACKAGES = (
    "runkit",
    "SQLAlchemy",
    "psycopg",
    "psycopg-binary",
    "asyncpg",
    "anyio",
    "starlette",
    "uvicorn",
    "httpx",
    "pgqueuer",
    "procrastinate",
    "dbos",
)
ROOT = Path(__file__).resolve().parent
RESULTS_DIR = ROOT / "results"
BASELINE_RATIOS = ROOT / "baseline-ratios.json"


# --------------------------------------------------------------------------- statistics --
@dataclass
class Stats:
    median: float
    min: float
    max: float
    cv: float
    n: int
    values: list[float]

    @property
    def noisy(self) -> bool:
        return self.n > 1 and self.cv > NOISY_CV

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        mean = statistics.fmean(values)
        cv = statistics.pstdev(values) / mean if len(values) > 1 and mean else 0.0
        return cls(statistics.median(values), min(values), max(values), cv, len(values), values)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "noisy": self.noisy}


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def latency_summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(samples_ms),
        "p50_ms": percentile(samples_ms, 0.50),
        "p90_ms": percentile(samples_ms, 0.90),
        "p99_ms": percentile(samples_ms, 0.99),
        "max_ms": max(samples_ms) if samples_ms else float("nan"),
    }


# --------------------------------------------------------------------------- results -----
@dataclass
class Result:
    """One line of the report: a figure of one system in one scenario.

    ``ratio_key`` names a ratio that smoke runs compare with ``baseline-ratios.json``;
    ``higher_is_better`` says which way a regression goes.
    """

    scenario: str
    system: str
    metric: str
    stats: Stats | None = None
    value: float | None = None
    unit: str = ""
    baseline: str | None = None
    baseline_value: float | None = None
    ratio: float | None = None
    ratio_key: str | None = None
    higher_is_better: bool = True
    target: str | None = None
    met: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    skipped: str | None = None

    @property
    def figure(self) -> float | None:
        return self.stats.median if self.stats is not None else self.value

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["stats"] = self.stats.as_dict() if self.stats else None
        out["figure"] = self.figure
        return out


@dataclass
class Context:
    smoke: bool = False
    reps: int = 3
    quiet_seconds: float = 2.0
    results: list[Result] = field(default_factory=list)
    guards: dict[str, dict[str, Any]] = field(default_factory=dict)
    log_file: Any = None

    @property
    def warmup(self) -> bool:
        return not self.smoke

    @property
    def repetitions(self) -> int:
        return 1 if self.smoke else self.reps

    def size(self, full: int, smoke: int) -> int:
        return smoke if self.smoke else full

    def add(self, result: Result) -> Result:
        self.results.append(result)
        self.say(format_result(result))
        return result

    def say(self, text: str) -> None:
        print(text, flush=True)
        if self.log_file is not None:
            print(text, file=self.log_file, flush=True)


def format_result(r: Result) -> str:
    if r.skipped:
        return f"  [{r.scenario}] {r.system}: skipped ({r.skipped})"
    fig = r.figure
    text = f"  [{r.scenario}] {r.system} {r.metric} = {_num(fig)} {r.unit}".rstrip()
    if r.stats is not None and r.stats.n > 1:
        text += f" (min {_num(r.stats.min)}, max {_num(r.stats.max)}, CV {r.stats.cv:.1%}"
        text += ", NOISY)" if r.stats.noisy else ")"
    if r.ratio is not None:
        text += f"; ratio vs {r.baseline} = {r.ratio:.2f}"
    if r.target:
        verdict = "" if r.met is None else (": met" if r.met else ": MISSED")
        text += f"; target {r.target}{verdict}"
    if r.errors:
        text += f"; ERRORS: {'; '.join(r.errors)}"
    return text


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def repeat(ctx: Context, fn: Callable[[], dict[str, Any]]) -> dict[str, Stats | Any]:
    """Warm-up (full mode) plus ``ctx.repetitions`` measured calls of ``fn``. Numeric
    metrics become :class:`Stats`; other values (lists of errors, counts) are taken from
    the last repetition, except ``errors``, which are gathered from all of them."""
    if ctx.warmup:
        fn()
    runs = [fn() for _ in range(ctx.repetitions)]
    out: dict[str, Any] = {}
    for key in runs[-1]:
        values = [r[key] for r in runs]
        if key == "errors":
            out[key] = [e for v in values for e in v]
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            out[key] = Stats.of([float(v) for v in values])
        else:
            out[key] = values[-1]
    return out


# --------------------------------------------------------------------------- environment -
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def fsync_probe(seconds: float = 0.5) -> dict[str, float]:
    """fdatasync calls per second on this file system (the Python stand-in for
    ``pg_test_fsync``): the commit ceiling of durable SQLite, and roughly of PostgreSQL."""
    with tempfile.NamedTemporaryFile(dir=RESULTS_DIR) as f:
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            f.write(b"x" * 512)
            f.flush()
            os.fdatasync(f.fileno())
            n += 1
        elapsed = time.perf_counter() - start
    return {"fdatasync_per_s": n / elapsed}


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "sqlite_version": sqlite3.sqlite_version,
        "packages": _versions(),
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "pg_transport": f"tcp {PG_HOST}:{PG_PORT}",
    }
    try:
        env["fsync"] = fsync_probe()
    except OSError as err:
        env["fsync"] = {"error": str(err)}
    try:
        import psycopg

        with psycopg.connect(admin_dsn(), autocommit=True) as conn:
            env["pg_version"] = conn.execute("SELECT version()").fetchone()[0]
            rows = conn.execute(
                "SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s)",
                [list(PG_SETTINGS)],
            ).fetchall()
            env["pg_settings"] = {n: f"{s}{' ' + u if u else ''}" for n, s, u in rows}
    except Exception as err:  # no PostgreSQL: SQLite scenarios still run
        env["pg_version"] = f"unavailable: {err}"
    if shutil.which("pg_test_fsync") is None:
        env["pg_test_fsync"] = "not installed; see fsync.fdatasync_per_s"
    return env


# --------------------------------------------------------------------------- quiet guard -
def _proc_cpu_ticks() -> dict[int, tuple[str, int]]:
    out: dict[int, tuple[str, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        out[int(entry.name)] = (name, int(fields[11]) + int(fields[12]))
    return out


def quiet_check(seconds: float = 2.0) -> dict[str, Any]:
    """Sample per-process CPU for ``seconds``; foreign processes (not this one, not its
    children) above 10% of a core make the machine ``noisy``. PostgreSQL backends count as
    foreign here too: between scenarios they should be idle."""
    me = os.getpid()
    before = _proc_cpu_ticks()
    time.sleep(seconds)
    after = _proc_cpu_ticks()
    hz = os.sysconf("SC_CLK_TCK")
    busy: list[dict[str, Any]] = []
    for pid, (name, ticks) in after.items():
        if pid == me or pid not in before:
            continue
        share = (ticks - before[pid][1]) / hz / seconds
        if share > 0.02:
            busy.append({"pid": pid, "name": name, "cpu": round(share, 3)})
    busy.sort(key=lambda b: -b["cpu"])
    load = Path("/proc/loadavg").read_text().split()[:3]
    noisy = any(b["cpu"] > 0.10 for b in busy)
    return {"loadavg": load, "busy": busy[:8], "noisy": noisy}


def process_cpu_seconds(pids: list[int]) -> float:
    """utime + stime of ``pids`` (seconds); processes that are gone count zero."""
    hz = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / hz


def postgres_pids() -> list[int]:
    return [pid for pid, (name, _) in _proc_cpu_ticks().items() if name.startswith("postgres")]


# --------------------------------------------------------------------------- PostgreSQL --
def dsn(database: str) -> str:
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={database}"


def url(database: str, driver: str = "postgresql+psycopg") -> str:
    return f"{driver}://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def admin_dsn() -> str:
    import psycopg

    last: Exception | None = None
    for name in ADMIN_DATABASES:
        try:
            with psycopg.connect(dsn(name), connect_timeout=5):
                return dsn(name)
        except psycopg.OperationalError as err:
            last = err
    raise RuntimeError(f"no admin database reachable at {PG_HOST}:{PG_PORT}: {last}")


_ADMIN: str | None = None


def http_unavailable() -> str | None:
    """Why the HTTP families cannot run here (runkit_contrib unusable, PostgreSQL
    unreachable), or None."""
    try:
        import runkit_contrib

        assert callable(runkit_contrib.asgi_app)
    except Exception as err:
        return f"runkit_contrib unusable: {err}"
    return None if pg_available() else "PostgreSQL unreachable"


def pg_available() -> bool:
    global _ADMIN
    if _ADMIN is None:
        try:
            _ADMIN = admin_dsn()
        except Exception:
            _ADMIN = ""
    return bool(_ADMIN)


def fresh_database(name: str) -> str:
    """Drop (forcing out any connection) and recreate database ``name``; CHECKPOINT so the
    repetition does not pay for the previous one's dirty pages. Returns its DSN."""
    import psycopg

    assert name.startswith("bench_"), name
    assert pg_available(), "PostgreSQL is not reachable"
    with psycopg.connect(_ADMIN or admin_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute("CHECKPOINT")
    return dsn(name)


def pg_counters(database: str) -> dict[str, int]:
    """Cumulative commits of ``database`` and the cluster's WAL position (bytes). Backends
    flush their statistics when they disconnect: read this after closing the measured
    connections (or expect the figures of a still-open connection to be late)."""
    import psycopg

    with psycopg.connect(_ADMIN or admin_dsn(), autocommit=True) as conn:
        commits = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [database]
        ).fetchone()
        lsn = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
    return {"xact_commit": int(commits[0]) if commits else 0, "wal_bytes": int(lsn[0])}


def vacuum_analyze(database: str) -> None:
    import psycopg

    with psycopg.connect(dsn(database), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


# --------------------------------------------------------------------------- SQLite ------
@contextmanager
def fresh_sqlite(tag: str) -> Iterator[Path]:
    """A new, empty SQLite file for one repetition, removed (with -wal and -shm) after."""
    directory = Path(tempfile.mkdtemp(prefix=f"bench-{tag}-"))
    path = directory / f"{tag}.db"
    try:
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT.parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT.parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    rev = out.stdout.strip() or None
    return f"{rev}+dirty" if rev and dirty.stdout.strip() else rev
