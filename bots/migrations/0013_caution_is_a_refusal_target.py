"""The caution became the share of out-of-scope questions a bot declines (training.calibration),
where it was the weight of those questions in an objective. Each bot keeps the answer threshold
it has until its next fit or slider move; its new caution is the refusal its stored curve
estimates at that threshold, so the slider starts at the share the bot declines now. Bots
without a fit get the new default."""

import django.core.validators
from django.db import migrations, models

NEW_DEFAULT = 0.7


def _refusal_at(calibration: dict, threshold: float) -> float | None:
    curve = (calibration or {}).get("curve") or {}
    thresholds, refusals = curve.get("threshold"), curve.get("refuse_out")
    if not thresholds or not refusals:
        return None
    index = min(range(len(thresholds)), key=lambda i: abs(thresholds[i] - threshold))
    value = refusals[index]
    return None if value is None else round(min(1.0, max(0.0, float(value))), 4)


def forwards(apps, schema_editor):
    Bot = apps.get_model("bots", "Bot")
    for bot in Bot.objects.only("pk", "calibration", "answer_threshold", "caution").iterator():
        refusal = _refusal_at(bot.calibration, bot.answer_threshold)
        Bot.objects.filter(pk=bot.pk).update(caution=NEW_DEFAULT if refusal is None else refusal)


def backwards(apps, schema_editor):
    apps.get_model("bots", "Bot").objects.update(caution=0.25)


class Migration(migrations.Migration):
    dependencies = [("bots", "0012_message_training_approved")]

    operations = [
        migrations.AlterField(
            model_name="bot",
            name="caution",
            field=models.FloatField(
                default=0.7,
                help_text=(
                    "The share of questions it has no answer for that the bot declines "
                    "(estimated), from helpful (0: answers more, now and then with the wrong "
                    "entry) to cautious (1: declines more, answers only when sure)."
                ),
                validators=[
                    django.core.validators.MinValueValidator(0.0),
                    django.core.validators.MaxValueValidator(1.0),
                ],
            ),
        ),
        migrations.RunPython(forwards, backwards),
    ]
