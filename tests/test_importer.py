"""Importing containerd's per-file checkpoints (``tests/fixtures/containerd-root``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec
import pytest

import evstore
from evstore import (
    ContainerResources,
    ContainerState,
    ContainerStatus,
    HugepageLimit,
    LinuxContainerResources,
    WindowsContainerResources,
)
from evstore._views.importer import StatusError, decode_status, import_containerd

FIXTURE = Path(__file__).parent / "fixtures" / "containerd-root"
IDS = ["3f2a9c01", "7be1d2aa", "c0ffee42", "deadbeef"]


def copy_fixture(tmp_path: Path) -> Path:
    root = tmp_path / "containers"
    shutil.copytree(FIXTURE, root)
    return root


def status_of(store: evstore.Store, ident: str) -> ContainerStatus:
    return store.containers.get(ident).status.get()


def test_fixture_imports_as_containerd_would_load_it(store: evstore.Store) -> None:
    report = import_containerd(FIXTURE, store)
    assert report.imported == IDS and report.skipped == []
    assert report.unknown == {"deadbeef": "unsupported status version 'v2'"}
    assert status_of(store, "3f2a9c01") == ContainerStatus(
        pid=31337, created_at=1763884800123456789, started_at=1763884801234567890,
        resources=ContainerResources(linux=LinuxContainerResources(
            cpu_period=100000, cpu_quota=50000, cpu_shares=512, memory_limit_in_bytes=536870912,
            oom_score_adj=-997, cpuset_cpus="0-1", unified={"memory.high": "400M"},
        )),
    )
    exited = status_of(store, "7be1d2aa")
    assert exited.message == "container <app> exceeded memory & was killed"  # Go's \u003c, \u0026
    assert (exited.exit_code, exited.reason, exited.state()) == (137, "OOMKilled",
                                                                  ContainerState.EXITED)
    assert status_of(store, "c0ffee42").state() is ContainerState.CREATED
    assert status_of(store, "3f2a9c01").state() is ContainerState.RUNNING


def test_unknown_version_is_containerds_unknown_status(store_path: Path) -> None:
    with evstore.open(store_path) as store:
        import_containerd(FIXTURE, store)
        unknown = status_of(store, "deadbeef")
        assert unknown.state() is ContainerState.UNKNOWN
        assert (unknown.pid, unknown.created_at, unknown.exit_code, unknown.reason) == (
            0, 0, 255, "Unknown")
        assert unknown.message == "containerd status not loaded: unsupported status version 'v2'"
    with evstore.open(store_path) as store:  # the flag is transient; the state is not
        entry = store.containers.get("deadbeef")
        assert entry.status.get().state() is ContainerState.UNKNOWN
        with pytest.raises(evstore.InvalidTransitionError):
            entry.status.update_sync(lambda s: msgspec.structs.replace(s, created_at=1))
        moved = entry.status.update_sync(lambda s: msgspec.structs.replace(s, finished_at=5))
        assert moved.state() is ContainerState.EXITED


def test_rerun_imports_nothing_twice(store: evstore.Store) -> None:
    import_containerd(FIXTURE, store)
    store.containers.delete("c0ffee42")  # a deleted one is not brought back either
    events = len(list(store.events()))
    report = import_containerd(FIXTURE, store)
    assert report.imported == [] and report.unknown == {}
    assert report.skipped == IDS
    assert len(list(store.events())) == events
    assert [e.type for e in store.history("c0ffee42")] == ["created", "deleted"]


def test_broken_missing_and_mistyped_files(store: evstore.Store, tmp_path: Path) -> None:
    root = copy_fixture(tmp_path)
    cases = {
        "broken": b'{"Version":"v1","Pid":',
        "mistyped": b'{"Version":"v1","Pid":"seven"}',
        "negative": b'{"Version":"v1","Pid":-1}',
        "noversion": b'{"Pid":1}',
        "array": b"[1, 2]",
    }
    for name, data in cases.items():
        (root / name).mkdir()
        (root / name / "status").write_bytes(data)
    (root / "missing").mkdir()
    (root / "not-a-container").write_text("a stray file")
    report = import_containerd(root, store)
    assert sorted(report.unknown) == sorted([*cases, "missing", "deadbeef"])
    assert report.unknown["broken"].startswith("broken status JSON")
    assert report.unknown["mistyped"].startswith("invalid v1 status: Expected `int`")
    assert report.unknown["negative"].startswith("invalid v1 status")
    assert report.unknown["noversion"] == "unsupported status version ''"
    assert report.unknown["missing"] == "no status file"
    assert "not-a-container" not in report.imported
    for ident in report.unknown:
        assert status_of(store, ident).state() is ContainerState.UNKNOWN


def test_go_encoding_details() -> None:
    data = (
        b'{"Version":"v1","Pid":1,"CreatedAt":5,"Reason":"a\\u003cb\\u003ec\\u0026d\\u2028",'
        b'"Unknown":true,"Resources":{"linux":{"hugepage_limits":[{"page_size":"2MB",'
        b'"limit":1073741824}]},"windows":{"cpu_count":2,"memory_limit_in_bytes":9}}}'
    )
    status = decode_status(data)
    assert status.reason == "a<b>c&d\u2028"
    assert not status.unknown  # containerd never writes it; ignored if present
    assert status.resources == ContainerResources(
        linux=LinuxContainerResources(hugepage_limits=[HugepageLimit("2MB", 1 << 30)]),
        windows=WindowsContainerResources(cpu_count=2, memory_limit_in_bytes=9),
    )
    with pytest.raises(StatusError, match="unsupported status version 'V1'"):
        decode_status(b'{"Version":"V1"}')


def test_many_containers_and_progress(store: evstore.Store, tmp_path: Path) -> None:
    root = tmp_path / "many"
    for n in range(300):
        (root / f"c{n:03}").mkdir(parents=True)
        (root / f"c{n:03}" / "status").write_bytes(
            b'{"Version":"v1","Pid":%d,"CreatedAt":%d,"StartedAt":%d}' % (n, n + 1, n + 2)
        )
    calls: list[tuple[int, int]] = []
    report = import_containerd(root, store, lambda done, total: calls.append((done, total)))
    assert len(report.imported) == 300 and report.unknown == {}
    assert calls[0] == (0, 300) and max(calls) == (300, 300)
    assert status_of(store, "c123") == ContainerStatus(pid=123, created_at=124, started_at=125)
    positions = [e.position for e in store.events()]
    assert positions == list(range(1, 301))


def test_bad_roots(store: evstore.Store, tmp_path: Path) -> None:
    with pytest.raises(evstore.NotFoundError, match="no such directory"):
        import_containerd(tmp_path / "nope", store)
    (tmp_path / "file").write_text("")
    with pytest.raises(evstore.InvalidInputError, match="not a directory"):
        import_containerd(tmp_path / "file", store)


def test_a_reader_beside_the_importer_sees_the_imported_history(
    store: evstore.Store, store_path: Path
) -> None:
    with evstore.open(store_path, readonly=True) as reader:
        import_containerd(FIXTURE, store)
        assert [e.type for e in reader.history("7be1d2aa")] == ["created"]
        assert reader.status_at("7be1d2aa", seq=1) == status_of(store, "7be1d2aa")


def test_the_cri_root_or_its_containers_directory_is_taken(
    store: evstore.Store, tmp_path: Path
) -> None:
    plugin = tmp_path / "io.containerd.grpc.v1.cri"
    shutil.copytree(FIXTURE, plugin / "containers")
    (plugin / "sandboxes" / "s1").mkdir(parents=True)
    assert import_containerd(plugin, store).imported == IDS


@pytest.mark.parametrize("where", ["empty", "root", "one level up", "one container", "proc"])
def test_what_is_not_a_cri_root_is_refused_and_nothing_written(
    store: evstore.Store, tmp_path: Path, where: str
) -> None:
    up = tmp_path / "containerd"
    shutil.copytree(FIXTURE, up / "io.containerd.grpc.v1.cri" / "containers")
    (tmp_path / "empty").mkdir()
    root = {
        "empty": tmp_path / "empty", "root": Path("/"), "one level up": up,
        "one container": up / "io.containerd.grpc.v1.cri" / "containers" / IDS[0],
        "proc": Path("/proc"),  # /proc/<pid>/status: files named status, not containerd's
    }[where]
    with pytest.raises(evstore.InvalidInputError, match="no containerd container status"):
        import_containerd(root, store)
    assert list(store.events()) == []


def test_cli_refuses_a_wrong_root_in_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from evstore._cli.main import main

    (tmp_path / "empty").mkdir()
    done = CliRunner().invoke(main, ["import-containerd", str(tmp_path / "empty"),
                                     str(tmp_path / "store")])
    assert done.exit_code == 1
    assert done.output.startswith("error: ") and done.output.count("\n") == 1
    assert "no containerd container status" in done.output
