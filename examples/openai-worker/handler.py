"""An OpenAI-compatible worker with RunPod's contract (that of its vLLM worker), on the
unmodified `runpod` SDK: an async generator started with `return_aggregate_stream: True`.

A job's input is `{"openai_route": "/v1/...", "openai_input": <the request body>}`. Without
`"stream": true` the handler yields one object, the OpenAI response or an error object
`{"error": {"message", "type", "param", "code"}}`; with it, strings of server-sent-event text,
ending with `data: [DONE]`. Routes: /v1/models, /v1/embeddings, /v1/chat/completions,
/v1/completions. runq (or RunPod) serves them at /v2/{endpoint}/openai/v1/...
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import runpod
from params import (
    CHAT_MODEL,
    EMBEDDING_MODEL,
    Generation,
    RequestError,
    parse_embedding,
    parse_generation,
)

from models import Completion, Models

print("Loading models...", flush=True)
started = time.perf_counter()
MODELS = Models()
print(f"Models loaded in {time.perf_counter() - started:.1f}s", flush=True)


def error(message: str, code: int = 400) -> dict[str, Any]:
    kind = "NotFoundError" if code == 404 else "BadRequestError"
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def models() -> dict[str, Any]:
    created = int(started)
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": created, "owned_by": "runq-example"}
            for name in (CHAT_MODEL, EMBEDDING_MODEL)
        ],
    }


async def embeddings(body: Any) -> dict[str, Any]:
    request = parse_embedding(body)
    vectors, tokens = await asyncio.to_thread(MODELS.embed, request.texts)
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": (
                base64.b64encode(vector.astype("<f4").tobytes()).decode()
                if request.base64
                else vector.tolist()
            ),
        }
        for index, vector in enumerate(vectors)
    ]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": EMBEDDING_MODEL, "usage": usage}


def _usage(done: Completion) -> dict[str, int]:
    return {
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": done.prompt_tokens + done.completion_tokens,
    }


def _envelope(request: Generation, chunk: bool) -> dict[str, Any]:
    if request.chat:
        kind = "chat.completion.chunk" if chunk else "chat.completion"
    else:
        kind = "text_completion"
    return {
        "id": f"{'chatcmpl' if request.chat else 'cmpl'}-{uuid.uuid4().hex}",
        "object": kind,
        "created": int(time.time()),
        "model": CHAT_MODEL,
    }


def _choice(request: Generation, text: str, finish: str | None, chunk: bool) -> dict[str, Any]:
    if not request.chat:
        return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
    key = "delta" if chunk else "message"
    return {"index": 0, key: {"role": "assistant", "content": text}, "finish_reason": finish}


async def complete(request: Generation) -> dict[str, Any]:
    done = await MODELS.complete(request)
    return {
        **_envelope(request, chunk=False),
        "choices": [_choice(request, done.text, done.finish_reason, chunk=False)],
        "usage": _usage(done),
    }


def _event(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body)}\n\n"


async def stream(request: Generation) -> AsyncIterator[str]:
    """One server-sent event per piece of text, as the model writes it, then the finish."""
    envelope = _envelope(request, chunk=True)  # every chunk of one answer has the same id
    async for piece in MODELS.stream(request):
        if isinstance(piece, str):
            yield _event({**envelope, "choices": [_choice(request, piece, None, chunk=True)]})
            continue
        last = {**envelope, "choices": [_choice(request, "", piece.finish_reason, chunk=True)]}
        events = _event(last)
        if request.include_usage:
            events += _event({**envelope, "choices": [], "usage": _usage(piece)})
        yield events + "data: [DONE]\n\n"


async def handler(job: dict[str, Any]) -> AsyncIterator[Any]:
    job_input = job["input"] if isinstance(job.get("input"), dict) else {}
    route = job_input.get("openai_route")
    body = job_input.get("openai_input")
    try:
        if route == "/v1/models":
            yield models()
        elif route == "/v1/embeddings":
            yield await embeddings(body)
        elif route in ("/v1/chat/completions", "/v1/completions"):
            request = parse_generation(body, chat=route == "/v1/chat/completions")
            if request.stream:
                async for events in stream(request):
                    yield events
            else:
                yield await complete(request)
        else:
            yield error(f"route {route!r} is not served by this worker", 404)
    except RequestError as exc:
        yield error(str(exc), exc.code)


if __name__ == "__main__":
    runpod.serverless.start({"handler": handler, "return_aggregate_stream": True})
