"""The job input of the image worker, checked before any model work: a pure function that
imports nothing heavy, so a bad request fails in microseconds with a message naming the field.

>>> parse({"prompt": "a red fox", "width": 64, "height": 64}).width
64
>>> parse({"prompt": "a red fox", "width": 100})
Traceback (most recent call last):
...
params.InputError: width must be a multiple of 8 between 64 and 1024, got 100
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FIELDS = ("prompt", "negative_prompt", "steps", "guidance", "seed", "width", "height", "num_images")
MAX_PROMPT = 2000  # characters; the tokenizer truncates to 77 tokens anyway
MAX_STEPS = 150
MAX_GUIDANCE = 30.0
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes a signed 64-bit seed
MIN_SIDE, MAX_SIDE = 64, 1024
MAX_IMAGES = 8
MAX_PIXELS = 1024 * 1024 * 4  # a batch's total pixels: four 1024x1024 images


class InputError(ValueError):
    """The job input is not valid; the message names the field and the value."""


@dataclass(frozen=True)
class Params:
    prompt: str
    negative_prompt: str = ""
    steps: int = 25
    guidance: float = 7.5
    seed: int | None = None  # None: the worker draws one and returns it
    width: int = 512
    height: int = 512
    num_images: int = 1


def parse(raw: Any) -> Params:
    """The validated parameters of one job input.

    Raises:
        InputError: not an object, an unknown field, a missing prompt, or a value out of range.
    """
    if not isinstance(raw, dict):
        raise InputError(f"input must be a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise InputError(f"unknown input field {unknown[0]!r}; allowed: {', '.join(FIELDS)}")
    defaults = Params(prompt="")
    prompt = _text(raw, "prompt", None)
    if not prompt.strip():
        raise InputError("prompt must be a non-empty string")
    width = _int(raw, "width", defaults.width, MIN_SIDE, MAX_SIDE, multiple=8)
    height = _int(raw, "height", defaults.height, MIN_SIDE, MAX_SIDE, multiple=8)
    num_images = _int(raw, "num_images", defaults.num_images, 1, MAX_IMAGES)
    if width * height * num_images > MAX_PIXELS:
        raise InputError(
            f"width x height x num_images must be at most {MAX_PIXELS} pixels, "
            f"got {width}x{height}x{num_images} = {width * height * num_images}"
        )
    seed = raw.get("seed")
    return Params(
        prompt=prompt,
        negative_prompt=_text(raw, "negative_prompt", defaults.negative_prompt),
        steps=_int(raw, "steps", defaults.steps, 1, MAX_STEPS),
        guidance=_number(raw, "guidance", defaults.guidance, 0.0, MAX_GUIDANCE),
        seed=None if seed is None else _int(raw, "seed", 0, 0, MAX_SEED),
        width=width,
        height=height,
        num_images=num_images,
    )


def _text(raw: dict[str, Any], name: str, default: str | None) -> str:
    value = raw.get(name, default)
    if not isinstance(value, str):
        raise InputError(f"{name} must be a string, got {_show(value)}")
    if len(value) > MAX_PROMPT:
        raise InputError(f"{name} must be at most {MAX_PROMPT} characters, got {len(value)}")
    return value


def _int(
    raw: dict[str, Any], name: str, default: int, low: int, high: int, multiple: int = 1
) -> int:
    value = raw.get(name, default)
    # bool is an int in Python; 3.0 from a JSON client is accepted as 3, 3.5 is not.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be an integer, got {_show(value)}")
    if not low <= value <= high or value % multiple:
        step = f"a multiple of {multiple} " if multiple > 1 else "an integer "
        raise InputError(f"{name} must be {step}between {low} and {high}, got {value}")
    return value


def _number(raw: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InputError(f"{name} must be a number, got {_show(value)}")
    if not low <= value <= high:
        raise InputError(f"{name} must be between {low:g} and {high:g}, got {value}")
    return float(value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
