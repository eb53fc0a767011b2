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
