import django.core.validators
from django.db import migrations, models


def to_new_default(apps, schema_editor):
    """Bots still on the previous default move to the new one; edited thresholds stay."""
    Bot = apps.get_model("bots", "Bot")
    Bot.objects.filter(answer_threshold=0.43).update(answer_threshold=0.45)


def to_old_default(apps, schema_editor):
    Bot = apps.get_model("bots", "Bot")
    Bot.objects.filter(answer_threshold=0.45).update(answer_threshold=0.43)


class Migration(migrations.Migration):
    dependencies = [
        ("bots", "0006_thresholds_for_tuned_retrieval"),
    ]

    operations = [
        migrations.AlterField(
            model_name="bot",
            name="answer_threshold",
            field=models.FloatField(
                default=0.45,
                help_text="Similarity below which the bot gives its fallback message.",
                validators=[
                    django.core.validators.MinValueValidator(0.0),
                    django.core.validators.MaxValueValidator(1.0),
                ],
            ),
        ),
        migrations.AlterField(
            model_name="bot",
            name="retrieval_tuning",
            field=models.BooleanField(
                default=True,
                help_text="After each FAQ change, fine-tune the local embedding model on your questions' own phrasings, so similar questions are told apart better (local models only; about a minute for a small FAQ, several minutes for 150 entries).",
                verbose_name="tune retrieval to my FAQ",
            ),
        ),
        migrations.RunPython(to_new_default, to_old_default),
    ]
