"""The Overview's Answering card says in words what the bot's calibration means for customers;
the thresholds stay in an Advanced element. Help texts name no benchmark figures."""

import re

import pytest
from django.urls import reverse
from django.utils import translation

from bots.models import Bot
from training.answering import rates_at, summary

from .support import calibration_set

pytestmark = pytest.mark.django_db

AT = {"answer": 0.92, "right": 0.81, "refuse_unrelated": 0.71, "refuse_out": 0.66}
CALIBRATION = {
    "caution": 0.7,
    "at_threshold": AT,
    "give_or_take": 1,
    "curve": {
        "threshold": [0.3, 0.45, 0.6],
        "answer": [1.0, 0.92, 0.5],
        "right": [0.9, 0.81, 0.45],
        "refuse_unrelated": [0.2, 0.71, 0.98],
        "refuse_out": [0.1, 0.66, 0.95],
    },
}


def answering_card(client, bot) -> str:
    page = client.get(reverse("bots:detail", args=[bot.pk])).content.decode()
    return re.search(r'<section class="card" id="overview-answering".*?</section>', page, re.S)[0]


def test_a_fitted_bot_says_how_sure_it_must_be_and_keeps_the_numbers_advanced(owner_client, bot):
    calibration_set(bot, fit=CALIBRATION, caution=0.7)
    card = answering_card(owner_client, bot)
    assert (
        "Answers word for word when it is very sure; declines about 7 in 10 unrelated questions."
        in card
    )
    assert "gives your best-matching answer" in card  # a local bot writes nothing itself
    assert "Answers about 9 in 10 questions like your FAQ&#x27;s" in card
    assert "give or take 1" in card
    assert "as you chose under “Cautious or helpful” in Settings" in card
    for tab in ("chat:playground", "chat:compare", "bots:edit"):
        assert f'href="{reverse(tab, args=[bot.pk])}"' in card
    # The figures only inside the Advanced element, not in the card's sentences.
    before, advanced = card.split("<details", 1)
    assert "0.80" not in before and "0.45" not in before
    assert "Advanced: the numbers" in advanced and "0.80" in advanced and "0.45" in advanced
    assert "Direct answer at" not in card


def test_a_bot_not_fitted_yet_says_so(owner_client, bot):
    card = answering_card(owner_client, bot)
    assert "Answers word for word when it is very sure." in card
    assert "Not fitted to your FAQ yet" in card


def test_hand_set_thresholds_are_read_off_the_stored_curve(owner_client, bot):
    calibration_set(bot, fit=CALIBRATION, thresholds_auto=False)
    Bot.objects.filter(pk=bot.pk).update(answer_threshold=0.6)
    card = answering_card(owner_client, bot)
    assert "declines about 10 in 10 unrelated questions" in card  # the curve at 0.6
    assert "You set how sure it must be by hand" in card
    assert rates_at(CALIBRATION, 0.58)["refuse_unrelated"] == 0.98


def test_a_bot_that_writes_says_its_sentences_are_checked(owner_client, bot):
    Bot.objects.filter(pk=bot.pk).update(generation=Bot.Generation.ON)
    assert "each sentence is checked against it" in answering_card(owner_client, bot)


def test_a_dutch_owner_reads_the_card_in_dutch(owner_client, bot):
    calibration_set(bot, fit=CALIBRATION)
    owner_client.post(reverse("accounts:language"), {"language": "nl"})
    card = answering_card(owner_client, bot)
    assert (
        "Antwoordt woordelijk als hij heel zeker is; wijst ongeveer 7 op de 10 ongerelateerde "
        "vragen af." in card
    )
    assert "Geavanceerd: de getallen" in card and "very sure" not in card


def test_the_summary_matches_the_words_the_fit_stores_in_english():
    from training.calibration_curve import summary as stored_summary

    with translation.override("en"):
        assert summary(AT) == stored_summary(AT)
        with_topic = {**AT, "refuse_on_topic": 0.42}
        assert summary(with_topic) == stored_summary(with_topic)
        assert summary(AT, give_or_take=1).endswith("give or take 1.")
    with translation.override("de"):
        assert summary(AT).startswith("Beantwortet etwa 9 von 10 Fragen wie die Ihrer FAQ")


def test_help_texts_say_what_a_choice_does_not_what_a_benchmark_measured(owner_client, bot):
    page = owner_client.get(reverse("bots:edit", args=[bot.pk])).content.decode()
    for figure in ("22 of 22", "22 wrong", "135M", "CLINC", "7-37 s", "83%"):
        assert figure not in page, figure
    generation = str(Bot._meta.get_field("generation").help_text)
    assert "Test tab" in generation and "22" not in generation
    knowledge = owner_client.get(reverse("knowledge:page", args=[bot.pk])).content.decode()
    assert "CLINC" not in knowledge and "83%" not in knowledge


def test_a_bot_with_a_tuned_model_says_that_model_writes(owner_client, bot):
    from training import chat_tuning
    from training.models import ChatTuning

    run = ChatTuning.objects.create(
        bot=bot, mode=ChatTuning.Mode.BOTH, backend="openai", status=ChatTuning.Status.READY,
        fine_tuned_model="ft:gpt-4o-mini:shop::x", model_name="ft:gpt-4o-mini:shop::x",
    )  # fmt: skip
    chat_tuning.chat_tuning_deploy(run=run)
    card = answering_card(owner_client, bot)
    assert "your fine-tuned model writes the answer" in card
    assert "gives your best-matching answer" not in card
