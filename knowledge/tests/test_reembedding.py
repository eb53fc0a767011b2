"""Switching a bot to another embedding model: one tracked job, the old vectors answer until the
new ones are all in, failures keep the old model, and other bots are never touched."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import providers
from bots.models import Bot
from knowledge import reembedding, serving
from knowledge.models import Chunk, Reembedding, Source
from knowledge.selectors import search
from knowledge.tasks import reembed_bot
from providers.tests.openai_server import API_KEY

from .support import FAQ_CSV
from .support import add_upload as add
from .support import ingest_through_task as ingest

pytestmark = pytest.mark.django_db(transaction=True)

LOCAL = "local:all-MiniLM-L6-v2"
OPENAI = "openai:text-embedding-3-small"


def switch_to_openai(bot, embedding_model=""):
    """What the settings form does: save the new settings, then report the change."""
    before = (bot.provider, bot.embedding_model)
    bot.provider, bot.embedding_model = Bot.Provider.OPENAI, embedding_model
    bot.save()
    return reembedding.embedding_change(bot=bot, provider_before=before[0], model_before=before[1])


def run(job) -> Reembedding:
    reembed_bot.apply(args=[job.pk]).get()
    job.refresh_from_db()
    return job


def chunk_models(bot) -> set[str]:
    return set(Chunk.objects.filter(bot=bot).values_list("embedding_model", flat=True))


def top_question(bot, query: str) -> str:
    bot = Bot.objects.get(pk=bot.pk)
    hits = search(bot=bot, query=query)
    assert hits, f"no hit for {query!r}"
    return hits[0].title


def test_the_old_model_answers_until_the_switch_swaps_every_vector(bot, openai_server):
    source = ingest(add(bot, "faq.csv", FAQ_CSV))
    job = switch_to_openai(bot)

    assert job.status == Reembedding.Status.QUEUED
    assert (job.from_model, job.to_model) == (LOCAL, OPENAI)
    bot.refresh_from_db()
    assert bot.embedding_state.serving_embedding == LOCAL
    # Meanwhile the bot still searches the vectors it has, with the model that made them.
    assert serving.embedding_model_for_bot(bot) == LOCAL
    assert top_question(bot, "when are you open") == "What are your opening hours?"
    assert not [path for path in openai_server.requests if path.endswith("/embeddings")]

    job = run(job)

    assert job.status == Reembedding.Status.DONE, job.error
    assert job.chunks == 2 and job.progress_done == job.progress_total == 2
    bot.refresh_from_db()
    assert bot.embedding_state.serving_embedding == ""
    assert chunk_models(bot) == {OPENAI}
    assert {len(c.embedding) for c in Chunk.objects.filter(bot=bot)} == {1536}
    source.refresh_from_db()
    assert source.embedding_model == OPENAI and source.status == Source.Status.READY
    # The same task delivered again does nothing: no second claim, nothing embedded.
    sent = len(openai_server.requests)
    assert reembedding.reembedding_run(reembedding_id=job.pk) == ""
    job.refresh_from_db()
    assert job.attempts == 1 and len(openai_server.requests) == sent
    # Queries are embedded by the new model now.
    assert serving.embedding_model_for_bot(bot) == OPENAI
    search(bot=bot, query="when are you open")
    assert openai_server.requests[-1].endswith("/embeddings")
    assert openai_server.bodies[-1]["input"] == ["when are you open"]


def test_a_failed_switch_keeps_the_old_model_answering_and_can_be_retried(bot, openai_server):
    ingest(add(bot, "faq.csv", FAQ_CSV))
    job = run(switch_to_openai(bot, embedding_model="no-such-embedding-model"))

    assert job.status == Reembedding.Status.FAILED
    assert "no-such-embedding-model" in job.error and "does not exist" in job.error
    bot.refresh_from_db()
    assert bot.embedding_state.serving_embedding == LOCAL
    assert chunk_models(bot) == {LOCAL}
    assert top_question(bot, "do you fix electric bikes") == "Do you repair e-bikes?"

    # The owner fixes the model name: a new switch from the model still serving.
    fixed = reembedding.embedding_change(
        bot=_with(bot, embedding_model="text-embedding-3-small"),
        provider_before=Bot.Provider.OPENAI,
        model_before="no-such-embedding-model",
    )
    assert (fixed.from_model, fixed.to_model) == (LOCAL, OPENAI)
    assert run(fixed).status == Reembedding.Status.DONE
    assert chunk_models(bot) == {OPENAI}


def test_retry_runs_a_failed_switch_again(bot, openai_server, settings):
    ingest(add(bot, "faq.csv", FAQ_CSV))
    settings.OPENAI_API_KEY = "sk-wrong"
    providers.get_provider.cache_clear()
    failed = run(switch_to_openai(bot))
    assert failed.status == Reembedding.Status.FAILED and failed.error

    settings.OPENAI_API_KEY = API_KEY
    providers.get_provider.cache_clear()
    again = reembedding.reembedding_retry(bot=bot)
    assert again is not None and again.pk != failed.pk
    assert run(again).status == Reembedding.Status.DONE
    assert chunk_models(bot) == {OPENAI}
    assert reembedding.reembedding_retry(bot=bot) is None  # nothing failed any more


def test_changing_again_mid_switch_replaces_the_queued_job(bot, openai_server):
    ingest(add(bot, "faq.csv", FAQ_CSV))
    first = switch_to_openai(bot)
    # Back to the local model before any worker ran: nothing to re-embed any more.
    back = reembedding.embedding_change(
        bot=_with(bot, provider=Bot.Provider.LOCAL), provider_before="openai", model_before=""
    )
    assert back is None
    first.refresh_from_db()
    assert first.status == Reembedding.Status.SKIPPED
    assert run(first).status == Reembedding.Status.SKIPPED  # a late delivery does nothing
    bot.refresh_from_db()
    assert bot.embedding_state.serving_embedding == "" and chunk_models(bot) == {LOCAL}

    second = switch_to_openai(bot)
    assert run(second).status == Reembedding.Status.DONE


def test_a_job_whose_settings_changed_under_it_is_skipped(bot, openai_server):
    ingest(add(bot, "faq.csv", FAQ_CSV))
    job = switch_to_openai(bot)
    # Settings saved without going through embedding_change (say, the admin): the job's target
    # is no longer what the bot asks for, so it must not swap its vectors in.
    Bot.objects.filter(pk=bot.pk).update(provider=Bot.Provider.LOCAL)
    assert run(job).status == Reembedding.Status.SKIPPED
    assert chunk_models(bot) == {LOCAL}


def test_sources_added_during_a_switch_answer_at_once_and_follow_the_switch(bot, openai_server):
    ingest(add(bot, "faq.csv", FAQ_CSV))
    job = switch_to_openai(bot)
    more = ingest(add(bot, "more.csv", "question,answer\nDo you rent bikes?,Yes, by the day.\n"))
    assert more.embedding_model == LOCAL  # embedded with the model still serving
    assert top_question(bot, "can I hire a bike") == "Do you rent bikes?"

    assert run(job).status == Reembedding.Status.DONE
    assert chunk_models(bot) == {OPENAI}
    assert top_question(bot, "Do you rent bikes?") == "Do you rent bikes?"


def test_a_bot_without_knowledge_switches_at_once(bot, openai_server):
    assert switch_to_openai(bot) is None
    bot.refresh_from_db()
    assert (
        bot.embedding_state.serving_embedding == ""
        and serving.embedding_model_for_bot(bot) == OPENAI
    )
    source = ingest(add(bot, "faq.csv", FAQ_CSV))
    assert source.embedding_model == OPENAI


def test_a_switch_leaves_other_bots_alone(bot, other_bot, openai_server):
    ingest(add(bot, "faq.csv", FAQ_CSV))
    ingest(add(other_bot, "faq.csv", FAQ_CSV))
    theirs = {c.pk: list(c.embedding) for c in Chunk.objects.filter(bot=other_bot)}
    assert run(switch_to_openai(bot)).status == Reembedding.Status.DONE
    assert chunk_models(other_bot) == {LOCAL}
    assert {c.pk: list(c.embedding) for c in Chunk.objects.filter(bot=other_bot)} == theirs
    assert Reembedding.objects.filter(bot=other_bot).count() == 0


def test_recovery_requeues_a_stalled_switch_then_fails_it(bot, openai_server):
    ingest(add(bot, "faq.csv", FAQ_CSV))
    job = switch_to_openai(bot)
    long_ago = timezone.now() - timedelta(hours=1)
    Reembedding.objects.filter(pk=job.pk).update(
        status=Reembedding.Status.RUNNING, started_at=long_ago, updated_at=long_ago, attempts=1
    )
    assert reembedding.reembeddings_recover_stuck(stale_seconds=60)["requeued"] == 1
    job.refresh_from_db()
    assert job.status == Reembedding.Status.QUEUED

    Reembedding.objects.filter(pk=job.pk).update(
        status=Reembedding.Status.RUNNING, updated_at=long_ago, attempts=reembedding.MAX_ATTEMPTS
    )
    assert reembedding.reembeddings_recover_stuck(stale_seconds=60)["failed"] == 1
    job.refresh_from_db()
    assert job.status == Reembedding.Status.FAILED and "interrupted" in job.error
    bot.refresh_from_db()
    assert bot.embedding_state.serving_embedding == LOCAL  # never stuck, never without answers
    assert top_question(bot, "when are you open") == "What are your opening hours?"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_settings_page_starts_the_switch_and_the_knowledge_page_tracks_it(
    owner_client, other_user, bot, openai_server
):
    ingest(add(bot, "faq.csv", FAQ_CSV))
    data = {
        field: getattr(bot, field)
        for field in (
            "name",
            "slug",
            "greeting",
            "instructions",
            "mode",
            "fallback_message",
            "chat_model",
            "direct_threshold",
            "answer_threshold",
            "primary_colour",
        )
    }
    data.update(provider="openai", embedding_model="")
    response = owner_client.post(reverse("bots:edit", args=[bot.pk]), data, follow=True)
    assert response.status_code == 200
    assert "keeps answering with the previous model" in response.content.decode()
    job = Reembedding.objects.get(bot=bot)

    page = owner_client.get(reverse("knowledge:page", args=[bot.pk])).content.decode()
    assert 'id="reembed-panel"' in page and 'hx-trigger="every 2s"' in page
    assert LOCAL in page and OPENAI in page
    panel = reverse("knowledge:reembedding", args=[bot.pk])
    assert owner_client.get(panel, HTTP_HX_REQUEST="true").status_code == 200  # still polling
    assert logged_in(other_user).get(panel, HTTP_HX_REQUEST="true").status_code == 404

    run(job)
    response = owner_client.get(panel, HTTP_HX_REQUEST="true")
    assert response.status_code == 286  # htmx: stop polling
    assert "2 chunks re-embedded" in response.content.decode()


def test_retry_button_is_the_owners_only(owner_client, other_user, bot, openai_server):
    ingest(add(bot, "faq.csv", FAQ_CSV))
    run(switch_to_openai(bot, embedding_model="no-such-embedding-model"))
    page = owner_client.get(reverse("knowledge:page", args=[bot.pk])).content.decode()
    assert "Try again" in page and "still answers with" in page
    retry = reverse("knowledge:reembedding_retry", args=[bot.pk])
    assert logged_in(other_user).post(retry, HTTP_HX_REQUEST="true").status_code == 404
    assert Reembedding.objects.filter(bot=bot).count() == 1
    assert owner_client.post(retry, HTTP_HX_REQUEST="true").status_code == 200
    assert Reembedding.objects.filter(bot=bot, status=Reembedding.Status.QUEUED).count() == 1


def _with(bot, **fields):
    for name, value in fields.items():
        setattr(bot, name, value)
    bot.save()
    return bot


def test_a_search_that_read_the_bot_just_before_the_swap_still_answers(bot, openai_server):
    ingest(add(bot, "faq.csv", FAQ_CSV))
    job = switch_to_openai(bot)
    read_before_swap = Bot.objects.get(pk=bot.pk)  # a web request's copy: still serving local
    assert run(job).status == Reembedding.Status.DONE

    hits = search(bot=read_before_swap, query="What are your opening hours?")
    assert hits and hits[0].title == "What are your opening hours?"
    assert openai_server.bodies[-1]["input"] == ["What are your opening hours?"]


def test_undoing_a_failed_switch_takes_it_off_the_page(owner_client, bot, openai_server):
    ingest(add(bot, "faq.csv", FAQ_CSV))
    run(switch_to_openai(bot, embedding_model="no-such-embedding-model"))
    undo = reembedding.embedding_change(
        bot=_with(bot, provider=Bot.Provider.LOCAL, embedding_model=""),
        provider_before=Bot.Provider.OPENAI,
        model_before="no-such-embedding-model",
    )
    assert undo is None  # the local vectors never left
    bot.refresh_from_db()
    assert (
        bot.embedding_state.serving_embedding == "" and reembedding.reembedding_to_show(bot) is None
    )
    page = owner_client.get(reverse("knowledge:page", args=[bot.pk])).content.decode()
    assert 'id="reembed-panel"' not in page and "Try again" not in page


def test_insights_grouping_never_mixes_vectors_of_two_models(bot, openai_server):
    from chat.clustering import embed_cached

    ingest(add(bot, "faq.csv", FAQ_CSV))
    assert embed_cached(bot, ["where is my parcel"]).shape == (1, 384)
    switch_to_openai(bot)  # switching: local vectors still serve the search
    assert embed_cached(bot, ["where is my parcel", "refund"]).shape == (2, 1536)
    reembedding.embedding_change(
        bot=_with(bot, provider=Bot.Provider.LOCAL), provider_before="openai", model_before=""
    )
    assert embed_cached(bot, ["where is my parcel", "refund"]).shape == (2, 384)


def test_staff_changing_the_model_in_admin_starts_the_same_switch(admin_client, bot, openai_server):
    ingest(add(bot, "faq.csv", FAQ_CSV))
    url = reverse("admin:bots_bot_change", args=[bot.pk])
    form = admin_client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {name: "" if value is None else value for name, value in data.items()}
    data["provider"] = "openai"
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    job = Reembedding.objects.get(bot=bot)
    assert (job.from_model, job.to_model) == (LOCAL, OPENAI)
    bot.refresh_from_db()
    assert (
        bot.embedding_state.serving_embedding == LOCAL
    )  # the local vectors keep answering meanwhile
    assert top_question(bot, "when are you open") == "What are your opening hours?"


def test_a_switch_undone_before_it_ran_shows_nothing(owner_client, bot, openai_server):
    ingest(add(bot, "faq.csv", FAQ_CSV))
    switch_to_openai(bot)
    reembedding.embedding_change(
        bot=_with(bot, provider=Bot.Provider.LOCAL), provider_before="openai", model_before=""
    )
    page = owner_client.get(reverse("knowledge:page", args=[bot.pk])).content.decode()
    assert 'id="reembed-panel"' not in page
    panel = reverse("knowledge:reembedding", args=[bot.pk])
    response = owner_client.get(panel, HTTP_HX_REQUEST="true")
    assert response.status_code == 286 and b"reembed-panel" not in response.content


def test_a_model_service_that_is_down_puts_the_switch_back_in_the_queue(bot, openai_server):
    ingest(add(bot, "faq.csv", FAQ_CSV))
    job = switch_to_openai(bot)
    openai_server.fail_next = 3  # the client's own two retries fail too: 503, 503, 503
    with pytest.raises(providers.ProviderUnavailable):
        reembedding.reembedding_run(reembedding_id=job.pk)
    job.refresh_from_db()
    assert job.status == Reembedding.Status.QUEUED
    assert job.error.startswith("Waiting for the model service")
    assert chunk_models(bot) == {LOCAL}  # still answering with the old vectors
    assert top_question(bot, "when are you open") == "What are your opening hours?"

    # The task's next try (Celery retries it with a back-off) finds the service back.
    assert reembedding.reembedding_run(reembedding_id=job.pk) == Reembedding.Status.DONE
    assert chunk_models(bot) == {OPENAI}
