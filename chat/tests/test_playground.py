"""The "Test your bot" page: page and htmx fragment, answer details, tenant isolation."""

import pytest
from django.urls import reverse
from django.utils.html import escape

from knowledge import services
from knowledge.models import Source

pytestmark = pytest.mark.django_db

FAQ = [
    {
        "faq_id": "hours",
        "question": "What are your opening hours?",
        "answer": "We are open 9:00-18:00 Monday to Saturday.",
        "url": "https://example.com/hours",
        "example_questions": ["When do you open?"],
    }
]


@pytest.fixture
def faq_bot(bot):
    source = services.faq_entries_import(bot=bot, name="Shop FAQ", entries=FAQ, enqueue=False)
    assert services.source_ingest(source_id=source.pk).status == Source.Status.READY
    return bot


def url(bot):
    return reverse("chat:playground", args=[bot.pk])


def test_page_shows_the_form_and_the_active_tab(owner_client, bot):
    response = owner_client.get(url(bot))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Test your bot" in html and 'name="question"' in html and 'name="generate"' in html
    assert f'href="{url(bot)}" class="active"' in html
    assert f'hx-post="{url(bot)}"' in html and f'action="{url(bot)}"' in html  # works without JS


def test_asking_shows_answer_path_scores_sources_and_time(owner_client, faq_bot):
    response = owner_client.post(url(faq_bot), {"question": "When do you open?", "generate": "on"})
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html
    assert '<span class="badge ok"' in html and "Direct FAQ answer</span>" in html
    assert "We are open 9:00-18:00 Monday to Saturday." in html
    assert 'href="https://example.com/hours"' in html  # citation
    assert 'class="table pg-chunks"' in html and 'class="progress done"' in html
    assert " ms</span>" in html and "Shop FAQ" in html


def test_htmx_request_gets_only_the_fragment(owner_client, faq_bot):
    response = owner_client.post(
        url(faq_bot), {"question": "Which planet has the most moons?"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="playground">') and "<html" not in html
    assert '<span class="badge warn"' in html and escape(faq_bot.fallback_message) in html
    assert 'class="progress failed"' in html  # below the fallback threshold
    assert "width: -" not in html  # negative similarities draw an empty bar


def test_a_likely_match_shows_the_best_match_path_and_the_policy(owner_client, faq_bot):
    faq_bot.direct_threshold, faq_bot.answer_threshold = 0.99, 0.3
    faq_bot.save()
    response = owner_client.post(url(faq_bot), {"question": "what time do you open on sunday"})
    html = response.content.decode()
    assert '<span class="badge ok"' in html and "Best-matching FAQ answer</span>" in html
    assert "Here is what I found about" in html and "between 0.30 and 0.99" in html
    assert "Answer policy: <strong>your own words</strong>" in html
    assert 'name="generate" value="on"' in html  # no "write with the model" box to tick


def test_generation_off_shows_what_would_be_generated(owner_client, faq_bot):
    faq_bot.generation = "on"  # the owner let the chat model write (bot.may_generate)
    faq_bot.direct_threshold, faq_bot.answer_threshold = 0.99, 0.3
    faq_bot.save()
    response = owner_client.post(url(faq_bot), {"question": "what time do you open on sunday"})
    html = response.content.decode()
    assert '<span class="badge info"' in html and "(generation off)" in html


def test_a_failed_grounding_check_shows_its_verdict_and_why(owner_client, bot, openai_server):
    from chat.tests.chat_helpers import add_document_chunk

    bot.provider = "openai"
    bot.save()
    question = "what time do you open on sunday"
    add_document_chunk(bot, "We are open 9:00-18:00 Monday to Saturday.", embed_as=question)
    openai_server.replies.append("We are open 24 hours a day, every day of the year.")
    response = owner_client.post(url(bot), {"question": question, "generate": "on"})
    html = response.content.decode()
    assert 'id="pg-grounding"' in html and '<span class="badge bad">Failed</span>' in html
    assert "24 is not in the knowledge it cites" in html
    assert "Nothing the model wrote was shown" in html
    assert "24 hours a day" not in html.split('id="pg-grounding"')[0]  # not in the answer shown


def test_empty_knowledge_says_so(owner_client, bot):
    html = owner_client.post(url(bot), {"question": "Hello?"}).content.decode()
    assert "Nothing retrieved" in html and escape(bot.fallback_message) in html


def test_blank_question_is_a_form_error(owner_client, bot):
    response = owner_client.post(url(bot), {"question": "  "})
    assert response.status_code == 422 and "This field is required." in response.content.decode()
    fragment = owner_client.post(url(bot), {"question": ""}, HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200 and "This field is required." in fragment.content.decode()
    assert "<html" not in fragment.content.decode()


@pytest.mark.parametrize("method", ["get", "post"])
def test_another_tenant_gets_404(other_client, faq_bot, method):
    response = getattr(other_client, method)(url(faq_bot), {"question": "When do you open?"})
    assert response.status_code == 404
    assert "We are open" not in response.content.decode()


def test_missing_bot_gets_404_and_anonymous_is_sent_to_login(client, owner_client, bot):
    assert owner_client.get(reverse("chat:playground", args=[bot.pk + 1000])).status_code == 404
    owner_client.logout()
    response = client.get(url(bot))
    assert response.status_code == 302 and reverse("accounts:login") in response["Location"]
