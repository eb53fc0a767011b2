"""Question/answer pairs drawn from a bot's documents: proposed without a chat model, reviewed
by the owner on the Fine-tuning tab; only accepted pairs are trained on."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from knowledge.models import Chunk
from knowledge.tests.factories import SHOP_FAQ
from knowledge.tests.support import ingest_faqs, ingest_text
from training import chat_tuning, documents
from training.models import DocumentPair

pytestmark = pytest.mark.django_db

GUIDE = """# Acme guide

## Shipping

We ship to all EU countries. Orders leave the warehouse within 2 days. Our team loves bikes.
Shipping is free above 50 euros.

## How do I reset my password?

Open Settings and click Reset. A link arrives by e-mail.

## Opening hours

Monday to Friday 9:00-17:00, Saturday 10:00-14:00.

## Reset your account PIN

Call us on 020 123 4567 and we send a new PIN by post.
"""


@pytest.fixture(autouse=True)
def small_sets(settings):
    settings.CHAT_TUNING_MIN_EXAMPLES = 4


@pytest.fixture
def shop(bot):
    ingest_faqs(bot, SHOP_FAQ)
    ingest_text(bot, "guide.md", GUIDE)
    return bot


def proposed(bot) -> dict[str, DocumentPair]:
    documents.document_pairs_propose(bot=bot)
    return {p.question: p for p in DocumentPair.objects.filter(bot=bot)}


def preview_examples(bot, mode="finetuned"):
    return chat_tuning.training_set_preview(bot=bot, mode=mode, backend="local")["set"].examples


def review_url(bot, pair):
    return reverse("training:document_pair_review", args=[bot.pk, pair.pk])


@pytest.mark.parametrize(
    "heading, question",
    [
        ("Shipping", "What should I know about shipping?"),
        ("Opening hours", "What are your opening hours?"),
        ("Return policy", "What is your return policy?"),
        ("How to reset your password", "How do I reset my password?"),
        ("Change your address", "How do I change my address?"),
        ("Can I pay by card", "Can I pay by card?"),
        ("Do you deliver abroad?", "Do you deliver abroad?"),
        ("API keys", "What are your API keys?"),
        ("Price list, page 2", "What should I know about price list?"),
        ("", ""),
    ],
)
def test_a_heading_becomes_a_question_by_its_shape(heading, question):
    assert documents.heading_question(heading) == question


def test_the_answer_is_the_chunk_sentences_sharing_most_words_with_the_question():
    text = (
        "We ship to all EU countries. Our team loves bikes. Orders leave within 2 days.\n"
        "- Shipping is free above 50 euros.\nWe also sell helmets."
    )
    answer = documents.extract_answer(text, "What should I know about shipping to the EU?")
    assert answer.startswith("We ship to all EU countries.")
    assert "Shipping is free above 50 euros." in answer and "- " not in answer
    assert answer.count(".") <= documents.ANSWER_SENTENCES


def test_proposals_are_made_from_a_markdown_source(shop):
    pairs = proposed(shop)

    assert set(pairs) == {
        "What should I know about shipping?",
        "What are your opening hours?",
        "How do I reset my account PIN?",
    }  # a heading that is a question became an FAQ entry, not a document chunk
    shipping = pairs["What should I know about shipping?"]
    assert shipping.status == "proposed" and shipping.heading == "Shipping"
    assert "We ship to all EU countries." in shipping.answer
    assert "Shipping is free above 50 euros." in shipping.answer
    assert shipping.chunk.faq_id is None and shipping.chunk.bot == shop
    assert "020 123 4567" in pairs["How do I reset my account PIN?"].answer
    # Proposals are not trained on until accepted.
    assert not [e for e in preview_examples(shop) if e.origin == "document"]


def test_accepting_includes_the_edited_pair_in_training_set_preview(shop, owner_client):
    pair = proposed(shop)["What are your opening hours?"]

    response = owner_client.post(
        review_url(shop, pair),
        {
            "action": "accept",
            "question": "When is your shop open?",
            "answer": "Monday to Friday 9:00-17:00, Saturday 10:00-14:00.",
        },
    )
    assert response.status_code == 302
    pair.refresh_from_db()
    assert pair.status == "accepted" and pair.question == "When is your shop open?"

    [example] = [e for e in preview_examples(shop) if e.origin == "document"]
    assert example.kind == "document" and example.origin_id == pair.pk
    assert example.question == "When is your shop open?"
    assert example.target == "Monday to Friday 9:00-17:00, Saturday 10:00-14:00."
    # In both mode the pair's own chunk is among the retrieved context.
    [both] = [e for e in preview_examples(shop, "both") if e.origin == "document"]
    assert both.kind == "context_document" and pair.chunk.text in both.messages[0]["content"]


def test_rejecting_excludes_the_pair_and_proposing_again_keeps_it_rejected(shop, owner_client):
    pairs = proposed(shop)
    shipping = pairs["What should I know about shipping?"]
    owner_client.post(review_url(shop, shipping), {"action": "accept"})
    assert [e.question for e in preview_examples(shop) if e.origin == "document"] == [
        shipping.question
    ]

    owner_client.post(review_url(shop, shipping), {"action": "reject"})
    shipping.refresh_from_db()
    assert shipping.status == "rejected"
    assert not [e for e in preview_examples(shop) if e.origin == "document"]

    again = proposed(shop)
    assert again[shipping.question].pk == shipping.pk and again[shipping.question].status == (
        "rejected"
    )
    assert len(again) == 3  # the two unreviewed ones replaced, the rejected one kept


def test_accepting_an_empty_answer_is_refused_in_the_row(shop, owner_client):
    pair = proposed(shop)["What are your opening hours?"]

    response = owner_client.post(
        review_url(shop, pair), {"action": "accept", "answer": "  "}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert response.status_code == 200 and "needs a question and an answer" in body
    pair.refresh_from_db()
    assert pair.status == "proposed" and pair.answer


@pytest.mark.parametrize("action", ["bogus", ""])
def test_reviewing_with_an_action_the_page_never_sends_is_400(shop, owner_client, action):
    # action=bogus rejected the pair (issue 23).
    pair = proposed(shop)["What are your opening hours?"]
    response = owner_client.post(review_url(shop, pair), {"action": action})
    assert response.status_code == 400 and b"Accept or reject the pair." in response.content
    pair.refresh_from_db()
    assert pair.status == "proposed"
    assert owner_client.post(review_url(shop, pair), {"action": "reject"}).status_code == 302
    pair.refresh_from_db()
    assert pair.status == "rejected"


@pytest.mark.parametrize(
    "posted, error",
    [
        ({"question": "When do you open?\x00"}, "Question: Null characters are not allowed."),
        ({"answer": "Nine to five.\x00"}, "Answer: Null characters are not allowed."),
        (
            {"question": "Q" * 501},
            "Question: Ensure this value has at most 500 characters (it has 501).",
        ),
    ],
    ids=["nul-question", "nul-answer", "question-too-long"],
)
def test_an_invalid_pair_edit_is_refused_like_the_faq_editor(shop, owner_client, posted, error):
    # A NUL gave a 500 (DataError) and a long question was cut at 500 without a word (issue 23).
    pair = proposed(shop)["What are your opening hours?"]
    before = (pair.question, pair.answer)
    response = owner_client.post(review_url(shop, pair), {"action": "accept", **posted})
    assert response.status_code == 422
    assert error in response.content.decode() and 'id="ct-pairs"' in response.content.decode()
    row = owner_client.post(
        review_url(shop, pair), {"action": "accept", **posted}, HTTP_HX_REQUEST="true"
    )
    body = row.content.decode()
    assert row.status_code == 200 and error in body and body.lstrip().startswith("<form")
    pair.refresh_from_db()
    assert pair.status == "proposed" and (pair.question, pair.answer) == before
    with pytest.raises(ValidationError, match="the limit is 500"):
        documents.document_pair_review(pair=pair, accept=True, question="Q" * 501)

    ok = owner_client.post(review_url(shop, pair), {"action": "accept", "question": "Q" * 500})
    assert ok.status_code == 302
    pair.refresh_from_db()
    assert pair.status == "accepted" and pair.question == "Q" * 500


def test_htmx_gets_the_row_or_the_card_only(shop, owner_client):
    response = owner_client.post(
        reverse("training:document_pairs_propose", args=[shop.pk]), HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<section class="card" id="ct-pairs">')
    assert "<html" not in body and "3 to review" in body

    pair = DocumentPair.objects.filter(bot=shop).first()
    body = owner_client.post(
        review_url(shop, pair), {"action": "reject"}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert body.lstrip().startswith(
        f'<form class="ct-pair ct-pair-rejected" id="ct-pair-{pair.pk}"'
    )


def test_the_page_lists_the_pairs_to_review(shop, owner_client):
    proposed(shop)
    body = owner_client.get(reverse("training:chat_tuning", args=[shop.pk])).content.decode()
    assert 'id="ct-pairs"' in body and "What are your opening hours?" in body


def test_another_workspace_gets_404(shop, other_client):
    pair = proposed(shop)["What are your opening hours?"]

    assert other_client.post(review_url(shop, pair), {"action": "accept"}).status_code == 404
    propose = reverse("training:document_pairs_propose", args=[shop.pk])
    assert other_client.post(propose).status_code == 404
    pair.refresh_from_db()
    assert pair.status == "proposed"


def test_a_pair_of_another_bot_is_404_under_your_own_bot(shop, other_bot, owner_client):
    ingest_text(other_bot, "rival.md", "## Shipping\n\nRival ships nowhere.\n")
    [rival] = proposed(other_bot).values()

    assert owner_client.post(review_url(shop, rival), {"action": "accept"}).status_code == 404


def test_an_accepted_pair_outlives_a_reingest_of_its_document(shop, owner_client):
    pair = proposed(shop)["What should I know about shipping?"]
    owner_client.post(review_url(shop, pair), {"action": "accept"})
    Chunk.objects.filter(pk=pair.chunk_id).delete()

    pair.refresh_from_db()
    assert pair.chunk is None and pair.status == "accepted"
    [both] = [e for e in preview_examples(shop, "both") if e.origin == "document"]
    assert both.target == pair.answer
