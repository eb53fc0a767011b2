"""ONNX Runtime for the local embedding model's forward pass (settings.LOCAL_EMBED_ENGINE).

Why: a question is embedded one to a few at a time. PyTorch runs MiniLM's forward pass as a few
hundred small operators, each taking Python's GIL back; in a busy web process (the event loop and
the answer threads want the GIL too) a batch of four waited for it between operators, and the
model ran at a tenth of its batch speed under load (benchmarks/chat_load.py, embed_ratio 0.10).
ONNX Runtime runs the whole graph in one call that releases the GIL, and its small batches cost
little more per sentence than large ones (2 cores, one thread: batch 1 about 2.3x PyTorch's
speed, batch 32 about 1.1x; benchmarks/embed_engines.py).

How: the SentenceTransformer a process already loaded (the base model or a tuned one, see
providers.local) is exported once, through a temporary file (2-5 s), and checked against
PyTorch on a few probe sentences (short, long enough to be truncated, accented); only a model
whose vectors agree within VECTOR_TOLERANCE is served by ONNX Runtime, anything else (another
architecture, a pooling other than mean, an export error) stays on PyTorch, with a log line
saying why. The vectors are the same model's (max difference about 1e-7 on unit vectors), so
stored chunks and new questions stay comparable whichever engine embedded them.

An int8 copy of the graph was tried and not kept: docs/decisions.md.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
import warnings
import weakref

import numpy as np

log = logging.getLogger(__name__)

VECTOR_TOLERANCE = 1e-4  # max absolute difference per dimension of the unit vectors
PROBES = (
    "How long does shipping take?",
    "Wie lange dauert der Versand nach Österreich? Kann ich mit Kreditkarte zahlen?",
    "",
    # Longer than the model's 256 word pieces: the truncation must match too.
    " ".join(
        f"refund policy clause {i} applies to orders placed before the sale" for i in range(40)
    ),
)
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

_encoders: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> encoder or None
_lock = threading.Lock()


class OnnxEncoder:
    """encode(texts) -> unit vectors (numpy), as SentenceTransformer.encode with
    normalize_embeddings=True would give for a Transformer + mean Pooling + Normalize model."""

    def __init__(self, session, tokenizer, max_length: int, inputs: tuple[str, ...]):
        self.session = session
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.inputs = inputs

    def encode(self, texts, batch_size: int = 32) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        # Longest first, as SentenceTransformer does: a batch pads to its longest text.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        ordered = [texts[i] for i in order]
        parts = [self._batch(ordered[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        vectors = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        vectors[order] = np.concatenate(parts)
        return vectors

    def _batch(self, texts) -> np.ndarray:
        encoded = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="np",
        )
        feed = {name: encoded[name].astype(np.int64) for name in self.inputs}
        hidden = self.session.run(None, feed)[0]
        mask = encoded["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.clip(norms, 1e-12, None)


def _is_mean_pooled_transformer(model) -> bool:
    from sentence_transformers.models import Normalize, Pooling, Transformer  # loaded by now

    modules = list(model)
    return (
        len(modules) == 3
        and isinstance(modules[0], Transformer)
        and isinstance(modules[1], Pooling)
        and getattr(modules[1], "pooling_mode", None) == "mean"
        and isinstance(modules[2], Normalize)
    )


def _export(model, threads: int) -> OnnxEncoder:
    import onnxruntime  # with torch: only a process that exports the encoder loads them
    import torch

    transformer = model[0].auto_model
    tokenizer = model.tokenizer
    sample = tokenizer(["hello world", "a b c"], padding=True, return_tensors="pt")
    inputs = tuple(name for name in _INPUTS if name in sample)

    class Hidden(torch.nn.Module):  # positional inputs in, the last hidden state out
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            return self.inner(**dict(zip(inputs, args, strict=True))).last_hidden_state

    was_training = transformer.training
    transformer.eval()
    # Through a temporary file, not bytes in memory: two copies of the 90 MB graph would stay in
    # this process's heap.
    with tempfile.TemporaryDirectory(prefix="askhandle-onnx-") as folder:
        path = os.path.join(folder, "model.onnx")
        try:
            # The tracer warns about shape checks it records as constants; the probe check
            # below is what shows the graph holds for other batch sizes and lengths.
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    Hidden(transformer),
                    tuple(sample[name] for name in inputs),
                    path,
                    input_names=list(inputs),
                    output_names=["last_hidden_state"],
                    dynamic_axes={
                        name: {0: "batch", 1: "tokens"} for name in (*inputs, "last_hidden_state")
                    },
                    opset_version=17,
                    dynamo=False,
                )
        finally:
            transformer.train(was_training)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return OnnxEncoder(session, tokenizer, model.max_seq_length, inputs)


def _agrees(model, encoder: OnnxEncoder) -> float:
    expected = model.encode(
        list(PROBES), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    together = np.abs(expected - encoder.encode(list(PROBES))).max()
    alone = np.abs(expected[1] - encoder.encode([PROBES[1]])[0]).max()  # a batch of one
    return float(max(together, alone))


def encoder_for(model, threads: int = 1) -> OnnxEncoder | None:
    """The ONNX encoder for this loaded SentenceTransformer, built on first use; None when the
    model must stay on PyTorch (the reason is logged once)."""
    try:
        return _encoders[model]
    except KeyError:
        pass
    with _lock:
        if model in _encoders:
            return _encoders[model]
        encoder = None
        started = time.perf_counter()
        try:
            if not _is_mean_pooled_transformer(model):
                log.warning("Embedding model is not Transformer + mean pooling: kept on PyTorch")
            else:
                candidate = _export(model, threads)
                difference = _agrees(model, candidate)
                if difference <= VECTOR_TOLERANCE:
                    encoder = candidate
                    log.info(
                        "Embedding model on ONNX Runtime (exported and checked in %.1f s, "
                        "max difference %.1e)",
                        time.perf_counter() - started,
                        difference,
                    )
                else:
                    log.warning(
                        "ONNX export of the embedding model differs from PyTorch by %.1e "
                        "(tolerance %.0e): kept on PyTorch",
                        difference,
                        VECTOR_TOLERANCE,
                    )
        except Exception:  # any export failure keeps the (slower, correct) PyTorch path
            log.warning("ONNX export of the embedding model failed: kept on PyTorch", exc_info=True)
        _encoders[model] = encoder
        return encoder
