"""Request validation for the OpenAI routes: pure functions, no torch. A bad request raises
RequestError with a message naming the field and the HTTP status the client should see."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CHAT_MODEL = "tiny-random-llama"
EMBEDDING_MODEL = "all-MiniLM-L6-v2"
MAX_NEW_TOKENS = 256
MAX_EMBEDDING_INPUTS = 256


class RequestError(ValueError):
    """A request the worker refuses; `code` is the HTTP status (vLLM's error object's code)."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Generation:
    """A chat or text completion request, validated."""

    chat: bool
    prompt: str | None  # /v1/completions
    messages: list[dict[str, str]] | None  # /v1/chat/completions
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stream: bool
    include_usage: bool


@dataclass(frozen=True)
class Embedding:
    texts: list[str]
    base64: bool


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise RequestError(f"'{name}' must be a number between {low:g} and {high:g}, got {value!r}")
    return float(value)


def _model(body: dict[str, Any], expected: str) -> None:
    model = body.get("model")
    if model != expected:
        raise RequestError(
            f"The model `{model}` does not exist; this route serves `{expected}`.", 404
        )


def _messages(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise RequestError("'messages' must be a non-empty list")
    messages = []
    for index, message in enumerate(raw):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str) or not isinstance(message.get("role"), str):
            raise RequestError(f"'messages[{index}]' must have a string 'role' and 'content'")
        messages.append({"role": message["role"], "content": content})
    return messages


def _prompt(raw: Any) -> str:
    if isinstance(raw, list) and len(raw) == 1:
        raw = raw[0]
    if not isinstance(raw, str) or not raw:
        raise RequestError("'prompt' must be a non-empty string (or a list of one)")
    return raw


def parse_generation(body: Any, chat: bool) -> Generation:
    """Validate a /v1/chat/completions (`chat`) or /v1/completions body."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    _model(body, CHAT_MODEL)
    if body.get("n", 1) != 1:
        raise RequestError(f"'n' must be 1 on this worker, got {body['n']!r}")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens", 16))
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise RequestError(f"'max_tokens' must be an integer, got {max_tokens!r}")
    if not 1 <= max_tokens <= MAX_NEW_TOKENS:
        raise RequestError(f"'max_tokens' must be between 1 and {MAX_NEW_TOKENS}, got {max_tokens}")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise RequestError(f"'seed' must be a non-negative integer, got {seed!r}")
    options = body.get("stream_options") or {}
    return Generation(
        chat=chat,
        prompt=None if chat else _prompt(body.get("prompt")),
        messages=_messages(body.get("messages")) if chat else None,
        max_tokens=max_tokens,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        seed=seed,
        stream=body.get("stream") is True,
        include_usage=isinstance(options, dict) and options.get("include_usage") is True,
    )


def parse_embedding(body: Any) -> Embedding:
    """Validate a /v1/embeddings body: `input` is a string or a list of strings."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    _model(body, EMBEDDING_MODEL)
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise RequestError("'input' must be a string or a non-empty list of strings")
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise RequestError(f"'input' has {len(texts)} strings; the limit is {MAX_EMBEDDING_INPUTS}")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise RequestError(f"'encoding_format' must be 'float' or 'base64', got {encoding!r}")
    return Embedding(texts=texts, base64=encoding == "base64")
