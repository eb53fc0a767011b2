import json
import re
import time
from datetime import timedelta

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from chat import clustering, selectors
from chat.models import Conversation, Message
from knowledge import serving

pytestmark = pytest.mark.django_db


def turn(
    bot,
    question,
    answer="Sorry, I don't know that yet.",
    *,
    path="fallback",
    rating=None,
    latency_ms=100,
    days_ago=0,
    conversation=None,
):
    """One customer question and the bot's answer, dated `days_ago` days back."""
    conversation = conversation or Conversation.objects.create(bot=bot)
    asked = Message.objects.create(conversation=conversation, role="user", text=question)
    answered = Message.objects.create(
        conversation=conversation,
        role="assistant",
        text=answer,
        path=path,
        rating=rating,
        latency_ms=latency_ms,
    )
    if days_ago:
        when = timezone.now() - timedelta(days=days_ago)
        Conversation.objects.filter(pk=conversation.pk).update(created_at=when)
        Message.objects.filter(pk__in=[asked.pk, answered.pk]).update(created_at=when)
    return conversation


def test_daily_activity_counts_each_day_and_fills_gaps_with_zero(bot):
    turn(bot, "a")
    c = turn(bot, "b")
    turn(bot, "c", conversation=c)  # same conversation: messages grow, conversations do not
    turn(bot, "d", days_ago=2)
    turn(bot, "too old", days_ago=8)
    activity = selectors.daily_activity(bot=bot, days=7)
    today = timezone.localdate()
    assert len(activity["labels"]) == 7 and activity["labels"][-1] == today.isoformat()
    assert activity["conversations"] == [0, 0, 0, 0, 1, 0, 2]
    assert activity["messages"] == [0, 0, 0, 0, 2, 0, 6]


def test_answer_paths_rating_and_latency_figures(bot):
    for ms in (10, 20, 30, 40, 100):
        turn(bot, "q", "direct answer", path="direct", latency_ms=ms, rating=1)
    for ms in (1000, 3000):
        turn(bot, "q", "generated answer", path="generated", latency_ms=ms, rating=-1)
    turn(bot, "q", path="fallback", latency_ms=50)
    turn(bot, "old", path="fallback", days_ago=40)
    turn(bot, "q", "Here is what I found about ...", path="best_match", latency_ms=30)

    paths = {p["path"]: p for p in selectors.answer_paths(bot=bot, days=30)}
    assert {k: v["count"] for k, v in paths.items()} == {
        "direct": 5,
        "best_match": 1,
        "extractive": 0,
        "generated": 2,
        "fallback": 1,
        "error": 0,
    }
    assert paths["direct"]["percent"] == 55.6 and paths["fallback"]["percent"] == 11.1

    ratings = selectors.rating_summary(bot=bot, days=30)
    assert (ratings["up"], ratings["down"], ratings["rated"], ratings["answers"]) == (5, 2, 7, 9)
    assert (ratings["up_percent"], ratings["down_percent"], ratings["rated_percent"]) == (
        71.4,
        28.6,
        77.8,
    )

    latency = {r["path"]: r for r in selectors.latency_by_path(bot=bot, days=30)}
    assert latency["direct"]["p50"] == round(np.percentile([10, 20, 30, 40, 100], 50)) == 30
    assert latency["direct"]["p95"] == round(np.percentile([10, 20, 30, 40, 100], 95)) == 88
    assert (latency["generated"]["p50"], latency["generated"]["p95"]) == (2000, 2900)
    assert latency["fallback"]["count"] == 1 and "error" not in latency
    assert latency["best_match"]["count"] == 1
    assert selectors.rating_summary(bot=bot, days=90)["answers"] == 10


def test_weak_questions_are_the_customer_questions_behind_fallback_and_thumbs_down(bot):
    c = turn(bot, "Do you ship to Mars?")
    turn(bot, "What is your address?", "12 Main St", path="direct", conversation=c)
    turn(bot, "Is it open late?", "Until 5pm", path="generated", rating=-1, conversation=c)
    turn(bot, "Thanks", "You're welcome", path="direct", rating=1, conversation=c)
    weak = selectors.weak_questions(bot=bot, days=30)
    assert [(w.text, w.fallback, w.thumbs_down) for w in weak] == [
        ("Is it open late?", False, True),
        ("Do you ship to Mars?", True, False),
    ]


def test_cluster_joins_only_vectors_above_the_threshold():
    vectors = np.array([[1, 0, 0], [0.95, 0.31, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert clustering.cluster(vectors, threshold=0.9) == [[0, 1], [2], [3]]
    assert clustering.cluster(vectors, threshold=0.99) == [[0], [1], [2], [3]]


CANADA = [
    "Do you ship to Canada?",
    "Can you deliver to Canada?",
    "shipping to canada",
    "Is international shipping to Canada available?",
]
SUNDAY = [
    "Are you open on Sundays?",
    "What are your opening hours on Sunday?",
    "Is the store open on sunday",
]
PASSWORD = ["How do I reset my password?", "I forgot my password"]


@pytest.fixture
def missed(bot):
    """Unanswered questions in three intents; Canada asked most (6), then Sunday (3), password (2)."""
    for q in CANADA + ["Do you ship to Canada?", "do you ship to canada"]:
        turn(bot, q)
    for q in SUNDAY:
        turn(bot, q, "We open 9-5", path="generated", rating=-1)
    for q in PASSWORD:
        turn(bot, q)
    turn(
        bot, "Where is my order?", "It ships tomorrow", path="direct", rating=1
    )  # answered well: ignored


@pytest.mark.models
def test_similar_questions_are_grouped_with_real_embeddings_most_frequent_first(bot, missed):
    groups = clustering.question_groups(bot=bot, days=30)
    assert [set(g.questions) for g in groups] == [set(CANADA), set(SUNDAY), set(PASSWORD)]
    canada, sunday, password = groups
    assert canada.question == "Do you ship to Canada?"  # the most asked phrasing leads its group
    assert (canada.count, canada.fallback_count, canada.down_count) == (6, 6, 0)
    assert (sunday.count, sunday.fallback_count, sunday.down_count) == (3, 0, 3)
    assert dict(canada.examples)["Do you ship to Canada?"] == 3
    assert canada.alternates == canada.questions[1:] and len(canada.alternates) == 3
    assert all(g.resolved_by is None for g in groups)


@pytest.mark.models
def test_group_answered_by_an_faq_entry_shows_as_resolved_and_sorts_last(bot, missed):
    from knowledge.services import faq_entry_create

    entry = faq_entry_create(bot=bot, question="do you SHIP to canada", answer="Yes, in 5-7 days.")
    groups = clustering.question_groups(bot=bot, days=30)
    assert groups[-1].resolved_by == entry and set(groups[-1].questions) == set(CANADA)
    assert [g.resolved_by for g in groups[:-1]] == [None, None]


@pytest.mark.models
def test_each_phrasing_is_embedded_once_and_cached(bot, missed):
    from django.core.cache import cache

    import providers

    def cache_key(text):
        import hashlib

        model = serving.embedding_model_for_bot(bot)
        return f"insights:emb:{hashlib.sha1(f'{model}|{text}'.encode()).hexdigest()}"

    assert cache.get(cache_key("Do you sell socks?")) is None
    turn(bot, "Do you sell socks?")
    groups = clustering.question_groups(bot=bot, days=30)
    phrasings = [q for g in groups for q in g.questions]
    cached = cache.get_many([cache_key(q) for q in phrasings])
    assert len(cached) == len(phrasings) == 10
    fresh = providers.for_bot(bot).embed(["Do you sell socks?"])[0]
    assert np.allclose(cached[cache_key("Do you sell socks?")], fresh, atol=1e-5)
    assert clustering.question_groups(bot=bot, days=30)[-1].questions == ["Do you sell socks?"]


def insights_url(bot, **params):
    from urllib.parse import urlencode

    return reverse("chat:insights", args=[bot.pk]) + ("?" + urlencode(params) if params else "")


def test_empty_state_without_conversations(owner_client, bot):
    response = owner_client.get(insights_url(bot))
    assert response.status_code == 200
    assert b"No conversations in the last 30 days" in response.content
    assert b"Nothing left unanswered" in response.content
    assert b'id="insights-data"' not in response.content


@pytest.mark.models
def test_page_charts_read_json_and_user_text_never_reaches_a_script(owner_client, bot):
    evil = "</script><script>alert(1)</script>"
    turn(bot, evil)
    turn(bot, "Hi", "Hello!", path="direct", rating=1, latency_ms=40)
    response = owner_client.get(insights_url(bot, days=7))
    body = response.content.decode()
    assert response.status_code == 200 and response.context["days"] == 7
    blob = re.search(
        r'<script id="insights-data" type="application/json">(.*?)</script>', body, re.S
    ).group(1)
    data = json.loads(blob)
    assert data["activity"]["conversations"][-1] == 2 and len(data["activity"]["labels"]) == 7
    assert {p["label"]: p["count"] for p in data["paths"]} == {
        "Direct FAQ answer": 1,
        "Fallback (unanswered)": 1,
    }
    assert "<script>alert(1)" not in body and "&lt;/script&gt;&lt;script&gt;alert(1)" in body
    assert "chart.umd.min.js" in body and "cdn" not in body.lower()
    assert "40 ms" in body  # latency table


@pytest.mark.parametrize("value, days", [("7", 7), ("90", 90), ("13", 30), ("x", 30)])
def test_range_selector_accepts_only_7_30_90(owner_client, bot, value, days):
    assert owner_client.get(insights_url(bot, days=value)).context["days"] == days


def test_htmx_range_change_returns_only_the_body(owner_client, bot):
    response = owner_client.get(
        insights_url(bot, days=90), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="insights-body"
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="insights-body">') and "<html" not in body
    assert "last 90 days" in body


@pytest.mark.parametrize(
    "method, name",
    [("get", "chat:insights"), ("post", "chat:insights_add_answer")],
)
def test_another_tenant_gets_404(other_client, bot, method, name):
    response = getattr(other_client, method)(
        reverse(name, args=[bot.pk]), {"question": "q", "answer": "a"}
    )
    assert response.status_code == 404
    from knowledge.models import FaqEntry

    assert not FaqEntry.objects.exists()


def test_add_answer_creates_the_faq_entry_with_the_groups_phrasings(owner_client, bot):
    from knowledge.models import FaqEntry

    response = owner_client.post(
        reverse("chat:insights_add_answer", args=[bot.pk]),
        {
            "question": "Do you ship to Canada?",
            "answer": "Yes, in 5-7 business days.",
            "alternate_questions": ["Can you deliver to Canada?", "shipping to canada"],
            "count": "6",
        },
        HTTP_HX_REQUEST="true",
    )
    entry = FaqEntry.objects.get(bot=bot)
    assert (entry.question, entry.answer) == (
        "Do you ship to Canada?",
        "Yes, in 5-7 business days.",
    )
    assert entry.alternate_questions == ["Can you deliver to Canada?", "shipping to canada"]
    assert entry.source.kind == "manual"
    body = response.content.decode()
    assert response.status_code == 200 and body.lstrip().startswith(
        '<article class="card qgroup resolved"'
    )
    assert "Answer added" in body and "asked 6×" in body and "<html" not in body


def test_add_answer_without_htmx_redirects_back_with_a_message(owner_client, bot):
    response = owner_client.post(
        reverse("chat:insights_add_answer", args=[bot.pk]),
        {"question": "Do you ship to Canada?", "answer": "Yes."},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == insights_url(bot) + "#groups"
    assert "Added the answer" in response.content.decode()


def test_add_answer_requires_an_answer(owner_client, bot):
    from knowledge.models import FaqEntry

    response = owner_client.post(
        reverse("chat:insights_add_answer", args=[bot.pk]),
        {"question": "Do you ship to Canada?", "answer": "  "},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422 and not FaqEntry.objects.exists()
    assert "This field is required" in response.content.decode()
    assert 'value="Do you ship to Canada?"' in response.content.decode()


@pytest.mark.models
def test_insights_page_lists_groups_with_add_answer_forms(owner_client, bot, missed):
    body = owner_client.get(insights_url(bot)).content.decode()
    assert body.count('class="card qgroup"') == 3
    assert body.index("Do you ship to Canada?") < body.index("Are you open on Sundays?")
    assert 'name="alternate_questions" value="Can you deliver to Canada?"' in body
    assert "3 open of 3" in body


@pytest.mark.e2e
@pytest.mark.models
@pytest.mark.django_db(transaction=True)
def test_added_answer_answers_the_next_customer(celery_worker_process, client, user, bot):
    from chat.answering import answer
    from knowledge.models import FaqEntry, Source

    turn(bot, "Do you ship to Canada?")
    turn(bot, "Can you deliver to Canada?")
    assert answer(bot, "Do you ship to Canada?").path == "fallback"

    client.force_login(user)
    page = client.get(insights_url(bot)).content.decode()
    assert "2 open of" not in page and "1 open of 1" in page
    client.post(
        reverse("chat:insights_add_answer", args=[bot.pk]),
        {
            "question": "Do you ship to Canada?",
            "answer": "Yes! Canada gets 5-7 day delivery.",
            "alternate_questions": ["Can you deliver to Canada?"],
        },
        HTTP_HX_REQUEST="true",
    )
    entry = FaqEntry.objects.get(bot=bot)
    deadline = time.monotonic() + 120
    while Source.objects.get(pk=entry.source_id).status != Source.Status.READY:
        assert time.monotonic() < deadline, celery_worker_process.log_path.read_text()[-3000:]
        time.sleep(0.5)

    for question in ("Do you ship to Canada?", "can you deliver to canada"):
        result = answer(bot, question)
        assert result.path == "direct", (question, result.retrieved)
        assert result.text == "Yes! Canada gets 5-7 day delivery."
        assert result.sources[0].faq_id == entry.pk
    assert "1 open of 1" not in client.get(insights_url(bot)).content.decode()


@pytest.fixture
def openai_bot(bot, openai_server):
    from bots.services import bot_update

    return bot_update(bot=bot, provider="openai")


def test_questions_are_embedded_with_the_bots_own_provider(openai_bot, openai_server):
    turn(openai_bot, "Do you ship to Canada?")
    turn(openai_bot, "Do you ship to Canada?")
    groups = clustering.question_groups(bot=openai_bot, days=30)
    assert groups[0].question == "Do you ship to Canada?" and groups[0].count == 2
    embedded = [b for b in openai_server.bodies if "input" in b]  # embedding requests
    assert len(embedded) == 1
    assert embedded[0]["input"] == ["Do you ship to Canada?"]
    assert embedded[0]["model"] == "text-embedding-3-small"


def test_page_still_renders_when_the_embedding_provider_is_down(
    owner_client, openai_bot, openai_server
):
    turn(openai_bot, "Is the provider down?")
    openai_server.fail_next = 100
    response = owner_client.get(insights_url(openai_bot))
    assert response.status_code == 200
    assert "Could not group the questions" in response.content.decode()
    assert response.context["totals"]["conversations"] == 1
