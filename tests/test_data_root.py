"""The data root: every way a path could leave it is refused, literally at create time and
for real (symlinks, devices) at run time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runkit import ValidationError
from runkit.kinds.data import DataPolicy, DataRoot, PathRefused, configure_data, current_root

LOC = ("definition", "path")

#: Literal paths refused at create time, with the reason's key words.
REFUSED = [
    ("", "empty"),
    ("../etc/passwd", "'..'"),
    ("a/../../b", "'..'"),
    ("..", "'..'"),
    ("/etc/passwd", "absolute"),
    ("C:/Windows", "absolute"),
    ("a\\..\\b", "backslash"),
    ("a\x00b", "control"),
    ("a\nb", "control"),
    ("\uff0e\uff0e/etc", "normalised"),  # fullwidth full stops: ".." under NFKC
    ("a\uff0fb", "normalised"),  # fullwidth solidus
    ("a\u2024\u2024/b", "normalised"),  # one dot leader
    ("x" * 300, "longer than 255"),
    ("a/" * 600, "longer than 1024"),
]


@pytest.fixture
def root(tmp_path: Path) -> DataRoot:
    return DataRoot(tmp_path / "data")


@pytest.mark.parametrize(("path", "why"), REFUSED)
def test_literal_refusals_are_422s_at_the_definitions_field(
    root: DataRoot, path: str, why: str
) -> None:
    with pytest.raises(ValidationError) as info:
        root.check(path, LOC)
    detail = info.value.details[0]
    assert detail.loc == LOC and why in detail.msg and detail.type == "path_refused"
    with pytest.raises(PathRefused):
        root.resolve(path)


@pytest.mark.parametrize(
    "path",
    ["a.csv", "dir/sub/file.parquet", "café/naïve.txt", "日本語/データ.csv", ".hidden", "a..b"],
)
def test_ordinary_names_pass_and_resolve_inside(root: DataRoot, path: str) -> None:
    assert root.check(path, LOC).path == path
    real = root.resolve(path)
    assert root.contains(real) and real.name == Path(path).name


def test_urls_need_their_protocol_allowed(root: DataRoot) -> None:
    for url, code in [
        ("s3://bucket/key", "protocol_refused"),
        ("memory://x", "protocol_refused"),
        ("file:///etc/passwd", "path_refused"),
    ]:
        with pytest.raises(ValidationError) as info:
            root.check(url, LOC)
        assert info.value.details[0].type == code
    allowed = DataRoot(root.path, ("memory",))
    assert allowed.check("memory://x/y", LOC).protocol == "memory"
    with pytest.raises(ValueError, match="file://"):
        DataPolicy(protocols=("file",))


def test_a_symlink_out_of_the_root_is_refused_at_run_time(root: DataRoot, tmp_path: Path) -> None:
    real_root = root.real_root()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("no")
    (real_root / "link").symlink_to(outside)
    (real_root / "file-link").symlink_to(outside / "secret.txt")
    root.check("link/secret.txt", LOC)  # literally fine: only the file system knows
    for path in ("link/secret.txt", "link", "file-link"):
        with pytest.raises(PathRefused, match="out of the data root"):
            root.resolve(path)
    (real_root / "inside").mkdir()
    (real_root / "ok-link").symlink_to(real_root / "inside")
    assert root.resolve("ok-link") == real_root / "inside"  # a link inside stays allowed


def test_a_sibling_with_the_roots_name_as_prefix_is_outside(tmp_path: Path) -> None:
    root = DataRoot(tmp_path / "data")
    sibling = tmp_path / "data2"
    sibling.mkdir()
    (root.real_root() / "s").symlink_to(sibling)
    with pytest.raises(PathRefused):
        root.resolve("s")


def test_devices_and_fifos_are_refused(root: DataRoot) -> None:
    real_root = root.real_root()
    os.mkfifo(real_root / "pipe")
    (real_root / "null").symlink_to("/dev/null")  # out of the root anyway
    with pytest.raises(PathRefused, match="not a regular file"):
        root.resolve("pipe")
    with pytest.raises(PathRefused):
        root.resolve("null")


def test_must_exist(root: DataRoot) -> None:
    with pytest.raises(PathRefused, match="does not exist"):
        root.resolve("nope.csv", must_exist=True)


def test_where_the_root_comes_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RUNKIT_DATA_ROOT", raising=False)
    assert current_root().path == Path("runkit-data")
    monkeypatch.setenv("RUNKIT_DATA_ROOT", str(tmp_path / "env"))
    monkeypatch.setenv("RUNKIT_DATA_PROTOCOLS", "s3, memory")
    assert current_root() == DataRoot(tmp_path / "env", ("memory", "s3"))
    configure_data(DataPolicy(root=tmp_path / "configured"))
    try:
        assert current_root().path == tmp_path / "configured"
    finally:
        configure_data(None)
    assert not (tmp_path / "configured").exists()  # created on first use, not before


@given(st.text(min_size=1, max_size=40))
def test_whatever_passes_the_literal_check_resolves_inside(
    tmp_path_factory: object, text: str
) -> None:
    root = DataRoot(Path(os.environ.get("TMPDIR", "/tmp")) / "runkit-data-root-property")
    try:
        root.check(text, LOC)
    except ValidationError:
        return
    real = root.resolve(text)
    assert root.contains(real)
