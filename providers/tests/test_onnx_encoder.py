"""The embedding model's ONNX Runtime path gives PyTorch's vectors, or is not used."""

import copy

import numpy as np
import pytest
from django.test import override_settings

from providers import onnx_encoder
from providers.local import LocalProvider, embedder, fast_encoder

pytestmark = pytest.mark.models

# Mixed lengths (the encoder sorts by length and must put every vector back in its place), more
# than one batch of 32, one text past the model's 256 word pieces, accents, an empty string.
TEXTS = [
    "Do you deliver to Belgium?",
    "",
    "Kann ich mein Fahrrad in Köln zurückgeben?",
    "rental " * 400,
    *[
        f"Question number {i}: what happens to order {i * 7} if it arrives {'late ' * (i % 5)}?"
        for i in range(40)
    ],
]


def test_the_local_provider_embeds_on_onnx_with_pytorchs_vectors():
    provider = LocalProvider()
    assert fast_encoder(embedder()) is not None  # the default engine serves the base model
    fast = np.array(provider.embed(TEXTS))
    one = np.array(provider.embed(TEXTS[2:3]))  # a batch of one, as most questions are
    with override_settings(LOCAL_EMBED_ENGINE="torch"):
        assert fast_encoder(embedder()) is None
        reference = np.array(provider.embed(TEXTS))
    assert np.abs(one[0] - reference[2]).max() < onnx_encoder.VECTOR_TOLERANCE
    assert fast.shape == reference.shape == (len(TEXTS), 384)
    assert np.abs(fast - reference).max() < onnx_encoder.VECTOR_TOLERANCE
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)


def test_a_tuned_model_gets_its_own_export():
    import torch

    tuned = copy.deepcopy(embedder())
    with torch.no_grad():
        layer = tuned[0].auto_model.encoder.layer[-1].output.dense
        layer.weight.add_(torch.randn_like(layer.weight) * 0.05)
    encoder = onnx_encoder.encoder_for(tuned)
    assert encoder is not None and encoder is not fast_encoder(embedder())
    expected = tuned.encode(TEXTS[:8], normalize_embeddings=True, show_progress_bar=False)
    got = encoder.encode(TEXTS[:8])
    assert np.abs(got - expected).max() < onnx_encoder.VECTOR_TOLERANCE
    base = embedder().encode(TEXTS[:8], normalize_embeddings=True, show_progress_bar=False)
    assert np.abs(got - base).max() > 10 * onnx_encoder.VECTOR_TOLERANCE  # not the base model's
    # The check that decides ONNX or PyTorch can fail: an export that is not the model's own
    # (here, the tuned graph checked against the base model) is far outside the tolerance.
    assert onnx_encoder._agrees(embedder(), encoder) > 10 * onnx_encoder.VECTOR_TOLERANCE


def test_a_model_that_is_not_mean_pooled_stays_on_pytorch():
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling

    base = embedder()
    cls_pooled = SentenceTransformer(
        modules=[copy.deepcopy(base[0]), Pooling(384, pooling_mode="cls"), Normalize()],
        device="cpu",
    )
    assert onnx_encoder.encoder_for(cls_pooled) is None


# A small FAQ with questions in other words: the int8 question graph must pick the entries the
# float graph picks, against the float vectors stored for the phrasings.
FAQ = [
    "How long does shipping take?",
    "Do you ship internationally?",
    "What is your return policy?",
    "How do I reset my password?",
    "Which payment methods do you accept?",
    "Do you offer gift cards?",
    "Can I rent an electric bike?",
    "Where is your shop?",
]
QUESTIONS = [
    "when will my parcel arrive",
    "can you send the order to Canada",
    "can I return an item I bought last week",
    "forgot my login, what now",
    "can I pay with paypal",
    "do you sell vouchers for a present",
    "how much is an e-bike for a day",
    "what's your address",
    "Wie lange dauert der Versand nach Österreich?",
]


def _cosines(a, b):
    return (np.asarray(a) * np.asarray(b)).sum(axis=1)


@override_settings(LOCAL_QUERY_INT8=True)
def test_questions_use_the_int8_graph_within_the_checked_cosine_and_find_the_same_entries():
    provider = LocalProvider()
    assert onnx_encoder.encoder_for(embedder(), quantized=True) is not fast_encoder(embedder())
    stored = np.array(provider.embed(FAQ))
    asked = np.array(provider.embed_queries(QUESTIONS + TEXTS))
    floats = np.array(provider.embed(QUESTIONS + TEXTS))
    with override_settings(LOCAL_EMBED_ENGINE="torch"):
        reference = np.array(provider.embed(QUESTIONS + TEXTS))
        assert np.abs(np.array(provider.embed_queries(QUESTIONS)) - reference[:9]).max() < 1e-6
    assert asked.shape == reference.shape
    assert np.allclose(np.linalg.norm(asked, axis=1), 1.0, atol=1e-5)
    assert _cosines(asked, reference).min() >= onnx_encoder.INT8_MIN_COSINE
    assert _cosines(asked, reference).mean() > 0.98
    # It is the int8 graph, not the float one under another name.
    assert np.abs(asked - floats).max() > 100 * onnx_encoder.VECTOR_TOLERANCE
    top_int8 = (asked[:8] @ stored.T).argmax(axis=1)
    assert list((floats[:8] @ stored.T).argmax(axis=1)) == list(range(8))  # the FAQ's answers
    assert list(top_int8) == list(range(8))
    # A batch of one (most questions) gives the vector it gets in company.
    [alone] = provider.embed_queries(QUESTIONS[4:5])
    assert np.abs(np.array(alone) - asked[4]).max() < 1e-5
    # Switched off, questions take the float graph.
    with override_settings(LOCAL_QUERY_INT8=False):
        assert np.abs(np.array(provider.embed_queries(QUESTIONS)) - floats[:9]).max() < 1e-6


@pytest.mark.django_db
@override_settings(LOCAL_QUERY_INT8=True)
def test_the_batcher_and_a_bots_question_path_embed_with_the_int8_graph(bot):
    from knowledge import selectors
    from providers.batching import MicroBatcher, _embed_with

    expected = np.array(LocalProvider().embed_queries(QUESTIONS[:3]))
    batcher = MicroBatcher(_embed_with, max_batch=8, wait_s=0.01, max_queue=8)
    futures = [batcher.submit("local", None, q) for q in QUESTIONS[:3]]
    got = np.array([f.result(60) for f in futures])
    assert np.abs(got - expected).max() < 1e-5
    assert np.abs(np.array(selectors.embed_queries(bot, QUESTIONS[:3])) - expected).max() < 1e-5
    floats = np.array(LocalProvider().embed(QUESTIONS[:3]))
    assert np.abs(got - floats).max() > 100 * onnx_encoder.VECTOR_TOLERANCE  # int8, not float


def test_by_default_questions_take_the_float_graph():
    provider = LocalProvider()
    assert (
        np.abs(
            np.array(provider.embed_queries(QUESTIONS)) - np.array(provider.embed(QUESTIONS))
        ).max()
        < onnx_encoder.VECTOR_TOLERANCE
    )


def test_an_int8_graph_that_fails_its_check_leaves_questions_on_the_float_graph(monkeypatch):
    import torch

    odd = copy.deepcopy(embedder())
    with torch.no_grad():
        odd[0].auto_model.encoder.layer[-1].output.dense.weight.mul_(1.5)
    monkeypatch.setattr(onnx_encoder, "INT8_MIN_COSINE", 1.01)  # no graph reaches it
    floats = onnx_encoder.encoder_for(odd)
    assert floats is not None
    assert onnx_encoder.encoder_for(odd, quantized=True) is floats
    monkeypatch.undo()
    # The check measures: the model's own int8 graph is close, another model's is not.
    own = onnx_encoder._build(embedder(), 1, quantized=True)[True]
    assert onnx_encoder._cosine(embedder(), own) > 0.95
    assert onnx_encoder._cosine(odd, own) < 0.95
