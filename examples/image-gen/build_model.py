"""Bake the endpoint's diffusion model into `model/` (a diffusers `save_pretrained` folder).

    python build_model.py                      # tiny pipeline, random weights, nothing downloaded
    python build_model.py --model ORG/NAME     # a real model: downloaded once, at build time

The tiny pipeline (a two-block UNet, a two-block VAE, a five-layer CLIP text encoder and a
byte-level tokenizer whose vocabulary this script writes) is made from configs with seeded
random weights: it draws noise-like images, quickly, on a CPU, and is what the tests and the
benchmark use. `--model` is for real use: it fetches the model with `from_pretrained` into a
build-time cache (`--cache-dir`, default `.build-cache/` here, never ~/.cache) and saves it in
the same layout, so at run time the worker loads from `model/` with the network off.

Run it with the interpreter of the bundle (or any environment with `pip install -e ".[image]"`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPECIALS = ("<|startoftext|>", "<|endoftext|>")


def byte_vocab() -> dict[str, int]:
    """CLIP's byte-level BPE alphabet (each byte as CLIP maps it to a printable character, and
    its end-of-word form) plus the two special tokens: every text tokenizes, with no merges."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    chars, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            chars.append(256 + extra)
            extra += 1
    symbols = [chr(c) for c in chars]
    tokens = [*SPECIALS, *symbols, *(s + "</w>" for s in symbols)]
    return {token: index for index, token in enumerate(tokens)}


def tiny_pipeline(folder: Path, seed: int) -> None:
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = Path(tmp) / "vocab.json", Path(tmp) / "merges.txt"
        words = byte_vocab()
        vocab.write_text(json.dumps(words))
        merges.write_text("#version: 0.2\n")
        tokenizer = CLIPTokenizer(str(vocab), str(merges), model_max_length=32)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                bos_token_id=words[SPECIALS[0]],
                eos_token_id=words[SPECIALS[1]],
                pad_token_id=words[SPECIALS[1]],
                hidden_size=32,
                intermediate_size=37,
                num_attention_heads=4,
                num_hidden_layers=5,
                max_position_embeddings=32,
                vocab_size=len(words),
            )
        )
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        block_out_channels=(32, 64),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=32,
        sample_size=64,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
    )
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder, safe_serialization=True)


def real_pipeline(folder: Path, model: str, revision: str | None) -> None:
    from diffusers import DiffusionPipeline

    pipeline = DiffusionPipeline.from_pretrained(model, revision=revision)
    pipeline.save_pretrained(folder, safe_serialization=True)


def build(out: Path, model: str, revision: str | None, seed: int, cache_dir: Path) -> float:
    """Writes the pipeline to `out` (replacing it whole, so a failed build leaves no half
    model) and returns the seconds it took."""
    # Before diffusers/transformers are imported: they read these once, at import.
    os.environ["HF_HOME"] = str(cache_dir / "hf")
    os.environ.setdefault("XDG_CACHE_HOME", str(cache_dir))
    if model == "tiny":
        os.environ["HF_HUB_OFFLINE"] = "1"  # the tiny pipeline must never touch the network
    started = time.monotonic()
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    if model == "tiny":
        tiny_pipeline(staging, seed)
    else:
        real_pipeline(staging, model, revision)
    (staging / "runq-model.json").write_text(json.dumps({"model": model, "revision": revision}))
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="'tiny' (default) or a HF model id")
    parser.add_argument("--revision", default=None, help="branch, tag or commit of --model")
    parser.add_argument("--out", type=Path, default=HERE / "model", help="default: ./model")
    parser.add_argument("--seed", type=int, default=0, help="tiny weights' seed (default 0)")
    parser.add_argument(
        "--cache-dir", type=Path, default=HERE / ".build-cache", help="build-time downloads"
    )
    args = parser.parse_args(argv)
    took = build(args.out.resolve(), args.model, args.revision, args.seed, args.cache_dir)
    print(f"baked {args.model} into {args.out} in {took:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
