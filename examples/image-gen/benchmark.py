"""Image worker benchmark: per-image time, and cold start with the model baked into the bundle
against the same model downloaded from a hub, through one live `runq serve`.

In one run it:
* bakes the tiny pipeline (build_model.py; random weights, nothing downloaded) or uses
  `--model-dir` (a folder build_model.py wrote, e.g. a real model);
* serves that folder as an `hf://` repo from a fake Hugging Face hub on 127.0.0.1, so the
  "downloaded" endpoint goes through runq's host model cache exactly as a real hf:// model does;
* starts `runq serve` with two endpoints running this example's handler (eager load, so the
  model load is part of the cold start): `baked` (`[model] source = "model"`) and `download`
  (`hf://bench/image-model`, host cache emptied before each cold start);
* cold start = the first job's delayTime (submit to taken) with no worker running, and the
  worker's phases (init: model fetch; import; load: the pipeline load; ready);
* per-image time = executionTime of warm jobs (single images and a batch of 4);
* the anchor: the same pipeline without runq, in a fresh process (cold start: import and
  load) and called in-process (per image).

    python examples/image-gen/benchmark.py            # --quick: 1 sample; --help

Prints a table, then as its last line one JSON object with `images_ok`, `seconds_per_image`,
`cold_start_baked_s`, `cold_start_download_s` and the anchors. Stops every process it starts.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))  # tests.models.fakehub: the fake hub runq's own tests use

from tests.models.fakehub import FakeHub  # noqa: E402

from runq.models import ModelCache  # noqa: E402

REPO_ID = "bench/image-model"
ENDPOINT = """name = "{name}"
[worker]
command = ["{python}", "handler.py"]
env = {{ IMAGE_GEN_LOAD = "eager" }}
[scaling]
active_workers = 0
max_workers = 1
idle_timeout = "1s"
flashboot = false
init_timeout = "10m"
[jobs]
execution_timeout = "600s"
[model]
source = "{source}"
"""
DIRECT = """
import sys, time
started = time.monotonic()
sys.path.insert(0, sys.argv[1])
import handler
handler.GENERATOR.load()
print(time.monotonic() - started, flush=True)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def png_ok(text: str, width: int, height: int) -> bool:
    from PIL import Image

    data = base64.b64decode(text)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        with Image.open(io.BytesIO(data)) as image:
            return image.format == "PNG" and image.size == (width, height)
    except (OSError, ValueError):
        return False


class Runq:
    """One `runq serve` with a `baked` and a `download` endpoint of the image handler."""

    def __init__(self, tmp: Path, model: Path, hub_url: str) -> None:
        self.tmp = tmp
        self.data = tmp / "data"
        self.key = secrets.token_urlsafe(16)
        self.port = free_port()
        folders = []
        for name, source in (("baked", "model"), ("download", f"hf://{REPO_ID}")):
            folder = tmp / "endpoints" / name
            folder.mkdir(parents=True)
            for file in ("handler.py", "params.py"):
                shutil.copy(HERE / file, folder / file)
            if name == "baked":
                shutil.copytree(model, folder / "model")
            text = ENDPOINT.format(name=name, python=sys.executable, source=source)
            (folder / "endpoint.toml").write_text(text)
            folders.append(str(folder))
        config = tmp / "runq.toml"
        config.write_text("[server]\ntick = 0.05\n")
        env = {
            **os.environ,
            "RUNQ_API_KEY": self.key,
            "HF_ENDPOINT": hub_url,
            "PYTHONPATH": str(REPO / "src"),
        }
        self.log = open(tmp / "serve.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "runq.cli", "serve", *folders),
                *("--config", str(config), "--port", str(self.port), "--data-dir", str(self.data)),
            ],
            env=env,
            cwd=tmp,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=900,
        )
        wait_until("runq serve", self._up, 60)

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"runq serve exited: {(self.tmp / 'serve.log').read_text()}")
        try:
            return self.client.get("/admin/endpoints").status_code == 200
        except httpx.HTTPError:
            return False

    def workers(self, endpoint: str, every: bool = False) -> list[dict[str, Any]]:
        query = f"?endpoint={endpoint}" + ("&all=1" if every else "")
        rows: list[dict[str, Any]] = self.client.get(f"/admin/workers{query}").json()
        return rows

    def job(self, endpoint: str, request: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = self.client.post(
            f"/v2/{endpoint}/runsync?wait=600000", json={"input": request}
        ).json()
        if body.get("status") != "COMPLETED":
            raise RuntimeError(f"{endpoint}: {str(body)[:2000]}")
        return body

    def no_workers(self, endpoint: str) -> None:
        wait_until(f"{endpoint} to stop its worker", lambda: self.workers(endpoint) == [], 120)

    def cold(self, endpoint: str, request: dict[str, Any]) -> dict[str, Any]:
        self.no_workers(endpoint)
        body = self.job(endpoint, request)
        worker = next(w for w in self.workers(endpoint, True) if w["id"] == body["workerId"])
        return {"body": body, "delay_s": body["delayTime"] / 1000, "phases": worker["cold_start"]}

    def stop(self) -> None:
        self.client.close()
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


def bake(out: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(HERE / "build_model.py"),
            "--out",
            str(out),
            "--cache-dir",
            str(out.parent / "build-cache"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"build_model.py failed:\n{done.stderr[-3000:]}")


def hub_files(model: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(model)): path.read_bytes()
        for path in sorted(model.rglob("*"))
        if path.is_file()
    }


def direct_anchor(
    tmp: Path, model: Path, request: dict[str, Any], runs: int
) -> tuple[float, float]:
    """Cold start of a bare process (import + load, no runq) and per-image time in-process."""
    env = {**os.environ, "RUNQ_MODEL_PATH": str(model), "IMAGE_GEN_CACHE_DIR": str(tmp / "c")}
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-c", DIRECT, str(HERE)], env=env, cwd=tmp, stdout=subprocess.PIPE
    )
    assert child.stdout is not None
    child.stdout.readline()  # loaded: the interpreter's exit is not part of a cold start
    cold = time.monotonic() - started
    if child.wait(60) != 0:
        raise RuntimeError("the anchor process failed to load the pipeline")
    os.environ.update({"RUNQ_MODEL_PATH": str(model), "IMAGE_GEN_CACHE_DIR": str(tmp / "c")})
    sys.path.insert(0, str(HERE))
    import handler
    from params import parse

    handler.GENERATOR.load()
    handler.GENERATOR.generate(parse(request))  # warm-up, as the runq worker had
    per_image = []
    for _ in range(runs):
        out = handler.GENERATOR.generate(parse(request))
        per_image.append(out["timings"]["inference_s"] + out["timings"]["encode_s"])
    return cold, statistics.median(per_image)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, help="a baked model folder (default: tiny)")
    parser.add_argument("--samples", type=int, default=3, help="cold starts per source")
    parser.add_argument("--jobs", type=int, default=5, help="warm single-image jobs")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=64, help="width and height")
    parser.add_argument("--quick", action="store_true", help="1 cold start each, 2 warm jobs")
    args = parser.parse_args()
    samples, jobs = (1, 2) if args.quick else (args.samples, args.jobs)
    request = {"prompt": "a lighthouse at dusk", "steps": args.steps, "seed": 1}
    request.update(width=args.size, height=args.size)
    batch = {**request, "num_images": 4}
    console = Console()
    images_ok = images_total = 0

    def count(body: dict[str, Any]) -> None:
        nonlocal images_ok, images_total
        for text in body["output"]["images"]:
            images_total += 1
            images_ok += png_ok(text, args.size, args.size)

    with tempfile.TemporaryDirectory(prefix="runq-image-bench-") as tmp_name:
        tmp = Path(tmp_name)
        model = args.model_dir.resolve() if args.model_dir else tmp / "model"
        if not args.model_dir:
            started = time.monotonic()
            bake(model)
            console.print(f"baked the tiny pipeline in {time.monotonic() - started:.1f}s")
        with FakeHub(REPO_ID, hub_files(model)).running() as hub:
            runq = Runq(tmp, model, hub.url)
            try:
                cache = ModelCache(runq.data / "models", 10**12)
                cold: dict[str, list[dict[str, Any]]] = {"baked": [], "download": []}
                for _ in range(samples):
                    for name in cold:
                        if name == "download":
                            wait_until(
                                "download to stop", lambda: runq.workers("download") == [], 120
                            )
                            cache.rm(f"hf://{REPO_ID}")  # an empty host cache: it downloads
                        result = runq.cold(name, request)
                        count(result["body"])
                        cold[name].append(result)
                # One job first: the worker may be new (idle timeout) and a fresh pipeline's
                # first call pays one-time setup, as the anchor's warm-up call does.
                count(runq.job("baked", request))
                singles = []
                for _ in range(jobs):
                    body = runq.job("baked", request)
                    count(body)
                    singles.append(body["executionTime"] / 1000)
                batches = []
                for _ in range(max(1, jobs // 2)):
                    body = runq.job("baked", batch)
                    count(body)
                    batches.append(body["executionTime"] / 1000 / 4)
            finally:
                runq.stop()
        direct_cold, direct_image = direct_anchor(tmp, model, request, jobs)

    def median_of(rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], float]) -> float:
        return round(statistics.median(key(r) for r in rows), 3)

    phase_names = ("init_s", "import_s", "load_s", "ready_s")
    table = Table(title=f"image-gen: {args.size}x{args.size}, {args.steps} steps, CPU")
    table.add_column("measure")
    table.add_column("runq", justify="right")
    table.add_column("anchor: no runq", justify="right")
    table.add_column("notes")
    figures: dict[str, Any] = {}
    for name in ("baked", "download"):
        delay = median_of(cold[name], lambda r: r["delay_s"])
        phases = {
            p: median_of(cold[name], lambda r, p=p: float((r["phases"] or {}).get(p) or 0))
            for p in phase_names
        }
        figures[f"cold_start_{name}_s"] = delay
        figures[f"cold_start_{name}_phases"] = phases
        notes = ", ".join(f"{p[:-2]} {v:.2f}" for p, v in phases.items())
        table.add_row(f"cold start, model {name} (s)", f"{delay:.2f}", f"{direct_cold:.2f}", notes)
    per_image = round(statistics.median(singles), 4)
    per_image_batch = round(statistics.median(batches), 4)
    table.add_row("seconds per image, 1 per job", f"{per_image:.4f}", f"{direct_image:.4f}", "")
    table.add_row("seconds per image, batch of 4", f"{per_image_batch:.4f}", "", "")
    table.add_row("valid PNGs", f"{images_ok}/{images_total}", "", "")
    console.print(table)
    figures = {
        "images_ok": images_ok,
        "images_total": images_total,
        "seconds_per_image": per_image,
        "seconds_per_image_batch4": per_image_batch,
        "seconds_per_image_direct": round(direct_image, 4),
        "cold_start_baked_s": figures["cold_start_baked_s"],
        "cold_start_download_s": figures["cold_start_download_s"],
        "cold_start_direct_process_s": round(direct_cold, 3),
        "cold_start_baked_phases": figures["cold_start_baked_phases"],
        "cold_start_download_phases": figures["cold_start_download_phases"],
        "size": args.size,
        "steps": args.steps,
        "samples": samples,
        "device": "cpu",
    }
    print(json.dumps(figures))
    return 0 if images_ok == images_total else 1


if __name__ == "__main__":
    sys.exit(main())
