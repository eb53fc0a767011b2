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

Questions can get a second graph from the same export (settings.LOCAL_QUERY_INT8, off by
default): its weights quantised to int8 per output channel (ONNX Runtime's dynamic quantisation;
per-tensor scales lost up to 2 points of top-1). Dynamic quantisation scales activations per
call, over every text in it, so the int8 graph embeds one text per call: a question's vector
depends on its text alone. Measured on 2 cores, one thread (benchmarks/embed_engines.py): int8
404-441 texts/s at any batch size against float 199-245 / 306-326 / 463 at batch 1 / 4 / 32;
cosine to PyTorch's vectors 0.993 on average, 0.963 at worst (CLINC150 TEST). Only questions use
it (stored chunks stay float). Why it is off: through the real pipeline (make bench-faq, TEST)
it delivered slightly fewer right answers: CLINC150 tuned 0.8424 against 0.845, base 0.768
against 0.772; BANKING77-OOS tuned 0.730 both, base 0.665 against 0.672. Under load
(benchmarks/chat_load.py) it cost a quarter less processor time per question but the chat was
no faster. What it does give is latency on an idle server: 2.3 ms a question instead of 4-5.
The int8 graph is checked like the float one, by cosine (INT8_MIN_COSINE) instead of the
per-dimension tolerance.
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
# The int8 question graph: the lowest cosine to PyTorch's vector any probe may have. Over the
# 6,500 TEST questions of CLINC150 and BANKING77-OOS the worst was 0.963 (mean 0.993); probes
# score 0.98; a graph that is not the model's own falls far below.
INT8_MIN_COSINE = 0.95
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

# model -> {quantized: encoder or None}
_encoders: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_lock = threading.Lock()


class OnnxEncoder:
    """encode(texts) -> unit vectors (numpy), as SentenceTransformer.encode with
    normalize_embeddings=True would give for a Transformer + mean Pooling + Normalize model."""

    def __init__(
        self, session, tokenizer, max_length: int, inputs: tuple[str, ...], largest_call: int = 0
    ):
        self.session = session
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.inputs = inputs
        self.largest_call = largest_call  # texts per session call at most; 0: as asked

    def encode(self, texts, batch_size: int = 32) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        if self.largest_call == 1:
            return self._one_by_one(texts)
        # Longest first, as SentenceTransformer does: a batch pads to its longest text.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        ordered = [texts[i] for i in order]
        parts = [self._batch(ordered[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        vectors = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        vectors[order] = np.concatenate(parts)
        return vectors

    def _one_by_one(self, texts) -> np.ndarray:
        """One session call per text, with as little Python as possible between the calls (in a
        busy web process each return from the graph waits for the GIL): one tokenizer call, no
        padding, so every token counts in the mean."""
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        columns = [encoded[name] for name in self.inputs]
        run, names = self.session.run, list(self.inputs)
        rows = []
        for row in zip(*columns, strict=True):
            feed = {n: np.asarray([c], dtype=np.int64) for n, c in zip(names, row, strict=True)}
            rows.append(run(None, feed)[0][0].mean(axis=0))
        pooled = np.stack(rows)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

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
    from sentence_transformers.models import Normalize, Pooling, Transformer

    modules = list(model)
    return (
        len(modules) == 3
        and isinstance(modules[0], Transformer)
        and isinstance(modules[1], Pooling)
        and getattr(modules[1], "pooling_mode", None) == "mean"
        and isinstance(modules[2], Normalize)
    )


def _export(model, threads: int, quantized: bool) -> dict[bool, OnnxEncoder]:
    """The float graph (key False) and, when `quantized`, the int8 one (key True)."""
    import onnxruntime
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
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    encoders = {}
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
        int8 = None
        if quantized:
            try:
                int8 = _quantize(path)
            except Exception:  # the float graph still serves everything
                log.warning("Quantising the embedding model failed", exc_info=True)
        for key, graph in ((False, path), (True, int8)):
            if graph:
                session = onnxruntime.InferenceSession(
                    graph, options, providers=["CPUExecutionProvider"]
                )
                # Dynamic quantisation scales the activations per call, over every text in it:
                # in company, a question's int8 vector moved by up to 0.03 per dimension. One
                # text per call keeps a question's vector a function of its text alone, whoever
                # else asks at that moment (and the int8 graph is fast one at a time).
                encoders[key] = OnnxEncoder(
                    session, tokenizer, model.max_seq_length, inputs, largest_call=int(key)
                )
    return encoders


def _quantize(path: str) -> str:
    """The graph at `path` with its weights in int8, one scale per output channel."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = path.replace(".onnx", ".int8.onnx")
    # The quantiser logs a line per tensor straight on the root logger (logging.info), and a
    # warning that suggests a pre-processing pass (the probe check is what decides): a filter
    # there drops those for its few seconds; records of named loggers do not pass through it.
    quiet = _BelowError()
    logging.root.addFilter(quiet)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(path, target, weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.root.removeFilter(quiet)
    return target


class _BelowError(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


def _agrees(model, encoder: OnnxEncoder) -> float:
    """The largest difference per dimension between PyTorch's vectors and the encoder's."""
    expected, together, alone = _probe(model, encoder)
    return float(max(np.abs(expected - together).max(), np.abs(expected[1] - alone).max()))


def _cosine(model, encoder: OnnxEncoder) -> float:
    """The lowest cosine between PyTorch's vector of a probe and the encoder's."""
    expected, together, alone = _probe(model, encoder)
    return float(min((expected * together).sum(axis=1).min(), expected[1] @ alone))


def _probe(model, encoder: OnnxEncoder):
    expected = model.encode(
        list(PROBES), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    return expected, encoder.encode(list(PROBES)), encoder.encode([PROBES[1]])[0]  # one alone


def encoder_for(model, threads: int = 1, quantized: bool = False) -> OnnxEncoder | None:
    """The ONNX encoder for this loaded SentenceTransformer, built on first use: the float graph,
    or with `quantized` the int8 one for questions. None when the model must stay on PyTorch, or
    on the float graph for questions (the reason is logged once)."""
    built = _encoders.get(model)
    if built is None or quantized not in built:
        with _lock:
            built = _encoders.setdefault(model, {})
            if quantized not in built:
                for key, encoder in _build(model, threads, quantized).items():
                    built.setdefault(key, encoder)  # a float graph already serving stays
    # An int8 graph that failed its check leaves questions on the float graph.
    return (built[True] or built[False]) if quantized else built[False]


def _build(model, threads: int, quantized: bool) -> dict[bool, OnnxEncoder | None]:
    """{False: the float encoder} and with `quantized` {True: the int8 one}; None for a graph
    that failed its check."""
    started = time.perf_counter()
    found: dict[bool, OnnxEncoder | None] = {False: None, **({True: None} if quantized else {})}
    try:
        if not _is_mean_pooled_transformer(model):
            log.warning("Embedding model is not Transformer + mean pooling: kept on PyTorch")
            return found
        candidates = _export(model, threads, quantized)
    except Exception:  # any export failure keeps the (slower, correct) PyTorch path
        log.warning("ONNX export of the embedding model failed: kept on PyTorch", exc_info=True)
        return found
    difference = _agrees(model, candidates[False])
    if difference <= VECTOR_TOLERANCE:
        found[False] = candidates[False]
        log.info(
            "Embedding model on ONNX Runtime (exported and checked in %.1f s, max difference %.1e)",
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
    if found[False] is not None and candidates.get(True) is not None:
        cosine = _cosine(model, candidates[True])
        if cosine >= INT8_MIN_COSINE:
            found[True] = candidates[True]
            log.info("Questions embedded by the int8 graph (lowest probe cosine %.4f)", cosine)
        else:
            log.warning(
                "The int8 graph's lowest probe cosine is %.4f (at least %.2f needed): questions "
                "stay on the float graph",
                cosine,
                INT8_MIN_COSINE,
            )
    return found
