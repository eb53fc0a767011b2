"""Fine-tuned and both modes: the deployed tuned model writes, through the same grounding check.

A provider-tuned model ("ft:gpt-4o-mini:...") answers over HTTP from the local OpenAI stub, so
what it says is scripted; a locally tuned LoRA adapter answers through the real local model.
"""

import pytest

from bots.models import Bot
from chat.answering import answer, answer_stream
from chat.models import Message
from knowledge import services
from knowledge.models import Source
from knowledge.tests.factories import SHOP_FAQ
from training import chat_tuning, chat_tuning_local
from training.models import ChatTuning

pytestmark = pytest.mark.django_db

FT_MODEL = "ft:gpt-4o-mini:acme::abc123"  # a model the stub serves


@pytest.fixture
def shop(bot):
    source = services.faq_entries_import(bot=bot, name="FAQ", entries=SHOP_FAQ, enqueue=False)
    assert services.source_ingest(source_id=source.pk).status == Source.Status.READY
    return bot


def deploy_provider_model(bot, mode) -> ChatTuning:
    run = ChatTuning.objects.create(
        bot=bot,
        backend=ChatTuning.Backend.OPENAI,
        mode=mode,
        status=ChatTuning.Status.READY,
        fine_tuned_model=FT_MODEL,
        model_name=FT_MODEL,
    )
    chat_tuning.chat_tuning_deploy(run=run)
    bot.refresh_from_db()
    return run


def last_chat(server) -> dict:
    return [b for b in server.bodies if "messages" in b][-1]


def test_finetuned_mode_asks_the_tuned_model_without_retrieved_context(shop, openai_server):
    deploy_provider_model(shop, ChatTuning.Mode.FINETUNED)
    openai_server.replies.append("Bring it back within 30 days with the receipt.")

    result = answer(shop, "Can I get a refund?")

    assert result.path == Message.Path.GENERATED and result.policy == "tuned (finetuned)"
    assert result.text == "Bring it back within 30 days with the receipt."
    assert result.grounding["passed"]
    body = last_chat(openai_server)
    assert body["model"] == FT_MODEL
    assert body["messages"][0] == {"role": "system", "content": shop.instructions}
    assert "Knowledge:" not in str(body["messages"])


def test_both_mode_gives_the_tuned_model_the_retrieved_chunks(shop, openai_server):
    deploy_provider_model(shop, ChatTuning.Mode.BOTH)
    shop.direct_threshold = 0.99  # no confident match: the tuned model writes
    openai_server.replies.append("We are open 9:00-18:00 Monday to Saturday.")

    result = answer(shop, "When do you open?")

    assert result.path == Message.Path.GENERATED and result.policy == "tuned (both)"
    system = last_chat(openai_server)["messages"][0]["content"]
    assert "Knowledge:\n[1]" in system and "9:00-18:00" in system


def test_a_tuned_models_unsupported_sentence_never_reaches_the_customer(shop, openai_server):
    deploy_provider_model(shop, ChatTuning.Mode.FINETUNED)
    openai_server.replies.append(
        "Bring it back within 30 days with the receipt. We also refund shipping up to 45 euros."
    )

    events = list(answer_stream(shop, "Can I get a refund?"))
    shown = "".join(v for k, v in events if k == "token")
    result = events[-1][1]

    assert "45" not in shown and shown == result.text
    assert result.text == "Bring it back within 30 days with the receipt."
    assert not result.grounding["passed"] and "45" in result.grounding["reason"]


def test_a_tuned_answer_that_fails_the_check_gives_the_owners_words(shop, openai_server):
    deploy_provider_model(shop, ChatTuning.Mode.FINETUNED)
    openai_server.replies.append("Refunds take 90 days and cost 20 euros.")

    result = answer(shop, "Can I get a refund?")

    assert result.path == Message.Path.BEST_MATCH
    assert "Bring it back within 30 days" in result.text and "90" not in result.text


def test_a_tuned_model_that_declines_gives_the_fallback(shop, openai_server):
    deploy_provider_model(shop, ChatTuning.Mode.FINETUNED)
    openai_server.replies.append(shop.fallback_message)

    result = answer(shop, "Which planet has the most moons?")

    assert result.path == Message.Path.FALLBACK and result.text == shop.fallback_message


def test_finetuned_mode_declines_what_nothing_in_the_knowledge_is_close_to(shop, openai_server):
    deploy_provider_model(shop, ChatTuning.Mode.FINETUNED)
    # What a small tuned model says to anything: an FAQ answer, word for word.
    openai_server.replies.append("Bring it back within 30 days with the receipt.")

    result = answer(shop, "Which planet has the most moons?")

    assert result.path == Message.Path.FALLBACK and result.text == shop.fallback_message
    assert not any("messages" in body for body in openai_server.bodies)  # never asked
    # An in-scope question still goes to the tuned model.
    assert answer(shop, "Can I get a refund?").path == Message.Path.GENERATED


def test_without_a_deployed_model_every_mode_answers_with_retrieval(shop, openai_server):
    shop.mode = Bot.Mode.FINETUNED
    shop.save()

    result = answer(shop, "When do you open?")

    assert result.path == Message.Path.DIRECT and not openai_server.bodies
    run = deploy_provider_model(shop, ChatTuning.Mode.FINETUNED)
    chat_tuning.chat_tuning_undeploy(bot=shop)  # back to the base model
    assert answer(shop, "When do you open?").path == Message.Path.DIRECT
    assert not openai_server.bodies and run.pk


def test_a_local_lora_adapter_answers_through_the_pipeline(shop, settings):
    settings.TRAINING_TORCH_THREADS = 1
    settings.CHAT_TUNING_MIN_EXAMPLES = 4
    run = chat_tuning.chat_tuning_launch(
        bot=shop, hyperparameters={"max_steps": 2, "batch_size": 2, "epochs": 1}
    )
    chat_tuning_local.chat_tuning_run_local(run_id=run.pk)
    run.refresh_from_db()
    chat_tuning.chat_tuning_deploy(run=run)
    shop.refresh_from_db()

    result = answer(shop, "Can I get a refund?")

    from providers.local import loaded_chat_adapters

    assert run.adapter.rsplit("/", 1)[-1] in loaded_chat_adapters()
    assert result.policy == "tuned (finetuned)" and result.grounding is not None
    # Two steps teach nothing: whatever it wrote either passed the check or was replaced.
    assert result.path in (Message.Path.GENERATED, Message.Path.BEST_MATCH, Message.Path.FALLBACK)
    if result.path == Message.Path.GENERATED:
        assert result.grounding["checked"] >= 1


def test_v1_models_names_the_model_that_answers(shop, client, openai_server):
    from chat.apikeys import api_key_create

    _, raw = api_key_create(bot=shop, name="k")

    def card():
        listed = client.get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {raw}").json()
        return listed["data"][0]

    assert card()["root"] == "SmolLM2-135M-Instruct" and not card()["askhandle"]["fine_tuned"]
    deploy_provider_model(shop, ChatTuning.Mode.FINETUNED)
    assert card()["root"] == FT_MODEL
    assert card()["askhandle"] == {"mode": "finetuned", "fine_tuned": True}


def test_both_mode_answers_a_confident_faq_match_word_for_word(shop, openai_server):
    deploy_provider_model(shop, ChatTuning.Mode.BOTH)
    shop.direct_threshold = 0.5
    result = answer(shop, "When do you open?")
    assert result.path == Message.Path.DIRECT
    assert result.text == "We are open 9:00-18:00 Monday to Saturday."
    assert not [b for b in openai_server.bodies if "messages" in b]  # no model call
    # Fine-tuned mode is the tuned model alone (its own run): it still writes.
    deploy_provider_model(shop, ChatTuning.Mode.FINETUNED)
    shop.direct_threshold = 0.5
    openai_server.replies.append("We are open 9:00-18:00 Monday to Saturday.")
    assert answer(shop, "When do you open?").path == Message.Path.GENERATED
