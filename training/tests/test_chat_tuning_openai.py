"""Chat fine-tuning through an OpenAI-compatible fine-tuning API, over real HTTP against the
local server that speaks it (providers/tests/openai_server.py): upload, job, polling from beat,
events and losses, cancel, deploy, and the provider's refusals and failures."""

import pytest
from django.core.exceptions import ValidationError

import providers
from bots.models import Bot
from chat.answering import answer
from chat.models import Message
from training import chat_tuning, chat_tuning_openai
from training.models import ChatTuning
from training.tasks import submit_chat_tuning

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("small_sets")]


def launch(bot) -> ChatTuning:
    return chat_tuning.chat_tuning_launch(bot=bot, backend=ChatTuning.Backend.OPENAI)


def submit(run) -> ChatTuning:
    chat_tuning_openai.chat_tuning_submit(run_id=run.pk)
    run.refresh_from_db()
    return run


def poll_until_final(run, polls: int = 10) -> ChatTuning:
    for _ in range(polls):
        chat_tuning_openai.chat_tunings_poll()
        run.refresh_from_db()
        if run.is_final:
            break
    return run


def test_a_provider_run_uploads_creates_a_job_polls_it_and_deploys_its_model(shop, openai_server):
    run = submit(launch(shop))

    assert run.status == ChatTuning.Status.RUNNING and run.provider_job_id.startswith("ftjob-")
    assert run.provider_file_id.startswith("file-")
    job = openai_server.jobs[run.provider_job_id]
    assert job["model"] == "gpt-4o-mini-2024-07-18" and job["hyperparameters"]["n_epochs"] == 8
    uploaded = openai_server.files[run.provider_file_id].decode().splitlines()
    assert len(uploaded) == run.examples == 10

    run = poll_until_final(run)
    assert run.status == ChatTuning.Status.READY, run.error
    assert run.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:stub:acme:")
    assert run.losses == [[1, 2.0], [2, 1.0], [3, 0.6667]]  # from the job's metrics events
    assert run.progress_done == run.progress_total == 3
    assert "The job has successfully completed" in run.metrics["events"]

    chat_tuning.chat_tuning_deploy(run=run)
    shop.refresh_from_db()
    assert shop.mode == Bot.Mode.FINETUNED
    openai_server.replies.append("Bring it back within 30 days with the receipt.")
    result = answer(shop, "Can I get a refund?")
    assert result.path == Message.Path.GENERATED
    assert [b for b in openai_server.bodies if "messages" in b][-1]["model"] == run.fine_tuned_model


def test_an_invalid_training_file_fails_the_run_with_the_providers_reason(shop, openai_server):
    run = launch(shop)
    # The file the provider gets is not the one validated here (edited in storage).
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    default_storage.delete(run.training_file)
    default_storage.save(run.training_file, ContentFile(b'{"messages": "oops"}\n' * 12))

    run = submit(run)
    assert run.status == ChatTuning.Status.FAILED
    assert "not valid for fine-tuning" in run.error and "Line 1" in run.error


def test_a_job_that_fails_at_the_provider_fails_the_run_and_the_bot_keeps_its_model(
    shop, openai_server
):
    good = poll_until_final(submit(launch(shop)))
    chat_tuning.chat_tuning_deploy(run=good)
    openai_server.fine_tuning_outcome = "failed"

    bad = poll_until_final(submit(launch(shop)))

    assert bad.status == ChatTuning.Status.FAILED
    assert bad.error.startswith("The provider's job failed: ") and "moderation" in bad.error
    shop.refresh_from_db()
    assert chat_tuning.deployed_chat_model(shop) == ("openai", good.fine_tuned_model)
    with pytest.raises(ValidationError, match="only a finished run can be deployed"):
        chat_tuning.chat_tuning_deploy(run=bad)


def test_a_provider_that_refuses_fine_tuning_gets_a_clear_message(shop, openai_server):
    openai_server.fine_tuning_refused = True

    run = submit(launch(shop))

    assert run.status == ChatTuning.Status.FAILED
    assert "refused fine-tuning for this account" in run.error
    assert "closed self-serve fine-tuning to new accounts" in run.error
    assert "local backend" in run.error


def test_rate_limited_submission_goes_back_to_the_queue_and_retries(shop, openai_server):
    openai_server.fine_tuning_fail_next = [429]
    run = launch(shop)
    # The upload succeeds, the job creation is rate limited.
    with pytest.raises(providers.ProviderUnavailable):
        chat_tuning_openai.chat_tuning_submit(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ChatTuning.Status.QUEUED and not run.provider_job_id

    run = submit(run)  # Celery's retry
    assert run.status == ChatTuning.Status.RUNNING and run.provider_job_id


def test_a_provider_down_through_every_retry_fails_the_run_readably(shop, openai_server):
    openai_server.fine_tuning_fail_next = [500] * 10
    run = launch(shop)

    submit_chat_tuning.on_failure(
        providers.ProviderUnavailable("The model service is unavailable: 500"),
        "task-id",
        (run.pk,),
        {},
        None,
    )
    run.refresh_from_db()
    assert run.status == ChatTuning.Status.FAILED
    assert run.error.startswith("The model service stayed unavailable")


def test_a_poll_that_meets_a_5xx_or_429_keeps_the_run_and_polls_again(shop, openai_server):
    run = submit(launch(shop))
    openai_server.fine_tuning_fail_next = [503, 429]

    counts = chat_tuning_openai.chat_tunings_poll()
    assert counts["unavailable"] == 1
    run.refresh_from_db()
    assert run.status == ChatTuning.Status.RUNNING and "last_poll_error" in run.metrics
    chat_tuning_openai.chat_tunings_poll()  # the 429

    run = poll_until_final(run)
    assert run.status == ChatTuning.Status.READY and "last_poll_error" not in run.metrics


def test_cancel_cancels_the_job_at_the_provider(shop, openai_server):
    run = submit(launch(shop))

    chat_tuning.chat_tuning_cancel(run=run)
    chat_tuning_openai.chat_tuning_cancel_at_provider(run_id=run.pk)  # the task cancel queued
    run = poll_until_final(run)

    assert openai_server.jobs[run.provider_job_id]["status"] == "cancelled"
    assert run.status == ChatTuning.Status.CANCELLED and run.error == "Cancelled at the provider."


def test_without_an_api_key_the_openai_backend_says_what_it_needs(shop, settings):
    settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "", None
    with pytest.raises(ValidationError, match="OPENAI_API_KEY"):
        launch(shop)
    assert not ChatTuning.objects.exists()


def test_a_requeued_provider_run_keeps_polling_its_job(shop, openai_server):
    run = submit(launch(shop))
    job_id = run.provider_job_id
    ChatTuning.objects.filter(pk=run.pk).update(status=ChatTuning.Status.QUEUED)

    run = submit(run)

    assert run.provider_job_id == job_id and len(openai_server.jobs) == 1
    assert poll_until_final(run).status == ChatTuning.Status.READY
