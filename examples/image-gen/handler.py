"""runq's reference image worker: text to image with a diffusers pipeline baked into the bundle.

Input (see params.py): prompt, negative_prompt, steps, guidance, seed, width, height,
num_images. Output: {"images": [base64 PNG, ...], "seeds": [...], "width", "height",
"timings": {"load_s", "inference_s", "encode_s", "per_image_s"}}; a bad input is the job's
error, e.g. "width must be a multiple of 8 between 64 and 1024, got 100".

Settings (environment, set in endpoint.toml [worker] env):
  IMAGE_GEN_LOAD=lazy|eager       load on the first job (default) or during the cold start
  IMAGE_GEN_ATTENTION_SLICING=0|1 compute attention in slices: less memory, a little slower
  IMAGE_GEN_COMPILE=0|1           torch.compile the UNet (slow first job, faster after; GPU)
  IMAGE_GEN_DEVICE=cuda|cpu       default: cuda when torch sees a GPU, else cpu
  IMAGE_GEN_CACHE_DIR=PATH        run-time caches (compiled kernels, HF); default ./.cache
  IMAGE_GEN_SDK=runq|runpod       which worker SDK runs the handler (default runq)
The model is `worker.model_path()` under runq (the endpoint's [model] source), else ./model.
"""

from __future__ import annotations

import base64
import io
import os
import secrets
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from params import MAX_SEED, InputError, Params, parse

try:
    # Imported before the model loads so that runq's cold-start phases split the import of
    # the worker from the model load; absent under the runpod SDK outside runq.
    from runq import worker
except ImportError:
    worker = None

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Settings:
    eager: bool
    attention_slicing: bool
    compile: bool
    device: str  # "" = pick at load
    cache_dir: Path

    @staticmethod
    def from_env(env: dict[str, str] | os._Environ[str] = os.environ) -> Settings:
        load = env.get("IMAGE_GEN_LOAD", "lazy")
        if load not in ("lazy", "eager"):
            raise SystemExit(f"IMAGE_GEN_LOAD must be 'lazy' or 'eager', got {load!r}")
        return Settings(
            eager=load == "eager",
            attention_slicing=_flag(env, "IMAGE_GEN_ATTENTION_SLICING"),
            compile=_flag(env, "IMAGE_GEN_COMPILE"),
            device=env.get("IMAGE_GEN_DEVICE", ""),
            cache_dir=Path(env.get("IMAGE_GEN_CACHE_DIR") or HERE / ".cache").resolve(),
        )


def _flag(env: Any, name: str) -> bool:
    value = env.get(name, "0").strip().lower()
    if value not in ("0", "1", "true", "false", ""):
        raise SystemExit(f"{name} must be 0 or 1, got {value!r}")
    return value in ("1", "true")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)  # the worker's log file under runq


def set_cache_dirs(settings: Settings) -> None:
    """Point every cache torch, triton, CUDA and Hugging Face would write to at one folder of
    ours, before they are imported (they read the variables once): nothing lands in ~/.cache
    or /tmp of the image. HF_HOME is left alone when runq set it (an hf:// model in the host
    cache); a baked model is read with the hub offline."""
    root = settings.cache_dir
    forced = {
        "TORCHINDUCTOR_CACHE_DIR": root / "torchinductor",
        "TRITON_CACHE_DIR": root / "triton",
        "CUDA_CACHE_PATH": root / "nv",
        "XDG_CACHE_HOME": root,
    }
    if not os.environ.get("HF_HUB_CACHE"):  # runq sets both for an hf:// model: keep them
        forced["HF_HOME"] = root / "hf"
    for name, path in forced.items():
        os.environ[name] = str(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is on disk: never call the hub
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def model_dir() -> Path:
    if os.environ.get("RUNQ_MODEL_PATH"):
        return Path(os.environ["RUNQ_MODEL_PATH"])
    return HERE / "model"  # the runpod SDK outside runq: the model baked beside the handler


class Generator:
    """The loaded pipeline and how to run it. Built once (lazily or eagerly) per worker."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._pipe: Any = None
        self.device = ""

    @property
    def loaded(self) -> bool:
        return self._pipe is not None

    def load(self) -> float:
        """Loads the pipeline unless loaded; returns the seconds this call spent loading."""
        if self._pipe is not None:
            return 0.0
        with self._lock:
            if self._pipe is not None:
                return 0.0
            started = time.monotonic()
            self._pipe = self._load()
            took = time.monotonic() - started
            log(f"Model loaded in {took:.2f}s on {self.device}")
            return took

    def _load(self) -> Any:
        path = model_dir()
        log(f"Loading model... ({path})")
        import torch
        from diffusers import DiffusionPipeline
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.disable_progress_bar()
        self.device = self.settings.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        pipe = DiffusionPipeline.from_pretrained(path, dtype=dtype, local_files_only=True)
        pipe.set_progress_bar_config(disable=True)
        pipe.to(self.device)
        self._attention(pipe)
        if self.settings.compile:
            # The UNet runs `steps` times per image: it is where compiling pays.
            pipe.unet = torch.compile(pipe.unet)
            log("torch.compile enabled for the UNet (the first job compiles it)")
        return pipe

    def _attention(self, pipe: Any) -> None:
        if self.device != "cuda":
            log(f"xformers not used: no CUDA device ({self.device}); PyTorch SDPA attention")
        else:
            try:
                pipe.enable_xformers_memory_efficient_attention()
                log("xformers enabled")
            except (ImportError, ModuleNotFoundError, ValueError, RuntimeError) as exc:
                log(f"xformers not available ({exc}); PyTorch SDPA attention")
        if self.settings.attention_slicing:
            pipe.enable_attention_slicing()
            log("attention slicing enabled")

    def generate(self, params: Params) -> dict[str, Any]:
        import torch

        load_s = self.load()
        seed = params.seed if params.seed is not None else secrets.randbelow(MAX_SEED)
        seeds = [(seed + i) % (MAX_SEED + 1) for i in range(params.num_images)]
        # One CPU generator per image: image i depends on its own seed only, whatever the
        # batch size and the device, so a seed returned by a job reproduces that image alone.
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        started = time.monotonic()
        with torch.inference_mode():
            images = self._pipe(
                prompt=[params.prompt] * params.num_images,
                negative_prompt=[params.negative_prompt] * params.num_images
                if params.negative_prompt
                else None,
                num_inference_steps=params.steps,
                guidance_scale=params.guidance,
                width=params.width,
                height=params.height,
                generator=generators,
            ).images
        inference_s = time.monotonic() - started
        started = time.monotonic()
        encoded = [_png_base64(image) for image in images]
        encode_s = time.monotonic() - started
        return {
            "images": encoded,
            "seeds": seeds,
            "width": params.width,
            "height": params.height,
            "timings": {
                "load_s": round(load_s, 4),
                "inference_s": round(inference_s, 4),
                "encode_s": round(encode_s, 4),
                "per_image_s": round((inference_s + encode_s) / len(images), 4),
            },
        }


def _png_base64(image: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


SETTINGS = Settings.from_env()
set_cache_dirs(SETTINGS)
GENERATOR = Generator(SETTINGS)


def handler(job: dict[str, Any]) -> dict[str, Any]:
    try:
        params = parse(job.get("input"))
    except InputError as exc:
        return {"error": str(exc)}
    return GENERATOR.generate(params)


if __name__ == "__main__":
    if SETTINGS.eager:
        GENERATOR.load()  # part of the cold start: no job waits for the load
    if os.environ.get("IMAGE_GEN_SDK", "runq") == "runpod":
        import runpod

        runpod.serverless.start({"handler": handler})
    else:
        if worker is None:
            raise SystemExit("runq is not installed: pip install runq, or IMAGE_GEN_SDK=runpod")
        worker.start({"handler": handler})
