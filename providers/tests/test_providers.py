import pytest

from providers import ProviderError, ProviderUnavailable, get_provider
from providers.openai_compat import OpenAICompatibleProvider


@pytest.mark.models
def test_local_embeddings_are_384_dim_unit_vectors():
    vectors = get_provider("local").embed(["Where is my order?", "Do you ship abroad?"])
    assert len(vectors) == 2 and all(len(v) == 384 for v in vectors)
    assert abs(sum(x * x for x in vectors[0]) - 1.0) < 1e-3
    same = get_provider("local").embed(["Where is my order?"])[0]
    assert pytest.approx(same, abs=1e-5) == vectors[0]


@pytest.mark.models
def test_local_chat_gives_non_empty_reply_and_streams():
    local = get_provider("local")
    messages = [{"role": "user", "content": "Say hello to a customer."}]
    reply = local.chat(messages, max_tokens=12)
    assert reply.strip()
    pieces = list(local.chat_stream(messages, max_tokens=12))
    assert len(pieces) > 1 and "".join(pieces).strip()


def test_local_provider_refuses_unknown_model():
    with pytest.raises(ProviderError, match="only has"):
        get_provider("local").embed(["x"], model="text-embedding-3-large")


def test_unknown_provider_name_is_a_clear_error():
    with pytest.raises(ProviderError, match="Unknown model provider"):
        get_provider("nope")


def test_openai_compatible_chat_and_stream_over_http(openai_server):
    provider = get_provider("openai")
    messages = [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "hours?"}]
    assert provider.chat(messages, max_tokens=50) == "Stub answer to: hours?"
    assert "".join(provider.chat_stream(messages)) == "Stub answer to: hours?"
    assert openai_server.bodies[0]["model"] == "gpt-4o-mini"
    assert openai_server.bodies[1]["stream"] is True


def test_openai_compatible_embeddings_over_http(openai_server):
    vectors = get_provider("openai").embed(["a", "b", "a"])
    assert [len(v) for v in vectors] == [1536] * 3
    assert vectors[0] == vectors[2] != vectors[1]
    assert openai_server.requests == ["/v1/embeddings"]


def test_openai_compatible_bad_key_and_unknown_model_are_clear(openai_server):
    bad = OpenAICompatibleProvider(base_url=openai_server.base_url, api_key="sk-wrong")
    with pytest.raises(ProviderError, match="API key"):
        bad.chat([{"role": "user", "content": "hi"}])
    with pytest.raises(ProviderError, match="does not exist"):
        get_provider("openai").chat([{"role": "user", "content": "hi"}], model="gpt-9")


def test_openai_compatible_overload_is_transient(openai_server):
    openai_server.fail_next = 10  # more than the client's own retries
    with pytest.raises(ProviderUnavailable):
        get_provider("openai").embed(["x"])
