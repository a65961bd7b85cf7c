"""The kubelet's view: pods, pod status and restart counts from the log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import msgspec
import pytest
from damage import eno_of, event_key_of, flip_byte, rewrite

import evstore
from evstore import (
    ContainerConfig,
    ContainerMetadata,
    ContainerStatus,
    Pod,
    Pods,
    PodStatus,
    SandboxConfig,
    SandboxMetadata,
    SandboxState,
    SandboxStatus,
    build_pod_full_name,
)
from evstore._store.store import abandon
from evstore._views.pods import CONTAINER_STATES, SANDBOX_STATES

EVSTORE = str(Path(sys.executable).with_name("evstore"))

# a clock of our own, so "newest first" does not depend on the machine's
_clock = iter(range(1_000, 10**9, 1_000))


def tick() -> int:
    return next(_clock)


def pod_labels(uid: str, name: str, namespace: str) -> dict[str, str]:
    return {
        "io.kubernetes.pod.uid": uid,
        "io.kubernetes.pod.name": name,
        "io.kubernetes.pod.namespace": namespace,
    }


def add_sandbox(
    store: evstore.Store, ident: str, uid: str, name: str, namespace: str = "default", *,
    state: SandboxState = SandboxState.READY, ips: tuple[str, ...] = (), attempt: int = 0,
) -> None:
    config = SandboxConfig(name=name, uid=uid, namespace=namespace, attempt=attempt)
    entry = store.sandboxes.add(
        SandboxMetadata(id=ident, name=f"k8s_{name}", config=config, ips=list(ips)),
        SandboxStatus(created_at=tick()),
    )
    if state is not SandboxState.INIT:
        entry.status.update_sync(lambda s: msgspec.structs.replace(s, state=state))


def add_container(
    store: evstore.Store, ident: str, name: str, sandbox_id: str = "", *,
    pod: tuple[str, str, str] | None = None, state: str = "running", image: str = "nginx:1.27",
    attempt: int = 0, exit_code: int = 0,
) -> None:
    labels = pod_labels(*pod) if pod is not None else {}
    config = ContainerConfig(name=name, attempt=attempt, image=image, labels=labels)
    metadata = ContainerMetadata(
        id=ident, name=f"k8s_{name}", sandbox_id=sandbox_id, config=config,
        image_ref=f"sha256:{image.encode().hex()}",
    )
    entry = store.containers.add(metadata, ContainerStatus(created_at=tick()))
    if state in ("running", "exited"):
        entry.status.update_sync(lambda s: msgspec.structs.replace(s, pid=7, started_at=tick()))
    if state == "exited":
        entry.status.update_sync(
            lambda s: msgspec.structs.replace(
                s, finished_at=tick(), exit_code=exit_code, reason="Error", message="boom"
            )
        )


def restarts(store: evstore.Store, uid: str) -> dict[str, int]:
    status = store.pod_status(uid, "", "")
    return {c.id: c.restart_count for c in status.container_statuses}


def summary(pods: Pods) -> list[tuple[str, list[str], list[str]]]:
    return [(p.id, [c.id for c in p.containers], [s.id for s in p.sandboxes]) for p in pods]


# --- grouping ---------------------------------------------------------------------------------


def test_groups_by_sandbox_config_newest_pod_first(store: evstore.Store) -> None:
    add_sandbox(store, "sb-a", "uid-a", "web", ips=("10.0.0.1",))
    add_sandbox(store, "sb-b", "uid-b", "db", "prod")
    add_container(store, "c-a1", "nginx", "sb-a")
    add_container(store, "c-b1", "postgres", "sb-b", image="postgres:17")
    add_container(store, "c-a2", "sidecar", "sb-a", image="envoy:1")
    pods = store.pods()
    assert isinstance(pods, Pods) and all(isinstance(p, Pod) for p in pods)
    assert summary(pods) == [
        ("uid-b", ["c-b1"], ["sb-b"]),
        ("uid-a", ["c-a2", "c-a1"], ["sb-a"]),
    ]
    db = pods[0]
    assert (db.id, db.name, db.namespace) == ("uid-b", "db", "prod")
    assert db.created_at == store.sandboxes.get("sb-b").status.get().created_at
    postgres = db.containers[0]
    assert (postgres.id, postgres.name, postgres.image, postgres.state, postgres.sandbox_id) == (
        "c-b1", "postgres", "postgres:17", "running", "sb-b",
    )
    sandbox = db.sandboxes[0]
    assert (sandbox.id, sandbox.name, sandbox.image, sandbox.state) == ("sb-b", "db", "", "running")


def test_container_whose_sandbox_is_gone_goes_by_its_labels(store: evstore.Store) -> None:
    add_sandbox(store, "sb-old", "uid-a", "web")
    add_container(store, "c-old", "nginx", "sb-old", pod=("uid-a", "web", "default"))
    store.sandboxes.get("sb-old").status.update_sync(
        lambda s: msgspec.structs.replace(s, state=SandboxState.NOTREADY)
    )
    store.sandboxes.delete("sb-old")
    # the pod's new sandbox: the old container joins it by its labels
    add_sandbox(store, "sb-new", "uid-a", "web")
    # a container of a pod with no sandbox left at all
    add_container(store, "c-orphan", "job", "sb-gone", pod=("uid-z", "batch", "jobs"))
    # no sandbox and no labels: the pod with no uid, as the kubelet groups it
    add_container(store, "c-bare", "bare", "")
    pods = store.pods(all=True)
    assert summary(pods) == [
        ("uid-a", ["c-old"], ["sb-new"]),
        ("", ["c-bare"], []),
        ("uid-z", ["c-orphan"], []),
    ]
    orphan = pods.find_pod_by_id("uid-z")
    assert (orphan.name, orphan.namespace, orphan.created_at) == ("batch", "jobs", 0)


def test_a_live_sandbox_wins_over_the_labels(store: evstore.Store) -> None:
    add_sandbox(store, "sb", "uid-real", "real")
    add_container(store, "c", "app", "sb", pod=("uid-label", "label", "elsewhere"))
    assert summary(store.pods()) == [("uid-real", ["c"], ["sb"])]


def test_entries_without_a_config_are_left_out(store: evstore.Store) -> None:
    store.sandboxes.add(SandboxMetadata(id="sb-raw"), SandboxStatus(created_at=1))
    store.containers.add(ContainerMetadata(id="c-raw"), ContainerStatus(created_at=1))
    assert store.pods(all=True) == Pods()
    assert store.pod_status("", "", "") == PodStatus()


def test_all_false_shows_only_running_containers_and_ready_sandboxes(
    store: evstore.Store,
) -> None:
    add_sandbox(store, "sb-ready", "uid-a", "web")
    add_sandbox(store, "sb-init", "uid-b", "starting", state=SandboxState.INIT)
    add_sandbox(store, "sb-down", "uid-c", "stopped", state=SandboxState.NOTREADY)
    add_container(store, "c-run", "nginx", "sb-ready")
    add_container(store, "c-new", "init", "sb-ready", state="created")
    add_container(store, "c-done", "migrate", "sb-ready", state="exited")
    add_container(store, "c-late", "app", "sb-down")  # still running in a stopped sandbox
    assert summary(store.pods()) == [
        ("uid-a", ["c-run"], ["sb-ready"]),
        ("uid-c", ["c-late"], []),  # grouped by its sandbox, which is not shown
    ]
    everything = store.pods(all=True)
    assert summary(everything) == [
        ("uid-c", ["c-late"], ["sb-down"]),
        ("uid-b", [], ["sb-init"]),
        ("uid-a", ["c-done", "c-new", "c-run"], ["sb-ready"]),
    ]
    states = {
        item.id: item.state for pod in everything for item in (*pod.containers, *pod.sandboxes)
    }
    assert states == {
        "sb-ready": "running", "sb-init": "created", "sb-down": "exited",
        "c-run": "running", "c-new": "created", "c-done": "exited", "c-late": "running",
    }


def test_state_names_cover_every_state() -> None:
    assert set(CONTAINER_STATES.values()) == {"created", "running", "exited", "unknown"}
    assert set(SANDBOX_STATES.values()) == {"created", "running", "exited", "unknown"}
    assert len(CONTAINER_STATES) == len(evstore.ContainerState)
    assert len(SANDBOX_STATES) == len(SandboxState)


def test_empty_store_has_no_pods(store: evstore.Store) -> None:
    assert store.pods() == [] and store.pods(all=True) == []
    assert store.pods().find_pod_by_id("") == Pod()


# --- finders and the empty pod ----------------------------------------------------------------


@pytest.fixture
def two_pods(store: evstore.Store) -> Pods:
    add_sandbox(store, "sb-1", "uid-1", "web", "default")
    add_container(store, "c-1", "nginx", "sb-1")
    add_sandbox(store, "sb-2", "uid-2", "web", "prod")
    add_container(store, "c-2", "nginx", "sb-2")
    add_container(store, "c-3", "nginx", "sb-2", state="exited")
    return store.pods(all=True)


def test_build_pod_full_name() -> None:
    assert build_pod_full_name("web", "prod") == "web_prod"
    assert evstore.build_pod_full_name("", "") == "_"


def test_pods_finders(two_pods: Pods) -> None:
    assert two_pods.find_pod_by_id("uid-1").name == "web"
    assert two_pods.find_pod_by_id("uid-2").namespace == "prod"
    assert two_pods.find_pod_by_full_name("web_default").id == "uid-1"
    assert two_pods.find_pod_by_full_name("web_prod").id == "uid-2"
    # the full name first, when one is given, even if the uid names another pod
    assert two_pods.find_pod("web_prod", "uid-1").id == "uid-2"
    assert two_pods.find_pod("", "uid-1").id == "uid-1"


def test_not_found_is_the_empty_pod(two_pods: Pods) -> None:
    for found in (
        two_pods.find_pod_by_id("nope"),
        two_pods.find_pod_by_full_name("web_nowhere"),
        two_pods.find_pod_by_full_name("web"),
        two_pods.find_pod("", "nope"),
        two_pods.find_pod("web_nowhere", "uid-1"),  # a full name that is not found wins
        two_pods.find_pod("", ""),
    ):
        assert found == Pod()
        assert (found.id, found.name, found.namespace, found.containers, found.sandboxes) == (
            "", "", "", [], []
        )
    assert Pods().find_pod("web_default", "uid-1").id == ""


def test_pod_finders(two_pods: Pods) -> None:
    pod = two_pods.find_pod_by_id("uid-2")
    assert [c.id for c in pod.containers] == ["c-3", "c-2"]
    # by name: the newest container of that name, as the kubelet's list is newest first
    newest = pod.find_container_by_name("nginx")
    assert newest is not None and newest.id == "c-3" and newest.state == "exited"
    by_id = pod.find_container_by_id("c-2")
    assert by_id is not None and by_id.state == "running"
    sandbox = pod.find_sandbox_by_id("sb-2")
    assert sandbox is not None and sandbox.name == "web"
    assert pod.find_container_by_name("missing") is None
    assert pod.find_container_by_id("c-1") is None  # another pod's
    assert pod.find_container_by_id("sb-2") is None  # a sandbox is not a container
    assert pod.find_sandbox_by_id("c-2") is None
    assert Pod().find_container_by_name("nginx") is None
    assert Pod().find_sandbox_by_id("sb-2") is None


# --- pod status -------------------------------------------------------------------------------


def test_pod_status_fields(store: evstore.Store) -> None:
    add_sandbox(store, "sb-1", "uid-1", "web", "prod", state=SandboxState.NOTREADY,
                ips=("10.0.0.1",))
    add_sandbox(store, "sb-2", "uid-1", "web", "prod", ips=("10.0.0.2", "fd00::2"), attempt=1)
    add_container(store, "c-1", "nginx", "sb-1", state="exited", exit_code=137)
    add_container(store, "c-2", "nginx", "sb-2", attempt=1)
    add_sandbox(store, "sb-other", "uid-2", "web", "default")
    add_container(store, "c-other", "nginx", "sb-other")

    status = store.pod_status("uid-1", "web", "prod")
    assert isinstance(status, PodStatus)
    assert (status.id, status.name, status.namespace) == ("uid-1", "web", "prod")
    assert status.ips == ["10.0.0.2", "fd00::2"]  # the newest sandbox's, which is ready
    assert [s.id for s in status.sandbox_statuses] == ["sb-2", "sb-1"]
    assert [(s.state, s.attempt, s.ips) for s in status.sandbox_statuses] == [
        ("running", 1, ["10.0.0.2", "fd00::2"]), ("exited", 0, ["10.0.0.1"]),
    ]
    assert [c.id for c in status.container_statuses] == ["c-2", "c-1"]

    exited = status.get_container_status("c-1")
    assert exited is not None
    stored = store.containers.get("c-1").status.get()
    assert msgspec.structs.asdict(exited) == {
        "id": "c-1", "name": "nginx", "pod_sandbox_id": "sb-1", "state": "exited",
        "created_at": stored.created_at, "started_at": stored.started_at,
        "finished_at": stored.finished_at, "exit_code": 137, "image": "nginx:1.27",
        "image_ref": "sha256:" + b"nginx:1.27".hex(), "restart_count": 0, "reason": "Error",
        "message": "boom",
    }
    running = status.get_container_status("c-2")
    assert running is not None
    assert (running.state, running.restart_count, running.finished_at) == ("running", 1, 0)
    assert status.get_container_status("c-other") is None
    assert status.get_container_status("sb-2") is None


def test_pod_status_ips_only_from_a_ready_newest_sandbox(store: evstore.Store) -> None:
    add_sandbox(store, "sb-1", "uid-1", "web", ips=("10.0.0.1",))
    add_sandbox(store, "sb-2", "uid-1", "web", state=SandboxState.NOTREADY, ips=("10.0.0.2",))
    assert store.pod_status("uid-1", "web", "default").ips == []


def test_pod_status_of_an_unknown_pod_is_empty(store: evstore.Store) -> None:
    add_sandbox(store, "sb-1", "uid-1", "web")
    add_container(store, "c-1", "nginx", "sb-1")
    status = store.pod_status("uid-nope", "ghost", "default")
    assert status == PodStatus(id="uid-nope", name="ghost", namespace="default")
    assert status.get_container_status("c-1") is None


def test_pod_status_finds_the_pod_by_uid_alone(store: evstore.Store) -> None:
    """As the kubelet's: name and namespace are given back, not matched."""
    add_sandbox(store, "sb-1", "uid-1", "web", "prod")
    add_container(store, "c-1", "nginx", "sb-1")
    status = store.pod_status("uid-1", "renamed", "elsewhere")
    assert (status.name, status.namespace) == ("renamed", "elsewhere")
    assert [c.id for c in status.container_statuses] == ["c-1"]


def test_pod_status_includes_containers_grouped_by_labels(store: evstore.Store) -> None:
    add_container(store, "c-1", "job", "sb-gone", pod=("uid-9", "batch", "jobs"), state="exited")
    status = store.pod_status("uid-9", "batch", "jobs")
    assert [c.id for c in status.container_statuses] == ["c-1"]
    assert status.sandbox_statuses == [] and status.ips == []


# --- restart counts ---------------------------------------------------------------------------


def test_restart_count_counts_earlier_containers_deleted_ones_included(
    store_path: Path,
) -> None:
    with evstore.open(store_path) as store:
        add_sandbox(store, "sb", "uid-1", "web")
        add_container(store, "web-0", "nginx", "sb", state="exited")
        add_container(store, "side-0", "envoy", "sb")
        add_container(store, "web-1", "nginx", "sb", state="exited")
        store.containers.delete("web-0")
        add_container(store, "web-2", "nginx", "sb")
        assert restarts(store, "uid-1") == {"web-1": 1, "web-2": 2, "side-0": 0}
        store.containers.delete("web-1")
        assert restarts(store, "uid-1") == {"web-2": 2, "side-0": 0}
        add_container(store, "web-3", "nginx", "sb")  # read from where the last call stopped
        assert restarts(store, "uid-1") == {"web-2": 2, "web-3": 3, "side-0": 0}
    with evstore.open(store_path) as store:
        assert restarts(store, "uid-1") == {"web-2": 2, "web-3": 3, "side-0": 0}
        store.containers.delete("web-2")
        store.containers.delete("web-3")
        add_container(store, "web-4", "nginx", "sb")
        assert restarts(store, "uid-1") == {"web-4": 4, "side-0": 0}
    with evstore.open(store_path, readonly=True) as store:
        assert restarts(store, "uid-1") == {"web-4": 4, "side-0": 0}


def test_restart_count_is_per_pod_and_name(store: evstore.Store) -> None:
    add_sandbox(store, "sb-a", "uid-a", "web")
    add_sandbox(store, "sb-b", "uid-b", "web", "other")  # same pod name, another pod
    add_container(store, "a-0", "nginx", "sb-a", state="exited")
    add_container(store, "b-0", "nginx", "sb-b", state="exited")
    add_container(store, "a-1", "nginx", "sb-a")
    add_container(store, "a-side", "envoy", "sb-a")
    add_container(store, "b-1", "nginx", "sb-b")
    add_container(store, "b-2", "nginx", "sb-b")
    assert restarts(store, "uid-a") == {"a-0": 0, "a-1": 1, "a-side": 0}
    assert restarts(store, "uid-b") == {"b-0": 0, "b-1": 1, "b-2": 2}


def test_restart_count_spans_sandboxes_of_one_pod(store_path: Path) -> None:
    """A pod whose sandbox was recreated: the old sandbox's containers still count."""
    with evstore.open(store_path) as store:
        add_sandbox(store, "sb-1", "uid-1", "web", state=SandboxState.NOTREADY)
        add_container(store, "c-0", "nginx", "sb-1", state="exited")
        store.containers.delete("c-0")
        store.sandboxes.delete("sb-1")
        add_sandbox(store, "sb-2", "uid-1", "web", attempt=1)
        add_container(store, "c-1", "nginx", "sb-2", attempt=1)
        # a container without a sandbox in the log counts by its labels
        add_container(store, "c-2", "nginx", "sb-never", pod=("uid-1", "web", "default"))
        assert restarts(store, "uid-1") == {"c-1": 1, "c-2": 2}
    with evstore.open(store_path, readonly=True) as store:
        assert restarts(store, "uid-1") == {"c-1": 1, "c-2": 2}


def test_restart_count_of_a_reused_id(store: evstore.Store) -> None:
    add_sandbox(store, "sb", "uid-1", "web")
    add_container(store, "c", "nginx", "sb", state="exited")
    store.containers.delete("c")
    add_container(store, "c", "nginx", "sb")  # the same id again: a second container
    assert restarts(store, "uid-1") == {"c": 1}
    assert len([e for e in store.history("c") if e.type == "created"]) == 2


def test_restart_counts_under_concurrent_adds(store: evstore.Store) -> None:
    add_sandbox(store, "sb", "uid-1", "web")
    seen: list[dict[str, int]] = []

    def writer(n: int) -> None:
        for k in range(10):
            add_container(store, f"c-{n}-{k}", f"app-{n}", "sb", state="created")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        seen.append(restarts(store, "uid-1"))
    for thread in threads:
        thread.join()
    final = restarts(store, "uid-1")
    assert final == {f"c-{n}-{k}": k for n in range(4) for k in range(10)}
    for counts in seen:  # never a count a container does not end up with
        assert all(final[ident] == count for ident, count in counts.items())


def test_a_damaged_record_is_skipped(store_path: Path) -> None:
    store = evstore.open(store_path)
    add_sandbox(store, "sb", "uid-1", "web", ips=("10.0.0.1",))
    add_container(store, "c-0", "nginx", "sb", state="exited")
    store.containers.delete("c-0")
    add_container(store, "c-1", "nginx", "sb", state="exited")
    store.containers.delete("c-1")
    add_container(store, "c-2", "nginx", "sb")
    abandon(store)  # as a crash leaves it: no snapshots beyond the log
    rewrite(store_path, b"events", event_key_of(store_path, (eno_of(store_path, "c-0"), 1)),
            flip_byte(-1))
    rewrite(store_path, b"events", event_key_of(store_path, (eno_of(store_path, "sb"), 2)),
            flip_byte(-1))
    with evstore.open(store_path, readonly=True) as store:
        assert sorted(store.load_report.unknown) == ["#2", "sb"]  # c-0 has no readable name
        status = store.pod_status("uid-1", "web", "default")
        # c-0's created record cannot be read, so only c-1 is known to come before c-2
        assert [(c.id, c.restart_count) for c in status.container_statuses] == [("c-2", 1)]
        assert [s.state for s in status.sandbox_statuses] == ["unknown"]
        assert status.ips == []
        assert store.pods().find_pod_by_id("uid-1").sandboxes == []  # not READY
        assert store.pods(all=True).find_pod_by_id("uid-1").sandboxes[0].state == "unknown"


# --- read-only stores, closed stores ----------------------------------------------------------


def build_node(path: Path) -> None:
    with evstore.open(path) as store:
        add_sandbox(store, "sb-web", "uid-web", "web", ips=("10.88.0.7",))
        add_container(store, "c-web-0", "nginx", "sb-web", state="exited", exit_code=1)
        add_container(store, "c-web-1", "nginx", "sb-web")
        store.containers.delete("c-web-0")
        add_sandbox(store, "sb-db", "uid-db", "db", "prod", state=SandboxState.NOTREADY)
        add_container(store, "c-db-0", "postgres", "sb-db", state="exited", image="postgres:17")


def test_readonly_store_answers_as_the_writer_does(store_path: Path) -> None:
    build_node(store_path)
    with evstore.open(store_path) as store:
        expected = (store.pods(), store.pods(all=True), store.pod_status("uid-web", "web", "x"))
        with evstore.open(store_path, readonly=True) as reader:  # beside the writer
            got = (reader.pods(), reader.pods(all=True), reader.pod_status("uid-web", "web", "x"))
            assert got == expected
    with evstore.open(store_path, readonly=True) as reader:
        assert reader.pods(all=True) == expected[1]
        status = reader.pod_status("uid-web", "web", "default")
        assert [(c.id, c.restart_count) for c in status.container_statuses] == [("c-web-1", 1)]
        assert status.ips == ["10.88.0.7"]


def test_pod_status_of_a_closed_store_raises(store: evstore.Store) -> None:
    add_sandbox(store, "sb", "uid-1", "web")
    store.close()
    with pytest.raises(evstore.StoreClosedError):
        store.pod_status("uid-1", "web", "default")


# --- the command line -------------------------------------------------------------------------


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EVSTORE, *map(str, args)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_pods_command_table(store_path: Path) -> None:
    build_node(store_path)
    result = run("pods", store_path)
    assert result.returncode == 0, result.stderr
    # the columns and state names of ``ls``: a ready sandbox is READY, as there
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["POD", "NAMESPACE", "UID", "KIND", "ID", "NAME", "IMAGE", "STATE"],
        ["web", "default", "uid-web", "sandbox", "sb-web", "web", "-", "READY"],
        ["web", "default", "uid-web", "container", "c-web-1", "nginx", "nginx:1.27", "RUNNING"],
    ]
    text = result.stdout
    assert "c-db-0" not in text and "sb-db" not in text and "EXITED" not in text
    assert "c-web-0" not in text  # deleted

    everything = run("pods", store_path, "--all")
    assert everything.returncode == 0, everything.stderr
    for word in ("sb-db", "c-db-0", "postgres:17", "EXITED", "NOTREADY", "prod", "uid-db"):
        assert word in everything.stdout


def test_pods_command_json(store_path: Path) -> None:
    build_node(store_path)
    result = run("pods", store_path, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {
            "id": "uid-web", "name": "web", "namespace": "default", "created_at": pod.created_at,
            "containers": [msgspec.to_builtins(c) for c in pod.containers],
            "sandboxes": [msgspec.to_builtins(s) for s in pod.sandboxes],
        }
        for pod in _pods_of(store_path)
    ]
    everything = json.loads(run("pods", store_path, "--all", "--json").stdout)
    assert [pod["id"] for pod in everything] == ["uid-db", "uid-web"]
    db = everything[0]
    assert db["containers"] == [{
        "id": "c-db-0", "name": "postgres", "image": "postgres:17", "state": "exited",
        "created_at": db["containers"][0]["created_at"], "sandbox_id": "sb-db", "attempt": 0,
    }]
    assert [(s["id"], s["state"]) for s in db["sandboxes"]] == [("sb-db", "exited")]


def _pods_of(path: Path) -> Pods:
    with evstore.open(path, readonly=True) as store:
        return store.pods()


def test_pods_command_beside_a_writer(store_path: Path) -> None:
    build_node(store_path)
    with evstore.open(store_path) as store:
        add_container(store, "c-web-2", "sidecar", "sb-web")
        result = run("pods", store_path, "--json")
        assert result.returncode == 0, result.stderr
        web = json.loads(result.stdout)[0]
        assert [c["id"] for c in web["containers"]] == ["c-web-2", "c-web-1"]


def test_pods_command_errors_are_one_line(tmp_path: Path) -> None:
    for args in (("pods", tmp_path / "missing"), ("pods", tmp_path, "--bogus")):
        result = run(*args)
        assert result.returncode in (1, 2)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    empty = tmp_path / "empty"
    evstore.open(empty).close()
    assert json.loads(run("pods", empty, "--json").stdout) == []
