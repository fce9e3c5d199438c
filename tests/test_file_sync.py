"""file_sync as runs: trees with nested and unicode names and a 50 MB file, incremental and
checksum runs, include/exclude, delete, dry runs, no half file after a cancel, resume after a
pause without copying a file twice, symlinks out of the data root, refusals at create (422
with loc), fsspec's memory protocol, and a SIGKILLed worker whose run is reclaimed.

In-process tests run an embedded worker on the memory and SQLite stores; the data root is a
temporary directory (configure_data). The slow ones make each copy slower by wrapping the
copy's chunk or commit, so that a pause, cancel or kill lands in the middle of a sync."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import fsspec  # type: ignore[import-untyped]
import pytest

from run_support import wait_status
from runkit import Run, Runkit, Settings, Status, ValidationError
from runkit.engine import embedded_workers
from runkit.kinds.data import DataPolicy, configure_data, file_sync, file_sync_trees
from worker_proc import make_runkit

pytestmark = pytest.mark.anyio

SETTINGS = Settings(
    lease=timedelta(seconds=2),
    heartbeat=timedelta(seconds=0.3),
    rescue_interval=timedelta(seconds=0.3),
)
FAST = {"poll_interval": 0.05, "control_interval": 0.1, "grace_period": 5.0}
TERMINAL = {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED}
MB = 1024 * 1024
PROC = str(Path(__file__).with_name("file_sync_proc.py"))


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    path.mkdir()
    configure_data(DataPolicy(root=path))
    yield path
    configure_data(None)


@pytest.fixture
def memfs() -> Iterator[Any]:
    fs = fsspec.filesystem("memory")
    fs.store.clear()
    yield fs
    fs.store.clear()


@pytest.fixture(params=["memory", "sqlite"])
async def rk(request: pytest.FixtureRequest, root: Path) -> AsyncIterator[Runkit]:
    url = "memory://" if request.param == "memory" else request.getfixturevalue("sqlite_url")
    async with (
        Runkit(url, settings=SETTINGS, autoload_plugins=False) as instance,
        embedded_workers(instance, concurrency=2, **FAST),
    ):
        yield instance


def write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def digests(top: Path) -> dict[str, str]:
    """Relative path -> sha256 of every regular file under ``top``."""
    return {
        p.relative_to(top).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(top.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def make_tree(top: Path, big: bool = False) -> dict[str, str]:
    write(top / "readme.txt", b"hello\n")
    write(top / "a" / "b" / "c" / "deep.csv", b"x,y\n1,2\n")
    write(top / "données" / "café ☕.txt", "crème brûlée".encode())
    write(top / "日本語" / "データ.json", b'{"k": 1}')
    write(top / "empty.bin", b"")
    if big:
        write(top / "big" / "blob.bin", os.urandom(MB) * 50)
    return digests(top)


async def sync(rk: Runkit, within: float = 60, **definition: Any) -> Run:
    created = await rk.create("file_sync", definition, execute=True)
    return await rk.wait(created.run.id, timeout=within, poll=0.02)


async def events(rk: Runkit, run_id: Any, event: str) -> list[Any]:
    return [e async for e in rk.iter_logs(run_id) if e.event == event]


def actions(run: Run) -> dict[str, str]:
    return {f["path"]: f["action"] for f in (run.result or {})["files"]}


async def create_error(rk: Runkit, **definition: Any) -> dict[tuple[Any, ...], tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        await rk.create("file_sync", definition)
    return {tuple(d.loc): (d.type, d.msg) for d in info.value.details}


# --- registration -----------------------------------------------------------------------------
async def test_registered_with_docs_and_example(rk: Runkit) -> None:
    kind = rk.kinds.require("file_sync")
    assert kind.pausable and kind.cancellable and kind.display_name == "File sync"
    assert kind.description and kind.check is not None and kind.example is not None
    assert rk.kinds.owner("file_sync") == "runkit.kinds.data"
    kind.validate(kind.example)
    doc = Path(__file__).parent.parent / "docs" / "kinds" / "file_sync.md"
    assert "file.copied" in doc.read_text(encoding="utf-8")
    progress = {"phase": "copying", "filesDone": 120, "filesTotal": 2000}
    text = file_sync.describe({**progress, "bytesDone": 2e9, "bytesTotal": 3.5e9})
    assert text == "copying · 120 of 2,000 files (2,000.0 of 3,500.0 MB)"


# --- copying ------------------------------------------------------------------------------------
async def test_tree_copy_then_incremental_then_checksum(rk: Runkit, root: Path) -> None:
    source = make_tree(root / "src", big=True)
    first = await sync(rk, source="src", destination="out/dst")
    assert first.status is Status.SUCCEEDED, first.error
    result = first.result or {}
    assert (result["copied"], result["skipped"], result["deleted"]) == (6, 0, 0)
    sizes = [p.stat().st_size for p in (root / "src").rglob("*") if p.is_file()]
    assert result["bytes"] == sum(sizes) and 50 * MB in sizes
    assert result["truncated"] is False and result["dryRun"] is False
    assert set(actions(first)) == set(source) and set(actions(first).values()) == {"copied"}
    assert digests(root / "out" / "dst") == source
    for rel in source:  # modification times go with the content
        copy, original = (root / "out/dst" / rel).stat(), (root / "src" / rel).stat()
        assert copy.st_mtime_ns == original.st_mtime_ns
    progress = first.progress or {}
    assert progress["phase"] == "done" and progress["filesDone"] == progress["filesTotal"] == 6
    assert progress["bytesDone"] == progress["bytesTotal"] == result["bytes"]
    copied = await events(rk, first.id, "file.copied")
    assert sorted(e.data["path"] for e in copied) == sorted(source)

    second = await sync(rk, source="src", destination="out/dst")
    assert ((second.result or {})["copied"], (second.result or {})["skipped"]) == (0, 6)
    assert not await events(rk, second.id, "file.copied")

    # A same-size change with the old mtime: size_mtime cannot see it, checksum does.
    changed = root / "src" / "a" / "b" / "c" / "deep.csv"
    stamp = changed.stat().st_mtime_ns
    changed.write_bytes(b"x,y\n9,9\n")
    os.utime(changed, ns=(stamp, stamp))
    blind = await sync(rk, source="src", destination="out/dst")
    assert (blind.result or {})["copied"] == 0
    seen = await sync(rk, source="src", destination="out/dst", compare="checksum")
    assert seen.status is Status.SUCCEEDED, seen.error
    assert (seen.result or {})["copied"] == 1 and actions(seen)["a/b/c/deep.csv"] == "copied"
    assert digests(root / "out" / "dst") == digests(root / "src")
    assert not [p for p in (root / "out").rglob("*.part")]


async def test_include_and_exclude(rk: Runkit, root: Path) -> None:
    for rel in ["a.csv", "b.txt", "sub/c.csv", "sub/tmp/d.csv", "logs/e.log", "logs/old/f.log"]:
        write(root / "src" / rel, rel.encode())
    done = await sync(
        rk,
        source="src",
        destination="dst",
        include=["**/*.csv", "logs"],
        exclude=["sub/tmp", "**/old"],
    )
    assert done.status is Status.SUCCEEDED, done.error
    assert set(digests(root / "dst")) == {"a.csv", "sub/c.csv", "logs/e.log"}
    assert (done.result or {})["copied"] == 3
    top = await sync(rk, source="src", destination="dst2", include=["*.csv", "?.txt"])
    assert set(digests(root / "dst2")) == {"a.csv", "b.txt"}
    assert (top.result or {})["copied"] == 2


def test_glob_semantics() -> None:
    keep = file_sync.Filter(("**/*.csv", "data/[!x]*.json"), ("**/tmp",))
    assert keep.keep("a.csv") and keep.keep("x/y/z.csv") and keep.keep("data/a.json")
    assert not keep.keep("data/x.json") and not keep.keep("a/tmp/b.csv")
    assert not keep.keep("a.csv.bak") and keep.excluded("tmp/anything")
    everything = file_sync.Filter(("**/*",), ())
    assert everything.keep(".hidden") and everything.keep("a/b/c")


async def test_delete_only_when_asked(rk: Runkit, root: Path) -> None:
    write(root / "src" / "keep.txt", b"k")
    write(root / "dst" / "extra.txt", b"e")
    write(root / "dst" / "old" / "gone.txt", b"g")
    write(root / "dst" / "notes.log", b"excluded: kept")
    foreign = write(root / "dst" / ".x.txt.runkit-0123456789ab.part", b"another run's")
    kept = await sync(rk, source="src", destination="dst", exclude=["*.log"])
    assert (kept.result or {})["deleted"] == 0 and (root / "dst" / "extra.txt").exists()
    done = await sync(rk, source="src", destination="dst", exclude=["*.log"], delete=True)
    assert done.status is Status.SUCCEEDED, done.error
    assert (done.result or {})["deleted"] == 2
    assert actions(done) == {
        "keep.txt": "skipped",
        "extra.txt": "deleted",
        "old/gone.txt": "deleted",
    }
    assert set(digests(root / "dst")) == {"keep.txt", "notes.log", foreign.name}
    assert len(await events(rk, done.id, "file.deleted")) == 2


async def test_dry_run_changes_nothing(rk: Runkit, root: Path) -> None:
    write(root / "src" / "new.txt", b"new")
    write(root / "src" / "same.txt", b"same")
    write(root / "dst" / "extra.txt", b"extra")
    await sync(rk, source="src", destination="dst")
    write(root / "src" / "later.txt", b"later")

    def snapshot() -> list[tuple[str, bytes, int]]:
        return [
            (p.as_posix(), p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted((root / "dst").rglob("*"))
            if p.is_file()
        ]

    before = snapshot()
    dry = await sync(rk, source="src", destination="dst", delete=True, dryRun=True)
    assert dry.status is Status.SUCCEEDED, dry.error
    assert snapshot() == before
    result = dry.result or {}
    assert (result["copied"], result["deleted"], result["dryRun"]) == (1, 1, True)
    assert actions(dry) == {
        "later.txt": "copied",
        "new.txt": "skipped",
        "same.txt": "skipped",
        "extra.txt": "deleted",
    }
    assert [e.data["path"] for e in await events(rk, dry.id, "file.would_copy")] == ["later.txt"]
    assert not await events(rk, dry.id, "file.copied")
    nowhere = await sync(rk, source="src", destination="nowhere", dryRun=True)
    assert (nowhere.result or {})["copied"] == 3 and not (root / "nowhere").exists()


async def test_the_result_lists_at_most_LISTED_files(
    rk: Runkit, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_sync, "LISTED", 3)
    for i in range(5):
        write(root / "src" / f"{i}.txt", b"x")
    done = await sync(rk, source="src", destination="dst")
    result = done.result or {}
    assert result["copied"] == 5 and result["truncated"] is True
    assert [f["path"] for f in result["files"]] == ["0.txt", "1.txt", "2.txt"]


# --- cancel and pause ---------------------------------------------------------------------------
def slow_chunks(monkeypatch: pytest.MonkeyPatch, delay: float, chunk: int = MB) -> None:
    pump = file_sync_trees.Transfer.pump

    def slow(self: file_sync_trees.Transfer, limit: int) -> tuple[int, bool]:
        time.sleep(delay)
        return pump(self, limit)

    monkeypatch.setattr(file_sync_trees.Transfer, "pump", slow)
    monkeypatch.setattr(file_sync, "CHUNK", chunk)


async def test_cancel_mid_file_leaves_no_half_file(
    rk: Runkit, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_chunks(monkeypatch, 0.05, MB // 4)  # 25 steps of 2 MiB (8 chunks in the kernel): 1.25 s
    write(root / "src" / "a.txt", b"first")
    write(root / "src" / "big.bin", os.urandom(MB) * 50)
    run = (await rk.create("file_sync", {"source": "src", "destination": "dst"}, execute=True)).run
    with anyio.fail_after(20):
        while not (  # noqa: ASYNC110
            (p := (await rk.get(run.id)).progress).get("current") == "big.bin"
            and p.get("bytesDone", 0) > 4 * MB
        ):
            await anyio.sleep(0.02)
    await rk.cancel(run.id)
    stopped = await wait_status(rk, run.id, TERMINAL, within=10)
    assert stopped.status is Status.CANCELLED
    assert (root / "dst" / "a.txt").read_bytes() == b"first"
    assert not (root / "dst" / "big.bin").exists()  # never a partial file under its name
    assert [p.name for p in (root / "dst").iterdir()] == ["a.txt"]  # nor a temporary one


async def test_pause_resume_copies_each_file_once(
    rk: Runkit, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_chunks(monkeypatch, 0.02)
    source = {
        f"d{i % 3}/f{i:02}.txt": write(root / "src" / f"d{i % 3}/f{i:02}.txt", b"%d" % i)
        for i in range(40)
    }
    run = (await rk.create("file_sync", {"source": "src", "destination": "dst"}, execute=True)).run
    with anyio.fail_after(20):
        while len(await events(rk, run.id, "file.copied")) < 5:  # noqa: ASYNC110
            await anyio.sleep(0.02)
    shown = await rk.display_status(await rk.get(run.id))
    assert shown.startswith("Running · copying · ") and "of 40 files" in shown
    await rk.pause(run.id)
    paused = await wait_status(rk, run.id, {Status.PAUSED}, within=10)
    done_before = len(digests(root / "dst"))
    assert 5 <= done_before < 40 and paused.checkpoint is not None
    assert paused.checkpoint["filesDone"] == done_before == (paused.progress or {})["filesDone"]
    await rk.resume(run.id)
    done = await wait_status(rk, run.id, TERMINAL, within=30)
    assert done.status is Status.SUCCEEDED, done.error
    copied = await events(rk, run.id, "file.copied")
    per_file = Counter(e.data["path"] for e in copied)
    assert set(per_file) == set(source) and set(per_file.values()) == {1}  # none twice
    assert {e.attempt for e in copied} == {1, 2}
    assert (done.result or {})["copied"] == 40 and set(actions(done).values()) == {"copied"}
    assert len(await events(rk, run.id, "sync.resumed")) == 1
    assert digests(root / "dst") == digests(root / "src")


# --- the data root ------------------------------------------------------------------------------
async def test_a_symlink_out_of_the_root_fails_the_run(
    rk: Runkit, root: Path, tmp_path: Path
) -> None:
    secret = write(tmp_path / "outside" / "secret.txt", b"not yours")
    write(root / "src" / "ok.txt", b"ok")
    (root / "src" / "leak.txt").symlink_to(secret)
    failed = await sync(rk, source="src", destination="dst")
    assert failed.status is Status.FAILED and failed.error is not None
    assert failed.error["type"] == "PathRefused" and failed.error["path"] == "src/leak.txt"
    assert not (root / "dst" / "leak.txt").exists()
    (root / "src" / "leak.txt").unlink()
    # Inside the root: a link to a file is copied as that file; one to a directory is not
    # followed (no loops, no double copies), and said so.
    write(root / "shared" / "common.txt", b"common")
    (root / "src" / "common.txt").symlink_to(root / "shared" / "common.txt")
    (root / "src" / "loop").symlink_to(root / "src")
    done = await sync(rk, source="src", destination="dst")
    assert done.status is Status.SUCCEEDED, done.error
    assert not (root / "dst" / "common.txt").is_symlink()
    assert (root / "dst" / "common.txt").read_bytes() == b"common"
    assert not (root / "dst" / "loop").exists()
    ignored = await events(rk, done.id, "file.ignored")
    assert [e.message for e in ignored] == [
        "left alone: loop: a symlink to a directory (or nothing)"
    ]


async def test_a_destination_symlink_out_of_the_root_fails_the_run(
    rk: Runkit, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    write(root / "src" / "sub" / "x.txt", b"x")
    (root / "dst").mkdir()
    (root / "dst" / "sub").symlink_to(outside)
    failed = await sync(rk, source="src", destination="dst")
    assert failed.error is not None and failed.error["type"] == "PathRefused"
    assert list(outside.iterdir()) == []


async def test_places_that_overlap_through_a_symlink_fail_the_run(rk: Runkit, root: Path) -> None:
    write(root / "src" / "a.txt", b"a")
    (root / "alias").symlink_to(root / "src")
    failed = await sync(rk, source="src", destination="alias/copy")  # literally apart
    assert failed.error is not None and failed.error["type"] == "SyncError"
    assert "overlap" in failed.error["message"] and not (root / "src" / "copy").exists()


async def test_a_symlink_swapped_in_during_the_run_is_caught(
    rk: Runkit, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_chunks(monkeypatch, 0.1)
    write(tmp_path / "outside" / "later" / "z.txt", b"secret")
    for i in range(10):  # a second of copying before "later" comes
        write(root / "src" / f"a{i}.txt", b"a")
    write(root / "src" / "later" / "z.txt", b"z")
    run = (await rk.create("file_sync", {"source": "src", "destination": "dst"}, execute=True)).run
    with anyio.fail_after(20):
        while not await events(rk, run.id, "file.copied"):  # noqa: ASYNC110
            await anyio.sleep(0.01)
    (root / "src" / "later" / "z.txt").unlink()
    (root / "src" / "later").rmdir()
    (root / "src" / "later").symlink_to(tmp_path / "outside" / "later")
    failed = await wait_status(rk, run.id, TERMINAL, within=10)
    assert failed.error is not None and failed.error["type"] == "PathRefused", failed.error
    assert not (root / "dst" / "later" / "z.txt").exists()


@pytest.mark.parametrize(
    ("definition", "loc", "code"),
    [
        ({"source": "../etc", "destination": "d"}, "source", "path_refused"),
        ({"source": "s", "destination": "/tmp/x"}, "destination", "path_refused"),
        ({"source": "s", "destination": "a\\..\\b"}, "destination", "path_refused"),
        ({"source": "file:///etc", "destination": "d"}, "source", "path_refused"),
        ({"source": "s3://bucket/x", "destination": "d"}, "source", "protocol_refused"),
        ({"source": "data", "destination": "data/backup"}, "destination", "overlap"),
        ({"source": "./data/", "destination": "data"}, "destination", "overlap"),
        ({"source": "a/b", "destination": "a"}, "destination", "overlap"),
        ({"source": "s", "destination": "d", "compare": "fast"}, "compare", "value_error"),
        ({"source": "s", "destination": "d", "include": ["/"]}, "include", "value_error"),
        ({"source": "s", "destination": "d", "exclude": ["a\nb"]}, "exclude", "value_error"),
        ({"source": "s"}, "destination", "missing"),
    ],
)
async def test_refused_at_create(
    rk: Runkit, definition: dict[str, Any], loc: str, code: str
) -> None:
    errors = await create_error(rk, **definition)
    assert list(errors) == [("definition", loc)], errors
    assert errors[("definition", loc)][0] == code


async def test_both_paths_refused_at_once(rk: Runkit) -> None:
    errors = await create_error(rk, source="../a", destination="/b")
    assert set(errors) == {("definition", "source"), ("definition", "destination")}
    assert "'..'" in errors[("definition", "source")][1]


async def test_without_fsspec_create_names_the_extra(
    rk: Runkit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "fsspec", None)
    errors = await create_error(rk, source="s", destination="d")
    (loc, (code, message)), *_ = errors.items()
    assert loc == ("definition",) and code == "missing_extra" and "runkit[files]" in message


def test_the_module_imports_without_fsspec() -> None:
    code = (
        "import sys; sys.modules['fsspec'] = None\n"
        "import runkit.kinds.data.file_sync as m\n"
        "loaded = {name for name, module in sys.modules.items() if module}\n"
        "assert m.KIND.name == 'file_sync' and 'fsspec' not in loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_memory_protocol_refused_then_allowed(rk: Runkit, root: Path, memfs: Any) -> None:
    errors = await create_error(rk, source="src", destination="memory://bucket/copy")
    assert errors[("definition", "destination")][0] == "protocol_refused"
    configure_data(DataPolicy(root=root, protocols=("memory",)))
    source = make_tree(root / "src")
    up = await sync(rk, source="src", destination="memory://bucket/copy")
    assert up.status is Status.SUCCEEDED, up.error
    assert (up.result or {})["copied"] == len(source)
    assert memfs.cat("/bucket/copy/données/café ☕.txt") == "crème brûlée".encode()
    again = await sync(rk, source="src", destination="memory://bucket/copy")
    assert (again.result or {})["copied"] == 0  # the store's own mtime is newer
    down = await sync(rk, source="memory://bucket/copy", destination="back", compare="checksum")
    assert down.status is Status.SUCCEEDED, down.error
    assert digests(root / "back") == source
    memfs.pipe("/bucket/copy/extra.txt", b"e")
    pruned = await sync(rk, source="src", destination="memory://bucket/copy", delete=True)
    assert (pruned.result or {})["deleted"] == 1 and not memfs.exists("/bucket/copy/extra.txt")
    assert not [p for p in memfs.find("/bucket") if p.endswith(".part")]
    errors = await create_error(rk, source="memory://bucket", destination="memory://bucket/x")
    assert errors[("definition", "destination")][0] == "overlap"


# --- a worker killed mid-sync -------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    value: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return value


@pytest.mark.slow
async def test_sigkill_mid_sync_is_reclaimed_without_copying_twice(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    for i in range(200):
        write(data / "src" / f"d{i % 7}" / f"file-{i:03}.bin", os.urandom(4096 + i))
    monkeypatch.setenv("RUNKIT_DATA_ROOT", str(data))
    env = {**os.environ, "RUNKIT_TEST_SYNC_DELAY": "0.03"}
    env.pop("RUNKIT_ENABLE_TEST_KINDS", None)
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []

    def spawn() -> subprocess.Popen[bytes]:
        logs.append(open(tmp_path / f"worker-{len(procs)}.log", "wb"))  # noqa: SIM115
        command = [sys.executable, PROC, url]
        procs.append(subprocess.Popen(command, env=env, stdout=logs[-1], stderr=logs[-1]))
        return procs[-1]

    try:
        async with make_runkit(url, proc_kinds=False) as rk:
            first = spawn()
            definition = {"source": "src", "destination": "dst", "compare": "checksum"}
            run = (await rk.create("file_sync", definition, execute=True)).run
            with anyio.fail_after(30):
                while len(await events(rk, run.id, "file.copied")) < 40:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
            at_kill = (await rk.get(run.id)).checkpoint or {}
            assert 40 <= at_kill["filesDone"] < 200
            spawn()
            done = await wait_status(rk, run.id, TERMINAL, within=60)
            assert done.status is Status.SUCCEEDED, done.error
            assert done.interrupt_count == 1 and done.attempt == 2
            copied = await events(rk, run.id, "file.copied")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
        for log in logs:
            log.close()
    assert digests(data / "dst") == digests(data / "src")  # every file, checksummed
    by_attempt: dict[int, set[str]] = {1: set(), 2: set()}
    for entry in copied:
        by_attempt[entry.attempt].add(entry.data["path"])
    assert len(copied) == len(by_attempt[1]) + len(by_attempt[2])  # none twice in an attempt
    assert not by_attempt[1] & by_attempt[2]  # none copied in attempt 1 copied again
    assert all(path > at_kill["after"] for path in by_attempt[2])  # resumed after the cursor
    result = done.result or {}
    assert result["copied"] + result["skipped"] == 200
    assert not [p for p in (data / "dst").rglob("*") if p.name.endswith(".part")]
