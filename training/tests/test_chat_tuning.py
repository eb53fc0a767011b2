"""Chat fine-tuning: the training set, its validation and estimate, and local LoRA runs through
the real local model, PostgreSQL and storage (tiny runs: 2-4 steps)."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage

import providers
from askhandle.jobs import ClaimedJobs
from bots.models import Bot
from knowledge.tests.factories import SHOP_FAQ
from knowledge.tests.support import ingest_faqs as ingest
from providers.local import ADAPTER_FILES
from training import chat_tuning, chat_tuning_local, dataset_checks, datasets
from training.models import ChatTuning

pytestmark = pytest.mark.django_db

TINY = {"max_steps": 2, "batch_size": 2, "epochs": 1}


@pytest.fixture(autouse=True)
def tiny_runs(settings, small_sets):
    settings.TRAINING_TORCH_THREADS = 1


def launch(bot, **kwargs) -> ChatTuning:
    return chat_tuning.chat_tuning_launch(bot=bot, hyperparameters={**TINY, **kwargs})


def train(bot, **kwargs) -> ChatTuning:
    run = launch(bot, **kwargs)
    chat_tuning_local.chat_tuning_run_local(run_id=run.pk)
    run.refresh_from_db()
    return run


# --- The training set ----------------------------------------------------------------------------


def test_training_set_answers_each_training_phrasing_with_its_answer_and_holds_one_out(shop):
    ts = datasets.build(shop, mode="finetuned")

    faq = [e for e in ts.examples if e.kind == "faq"]
    # 8 phrasings; "hours" and "returns" have 3 each, so one of each is held out.
    assert len(faq) == 6 and len(ts.held_out) == 2
    held = {h["question"] for h in ts.held_out}
    assert not held & {e.question for e in faq}
    assert {h["answer"] for h in ts.held_out} == {
        SHOP_FAQ[0]["answer"],
        SHOP_FAQ[1]["answer"],
    }
    for e in faq:
        assert [m["role"] for m in e.messages] == ["system", "user", "assistant"]
        assert e.messages[0]["content"] == shop.instructions
        assert e.tokens > 10
    by_question = {e.question: e.target for e in faq}
    assert by_question["Can you fix my electric bike?"] == SHOP_FAQ[2]["answer"]


def test_refusals_are_shipped_unrelated_questions_answered_with_the_fallback(shop):
    ts = datasets.build(shop, mode="finetuned")

    refusals = [e for e in ts.examples if e.kind == "refusal"]
    assert len(refusals) == datasets.MIN_REFUSALS
    unrelated = set(datasets.load_unrelated())
    assert all(e.question in unrelated and e.target == shop.fallback_message for e in refusals)


def test_both_mode_examples_carry_retrieved_context_with_the_gold_entry(shop):
    ts = datasets.build(shop, mode="both")

    context = [e for e in ts.examples if e.kind == "context"]
    assert len(context) == 6
    for e in context:
        system = e.messages[0]["content"]
        assert "Knowledge:\n[1]" in system and e.target in system  # gold among the chunks
        assert system.count("\n[") >= 2  # with distractors
    refusals = [e for e in ts.examples if e.kind == "context_refusal"]
    assert refusals and all(e.target == shop.fallback_message for e in refusals)


def test_jsonl_is_the_chat_fine_tuning_format(shop):
    ts = datasets.build(shop, mode="finetuned")
    lines = ts.jsonl().splitlines()

    assert len(lines) == len(ts.examples)
    first = json.loads(lines[0])
    assert list(first) == ["messages"]
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]


def _example(q, a, tokens=20, kind="faq"):
    return dataset_checks.Example(
        [
            {"role": "system", "content": "Be nice."},
            {"role": "user", "content": q},
            {"role": "assistant", "content": a},
        ],
        kind,
        tokens=tokens,
    )


def test_validation_names_each_problem_and_its_examples(settings):
    settings.CHAT_TUNING_MIN_EXAMPLES = 10
    examples = [
        _example("When do you open?", "At 9."),
        _example("When do you open?", "At 9."),  # duplicate
        _example("when do you  OPEN?", "At 10."),  # conflicting answer to the same question
        _example("", "Something"),  # empty question
        _example("Long one", "x", tokens=settings.CHAT_TUNING_MAX_TOKENS + 1),
    ]
    issues = {i.code: i for i in dataset_checks.validate(examples, entries=3)}

    assert issues["too_few"].level == "error"
    assert issues["duplicates"].level == "warning" and issues["duplicates"].examples == [2]
    assert issues["conflicting"].level == "error" and issues["conflicting"].examples == [1, 2, 3]
    assert issues["empty"].examples == [4]
    assert issues["too_long"].examples == [5]
    assert "no_knowledge" not in issues


def test_a_bot_without_knowledge_cannot_launch_and_says_why(bot):
    ts = datasets.build(bot, mode="finetuned")
    assert {i.code for i in ts.errors} >= {"no_knowledge", "too_few"}

    with pytest.raises(ValidationError, match="no FAQ entries"):
        chat_tuning.chat_tuning_launch(bot=bot)
    assert not ChatTuning.objects.exists()


def test_too_few_examples_blocks_the_launch(shop, settings):
    settings.CHAT_TUNING_MIN_EXAMPLES = 50

    with pytest.raises(ValidationError, match="at least 50"):
        chat_tuning.chat_tuning_launch(bot=shop)
    assert not ChatTuning.objects.exists()


def test_estimate_counts_tokens_times_epochs_and_scales_the_measured_speed(shop):
    ts = datasets.build(shop, mode="finetuned")
    tokens = sum(e.tokens for e in ts.examples)

    local = datasets.estimate(
        ts, backend="local", epochs=3, batch_size=4, measured=(2.0, tokens / 10)
    )
    assert local["examples"] == 10 and local["trained_tokens"] == 3 * tokens
    assert local["steps"] == 3 * 3  # ceil(10 / 4) per epoch
    assert local["seconds"] == 9 * 2 and local["cost_usd"] == 0.0

    paid = datasets.estimate(ts, backend="openai", epochs=3, batch_size=8)
    assert paid["cost_usd"] > 0 and paid["seconds"] is None


# --- Local runs ----------------------------------------------------------------------------------


def test_a_local_run_trains_a_lora_adapter_and_stores_it(shop):
    run = train(shop)

    assert run.status == ChatTuning.Status.READY, run.error
    assert run.progress_done == run.progress_total == 2
    assert [s for s, _ in run.losses] == [1, 2] and all(loss > 0 for _, loss in run.losses)
    assert run.metrics["seconds_per_step"] > 0 and run.metrics["eta_seconds"] == 0
    assert run.model_name == f"SmolLM2-135M-Instruct~{run.adapter.rsplit('/', 1)[-1]}"
    assert len(run.held_out) == 2 and run.examples == 10
    for name in ADAPTER_FILES:
        assert default_storage.exists(f"{run.adapter}/{name}")
    assert not default_storage.exists(f"{run.adapter}/checkpoint/adapter_config.json")
    # The next estimate uses what this machine measured.
    assert chat_tuning.training_set_preview(bot=shop, mode="finetuned", backend="local")[
        "estimate"
    ]["measured"]


def test_a_second_launch_while_one_runs_is_refused(shop):
    first = launch(shop)

    with pytest.raises(ValidationError, match=f"run {first.pk} is queued"):
        launch(shop)
    assert ChatTuning.objects.count() == 1


def test_cancel_stops_a_running_loop_at_its_next_step(shop, monkeypatch):
    run = launch(shop, max_steps=6)
    real_progress = ClaimedJobs.progress

    def progress(self, pk, token, **fields):
        real_progress(self, pk, token, **fields)
        if fields.get("progress_done") == 1:  # the owner clicks Cancel during step 1
            chat_tuning.chat_tuning_cancel(run=ChatTuning.objects.get(pk=pk))

    monkeypatch.setattr(ClaimedJobs, "progress", progress)
    chat_tuning_local.chat_tuning_run_local(run_id=run.pk)
    run.refresh_from_db()

    assert run.status == ChatTuning.Status.CANCELLED
    assert run.error == "Cancelled by the owner at step 1." and run.progress_done == 1
    assert not default_storage.exists(f"{run.adapter}/adapter_model.safetensors")


def test_cancel_of_a_queued_run_ends_it_at_once(shop):
    run = chat_tuning.chat_tuning_cancel(run=launch(shop))
    assert run.status == ChatTuning.Status.CANCELLED and run.finished_at


class WorkerKilled(BaseException):
    """Stands in for SIGKILL: nothing in the run catches it, the row stays RUNNING."""


def test_a_run_whose_worker_died_resumes_from_its_checkpoint(shop, monkeypatch, settings):
    settings.CHAT_TUNING_CHECKPOINT_STEPS = 2
    run = launch(shop, max_steps=4)
    real_progress = ClaimedJobs.progress

    def dies_after_checkpoint(self, pk, token, **fields):
        if fields.get("progress_done") == 3:
            raise WorkerKilled
        real_progress(self, pk, token, **fields)

    monkeypatch.setattr(ClaimedJobs, "progress", dies_after_checkpoint)
    with pytest.raises(WorkerKilled):
        chat_tuning_local.chat_tuning_run_local(run_id=run.pk)
    monkeypatch.setattr(ClaimedJobs, "progress", real_progress)
    run.refresh_from_db()
    assert run.status == ChatTuning.Status.RUNNING and run.checkpoint_step == 2
    assert default_storage.exists(f"{run.adapter}/checkpoint/adapter_model.safetensors")

    assert chat_tuning.chat_tunings_recover_stuck(stale_seconds=0)["requeued"] == 1
    run.refresh_from_db()
    assert run.status == ChatTuning.Status.QUEUED
    chat_tuning_local.chat_tuning_run_local(run_id=run.pk)
    run.refresh_from_db()

    assert run.status == ChatTuning.Status.READY, run.error
    assert run.metrics["resumed_from"] == 2 and run.attempts == 2
    assert [s for s, _ in run.losses] == [1, 2, 3, 4]
    assert not default_storage.exists(f"{run.adapter}/checkpoint/adapter_model.safetensors")


def test_a_run_interrupted_too_often_fails_with_the_reason_and_never_stays_running(shop):
    run = launch(shop)
    ChatTuning.objects.filter(pk=run.pk).update(
        status=ChatTuning.Status.RUNNING, attempts=chat_tuning.MAX_ATTEMPTS
    )

    assert chat_tuning.chat_tunings_recover_stuck(stale_seconds=0)["failed"] == 1
    run.refresh_from_db()
    assert run.status == ChatTuning.Status.FAILED
    assert "interrupted 3 times" in run.error


# --- Versions and serving ------------------------------------------------------------------------


def test_deploy_roll_back_and_back_to_base(shop):
    first = train(shop)
    second = train(shop, seed=1)

    chat_tuning.chat_tuning_deploy(run=first)
    shop.refresh_from_db()
    assert shop.mode == Bot.Mode.FINETUNED
    assert chat_tuning.deployed_chat_model(shop) == ("local", first.model_name)

    chat_tuning.chat_tuning_deploy(run=second)
    first.refresh_from_db()
    assert first.status == ChatTuning.Status.REPLACED
    assert chat_tuning.deployed_chat_model(shop) == ("local", second.model_name)

    chat_tuning.chat_tuning_deploy(run=first)  # roll back
    assert chat_tuning.deployed_chat_model(shop) == ("local", first.model_name)

    chat_tuning.chat_tuning_undeploy(bot=shop)
    assert chat_tuning.deployed_chat_model(shop) is None
    assert not ChatTuning.objects.filter(status=ChatTuning.Status.DEPLOYED).exists()


def test_each_tuned_mode_answers_with_the_run_trained_for_it(shop):
    alone = train(shop)
    with_passages = ChatTuning.objects.create(
        bot=shop, mode=ChatTuning.Mode.BOTH, backend="local", status=ChatTuning.Status.READY,
        model_name="SmolLM2-135M-Instruct~both", adapter="adapters/both",
    )  # fmt: skip

    chat_tuning.chat_tuning_deploy(run=alone)
    chat_tuning.chat_tuning_deploy(run=with_passages)  # the other mode's run stays deployed
    alone.refresh_from_db()
    assert alone.status == ChatTuning.Status.DEPLOYED
    shop.refresh_from_db()
    assert shop.mode == Bot.Mode.BOTH
    assert chat_tuning.deployed_chat_model(shop) == ("local", "SmolLM2-135M-Instruct~both")
    shop.mode = Bot.Mode.FINETUNED
    assert chat_tuning.deployed_chat_model(shop) == ("local", alone.model_name)
    # A mode without a run of its own answers with retrieval.
    alone.status = ChatTuning.Status.REPLACED
    alone.save()
    assert chat_tuning.deployed_chat_model(shop) is None


def test_deploying_a_failed_run_is_refused_and_the_deployed_one_stays(shop):
    good = train(shop)
    chat_tuning.chat_tuning_deploy(run=good)
    failed = ChatTuning.objects.create(
        bot=shop, status=ChatTuning.Status.FAILED, error="The provider's job failed: bad file"
    )

    with pytest.raises(ValidationError, match="failed .*bad file.*only a finished run"):
        chat_tuning.chat_tuning_deploy(run=failed)
    shop.refresh_from_db()
    assert chat_tuning.deployed_chat_model(shop) == ("local", good.model_name)


def test_many_bots_adapters_are_served_over_one_base_model(shop, other_bot, settings):
    ingest(other_bot, SHOP_FAQ)
    runs = [train(shop), train(other_bot)]
    local = providers.get_provider("local")
    from providers import local as local_module

    _, base_before = local_module.load_chat_model()
    messages = [{"role": "user", "content": "When do you open?"}]
    answers = [local.chat(messages, model=r.model_name, max_tokens=8) for r in runs]
    base_answer = local.chat(messages, max_tokens=8)

    assert all(isinstance(a, str) and a for a in answers) and base_answer
    assert local_module.load_chat_model()[1] is base_before  # no second model was loaded
    keys = [r.adapter.rsplit("/", 1)[-1] for r in runs]
    assert set(keys) <= set(local_module.loaded_chat_adapters())

    with pytest.raises(providers.ProviderError, match="missing from storage"):
        local.chat(messages, model="SmolLM2-135M-Instruct~nope", max_tokens=4)


def test_deleting_a_bot_deletes_its_adapters_and_training_sets(
    shop, django_capture_on_commit_callbacks
):
    run = train(shop)
    names = [f"{run.adapter}/{n}" for n in ADAPTER_FILES] + [run.training_file]
    assert all(default_storage.exists(n) for n in names)

    with django_capture_on_commit_callbacks(execute=True):
        shop.delete()
    assert not any(default_storage.exists(n) for n in names)
