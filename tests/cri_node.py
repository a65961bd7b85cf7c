"""A private containerd for the recorder's tests and its cost script: a real CRI runtime.

Everything it starts lives under one temporary directory (root, state, gRPC and ttrpc
sockets, runc's state) and one cgroup parent of its own, with an image built here from
Debian's ``busybox-static`` (no registry): it serves both as workload and as pause image.
``Node.close`` takes it all down again, even after a failed test: pods, the daemon, its shims,
their mounts, the cgroups and the shim sockets containerd 1.6 always puts in
``/run/containerd/s``. Pods use the host's network, so no CNI is needed.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from cri_api.v1 import api_pb2 as cri
from cri_api.v1.api_pb2_grpc import RuntimeServiceStub

IMAGE = "docker.io/evstore/busybox:test"
BUSYBOX = "/usr/bin/busybox"
APPLETS = ("sh", "sleep", "dd", "true", "false", "cat", "test", "[", "touch")
RUN = Path("/run/containerd")  # containerd 1.6 puts shim sockets (s/) and fifos here anyway
RUN_DIRS = (RUN / "s", RUN / "fifo")
CGROUP_ROOT = Path("/sys/fs/cgroup")
NODE_NETWORK = 2  # CRI's NamespaceMode.NODE


class NodeError(RuntimeError):
    """The private containerd could not be started."""


# --- the image ---------------------------------------------------------------------------


def _blob(layout: tarfile.TarFile, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    _add(layout, f"blobs/sha256/{digest}", data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    archive.addfile(info, io.BytesIO(data))


def _rootfs() -> bytes:
    """A layer with busybox and the applets the tests run."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as layer:
        for name in ("bin", "tmp", "proc", "sys", "dev", "etc"):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
            layer.addfile(info)
        info = layer.gettarinfo(BUSYBOX, "bin/busybox")
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        with open(BUSYBOX, "rb") as binary:
            layer.addfile(info, binary)
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            layer.addfile(link)
    return buffer.getvalue()


def build_image(path: Path) -> Path:
    """An OCI layout tarball of busybox, named ``IMAGE`` for ``ctr images import``."""
    raw = _rootfs()
    compressed = gzip.compress(raw, mtime=0)
    with tarfile.open(path, "w") as layout:
        layer = _blob(layout, compressed)
        config = _blob(layout, json.dumps({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/sleep", "1000000"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers",
                       "diff_ids": [f"sha256:{hashlib.sha256(raw).hexdigest()}"]},
        }).encode())
        manifest = _blob(layout, json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
        }).encode())
        _add(layout, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add(layout, "index.json", json.dumps({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": IMAGE,
                            "org.opencontainers.image.ref.name": "test"},
        }]}).encode())
    return path


# --- the daemon ----------------------------------------------------------------------------


def _overlay_works(where: Path) -> bool:
    """Whether overlayfs mounts under ``where`` (not on an overlay or tmpfs that refuses)."""
    probe = Path(tempfile.mkdtemp(dir=where))
    for name in ("lower", "upper", "work", "merged"):
        (probe / name).mkdir()
    options = f"lowerdir={probe}/lower,upperdir={probe}/upper,workdir={probe}/work"
    mounted = subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(probe / "merged")],
        capture_output=True, check=False,
    ).returncode == 0
    if mounted:
        subprocess.run(["umount", str(probe / "merged")], check=False)
    shutil.rmtree(probe, ignore_errors=True)
    return mounted


def _config(base: Path, cgroup: str, snapshotter: str) -> str:
    cri_plugin = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{base}/containerd.sock"
[ttrpc]
  address = "{base}/containerd.ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
[cgroup]
  path = "{cgroup}/daemon"
[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/opt"
[{cri_plugin}]
  sandbox_image = "{IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_cdi = false
  restrict_oom_score_adj = true
[{cri_plugin}.cni]
  bin_dir = "{base}/cni/bin"
  conf_dir = "{base}/cni/conf"
[{cri_plugin}.containerd]
  snapshotter = "{snapshotter}"
  default_runtime_name = "runc"
[{cri_plugin}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri_plugin}.containerd.runtimes.runc.options]
  Root = "{base}/runc"
  SystemdCgroup = false
"""


class Node:
    """A private containerd and a CRI client to drive it (create pods, containers...)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.socket = base / "containerd.sock"
        self.endpoint = f"unix://{self.socket}"
        self.cgroup = f"/evstore-cri-{uuid.uuid4().hex[:8]}"
        self.process: subprocess.Popen[bytes] | None = None
        self._run_before = _run_files()
        self._channel: grpc.Channel | None = None
        self.cri: RuntimeServiceStub | None = None
        (base / "cni" / "bin").mkdir(parents=True)
        (base / "cni" / "conf").mkdir(parents=True)
        self.snapshotter = "overlayfs" if _overlay_works(base) else "native"
        (base / "config.toml").write_text(_config(base, self.cgroup, self.snapshotter))

    # lifecycle

    def start(self, timeout: float = 30.0) -> None:
        """Start the daemon and return once CRI answers (it says "not initialized" at first)."""
        log = open(self.base / "containerd.log", "ab")  # noqa: SIM115 (the daemon keeps it)
        self.process = subprocess.Popen(
            ["containerd", "--config", str(self.base / "config.toml")],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        self._channel = grpc.insecure_channel(self.endpoint)
        self.cri = RuntimeServiceStub(self._channel)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise NodeError(f"containerd exited: {self.log_tail()}")
            try:
                self.cri.ListContainers(cri.ListContainersRequest(), timeout=2)
                return
            except grpc.RpcError as exc:
                if time.monotonic() > deadline:
                    raise NodeError(f"CRI not ready: {exc}; {self.log_tail()}") from None
            time.sleep(0.05)

    def import_image(self, tarball: Path) -> None:
        subprocess.run(
            ["ctr", "--address", str(self.socket), "-n", "k8s.io", "images", "import",
             "--snapshotter", self.snapshotter, str(tarball)],
            check=True, capture_output=True,
        )

    def kill9(self) -> None:
        """SIGKILL the daemon (its shims, and so the containers, live on)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.base / "containerd.log").read_text()[-2000:]
        return ""

    def close(self) -> None:
        """Take everything down; each step runs even when one before it fails."""
        steps = (self._remove_pods, self._stop_daemon, self._kill_shims, self._unmount,
                 self._remove_cgroups, self._remove_run_files)
        for step in steps:
            with contextlib.suppress(Exception):
                step()

    def _remove_pods(self) -> None:
        if self.process is None or self.process.poll() is not None or self.cri is None:
            return
        for sandbox in self.cri.ListPodSandbox(cri.ListPodSandboxRequest(), timeout=10).items:
            with contextlib.suppress(grpc.RpcError):
                self.cri.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=sandbox.id),
                                        timeout=20)
                self.cri.RemovePodSandbox(
                    cri.RemovePodSandboxRequest(pod_sandbox_id=sandbox.id), timeout=20
                )

    def _stop_daemon(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _kill_shims(self) -> None:
        """Shims started for this daemon name its socket on their command line."""
        for pid in _pids_with(str(self.socket)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while _pids_with(str(self.socket)) and time.monotonic() < deadline:
            time.sleep(0.05)
        # runc's containers that outlived their shims: in our cgroup parent, so kill them
        for procs in _cgroup_dirs(self.cgroup):
            with contextlib.suppress(OSError):
                for pid in (procs / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)

    def _unmount(self) -> None:
        base = str(self.base)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for target in sorted((m for m in mounts if m.startswith(base)), key=len, reverse=True):
            subprocess.run(["umount", "-l", target], check=False, capture_output=True)

    def _remove_cgroups(self) -> None:
        deadline = time.monotonic() + 5
        for top in _cgroup_dirs(self.cgroup):
            for path in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                if path.is_dir():
                    _rmdir(path, deadline)
            _rmdir(top, deadline)

    def _remove_run_files(self) -> None:
        """What appeared in /run/containerd since this node was made."""
        for path in sorted(_run_files() - self._run_before, key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()

    # driving CRI, as the kubelet would

    def run_pod(self, name: str, namespace: str = "default", uid: str | None = None,
                attempt: int = 0) -> str:
        config = self.pod_config(name, namespace, uid or uuid.uuid4().hex, attempt)
        assert self.cri is not None
        reply = self.cri.RunPodSandbox(cri.RunPodSandboxRequest(config=config), timeout=60)
        return str(reply.pod_sandbox_id)

    def pod_config(self, name: str, namespace: str, uid: str, attempt: int = 0) -> Any:
        return cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name=name, namespace=namespace, uid=uid,
                                            attempt=attempt),
            labels={"app": name},
            linux=cri.LinuxPodSandboxConfig(
                cgroup_parent=self.cgroup,
                security_context=cri.LinuxSandboxSecurityContext(
                    namespace_options=cri.NamespaceOption(network=NODE_NETWORK)
                ),
            ),
        )

    def create(self, pod: str, name: str, command: list[str], *, attempt: int = 0,
               memory: int = 0, host_dir: Path | None = None) -> str:
        """A container in ``pod`` running ``command`` (not started); ``host_dir`` is mounted
        at ``/host`` in it."""
        assert self.cri is not None
        status = self.cri.PodSandboxStatus(cri.PodSandboxStatusRequest(pod_sandbox_id=pod),
                                           timeout=10).status
        meta = status.metadata
        resources = cri.LinuxContainerResources(
            memory_limit_in_bytes=memory, memory_swap_limit_in_bytes=memory
        ) if memory else None
        config = cri.ContainerConfig(
            metadata=cri.ContainerMetadata(name=name, attempt=attempt),
            image=cri.ImageSpec(image=IMAGE), command=command,
            labels={"io.kubernetes.pod.name": meta.name,
                    "io.kubernetes.pod.namespace": meta.namespace,
                    "io.kubernetes.pod.uid": meta.uid,
                    "io.kubernetes.container.name": name},
            linux=cri.LinuxContainerConfig(resources=resources),
            mounts=[cri.Mount(container_path="/host", host_path=str(host_dir))] if host_dir else [],
        )
        sandbox_config = self.pod_config(meta.name, meta.namespace, meta.uid, meta.attempt)
        reply = self.cri.CreateContainer(cri.CreateContainerRequest(
            pod_sandbox_id=pod, config=config, sandbox_config=sandbox_config
        ), timeout=60)
        return str(reply.container_id)

    def start_container(self, container: str) -> None:
        assert self.cri is not None
        self.cri.StartContainer(cri.StartContainerRequest(container_id=container), timeout=60)

    def stop_container(self, container: str, timeout: int = 0) -> None:
        assert self.cri is not None
        self.cri.StopContainer(cri.StopContainerRequest(container_id=container, timeout=timeout),
                               timeout=60)

    def update_memory(self, container: str, memory: int) -> None:
        assert self.cri is not None
        self.cri.UpdateContainerResources(cri.UpdateContainerResourcesRequest(
            container_id=container,
            linux=cri.LinuxContainerResources(memory_limit_in_bytes=memory,
                                              memory_swap_limit_in_bytes=memory),
        ), timeout=30)

    def container_status(self, container: str) -> Any:
        assert self.cri is not None
        return self.cri.ContainerStatus(
            cri.ContainerStatusRequest(container_id=container), timeout=10
        ).status

    def wait_exited(self, container: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            status = self.container_status(container)
            if status.state == cri.CONTAINER_EXITED:
                return status
            if time.monotonic() > deadline:
                raise NodeError(f"{container} did not exit")
            time.sleep(0.05)

    def remove_container(self, container: str) -> None:
        assert self.cri is not None
        self.cri.RemoveContainer(cri.RemoveContainerRequest(container_id=container), timeout=30)

    def stop_pod(self, pod: str) -> None:
        assert self.cri is not None
        self.cri.StopPodSandbox(cri.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=30)

    def remove_pod(self, pod: str) -> None:
        assert self.cri is not None
        self.cri.RemovePodSandbox(cri.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=30)


def wait_for_file(name: str, then: str) -> list[str]:
    """A command that waits until ``/host/NAME`` exists (the test creates it), then runs
    the shell command ``then``: a container whose state moves when the test says."""
    return ["/bin/sh", "-c", f"while [ ! -e /host/{name} ]; do sleep 0.02; done; {then}"]


def _run_files() -> set[Path]:
    """/run/containerd, its directories for sockets and fifos and what is in them."""
    found = {path for path in (RUN, *RUN_DIRS) if path.exists()}
    for directory in RUN_DIRS:
        with contextlib.suppress(OSError):
            found.update(directory.iterdir())
    return found


def _pids_with(needle: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline and int(proc.name) != os.getpid():
            found.append(int(proc.name))
    return found


def _cgroup_dirs(parent: str) -> list[Path]:
    """``parent`` in every cgroup hierarchy where it exists."""
    tops = [CGROUP_ROOT / parent.lstrip("/")]
    with contextlib.suppress(OSError):
        tops += [h / parent.lstrip("/") for h in CGROUP_ROOT.iterdir() if h.is_dir()]
    return [top for top in tops if top.is_dir()]


def _rmdir(path: Path, deadline: float) -> None:
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)


@contextlib.contextmanager
def running_node(base: Path | None = None) -> Iterator[Node]:
    """A started node with the image imported; taken down on exit, whatever happened."""
    own = base is None
    base = Path(tempfile.mkdtemp(prefix="evstore-cri-")) if base is None else base
    node = Node(base)
    try:
        node.start()
        node.import_image(build_image(base / "image.tar"))
        yield node
    finally:
        node.close()
        if own:
            shutil.rmtree(base, ignore_errors=True)
