"""The Fine-tuning page: every URL answers its owner, gives another workspace a 404, and serves
htmx fragments; launching, cancelling, deploying and rolling back go through the services."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from training import chat_tuning
from training.models import ChatTuning

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("small_sets")]


def ready_run(bot, **fields) -> ChatTuning:
    defaults = {
        "status": ChatTuning.Status.READY,
        "model_name": "SmolLM2-135M-Instruct~ctest",
        "metrics": {"losses": [[1, 2.5], [2, 1.25]]},
    }
    return ChatTuning.objects.create(bot=bot, **{**defaults, **fields})


def urls(bot, run) -> list[tuple[str, str]]:
    return [
        ("get", reverse("training:chat_tuning", args=[bot.pk])),
        ("get", reverse("training:chat_tuning_download", args=[bot.pk])),
        ("post", reverse("training:chat_tuning_launch", args=[bot.pk])),
        ("post", reverse("training:chat_tuning_undeploy", args=[bot.pk])),
        ("get", reverse("training:chat_tuning_run", args=[bot.pk, run.pk])),
        ("post", reverse("training:chat_tuning_cancel", args=[bot.pk, run.pk])),
        ("post", reverse("training:chat_tuning_deploy", args=[bot.pk, run.pk])),
    ]


def test_another_workspace_gets_404_on_every_url(shop, other_client):
    run = ready_run(shop)
    for method, url in urls(shop, run):
        assert getattr(other_client, method)(url).status_code == 404, url
    run.refresh_from_db()
    assert run.status == ChatTuning.Status.READY and not ChatTuning.objects.exclude(pk=run.pk)


def test_a_run_of_another_bot_is_404_even_under_your_own_bot(shop, other_bot, owner_client):
    theirs = ready_run(other_bot)
    url = reverse("training:chat_tuning_deploy", args=[shop.pk, theirs.pk])
    assert owner_client.post(url).status_code == 404


def test_the_page_builds_the_set_and_shows_issues_estimate_and_preview(shop, owner_client):
    response = owner_client.get(reverse("training:chat_tuning", args=[shop.pk]), {"build": "1"})

    body = response.content.decode()
    assert response.status_code == 200 and "Fine-tuning" in body
    assert (
        "No problems found." in body and "Tokens × epochs" in body and "Launch fine-tuning" in body
    )
    assert "What are your opening hours?" in body  # the preview


def test_a_bot_without_knowledge_shows_why_it_cannot_launch(bot, owner_client):
    body = owner_client.get(
        reverse("training:chat_tuning", args=[bot.pk]), {"build": "1"}
    ).content.decode()
    assert "no FAQ entries" in body and "Launch fine-tuning" not in body

    response = owner_client.post(reverse("training:chat_tuning_launch", args=[bot.pk]), follow=True)
    assert "no FAQ entries" in response.content.decode() and not ChatTuning.objects.exists()


def test_htmx_build_returns_only_the_fragment(shop, owner_client):
    response = owner_client.get(
        reverse("training:chat_tuning", args=[shop.pk]), {"build": "1"}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<section class="card" id="ct-build">')
    assert "<html" not in body


def test_download_is_jsonl_in_the_chat_format(shop, owner_client):
    response = owner_client.get(reverse("training:chat_tuning_download", args=[shop.pk]))
    assert response["Content-Type"] == "application/jsonl"
    assert "attachment" in response["Content-Disposition"]
    lines = response.content.decode().splitlines()
    assert len(lines) == 10 and all(line.startswith('{"messages": [') for line in lines)


def test_launch_queues_a_run_and_a_second_launch_says_one_is_running(
    shop, owner_client, django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    monkeypatch.setattr(
        "training.tasks.train_chat_tuning.delay_on_commit", lambda pk: sent.append(pk)
    )
    url = reverse("training:chat_tuning_launch", args=[shop.pk])

    owner_client.post(url, {"mode": "finetuned", "backend": "local"})
    run = ChatTuning.objects.get()
    assert sent == [run.pk] and run.status == ChatTuning.Status.QUEUED

    page = owner_client.post(url, {"mode": "finetuned", "backend": "local"}, follow=True)
    assert f"Fine-tuning run {run.pk} is queued" in page.content.decode()
    assert ChatTuning.objects.count() == 1


@pytest.mark.parametrize(
    "posted, error",
    [
        ({"mode": "bogus", "backend": "local"}, "Choose a mode: the fine-tuned model alone or"),
        ({"mode": "both", "backend": "bogus"}, "Choose a backend: local or OpenAI."),
    ],
)
def test_launch_with_a_mode_or_backend_the_page_never_offers_is_refused(
    shop, owner_client, monkeypatch, posted, error
):
    # mode=bogus queued a real run as "fine-tuned alone" (issue 23).
    sent = []
    monkeypatch.setattr(
        "training.tasks.train_chat_tuning.delay_on_commit", lambda pk: sent.append(pk)
    )
    url = reverse("training:chat_tuning_launch", args=[shop.pk])
    response = owner_client.post(url, posted)
    assert response.status_code == 422
    body = response.content.decode()
    assert error in body and 'id="ct-pairs"' in body  # the Fine-tuning page, with the error
    assert not ChatTuning.objects.exists() and sent == []
    with pytest.raises(ValidationError, match="Unknown mode or backend"):
        chat_tuning.chat_tuning_launch(bot=shop, **posted)

    owner_client.post(url, {"mode": "both", "backend": "local"})
    assert ChatTuning.objects.get().mode == "both" and len(sent) == 1


def test_run_fragment_polls_while_active_and_stops_with_286_when_final(shop, owner_client):
    run = ready_run(shop, status=ChatTuning.Status.RUNNING, progress_done=2, progress_total=8)
    url = reverse("training:chat_tuning_run", args=[shop.pk, run.pk])

    live = owner_client.get(url, HTTP_HX_REQUEST="true")
    assert live.status_code == 200 and 'hx-trigger="every 2s"' in live.content.decode()
    assert "Step 2 of 8" in live.content.decode() and "ct-loss-data" in live.content.decode()

    ChatTuning.objects.filter(pk=run.pk).update(status=ChatTuning.Status.READY)
    final = owner_client.get(url, HTTP_HX_REQUEST="true")
    assert final.status_code == 286 and "every 2s" not in final.content.decode()


def test_cancel_button_cancels_a_queued_run(shop, owner_client):
    run = ready_run(shop, status=ChatTuning.Status.QUEUED)
    response = owner_client.post(
        reverse("training:chat_tuning_cancel", args=[shop.pk, run.pk]), HTTP_HX_REQUEST="true"
    )
    run.refresh_from_db()
    assert run.status == ChatTuning.Status.CANCELLED and "Cancelled" in response.content.decode()


def test_deploy_roll_back_and_back_to_base_buttons(shop, owner_client):
    first, second = ready_run(shop), ready_run(shop)
    deploy = lambda run: owner_client.post(  # noqa: E731
        reverse("training:chat_tuning_deploy", args=[shop.pk, run.pk]), follow=True
    )

    assert f"Run {first.pk} deployed" in deploy(first).content.decode()
    deploy(second)
    page = deploy(first).content.decode()  # roll back
    shop.refresh_from_db()
    assert chat_tuning.deployed_chat_model(shop) == ("local", first.model_name)
    assert "Back to the base model" in page

    owner_client.post(reverse("training:chat_tuning_undeploy", args=[shop.pk]))
    assert chat_tuning.deployed_chat_model(shop) is None


def test_deploying_a_failed_run_shows_why_and_keeps_the_deployed_one(shop, owner_client):
    good = ready_run(shop)
    chat_tuning.chat_tuning_deploy(run=good)
    failed = ChatTuning.objects.create(
        bot=shop, status=ChatTuning.Status.FAILED, error="The provider's job failed: bad file"
    )
    page = owner_client.post(
        reverse("training:chat_tuning_deploy", args=[shop.pk, failed.pk]), follow=True
    ).content.decode()
    assert "only a finished run can be deployed" in page
    shop.refresh_from_db()
    assert chat_tuning.deployed_chat_model(shop) == ("local", good.model_name)
