"""examples/image-gen: input validation (no torch needed) and, end to end through a live
`runq serve`, a 64x64 image from the tiny pipeline that build_model.py bakes (random weights,
nothing downloaded), deterministic per seed, under both worker SDKs.

The end-to-end test needs torch and diffusers (`pip install -e ".[image]"`): without them it is
skipped, except in CI (`CI` set), where that is a failure so the test cannot vanish silently.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import Server

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "image-gen"


def _load_params() -> ModuleType:
    spec = importlib.util.spec_from_file_location("image_gen_params", EXAMPLE / "params.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


params = _load_params()

# --- input validation: a pure function, table-driven ---------------------------------------

VALID = [
    pytest.param({"prompt": "a fox"}, {"width": 512, "steps": 25, "seed": None}, id="defaults"),
    pytest.param(
        {"prompt": "a fox", "width": 64, "height": 1024, "steps": 2, "seed": 0},
        {"width": 64, "height": 1024, "steps": 2, "seed": 0},
        id="the smallest and largest sides are allowed",
    ),
    pytest.param(
        {"prompt": "a fox", "num_images": 4.0, "guidance": 0},
        {"num_images": 4, "guidance": 0.0},
        id="a whole float counts as an integer and guidance 0 turns guidance off",
    ),
    pytest.param(
        # 1024 x 1024 x 4 = 4,194,304 pixels: exactly the batch limit
        {"prompt": "a fox", "width": 1024, "height": 1024, "num_images": 4},
        {"num_images": 4},
        id="a batch of exactly the pixel limit is allowed",
    ),
]


@pytest.mark.parametrize(("raw", "expected"), VALID)
def test_a_valid_input_gives_its_parameters(raw: dict[str, Any], expected: dict[str, Any]) -> None:
    parsed = params.parse(raw)
    assert {key: getattr(parsed, key) for key in expected} == expected


INVALID = [
    pytest.param(["a fox"], "input must be a JSON object, got list", id="not an object"),
    pytest.param({}, "prompt must be a string, got None", id="no prompt"),
    pytest.param({"prompt": "  "}, "prompt must be a non-empty string", id="a blank prompt"),
    pytest.param(
        {"prompt": "a fox", "width": 100},
        "width must be a multiple of 8 between 64 and 1024, got 100",
        id="a width that is not a multiple of 8",
    ),
    pytest.param(
        {"prompt": "a fox", "height": 2048},
        "height must be a multiple of 8 between 64 and 1024, got 2048",
        id="a height over the limit",
    ),
    pytest.param(
        {"prompt": "a fox", "steps": 0},
        "steps must be an integer between 1 and 150, got 0",
        id="zero steps",
    ),
    pytest.param(
        {"prompt": "a fox", "steps": "20"},
        "steps must be an integer, got '20'",
        id="steps as a string",
    ),
    pytest.param(
        {"prompt": "a fox", "seed": True}, "seed must be an integer, got True", id="a bool seed"
    ),
    pytest.param(
        {"prompt": "a fox", "seed": -1},
        "seed must be an integer between 0 and 9223372036854775807, got -1",
        id="a negative seed",
    ),
    pytest.param(
        {"prompt": "a fox", "guidance": 31},
        "guidance must be between 0 and 30, got 31",
        id="guidance over the limit",
    ),
    pytest.param(
        {"prompt": "a fox", "num_images": 9},
        "num_images must be an integer between 1 and 8, got 9",
        id="too many images",
    ),
    pytest.param(
        # 1024 x 1024 x 5 = 5,242,880 > 4,194,304
        {"prompt": "a fox", "width": 1024, "height": 1024, "num_images": 5},
        "width x height x num_images must be at most 4194304 pixels, got 1024x1024x5 = 5242880",
        id="a batch over the pixel limit",
    ),
    pytest.param(
        {"prompt": "a fox", "size": 64},
        "unknown input field 'size'; allowed: prompt, negative_prompt, steps, guidance, seed, "
        "width, height, num_images",
        id="an unknown field is named",
    ),
]


@pytest.mark.parametrize(("raw", "message"), INVALID)
def test_a_bad_input_is_refused_with_a_message_naming_the_field(raw: Any, message: str) -> None:
    with pytest.raises(params.InputError) as caught:
        params.parse(raw)
    assert str(caught.value) == message


# --- end to end: the tiny pipeline through a live runq serve --------------------------------


def _require_image_stack() -> None:
    missing = [m for m in ("torch", "diffusers", "transformers") if not importlib.util.find_spec(m)]
    if missing:
        message = f'{", ".join(missing)} not installed (pip install -e ".[image]")'
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _png_size(data: bytes) -> tuple[int, int]:
    from PIL import Image  # diffusers depends on Pillow

    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as image:
        image.verify()  # checks the chunks' CRCs: a truncated or corrupt PNG raises
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        return image.size


def _pixels(png: bytes) -> Any:
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def _max_diff(a: Any, b: Any) -> int:
    return int(abs(a - b).max())


def _worker_log(server: Server, endpoint: str) -> str:
    """The log of the endpoint's one worker (the test starts one per endpoint)."""
    (log,) = (server.data_dir / "logs" / endpoint).glob("*.log")
    return log.read_text()


def _bundle(root: Path, name: str, model: Path, env: dict[str, str]) -> Path:
    """The example's folder as a user has it after `runq bundle build` (the model baked by
    build_model.py), and its endpoint.toml with the test's interpreter (the bundle venv's role)
    instead of requirements to install and a build step to run."""
    folder = root / name
    folder.mkdir()
    for file in ("handler.py", "params.py"):
        shutil.copy(EXAMPLE / file, folder / file)
    os.symlink(model, folder / "model")  # baked: `[model] source = "model"`
    text = (EXAMPLE / "endpoint.toml").read_text()
    text = text.replace('name = "image-gen"', f'name = "{name}"')
    text = text.replace('command = ["python"', f'command = ["{sys.executable}"')
    text = re.sub(r"(?m)^requirements = .*\n", "", text)
    text = re.sub(r"(?m)^build = .*\n", "", text)  # the test baked the model already
    text = re.sub(r"(?m)^env = .*$", "env = " + _inline_table(env), text)
    text = text.replace("active_workers = 0", "active_workers = 1")
    # The example's file changed shape if a rewrite missed: fail here, not in a worker's start.
    assert sys.executable in text and "requirements" not in text and "active_workers = 1" in text
    (folder / "endpoint.toml").write_text(text)
    return folder / "endpoint.toml"


def _inline_table(env: dict[str, str]) -> str:
    return "{ " + ", ".join(f'{key} = "{value}"' for key, value in env.items()) + " }"


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_the_tiny_pipeline_draws_a_64px_png_the_same_for_the_same_seed_under_both_sdks(
    server_factory: Callable[[], Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require_image_stack()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # the workers must write no cache under ~
    model = tmp_path / "model"
    built = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE / "build_model.py"),
            "--out",
            str(model),
            "--cache-dir",
            str(tmp_path / "build-cache"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    server = server_factory()
    server.endpoints.append(_bundle(server.root, "img", model, {"IMAGE_GEN_LOAD": "eager"}))
    server.endpoints.append(
        _bundle(
            server.root,
            "img-runpod",
            model,
            {
                "IMAGE_GEN_LOAD": "lazy",
                "IMAGE_GEN_SDK": "runpod",
                "IMAGE_GEN_ATTENTION_SLICING": "1",
            },
        )
    )
    server.start(wait_workers=False)
    server.wait_workers("img", 1, timeout=60)

    request = {"prompt": "a red fox", "width": 64, "height": 64, "steps": 2, "seed": 7}
    batch = server.run("img", {"input": {**request, "num_images": 2}})
    again = server.run("img", {"input": request})
    repeat = server.run("img", {"input": request})
    other = server.run("img", {"input": {**request, "seed": 8}})
    bad = server.run("img", {"input": {**request, "width": 100}})
    via_runpod = server.run("img-runpod", {"input": request})
    done = {
        name: server.wait_status(endpoint, job, {"COMPLETED", "FAILED"}, timeout=60)
        for name, endpoint, job in [
            ("batch", "img", batch),
            ("again", "img", again),
            ("repeat", "img", repeat),
            ("other", "img", other),
            ("bad", "img", bad),
            ("runpod", "img-runpod", via_runpod),
        ]
    }

    assert done["bad"]["status"] == "FAILED"
    assert done["bad"]["error"] == "width must be a multiple of 8 between 64 and 1024, got 100"
    for name in ("batch", "again", "repeat", "other", "runpod"):
        assert done[name]["status"] == "COMPLETED", done[name]
    images = {
        name: [base64.b64decode(text) for text in done[name]["output"]["images"]]
        for name in ("batch", "again", "repeat", "other", "runpod")
    }
    assert [_png_size(png) for png in images["batch"]] == [(64, 64), (64, 64)]
    assert done["batch"]["output"]["seeds"] == [7, 8]
    # The same seed draws the same PNG, byte for byte, in the same worker.
    assert images["again"] == images["repeat"]
    # Each image of a batch depends on its own seed only; batched arithmetic may round the last
    # bit differently, so pixels are compared within 2 levels of 255. Other seeds: other images
    # (the random-weight pipeline's pictures differ by ~44 levels on average).
    batch_pixels = [_pixels(png) for png in images["batch"]]
    assert _max_diff(batch_pixels[0], _pixels(images["again"][0])) <= 2
    assert _max_diff(batch_pixels[1], _pixels(images["other"][0])) <= 2
    assert _max_diff(batch_pixels[0], batch_pixels[1]) > 20
    # The runpod SDK worker (another process, attention sliced) draws the same picture from
    # the same handler file; slicing may round differently, hence the same 2-level tolerance.
    assert _max_diff(_pixels(images["runpod"][0]), _pixels(images["again"][0])) <= 2
    timings = done["batch"]["output"]["timings"]
    assert timings["inference_s"] > 0 and timings["per_image_s"] > 0
    # Eager: loaded in the cold start, before the worker takes jobs; no job pays it.
    assert [done[name]["output"]["timings"]["load_s"] for name in ("batch", "again")] == [0, 0]
    eager = _worker_log(server, "img")
    assert eager.index("Model loaded in") < eager.index("Starting runq worker")
    # Lazy: the worker starts at once and its first job loads the model. (Read from the log,
    # not load_s: a job the runpod SDK could not report is run again, by a loaded worker.)
    lazy = _worker_log(server, "img-runpod")
    assert lazy.index("Starting Serverless Worker") < lazy.index("Started.")
    assert lazy.index("Started.") < lazy.index("Loading model...")

    assert "xformers not used: no CUDA device (cpu)" in eager
    assert "attention slicing enabled" in lazy and "attention slicing enabled" not in eager
    assert list(home.iterdir()) == []
