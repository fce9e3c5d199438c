"""``dlt_extract``: runs a dlt pipeline from a REST API, a SQL database or CSV files into a
DuckDB file under the data root; the result names the tables loaded and their row counts.

Importable without dlt (the kind is always registered): dlt and the helper modules that use
it are imported in the run's thread, and creating a run without them is a 422 naming
``runkit[dlt]``. The pieces:

* :mod:`.dlt_checks`: what a definition may say (create time, and again at run time);
* :mod:`.dlt_http`: the outbound guard for dlt's HTTP (the rest_api source's session);
* :mod:`.dlt_sources` and :mod:`.dlt_pipeline`: the source, the stages, dlt's errors;
* :mod:`.dlt_progress`: what dlt's threads share with this executor (stop, counts, logs).

dlt runs in a worker thread; this executor reports its progress every half second and, when
the run is stopped (cancel, pause, timeout, shutdown), tells the thread to stop. The thread
stops at its next check: each HTTP request (a request under way is cut off), each batch of
rows dlt writes, each file and load job, and between the stages.
"""

from __future__ import annotations

import os
import re
import threading
from contextlib import AsyncExitStack
from functools import partial
from pathlib import PurePosixPath
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import attrs

from ...authoring import Fatal, Kind, KindChecks, RetryPolicy, RunContext
from ...domain.errors import ErrorDetail, ValidationError
from ..web.common import missing_modules
from ..web.display import redact_text
from ..web.policy import current_policy as current_outbound_policy
from .dlt_checks import SOURCE_TYPES, secrets_of, source_errors
from .dlt_progress import Tracker, describe
from .root import DataRoot, current_root

EXTRA = "runkit[dlt]"
WRITE_DISPOSITIONS = ("append", "replace", "merge")
#: The libraries each source needs (pandas reads CSV; SQLAlchemy reads databases).
MODULES = {
    "rest_api": ("dlt", "duckdb", "requests"),
    "sql_database": ("dlt", "duckdb", "sqlalchemy"),
    "filesystem": ("dlt", "duckdb", "fsspec", "pandas"),
}
#: Set in the worker process (once, at the first run) before dlt is imported: dlt reads its
#: telemetry setting from its configuration only, and this is the one runkit cannot pass.
TELEMETRY_ENV = "RUNTIME__DLTHUB_TELEMETRY"
#: How often the executor writes the thread's progress and log lines.
REPORT_EVERY = 0.5
_env_lock = threading.Lock()


_PIPELINE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
_DATASET_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _check_pipeline_name(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not _PIPELINE_NAME.fullmatch(value):
        raise ValueError(
            "1 to 64 ASCII letters, digits, _ and -, not starting with - (it names a directory)"
        )


def _check_dataset_name(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not _DATASET_NAME.fullmatch(value):
        raise ValueError(
            "1 to 63 lower-case ASCII letters, digits and _, not starting with a digit"
        )


def _check_primary_key(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    columns = [value] if isinstance(value, str) else value
    if not isinstance(columns, list) or not columns:
        raise ValueError("a column name, a list of column names, or null")
    if not all(isinstance(c, str) and c for c in columns):
        raise ValueError("column names are non-empty strings")


@attrs.frozen
class DltSource:
    """Where the data comes from, by ``type``: ``rest_api`` (``config``: dlt's declarative
    REST API config), ``sql_database`` (``url``, ``tables``, ``schema``) or ``filesystem``
    (``path``, ``glob``, ``table``: CSV files under the data root). A field of another type
    is refused. (Checked field by field at create time: ``check``.)"""

    type: str
    config: Any = None  # JSON as given: its shape is checked in check(), at the field
    url: str | None = None
    tables: Any = None  # the same (cattrs would read "users" as five one-letter tables)
    schema: str | None = None
    path: str | None = None
    glob: str | None = None
    table: str | None = None


@attrs.frozen
class DltExtractConfig:
    """``{source, pipelineName, datasetName, writeDisposition="append", primaryKey=null,
    destination=null}``; ``destination`` is the DuckDB file under the data root (default
    ``<pipelineName>.duckdb``)."""

    source: DltSource
    pipeline_name: str = attrs.field(validator=_check_pipeline_name)
    dataset_name: str = attrs.field(validator=_check_dataset_name)
    write_disposition: str = attrs.field(
        default="append", validator=attrs.validators.in_(WRITE_DISPOSITIONS)
    )
    primary_key: Any = attrs.field(default=None, validator=_check_primary_key)
    destination: str | None = None

    @property
    def destination_path(self) -> str:
        return self.destination or f"{self.pipeline_name}.duckdb"


def _missing_extra(source_type: str) -> str | None:
    missing = missing_modules(MODULES.get(source_type, MODULES["rest_api"]))
    if not missing:
        return None
    return (
        f"the dlt_extract kind needs the optional dependencies of {EXTRA} (missing: "
        f"{', '.join(missing)}); install them with pip install '{EXTRA}'"
    )


def check(config: DltExtractConfig, checks: KindChecks) -> None:
    """The create-time checks beyond the fields' own: the extra, the data root, the
    outbound guard, the allowed SQL URLs (each a 422 at its field)."""
    why = _missing_extra(config.source.type)
    if why is not None:
        raise ValidationError.at(("definition",), why, "missing_extra")
    root = current_root()
    errors = source_errors(config.source, root, ("definition", "source"))
    errors.extend(_destination_errors(config, root))
    keyless = config.write_disposition == "merge" and config.primary_key is None
    if keyless and config.source.type == "filesystem":  # the others may name their own keys
        where = ("definition", "primaryKey")
        errors.append(ErrorDetail(where, "merge needs a primary key for CSV files", "missing"))
    if errors:
        raise ValidationError(errors)


def _destination_errors(config: DltExtractConfig, root: DataRoot) -> list[ErrorDetail]:
    where = ("definition", "destination")
    try:
        place = root.check(config.destination_path, where)
    except ValidationError as exc:
        return list(exc.details)
    if not place.is_local or not place.path.endswith(".duckdb"):
        return [ErrorDetail(where, "a .duckdb file under the data root", "value_error")]
    if PurePosixPath(place.path).stem == config.dataset_name:
        # DuckDB would then read the dataset's name as the file's catalog and fail.
        why = f"must differ from the DuckDB file's name ({place.path})"
        return [ErrorDetail(("definition", "datasetName"), why, "value_error")]
    return []


def quiet_environment() -> None:
    """Turn dlt's telemetry off for this process, before dlt is imported. Set once (the
    variable stays for the process: a later dlt import must read it too)."""
    with _env_lock:
        if os.environ.get(TELEMETRY_ENV) != "false":
            os.environ[TELEMETRY_ENV] = "false"


def _in_thread(config: DltExtractConfig, root: DataRoot, tracker: Tracker, **kw: Any) -> Any:
    quiet_environment()
    from .dlt_pipeline import run_pipeline  # imports dlt

    return run_pipeline(config, root, tracker=tracker, **kw)


async def _publish(ctx: RunContext, tracker: Tracker, secrets: list[str], seen: int) -> int:
    for level, message, data in tracker.take_logs():
        await ctx.log(level, redact_text(message, secrets), data=data)
    version = tracker.version
    if version != seen:
        await ctx.progress(tracker.progress())
    return version


async def execute(ctx: RunContext) -> dict[str, Any]:
    config: DltExtractConfig = ctx.definition
    why = _missing_extra(config.source.type)  # this worker may lack what the creator had
    if why is not None:
        raise Fatal(why)
    root, policy = current_root(), current_outbound_policy()
    secrets = secrets_of(config.source)
    tracker = Tracker()
    box: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        resolve = None
        if policy.resolver is not None:  # an async resolver: called on this event loop
            portal = await stack.enter_async_context(anyio.from_thread.BlockingPortal())
            resolve = partial(portal.call, policy.resolver)
        work = partial(
            _in_thread,
            config,
            root,
            tracker,
            policy=policy,
            resolve=resolve,
            secrets=secrets,
            saved=ctx.saved_checkpoint,
            # Called in the executor's own thread (ctx.sync works there): a pause asked for
            # meanwhile stops the run at this call.
            save=lambda state: ctx.sync.checkpoint(state, progress=tracker.progress()),
        )
        async with anyio.create_task_group() as group:
            done = anyio.Event()

            async def run() -> None:
                try:  # the thread is waited for, never abandoned: nothing runs behind a stop
                    box["value"] = await anyio.to_thread.run_sync(work)
                except Exception as exc:
                    box["error"] = exc
                finally:
                    done.set()

            group.start_soon(run)
            seen = -1
            try:
                while not done.is_set():
                    with anyio.move_on_after(REPORT_EVERY):
                        await done.wait()
                    seen = await _publish(ctx, tracker, secrets, seen)
            except BaseException:  # cancelled (cancel, pause, timeout, shutdown)
                tracker.stop.set()
                raise
    await _publish(ctx, tracker, secrets, seen)
    if "error" in box:
        raise box["error"]
    value: dict[str, Any] = box["value"]
    return value


KIND = Kind(
    name="dlt_extract",
    executor=execute,
    config=DltExtractConfig,
    display_name="dlt extract",
    description=(
        "Runs a dlt pipeline from a REST API, a SQL database or CSV files into a DuckDB file "
        "under the data root."
    ),
    # A pause stops the run (at a checkpoint, or after the engine's grace); resume goes on
    # from the last finished stage, which the checkpoint names (see the docs page).
    pausable=True,
    cancellable=True,
    # One more attempt when the network or the server failed (PipelineFailed, retryable);
    # an extract that failed left no package behind, so the retry starts clean.
    retry=RetryPolicy(max_attempts=2, backoff_base=10.0, backoff_max=120.0),
    timeout_seconds=6 * 3600,
    describe_progress=describe,
    example={
        "source": {
            "type": "rest_api",
            "config": {
                "client": {
                    "base_url": "https://api.example.com/v1/",
                    "auth": {"type": "bearer", "token": "<token>"},
                    "paginator": {"type": "json_link", "next_url_path": "next"},
                },
                "resources": [
                    {
                        "name": "orders",
                        "endpoint": {
                            "path": "orders",
                            "params": {"status": "shipped"},
                            "data_selector": "data",
                        },
                    }
                ],
            },
        },
        "pipelineName": "shop_orders",
        "datasetName": "raw",
        "writeDisposition": "merge",
        "primaryKey": "id",
    },
    check=check,
)

__all__ = ["KIND", "SOURCE_TYPES", "DltExtractConfig", "DltSource"]
