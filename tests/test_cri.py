"""``evstore._views.cri`` and ``evstore record`` against a real containerd (tests/cri_node.py).

One private containerd serves the module; each test has its own store and its own pods, and
looks only at its own ids (a recorder sees every pod of the node).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from cri_node import IMAGE, Node, running_node, wait_for_file

import evstore
from evstore import ContainerMetadata, ContainerState, ContainerStatus, SandboxState
from evstore._cli.main import main
from evstore._views.cri import Recorder, SyncReport


def _containerd_missing() -> str | None:
    if os.geteuid() != 0:
        return "a private containerd needs root"
    for binary in ("containerd", "runc", "ctr", "busybox"):
        if shutil.which(binary) is None:
            return f"{binary} is not installed (apt-get install containerd runc busybox-static)"
    return None


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    """The tests' containerd; without root or its packages they fail, as a missing part
    should, unless EVSTORE_NO_CONTAINERD=1 says this machine cannot run one."""
    reason = _containerd_missing()
    if reason is not None:
        if os.environ.get("EVSTORE_NO_CONTAINERD") == "1":
            pytest.skip(f"{reason} (EVSTORE_NO_CONTAINERD=1)")
        pytest.fail(f"{reason}; on a machine that cannot run containerd, set"
                    " EVSTORE_NO_CONTAINERD=1 to skip")
    with running_node() as started:
        yield started


def sync(path: Path, node: Node) -> SyncReport:
    async def once() -> SyncReport:
        async with evstore.open_async(path) as store:
            recorder = Recorder(store, node.endpoint)
            try:
                return await recorder.sync()
            finally:
                await recorder.aclose()

    return asyncio.run(once())


def kinds(path: Path, ident: str) -> list[str]:
    with evstore.open(path, readonly=True) as store:
        return [event.type for event in store.history(ident)]


def recorder_process(path: Path, node: Node, log: Path) -> subprocess.Popen[bytes]:
    """``evstore record`` following ``node``: stderr to ``log``, stdout to ``log.out``."""
    with log.open("ab") as err, log.with_suffix(".out").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "evstore", "record", str(path), "--cri", node.endpoint,
             "--interval", "0.05"],
            stdout=out, stderr=err,
        )


def wait_for(
    check: object, timeout: float = 30.0, state: Callable[[], str] = lambda: ""
) -> None:
    """Poll ``check`` until it holds; a timeout says what ``state`` shows then."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out {state()}".strip()
        time.sleep(0.05)


def test_a_pod_and_a_container_created_running_exited(
    node: Node, store_path: Path, tmp_path: Path
) -> None:
    sync(store_path, node)
    pod = node.run_pod("lifecycle", namespace="ns1", uid="uid-lifecycle")
    container = node.create(pod, "app", wait_for_file("go", "exit 3"), host_dir=tmp_path)
    report = sync(store_path, node)
    assert (report.added, report.runtime.name) == (2, "containerd")
    assert report.runtime.version
    node.start_container(container)
    assert sync(store_path, node).changed == 1
    (tmp_path / "go").touch()
    node.wait_exited(container)
    assert sync(store_path, node).changed == 1
    again = sync(store_path, node)
    assert (again.added, again.changed, again.deleted) == (0, 0, 0)
    assert kinds(store_path, container) == ["created", "started", "exited"]
    with evstore.open(store_path, readonly=True) as store:
        status = store.containers.get(container).status.get()
        assert status.state() is ContainerState.EXITED
        assert (status.exit_code, status.reason, status.note) == (3, "Error", "")
        assert status.pid > 0 and status.created_at < status.started_at < status.finished_at
        metadata = store.containers.get(container).metadata
        assert metadata.sandbox_id == pod and metadata.config is not None
        assert (metadata.config.name, metadata.config.image) == ("app", IMAGE)
        sandbox = store.sandboxes.get(pod)
        assert sandbox.status.get().state is SandboxState.READY
        assert sandbox.status.get().pid > 0
        config = sandbox.metadata.config
        assert config is not None
        assert (config.name, config.namespace, config.uid) == ("lifecycle", "ns1", "uid-lifecycle")
        pods = store.pods(all=True)
        pod_view = pods.find_pod_by_id("uid-lifecycle")
        assert [c.id for c in pod_view.containers] == [container]
        status_view = store.pod_status("uid-lifecycle", "lifecycle", "ns1")
        assert status_view.container_statuses[0].exit_code == 3


def test_removed_container_and_stopped_removed_pod_are_deleted(
    node: Node, store_path: Path
) -> None:
    pod = node.run_pod("removal")
    container = node.create(pod, "app", ["/bin/sleep", "1000"])
    node.start_container(container)
    sync(store_path, node)
    node.stop_pod(pod)  # kills the container too
    assert sync(store_path, node).changed == 2
    assert kinds(store_path, pod) == ["created", "notready"]
    assert kinds(store_path, container) == ["created", "exited"]  # created and started: one pass
    node.remove_container(container)
    assert sync(store_path, node).deleted == 1
    node.remove_pod(pod)
    assert sync(store_path, node).deleted == 1
    assert kinds(store_path, container)[-1] == "deleted"
    assert kinds(store_path, pod) == ["created", "notready", "deleted"]


def test_oom_killed_container_is_recorded_with_its_reason(node: Node, store_path: Path) -> None:
    pod = node.run_pod("oom")
    container = node.create(
        pod, "hog", ["/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
        memory=16 << 20,
    )
    node.start_container(container)
    node.wait_exited(container)

    def recorded() -> ContainerStatus:
        with evstore.open(store_path, readonly=True) as store:
            return store.containers.get(container).status.get()

    # containerd may hear of the OOM kill after the exit (the reason reads "Error" until
    # then); the recorder reads a fresh exit again until it settles
    wait_for(
        lambda: sync(store_path, node) and recorded().reason == "OOMKilled", timeout=10,
        state=lambda: f"(containerd says {node.container_status(container).reason!r},"
                      f" the store {recorded().reason!r})",
    )
    status = recorded()
    assert (status.reason, status.exit_code) == ("OOMKilled", 137)
    limits = status.resources.linux if status.resources is not None else None
    assert limits is not None and limits.memory_limit_in_bytes == 16 << 20


def test_changed_resources_are_recorded_within_ten_passes(node: Node, store_path: Path) -> None:
    pod = node.run_pod("resources")
    container = node.create(pod, "app", ["/bin/sleep", "1000"], memory=64 << 20)
    node.start_container(container)

    async def passes() -> None:
        async with evstore.open_async(store_path) as store:
            recorder = Recorder(store, node.endpoint)
            try:
                await recorder.sync()
                node.update_memory(container, 32 << 20)
                for _ in range(10):
                    await recorder.sync()
            finally:
                await recorder.aclose()

    asyncio.run(passes())
    with evstore.open(store_path, readonly=True) as store:
        history = store.history(container)
    assert [event.type for event in history] == ["created", "updated"]
    last = history[-1]
    assert last.changes["resources"]["linux"]["memory_limit_in_bytes"] == 32 << 20


def test_kill_9_of_the_recorder_records_nothing_twice_and_loses_nothing(
    node: Node, store_path: Path, tmp_path: Path
) -> None:
    pod = node.run_pod("restarts")
    containers: list[str] = []
    log = tmp_path / "recorder.log"
    recorder = recorder_process(store_path, node, log)
    try:
        for step in range(6):
            container = node.create(pod, f"c{step}", ["/bin/sh", "-c", f"exit {step}"])
            containers.append(container)
            node.start_container(container)
            time.sleep(0.03 * step)  # kill it at various points of a pass
            recorder.kill()
            recorder.wait()
            node.wait_exited(container)  # exits while no recorder runs
            recorder = recorder_process(store_path, node, log)
    finally:
        recorder.kill()
        recorder.wait()
    sync(store_path, node)
    for step, container in enumerate(containers):
        history = kinds(store_path, container)
        assert history[0] == "created", history  # first seen running, or already exited
        assert len(history) == len(set(history)), history  # each change once
        with evstore.open(store_path, readonly=True) as store:
            status = store.containers.get(container).status.get()
            assert (status.state(), status.exit_code) == (ContainerState.EXITED, step)
    assert kinds(store_path, pod) == ["created"]


def test_kill_9_of_containerd_deletes_nothing_and_records_what_happened_meanwhile(
    tmp_path: Path, store_path: Path
) -> None:
    with running_node() as node:
        pod = node.run_pod("outage")
        quick = node.create(pod, "quick", wait_for_file("go", "exit 7"), host_dir=tmp_path)
        slow = node.create(pod, "slow", ["/bin/sleep", "1000"])
        node.start_container(quick)
        node.start_container(slow)
        log = tmp_path / "recorder.log"
        recorder = recorder_process(store_path, node, log)
        try:
            wait_for(lambda: bool(_kinds_live(store_path, quick)))  # recorded running
            node.kill9()
            (tmp_path / "go").touch()  # quick exits while containerd is down
            time.sleep(1)
            node.start()
            wait_for(lambda: "exited" in _kinds_live(store_path, quick))
            recorder.send_signal(signal.SIGTERM)
            assert recorder.wait(timeout=10) == 0
        finally:
            recorder.kill()
            recorder.wait()
        with evstore.open(store_path, readonly=True) as store:
            assert not [e for e in store.events() if e.type == "deleted"]
            assert store.containers.get(quick).status.get().exit_code == 7
            assert store.containers.get(slow).status.get().state() is ContainerState.RUNNING
        said = log.read_text().splitlines()
        assert len([line for line in said if "unavailable" in line]) == 1, said
        assert len([line for line in said if "back after" in line]) == 1, said
        # a line per sync that recorded something, and none for the many that did not
        printed = log.with_suffix(".out").read_text().splitlines()
        assert printed and all(line.startswith("containerd ") for line in printed), printed
        assert not [line for line in printed if " 0 added, 0 changed, 0 deleted" in line]


def _kinds_live(path: Path, ident: str) -> list[str]:
    """A container's history while a recorder writes the store (read-only, may lag)."""
    try:
        return kinds(path, ident)
    except evstore.NotFoundError:
        return []


def test_moves_the_store_refuses_are_recorded_with_a_note(node: Node, store_path: Path) -> None:
    pod = node.run_pod("moves")
    running = node.create(pod, "running", ["/bin/sleep", "1000"])
    node.start_container(running)
    earlier = node.create(pod, "earlier", ["/bin/sleep", "1000"])
    node.start_container(earlier)
    with evstore.open(store_path) as store:  # a store that knew them otherwise
        store.sandboxes.add(evstore.SandboxMetadata(id=pod), evstore.SandboxStatus(
            created_at=1, state=SandboxState.NOTREADY
        ))
        store.containers.add(ContainerMetadata(id=running), ContainerStatus(exit_code=255))
        store.containers.add(ContainerMetadata(id=earlier), ContainerStatus(
            created_at=1, started_at=2, finished_at=3, exit_code=1
        ))
    sync(store_path, node)
    with evstore.open(store_path, readonly=True) as store:
        sandbox = store.sandboxes.get(pod).status.get()
        assert sandbox.state is SandboxState.READY
        assert "NOTREADY -> READY" in sandbox.note
        assert [e.type for e in store.history(pod)] == ["created", "deleted", "created"]
        assert store.sandboxes.get(pod).metadata.config is not None  # the runtime's metadata
        again = store.containers.get(running).status.get()
        assert again.state() is ContainerState.RUNNING and "UNKNOWN -> RUNNING" in again.note
        kept = store.containers.get(earlier).status.get()
        assert kept.finished_at == 3 and kept.state() is ContainerState.EXITED
        assert "finished_at: kept" in kept.note
        assert store.history(earlier)[-1].changes["note"] == kept.note
    # what is recorded with a note stays put: the next pass records nothing
    report = sync(store_path, node)
    assert (report.added, report.changed, report.deleted) == (0, 0, 0)


def test_cli_record_once_pods_and_history(node: Node, store_path: Path) -> None:
    pod = node.run_pod("cli", namespace="shop", uid="uid-cli")
    container = node.create(pod, "web", ["/bin/sh", "-c", "exit 0"])
    node.start_container(container)
    node.wait_exited(container)
    runner = CliRunner()
    once = runner.invoke(main, ["record", str(store_path), "--cri", node.endpoint, "--once",
                                "--json"])
    assert once.exit_code == 0, once.output
    report = msgspec.json.decode(once.output)
    assert report["added"] >= 2 and report["runtime"]["name"] == "containerd"
    line = runner.invoke(main, ["record", str(store_path), "--cri", str(node.socket), "--once"])
    assert line.exit_code == 0 and ": 0 added, 0 changed, 0 deleted" in line.output
    pods = runner.invoke(main, ["pods", str(store_path), "--all", "--json"])
    found = [p for p in msgspec.json.decode(pods.output) if p["id"] == "uid-cli"]
    assert [c["id"] for c in found[0]["containers"]] == [container]
    history = runner.invoke(main, ["history", str(store_path), container, "--json"])
    events = msgspec.json.decode(history.output)
    assert [e["type"] for e in events] == ["created"]  # first seen exited: one event says all
    assert events[0]["changes"]["finished_at"] > 0


def test_cli_record_says_which_extra_to_install(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['cri_api'] = None; from evstore._cli.main import main; "
            "main(['record', sys.argv[1], '--cri', '/nonexistent.sock', '--once'])")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")],
                          capture_output=True, text=True)
    assert done.returncode == 1
    line = done.stderr.strip()
    assert "\n" not in line and line.startswith("error: recording a CRI runtime needs the cri")
    assert "[cri]'" in line  # the pip command that adds it


def test_a_runtime_that_does_not_answer_fails_the_sync_and_deletes_nothing(
    node: Node, store_path: Path, tmp_path: Path
) -> None:
    pod = node.run_pod("down")
    sync(store_path, node)
    gone = subprocess.run(
        [sys.executable, "-m", "evstore", "record", str(store_path), "--cri",
         str(tmp_path / "no.sock"), "--once"], capture_output=True, text=True,
    )
    assert gone.returncode == 1
    # one line (grpcio 1.51 added "Error in sys.excepthook" at exit to an error keeping a
    # gRPC call alive)
    assert gone.stderr.startswith("error: Version: UNAVAILABLE")
    assert gone.stderr.count("\n") == 1, gone.stderr
    with evstore.open(store_path, readonly=True) as store:
        assert store.sandboxes.get(pod).status.get().state is SandboxState.READY
        assert not [e for e in store.events() if e.type == "deleted"]


def test_an_interval_that_is_not_positive_is_refused(store_path: Path) -> None:
    async def make(interval: float) -> None:
        async with evstore.open_async(store_path) as store:
            Recorder(store, "/nonexistent.sock", interval=interval)

    for bad in (0, -1.0, float("nan")):
        with pytest.raises(evstore.InvalidInputError, match="interval"):
            asyncio.run(make(bad))
