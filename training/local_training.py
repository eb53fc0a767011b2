"""Training the local models: what the training app's runs call to fine-tune them.

- Embeddings (training.retrieval): train_embedding_model() tunes a copy of the base embedding
  model on one bot's FAQ phrasings and returns its weights as safetensors bytes; the web and
  worker processes serve them as '<base>~<key>' (providers.tuned_weights_name).
- Chat (training.chat_tuning): train_chat_adapter() trains a LoRA adapter over the local chat
  model and returns its files (providers.ADAPTER_FILES); providers loads them over the one base
  model for '<base>~<key>' (providers.tuned_chat_model_name).

The base models, their tokenizer and the torch runtime come through the providers facade, which
loads and runs models and does not train them. torch, transformers, peft and safetensors are
imported inside the functions that train: a web process imports this module (through
training.chat_tuning) and must not pay for them.
"""

from __future__ import annotations

import copy
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from django.conf import settings

import providers

# --- Embedding tuning -------------------------------------------------------------------------


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
    reports progress. Its time and what it gains are in benchmarks/RESULTS.md.

    runs > 1 trains that many copies from the same base with different seeds (data order) and
    averages their weights (a "model soup": one model, so answering costs the same, and as good
    as averaging the runs' scores); training takes `runs` times as long.
    """
    torch = providers.prepare_torch()
    from safetensors.torch import save as save_safetensors  # with torch: only a run needs it

    groups = [list(dict.fromkeys(g)) for g in groups]
    pairs_from = [g for g in groups if len(g) >= 2]
    if len(pairs_from) < 2:
        raise providers.ProviderError(
            "Tuning needs at least two entries with two or more phrasings each."
        )
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
    torch = providers.prepare_torch()
    rng = random.Random(seed)
    torch.manual_seed(seed)
    model = copy.deepcopy(providers.local_embedder())
    model.train()
    # The word-embedding table (half of MiniLM's 22.7M weights) stays frozen: tuning it made no
    # difference to accuracy and it halves the optimizer's work per step (docs/decisions.md).
    # Only the trained weights are stored.
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


# --- LoRA fine-tuning of the chat model ---------------------------------------------------------

# Every attention projection, LoRA's usual targets: a small adapter, the MLP left as it is.
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


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
    rng = random.Random(seed)
    out = []
    for _ in range(epochs):
        order = list(range(n))
        rng.shuffle(order)
        out += [order[i : i + batch_size] for i in range(0, n, batch_size)]
    return out


def collate_chat(encoded: list, indexes: list[int], pad_id: int):
    torch = providers.prepare_torch()
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
    torch = providers.prepare_torch()
    from peft import LoraConfig, get_peft_model  # with torch: only a run needs them
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(
        providers.local_chat_model_dir(), dtype=torch.float32
    )
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=0.05, target_modules=LORA_TARGETS, task_type="CAUSAL_LM"
    )
    return get_peft_model(base, config).to(device)


def training_device() -> str:
    import torch  # loads only when a run starts (seconds, hundreds of MB)

    return "cuda" if torch.cuda.is_available() else "cpu"


def _adapter_bytes(model) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        return {name: (Path(tmp) / name).read_bytes() for name in providers.ADAPTER_FILES}


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
    torch = providers.prepare_torch()
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, settings.TRAINING_TORCH_THREADS))
    try:
        torch.manual_seed(seed)
        device = training_device()
        tokenizer = providers.local_chat_tokenizer()
        encoded = [encode_chat_example(tokenizer, c, max_length) for c in conversations]
        if not encoded:
            raise providers.ProviderError("Nothing to train on.")
        steps = chat_batches(len(encoded), batch_size=batch_size, epochs=epochs, seed=seed)
        if max_steps:
            steps = steps[:max_steps]
        model = lora_model(r=r, alpha=alpha, device=device)
        start = 0
        if resume:
            from peft import set_peft_model_state_dict  # with torch: only a run needs them
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
    torch = providers.prepare_torch()
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
