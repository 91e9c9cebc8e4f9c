"""An unmodified RunPod worker with the OpenAI contract of RunPod's vLLM worker: it echoes the
last message's words back. The model name picks a failure: `error-422` yields vLLM's error
object, `flat-error` the older flat one (404), `crash` raises, `slow` sleeps, `slow-stream`
streams one word then sleeps, `crash-mid-stream` streams one word then raises."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import runpod

MODELS = {"object": "list", "data": [{"id": "echo", "object": "model", "owned_by": "test"}]}


def _event(route: str, model: str, word: str, index: int) -> str:
    if route == "/v1/chat/completions":
        choice = {"index": 0, "delta": {"content": word}, "finish_reason": None}
        kind = "chat.completion.chunk"
    else:
        choice = {"index": 0, "text": word, "finish_reason": None}
        kind = "text_completion"
    body = {"id": "cmpl-1", "object": kind, "created": int(time.time()), "model": model}
    return "data: " + json.dumps({**body, "choices": [choice]}) + "\n\n"


def _complete(route: str, model: str, text: str) -> dict[str, Any]:
    if route == "/v1/chat/completions":
        choice = {"index": 0, "message": {"role": "assistant", "content": text}}
        kind = "chat.completion"
    else:
        choice = {"index": 0, "text": text}
        kind = "text_completion"
    choice["finish_reason"] = "stop"
    body = {"id": "cmpl-1", "object": kind, "created": int(time.time()), "model": model}
    return {**body, "choices": [choice]}


async def handler(job: dict[str, Any]) -> AsyncIterator[dict[str, Any] | str]:
    route = job["input"]["openai_route"]
    if route == "/v1/models":
        yield MODELS
        return
    request = job["input"]["openai_input"]
    model = request.get("model", "echo")
    if model == "error-422":
        yield {"error": {"message": "max_tokens is too large", "type": "BadRequest", "code": 422}}
        return
    if model == "flat-error":
        yield {"object": "error", "message": "no such model", "type": "NotFound", "code": 404}
        return
    if model == "crash":
        raise RuntimeError("the model crashed")
    if model == "slow":
        await asyncio.sleep(60)
    prompt = request["messages"][-1]["content"] if "messages" in request else request["prompt"]
    words = [word + " " for word in prompt.split()]
    if not request.get("stream"):
        yield _complete(route, model, "".join(words))
        return
    for index, word in enumerate(words):
        yield _event(route, model, word, index)
        if model == "slow-stream":
            await asyncio.sleep(60)
        if model == "crash-mid-stream":
            raise RuntimeError("the model crashed mid-stream")
    yield "data: [DONE]\n\n"


runpod.serverless.start({"handler": handler, "return_aggregate_stream": True})
