"""Retrieval tuning through the real ingestion, the real local model, PostgreSQL and storage."""

from datetime import timedelta

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

import providers
from bots.models import Bot
from knowledge import selectors, services, serving
from knowledge.models import Chunk, Source
from knowledge.tests.factories import SHOP_FAQ
from knowledge.tests.support import ingest_faqs as ingest
from training import retrieval
from training.local_training import train_embedding_model
from training.models import RetrievalTuning

from .support import ACCOUNT_FAQ

pytestmark = pytest.mark.django_db


def tune(bot) -> RetrievalTuning:
    tuning = retrieval.tuning_request(bot=bot, reason="test", force=True)
    assert tuning is not None
    retrieval.tuning_run(tuning_id=tuning.pk)
    tuning.refresh_from_db()
    return tuning


def test_tuning_trains_stores_and_deploys_a_model_that_search_then_uses(bot):
    ingest(bot, ACCOUNT_FAQ)
    tuning = tune(bot)

    assert tuning.status == RetrievalTuning.Status.DEPLOYED, tuning.message
    assert (tuning.entries, tuning.phrasings, tuning.chunks) == (4, 15, 15)
    assert tuning.progress_percent == 100 and tuning.losses and tuning.train_seconds > 0
    bot.refresh_from_db()
    assert bot.embedding_state.tuned_embedding_model == tuning.model_name
    assert tuning.model_name.startswith(f"all-MiniLM-L6-v2~t{tuning.pk}-")
    full_name = serving.embedding_model_for_bot(bot)
    assert full_name == f"local:{tuning.model_name}"
    assert set(Chunk.objects.filter(bot=bot).values_list("embedding_model", flat=True)) == {
        full_name
    }
    assert set(Source.objects.filter(bot=bot).values_list("embedding_model", flat=True)) == {
        full_name
    }
    assert default_storage.exists(tuning.weights)

    # The stored vectors are the tuned model's, not the base model's.
    chunk = Chunk.objects.filter(bot=bot, title="block my card for now").get()
    tuned = np.asarray(
        providers.get_provider("local").embed(
            [chunk.title], model=bot.embedding_state.tuned_embedding_model
        )[0]
    )
    base = np.asarray(providers.get_provider("local").embed([chunk.title])[0])
    assert float(np.dot(np.asarray(chunk.embedding), tuned)) > 0.999
    assert float(np.dot(tuned, base)) < 0.99

    hits = selectors.search(bot=bot, query="please unlock my card again", limit=3)
    assert hits[0].faq_external_id == "unfreeze"


def test_tuning_pulls_an_entrys_phrasings_together_and_pushes_others_apart(bot):
    ingest(bot, ACCOUNT_FAQ)

    def margins() -> list[float]:
        """Per phrasing: cosine to its own entry's other phrasings minus the best other entry's."""
        rows = list(Chunk.objects.filter(bot=bot).values_list("faq_id", "embedding"))
        out = []
        for i, (faq, vector) in enumerate(rows):
            own = [np.dot(vector, v) for j, (f, v) in enumerate(rows) if f == faq and j != i]
            other = [np.dot(vector, v) for f, v in rows if f != faq]
            out.append(float(np.mean(own) - np.max(other)))
        return out

    before = margins()
    tune(bot)
    after = margins()

    assert np.mean(after) > np.mean(before) + 0.1
    assert sum(a > 0 for a in after) > sum(b > 0 for b in before)


@pytest.mark.django_db(False)
def test_a_soup_of_runs_is_the_average_of_the_runs_weights():
    """runs=2 trains two copies (seeds 0 and 1) and stores the mean of their weights."""
    from safetensors.numpy import load as load_safetensors

    groups = [[e["question"], *e["example_questions"]] for e in ACCOUNT_FAQ]
    options = dict(epochs=1, batch_size=64, learning_rate=5e-5, min_steps=4)
    steps = []
    soup, soup_losses = train_embedding_model(
        groups, runs=2, on_step=lambda done, total: steps.append((done, total)), **options
    )
    first, first_losses = train_embedding_model(groups, seed=0, **options)
    second, second_losses = train_embedding_model(groups, seed=1, **options)

    soup, first, second = (load_safetensors(w) for w in (soup, first, second))
    assert soup.keys() == first.keys() == second.keys() and soup
    # Different seeds really trained different weights, so the average is not either run.
    assert not all(np.allclose(first[name], second[name]) for name in soup)
    for name in soup:
        np.testing.assert_allclose(soup[name], (first[name] + second[name]) / 2, atol=1e-6)
    # Progress counts both runs' steps; the losses are the runs' mean per epoch.
    assert steps[-1][0] == steps[-1][1] == len(steps) and len(steps) % 2 == 0
    assert soup_losses == pytest.approx(
        [(a + b) / 2 for a, b in zip(first_losses, second_losses, strict=True)]
    )


def test_a_bot_without_alternate_phrasings_is_not_tuned_and_says_why(bot):
    ingest(bot, [{"question": q, "answer": "a"} for q in ("One?", "Two?", "Three?")])

    assert retrieval.tuning_request(bot=bot, force=True) is None
    assert "other phrasings" in retrieval.tuning_unavailable_reason(bot)
    # A tuning queued earlier (before the FAQ lost its phrasings) ends as skipped, with the reason.
    tuning = RetrievalTuning.objects.create(bot=bot)
    retrieval.tuning_run(tuning_id=tuning.pk)
    tuning.refresh_from_db()
    assert tuning.status == RetrievalTuning.Status.SKIPPED
    assert "other phrasings" in tuning.message
    assert serving.tuned_model(Bot.objects.get(pk=bot.pk)) == ""


def test_openai_bots_and_big_bots_are_not_tuned(bot, settings):
    ingest(bot, ACCOUNT_FAQ)
    settings.RETRIEVAL_TUNING_MAX_CHUNKS = 10
    assert "more than 10 chunks" in retrieval.tuning_unavailable_reason(bot)
    settings.RETRIEVAL_TUNING_MAX_CHUNKS = 10000
    bot.provider = Bot.Provider.OPENAI
    assert "local embedding model only" in retrieval.tuning_unavailable_reason(bot)


def test_requests_fold_into_one_queued_tuning_and_respect_the_setting(bot, settings):
    ingest(bot, ACCOUNT_FAQ)
    first = retrieval.tuning_request(bot=bot, reason="a")
    second = retrieval.tuning_request(bot=bot, reason="b")
    assert first.pk == second.pk
    assert RetrievalTuning.objects.filter(bot=bot).count() == 1

    bot.retrieval_tuning = False
    bot.save()
    RetrievalTuning.objects.all().delete()
    assert retrieval.tuning_request(bot=bot) is None
    settings.RETRIEVAL_TUNING_AUTO = True
    retrieval.tuning_request_after_ingest(bot_id=bot.pk, reason="x")
    assert not RetrievalTuning.objects.exists()


def test_ingesting_after_deploy_embeds_with_the_tuned_model(bot):
    ingest(bot, ACCOUNT_FAQ)
    tune(bot)
    bot.refresh_from_db()
    source = ingest(bot, SHOP_FAQ, name="Shop")

    tuned = serving.embedding_model_for_bot(bot)
    assert source.embedding_model == tuned
    assert set(Chunk.objects.filter(source=source).values_list("embedding_model", flat=True)) == {
        tuned
    }
    assert (
        selectors.search(bot=bot, query="when do you open", limit=1)[0].faq_external_id == "hours"
    )


def test_an_ingestion_that_embedded_with_the_old_model_runs_again(bot):
    ingest(bot, ACCOUNT_FAQ)
    shop = services.faq_entries_import(bot=bot, name="Shop", entries=SHOP_FAQ, enqueue=False)
    token = services._claim(shop.pk)
    # Read as the ingestion reads it: its bot and the model serving it, still the base model.
    stale = Source.objects.select_related("bot", "bot__embedding_state").get(pk=shop.pk)
    tune(bot)

    with pytest.raises(services.ModelChanged):
        services._ingest(stale, token)
    assert not Chunk.objects.filter(source=shop).exists()


def test_chunks_saved_while_tuning_ran_are_reingested_with_the_tuned_model(bot):
    ingest(bot, ACCOUNT_FAQ)
    tuning = retrieval.tuning_request(bot=bot, force=True)
    token = retrieval._claim(tuning.pk)
    chunk_ids = list(Chunk.objects.filter(bot=bot).values_list("pk", flat=True))
    name = f"all-MiniLM-L6-v2~t{tuning.pk}"
    # A source finishes ingesting (base model) between the job's read and its deploy.
    shop = ingest(bot, SHOP_FAQ, name="Shop")
    vectors = providers.get_provider("local").embed(
        list(Chunk.objects.filter(pk__in=chunk_ids).order_by("pk").values_list("title", flat=True))
    )
    retrieval._deploy(tuning, token, name, sorted(chunk_ids), vectors)

    shop.refresh_from_db()
    assert shop.status == Source.Status.PENDING  # queued again ...
    assert Chunk.objects.filter(source=shop).exclude(embedding_model=f"local:{name}").exists()
    # ... and its next ingestion uses the tuned model (the weights would be in storage by now).


def test_turning_tuning_off_keeps_the_tuned_model_answering_until_the_base_one_is_back(bot):
    source = ingest(bot, ACCOUNT_FAQ)
    tuning = tune(bot)

    retrieval.tuning_disable(bot=bot)

    bot.refresh_from_db()
    assert (
        bot.retrieval_tuning is False
        and bot.embedding_state.tuned_embedding_model == tuning.model_name
    )
    assert (
        selectors.search(bot=bot, query="how do I freeze my card", limit=1)[0].faq_external_id
        == "freeze"
    )

    assert retrieval.tuning_revert(bot_id=bot.pk) is True
    assert retrieval.tuning_revert(bot_id=bot.pk) is False  # delivered twice: nothing more to do

    bot.refresh_from_db()
    assert bot.embedding_state.tuned_embedding_model == ""
    tuning.refresh_from_db()
    assert tuning.status == RetrievalTuning.Status.REPLACED
    source.refresh_from_db()
    assert (
        source.status == Source.Status.READY and source.embedding_model == "local:all-MiniLM-L6-v2"
    )
    assert set(Chunk.objects.filter(bot=bot).values_list("embedding_model", flat=True)) == {
        "local:all-MiniLM-L6-v2"
    }
    assert (
        selectors.search(bot=bot, query="how do I freeze my card", limit=1)[0].faq_external_id
        == "freeze"
    )


def test_turning_tuning_back_on_before_the_revert_ran_keeps_the_tuned_model(bot):
    ingest(bot, ACCOUNT_FAQ)
    tuning = tune(bot)
    retrieval.tuning_disable(bot=bot)
    Bot.objects.filter(pk=bot.pk).update(retrieval_tuning=True)

    assert retrieval.tuning_revert(bot_id=bot.pk) is False
    assert serving.tuned_model(Bot.objects.get(pk=bot.pk)) == tuning.model_name


def test_a_lost_revert_is_asked_for_again_by_the_beat_task(bot):
    ingest(bot, ACCOUNT_FAQ)
    tune(bot)
    retrieval.tuning_disable(bot=bot)
    Bot.objects.filter(pk=bot.pk).update(updated_at=timezone.now() - timedelta(hours=1))

    assert retrieval.tunings_recover_stuck()["reverts"] == 1


def test_a_newer_tuning_replaces_the_deployed_one_and_deletes_its_weights(
    bot, django_capture_on_commit_callbacks
):
    ingest(bot, ACCOUNT_FAQ)
    first = tune(bot)
    with django_capture_on_commit_callbacks(execute=True):
        second = tune(bot)

    first.refresh_from_db()
    assert (first.status, second.status) == (
        RetrievalTuning.Status.REPLACED,
        RetrievalTuning.Status.DEPLOYED,
    )
    assert not default_storage.exists(first.weights)
    assert default_storage.exists(second.weights)


def test_a_stalled_tuning_is_requeued_then_failed_never_left_running(bot):
    ingest(bot, ACCOUNT_FAQ)
    tuning = retrieval.tuning_request(bot=bot, force=True)
    retrieval._claim(tuning.pk)
    long_ago = timezone.now() - timedelta(hours=1)
    RetrievalTuning.objects.filter(pk=tuning.pk).update(updated_at=long_ago)

    assert retrieval.tunings_recover_stuck()["requeued"] == 1
    tuning.refresh_from_db()
    assert tuning.status == RetrievalTuning.Status.QUEUED

    RetrievalTuning.objects.filter(pk=tuning.pk).update(
        status=RetrievalTuning.Status.RUNNING, attempts=retrieval.MAX_ATTEMPTS, updated_at=long_ago
    )
    assert retrieval.tunings_recover_stuck()["failed"] == 1
    tuning.refresh_from_db()
    assert tuning.status == RetrievalTuning.Status.FAILED
    assert "interrupted" in tuning.message


def test_the_same_task_delivered_twice_tunes_once(bot):
    ingest(bot, ACCOUNT_FAQ)
    tuning = retrieval.tuning_request(bot=bot, force=True)
    assert retrieval.tuning_run(tuning_id=tuning.pk) == RetrievalTuning.Status.DEPLOYED
    assert retrieval.tuning_run(tuning_id=tuning.pk) == ""
    assert RetrievalTuning.objects.get(pk=tuning.pk).attempts == 1


def test_choosing_another_embedding_model_replaces_the_tuned_one_once_switched(
    bot, openai_server, django_capture_on_commit_callbacks
):
    from knowledge import reembedding

    ingest(bot, ACCOUNT_FAQ)
    tuning = tune(bot)
    tuned = f"local:{tuning.model_name}"

    Bot.objects.filter(pk=bot.pk).update(provider=Bot.Provider.OPENAI)  # the settings form
    job = reembedding.embedding_change(bot=bot, provider_before="local", model_before="")

    # The tuned model keeps answering (its weights stay) until the new vectors are in.
    bot.refresh_from_db()
    assert (
        bot.embedding_state.tuned_embedding_model == ""
        and bot.embedding_state.serving_embedding == tuned
    )
    assert serving.embedding_model_for_bot(bot) == tuned
    assert selectors.search(bot=bot, query="lock my card")[0].faq_id is not None
    assert RetrievalTuning.objects.get(pk=tuning.pk).status == RetrievalTuning.Status.DEPLOYED
    assert "switching embedding models" in retrieval.tuning_unavailable_reason(bot)
    assert job.from_model == tuned and job.to_model == "openai:text-embedding-3-small"

    with django_capture_on_commit_callbacks(execute=True):
        assert reembedding.reembedding_run(reembedding_id=job.pk) == "done"

    bot.refresh_from_db()
    assert bot.embedding_state.serving_embedding == ""
    assert serving.embedding_model_for_bot(bot) == "openai:text-embedding-3-small"
    assert set(Chunk.objects.filter(bot=bot).values_list("embedding_model", flat=True)) == {
        "openai:text-embedding-3-small"
    }
    tuning.refresh_from_db()
    assert tuning.status == RetrievalTuning.Status.REPLACED
    assert not default_storage.exists(tuning.weights)


def test_tuning_runs_on_the_training_threads_and_gives_the_web_threads_back(settings):
    """The training helpers load torch again on every step; that must not put a run that asked
    for TRAINING_TORCH_THREADS back on the one thread the web process answers with."""
    import torch

    from providers.local import prepare_torch

    prepare_torch()
    before = torch.get_num_threads()
    settings.TRAINING_TORCH_THREADS = before + 1
    seen = []
    groups = [[e["question"], *e["example_questions"]] for e in ACCOUNT_FAQ]
    train_embedding_model(
        groups,
        epochs=1,
        batch_size=64,
        learning_rate=5e-5,
        min_steps=2,
        on_step=lambda done, total: seen.append(torch.get_num_threads()),
    )
    assert seen and set(seen) == {before + 1}
    assert torch.get_num_threads() == before
