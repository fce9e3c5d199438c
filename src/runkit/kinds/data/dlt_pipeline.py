"""One dlt_extract run, in its worker thread: the pipeline's stages one by one, with a stop
check between them and inside them, progress from dlt's collector, and dlt's failures named.

Imported inside the run's thread only, after ``RUNTIME__DLTHUB_TELEMETRY=false`` is set
(:func:`.dlt_extract.quiet_environment`).

Where things live, all under the data root:

* dlt's working directory: ``.runkit-dlt/pipelines/<pipelineName>/`` (``pipelines_dir``),
  with a lock file beside it, so two runs of one pipeline never share it at once;
* the DuckDB file: ``destination`` (default ``<pipelineName>.duckdb``).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dlt
import requests
from dlt.common.runtime import anon_tracker, run_context
from dlt.common.runtime.collector_base import Collector
from dlt.common.runtime.telemetry import stop_telemetry
from dlt.pipeline.exceptions import PipelineStepFailed

from ...authoring import Fatal, Retryable
from ..web.display import redact_text, redact_url
from ..web.errors import BlockedDestination
from ..web.policy import OutboundPolicy
from .dlt_http import GuardedSession, ResponseTooLarge
from .dlt_progress import Stopped, Tracker
from .dlt_sources import InvalidSource, build_source
from .root import DataRoot, PathRefused

try:  # POSIX: a lock another process also sees
    import fcntl
except ImportError:  # pragma: no cover (Windows: runs of one pipeline are not serialised)
    fcntl = None  # type: ignore[assignment]

#: dlt's working directories, relative to the data root.
WORK_DIR = ".runkit-dlt/pipelines"
#: Failures that already say what went wrong; passed on as they are.
_OWN = (Stopped, BlockedDestination, PathRefused, ResponseTooLarge, InvalidSource)
_MAX_MESSAGE = 2000
_telemetry_lock = threading.Lock()


class PipelineFailed(Fatal):
    """A stage of the dlt pipeline failed; ``error.stage`` says which."""

    def __init__(self, message: str, *, stage: str) -> None:
        super().__init__(message)
        self.details = {"stage": stage}


class _RetryablePipelineFailed(Retryable):
    def __init__(self, message: str, *, stage: str) -> None:
        super().__init__(message)
        self.details = {"stage": stage}


# Same name as its Fatal twin, so that error.type reads the same whichever was raised.
_RetryablePipelineFailed.__name__ = _RetryablePipelineFailed.__qualname__ = "PipelineFailed"


def telemetry_off() -> bool:
    """Whether dlt's telemetry is off in this process: its setting, and no tracker endpoint
    (dlt's private global: what its tracker sends to; None means it sends nothing)."""
    config = run_context.active().runtime_config
    endpoint = getattr(anon_tracker, "_ANON_TRACKER_ENDPOINT", None)
    return not config.dlthub_telemetry and endpoint is None


def _silence_telemetry() -> None:
    """If dlt resolved its runtime settings before runkit set the variable (the host used
    dlt first), stop its tracker and resolve them again, now with telemetry off."""
    with _telemetry_lock:  # runs in several threads at once must not re-resolve together
        if not telemetry_off():
            stop_telemetry()
            run_context.active().initialize_runtime()
    if not telemetry_off():
        raise Fatal("dlt's telemetry is on and runkit cannot turn it off; refusing to run")


class _Collector(Collector):
    """dlt's progress hook, called from any of dlt's threads: counts go to the tracker, and
    each call is a point where a stop unwinds dlt."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.step = ""

    def update(  # dlt's signature; message and label are not shown
        self, name: str, inc: int = 1, total: int | None = None, inc_total: int | None = None,
        message: str | None = None, label: str | None = None,
    ) -> None:  # fmt: skip
        self.tracker.count(self.step, name, inc, total, inc_total)
        self.tracker.stop.check()

    def _start(self, step: str) -> None:
        self.tracker.stop.check()

    def _stop(self) -> None:
        pass


@contextmanager
def _pipeline_lock(work: Path, name: str, tracker: Tracker) -> Iterator[None]:
    """Hold ``<name>.lock`` beside the working directory (waiting, stoppably, for a run
    that holds it)."""
    work.mkdir(parents=True, exist_ok=True)
    with open(work / f"{name}.lock", "a+b") as handle:
        waited = False
        while fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    tracker.stage("waiting")
                    tracker.log("info", f"waiting for another run of pipeline {name} to finish")
                    waited = True
                tracker.stop.wait(0.25)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def run_pipeline(
    config: Any,
    root: DataRoot,
    policy: OutboundPolicy,
    tracker: Tracker,
    resolve: Any,
    secrets: list[str],
    saved: Mapping[str, Any] | None,
    save: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Extract, normalize and load; the run's result. ``saved`` is the run's checkpoint:
    ``{"loadIds"}`` once an attempt finished extracting (a later attempt of the same run,
    after a pause, a crash or a retry, loads those packages instead of extracting again),
    and ``{"tables"}`` once it normalized them. ``save`` writes it (a pause stops there)."""
    _silence_telemetry()
    work = root.resolve(WORK_DIR)
    destination = root.resolve(config.destination_path)
    destination.parent.mkdir(parents=True, exist_ok=True)
    name, shown = config.pipeline_name, str(Path(config.destination_path))
    state = dict(saved or {})
    session = GuardedSession(policy, tracker, resolve)
    with _pipeline_lock(work, name, tracker), session:
        pipeline = dlt.pipeline(
            pipeline_name=name,
            pipelines_dir=str(work),
            destination=dlt.destinations.duckdb(credentials=str(destination)),
            dataset_name=config.dataset_name,
            progress=_Collector(tracker),
        )
        # No runtime trace: no trace file, no telemetry event per stage, and no anonymous
        # id written to dlt's global directory (the trace is what calls the tracker).
        pipeline.config.enable_runtime_trace = False
        pending = [
            *pipeline.list_extracted_load_packages(),
            *pipeline.list_normalized_load_packages(),
        ]
        try:
            if "loadIds" in state:
                tracker.log(
                    "info",
                    "an earlier attempt of this run finished extracting; normalizing and loading "
                    f"its load package(s) {', '.join(state['loadIds'])}",
                )
            else:
                if pending:
                    tracker.log(
                        "info",
                        f"loading {len(pending)} package(s) an earlier run of pipeline {name} "
                        "left unfinished, as dlt does",
                        {"loadIds": pending},
                    )
                state = {"loadIds": _extract(pipeline, config, root, session, tracker, secrets)}
                save(state)
            tracker.stop.check()
            tracker.stage("normalize")
            normalized = pipeline.normalize()
            if normalized is not None and normalized.row_counts:
                state["tables"] = _user_tables(normalized.row_counts)
                save(state)
            counts: dict[str, int] = state.get("tables", {})
            tracker.log("info", f"normalized {sum(counts.values())} rows", {"tables": counts})
            tracker.stop.check()
            tracker.stage("load")
            loaded = pipeline.load()
        except PipelineStepFailed as exc:
            raise _translate(exc, secrets) from None
        load_ids = list(loaded.loads_ids) if loaded else []
        tracker.log(
            "info",
            f"loaded {len(load_ids)} package(s) into dataset {config.dataset_name} of {shown}",
            {"loadIds": load_ids, "destination": shown, "dataset": config.dataset_name},
        )
        _forget_loaded_files(work / name, load_ids)
    tracker.stage("done")
    return {
        "pipelineName": name,
        "datasetName": config.dataset_name,
        "destination": shown,
        "tables": counts,
        "loadIds": load_ids,
    }


def _extract(
    pipeline: Any,
    config: Any,
    root: DataRoot,
    session: Any,
    tracker: Tracker,
    secrets: list[str],
) -> list[str]:
    tracker.stage("extract")
    source = build_source(config.source, root, session, secrets)
    extracted = pipeline.extract(
        source,
        write_disposition=config.write_disposition,
        primary_key=config.primary_key,
        # DuckDB loads JSON lines about ten times faster than dlt's default INSERT files.
        loader_file_format="jsonl",
    )
    tables = tracker.progress()["tables"]
    load_ids = list(extracted.loads_ids)
    tracker.log(
        "info",
        f"extracted {sum(tables.values())} rows into {len(tables)} table(s)",
        {"tables": tables, "loadIds": load_ids},
    )
    return load_ids


def _user_tables(row_counts: dict[str, int]) -> dict[str, int]:
    return {t: n for t, n in sorted(row_counts.items()) if not t.startswith("_dlt")}


def _forget_loaded_files(working_dir: Path, load_ids: list[str]) -> None:
    """Delete the data files of packages loaded without failed jobs (what dlt's own
    ``delete_completed_jobs`` setting does): otherwise a scheduled pipeline keeps a second
    copy of everything it ever loaded. The package's state and schema stay."""
    for load_id in load_ids:
        package = working_dir / "load" / "loaded" / load_id
        failed = package / "failed_jobs"
        if failed.is_dir() and any(failed.iterdir()):
            continue
        shutil.rmtree(package / "completed_jobs", ignore_errors=True)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 32:
        seen.add(id(current))
        yield current
        inner = getattr(current, "exception", None)
        if not isinstance(inner, BaseException):
            inner = current.__cause__ or current.__context__
        current = inner


def _translate(failed: PipelineStepFailed, secrets: list[str]) -> Exception:
    """The exception the run fails with: runkit's own when one is the cause, otherwise
    ``PipelineFailed`` naming the stage and the innermost error (retried when it was the
    network or the server's 429/5xx)."""
    causes = list(_causes(failed))
    for cause in causes:
        if isinstance(cause, _OWN):
            return cause
    inner = causes[-1]

    def transient(cause: BaseException) -> bool:
        if isinstance(cause, requests.ConnectionError | requests.Timeout):
            return True
        status = getattr(getattr(cause, "response", None), "status_code", None) or 0
        return isinstance(cause, requests.HTTPError) and (status == 429 or status >= 500)

    text = redact_text(f"{failed.step} failed: {type(inner).__name__}: {inner}", secrets)
    text = " ".join(redact_url(word) for word in text.split(" "))
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 1] + "…"
    if any(transient(cause) for cause in causes):
        return _RetryablePipelineFailed(text, stage=failed.step)
    return PipelineFailed(text, stage=failed.step)
