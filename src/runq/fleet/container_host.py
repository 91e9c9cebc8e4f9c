"""Containers as this host sees them: runq's names and labels for them, the cgroup file that
freezes one, the engine's event times, and the removal of those a crashed runq left."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Collection
from datetime import datetime
from pathlib import Path

log = logging.getLogger("runq.fleet")

LABEL_WORKER = "io.runq.worker"
LABEL_ENDPOINT = "io.runq.endpoint"
LABEL_PLANE = "io.runq.control-plane"


def state_dir(data_dir: Path) -> Path:
    """runq's files for the engine: its containers.conf, env files, auth files, image index."""
    return data_dir / "containers"


def plane_id(data_dir: Path) -> str:
    """A short label value that tells this control plane's containers from another's."""
    return hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]


def container_name(worker_id: str) -> str:
    return f"runq-{worker_id}"


def event_time(line: str) -> float | None:
    """The epoch time of an engine's JSON event: podman's RFC 3339 `Time` (nanoseconds) or
    docker's `timeNano`.

    >>> event_time('{"Status": "start", "Time": "2026-12-05T07:49:13.256744332Z"}')
    1796456953.256744
    """
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    if isinstance(event.get("timeNano"), int):
        return float(event["timeNano"]) / 1e9
    text = event.get("Time") or event.get("time")
    if not isinstance(text, str):
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", text).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def freezer_of(pid: int) -> Path | None:
    """The file that freezes `pid`'s cgroup: cgroup v1's freezer.state or v2's cgroup.freeze."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "freezer" in controllers.split(","):
            candidate = Path("/sys/fs/cgroup/freezer") / path.lstrip("/") / "freezer.state"
            if candidate.exists():
                return candidate
    for line in lines:
        if line.startswith("0::"):
            candidate = Path("/sys/fs/cgroup") / line[3:].lstrip("/") / "cgroup.freeze"
            if candidate.exists():
                return candidate
    return None


def freeze_value(path: Path, frozen: bool) -> str:
    if path.name == "cgroup.freeze":
        return "1" if frozen else "0"
    return "FROZEN" if frozen else "THAWED"


def reap_containers(data_dir: Path, keep: Collection[str] = ()) -> int:
    """Remove containers a previous control plane on `data_dir` left (kill -9 of runq leaves
    them running under conmon), but those of the workers in `keep` (the running control
    plane's own, on a Ray node it shares with others). A no-op on a host where runq never ran
    a container."""
    conf = state_dir(data_dir)
    if not conf.exists():
        return 0
    removed = 0
    for name in ("podman", "docker"):
        binary = shutil.which(name)
        if binary is None:
            continue
        env = dict(os.environ)
        if name == "podman" and (conf / "containers.conf").exists():
            env.setdefault("CONTAINERS_CONF", str(conf / "containers.conf"))
        label = f"label={LABEL_PLANE}={plane_id(data_dir)}"
        pid = "{{.Pid}}" if name == "podman" else "0"  # docker ps has no pid (nor needs a thaw)
        kept = {container_name(worker_id) for worker_id in keep}
        try:
            listed = subprocess.run(
                [
                    binary,
                    "ps",
                    "-a",
                    "--filter",
                    label,
                    "--format",
                    f"{{{{.ID}}}} {pid} {{{{.Names}}}}",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            rows = [line.split() for line in listed.stdout.splitlines() if line.strip()]
            rows = [row for row in rows if not (len(row) > 2 and row[2] in kept)]
            ids = [row[0] for row in rows]
            for row in rows:  # a parked container must thaw, or SIGKILL cannot end it
                freezer = freezer_of(int(row[1])) if len(row) > 1 and row[1].isdigit() else None
                if freezer is not None:
                    with contextlib.suppress(OSError):
                        freezer.write_text(freeze_value(freezer, frozen=False))
            if listed.returncode == 0 and ids:
                subprocess.run([binary, "rm", "-f", *ids], env=env, capture_output=True, timeout=60)
                removed += len(ids)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("could not reap leftover containers with %s: %s", name, exc)
    if removed:
        log.warning("removed %d container(s) left by a previous runq", removed)
    return removed
