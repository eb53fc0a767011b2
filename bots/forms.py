from django import forms
from django.utils.translation import gettext_lazy as _

from .models import Bot


def check_thresholds(form: forms.BaseForm) -> None:
    """The answer threshold must not be above the direct one (the settings form, and the
    calibration card's hand-set thresholds in training)."""
    direct = form.cleaned_data.get("direct_threshold")
    answer = form.cleaned_data.get("answer_threshold")
    if direct is not None and answer is not None and answer > direct:
        form.add_error("answer_threshold", _("Must not be above the direct-answer threshold."))


class BotForm(forms.ModelForm):
    THRESHOLDS = ("direct_threshold", "answer_threshold")

    class Meta:
        model = Bot
        fields = [
            "name",
            "slug",
            "greeting",
            "language",
            "instructions",
            "mode",
            "fallback_message",
            "provider",
            "chat_model",
            "generation",
            "embedding_model",
            "direct_threshold",
            "answer_threshold",
            "primary_colour",
        ]
        widgets = {
            "instructions": forms.Textarea(attrs={"rows": 3}),
            "fallback_message": forms.Textarea(attrs={"rows": 2}),
            "primary_colour": forms.TextInput(attrs={"type": "color"}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A form posted without it (an older page, a script) keeps the bot's current policy.
        self.fields["generation"].required = False
        self.fields["language"].required = False
        # The thresholds are set on the Settings page's calibration card (training); a form
        # posted without them keeps the bot's, one posted with other values sets them by hand.
        for name in self.THRESHOLDS:
            self.fields[name].required = False

    def clean_language(self) -> str:
        return self.cleaned_data.get("language") or self.instance.language

    def clean_generation(self) -> str:
        return self.cleaned_data.get("generation") or self.instance.generation

    def clean_direct_threshold(self) -> float:
        value = self.cleaned_data.get("direct_threshold")
        return self.instance.direct_threshold if value is None else value

    def clean_answer_threshold(self) -> float:
        value = self.cleaned_data.get("answer_threshold")
        return self.instance.answer_threshold if value is None else value

    def clean(self):
        cleaned = super().clean()
        check_thresholds(self)
        return cleaned


class BotFieldForm(forms.Form):
    """Inline edit of one field from the bot page (htmx)."""

    INLINE_FIELDS = ("name", "greeting", "fallback_message", "instructions")
