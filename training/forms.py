from django import forms
from django.utils.translation import gettext_lazy as _

from bots.forms import check_thresholds

from .models import ChatTuning, DocumentPair


class CautionForm(forms.Form):
    caution = forms.FloatField(min_value=0.0, max_value=1.0)


class ThresholdsForm(forms.Form):
    """The advanced section's hand-set thresholds."""

    direct_threshold = forms.FloatField(min_value=0.0, max_value=1.0, label=_("Word for word from"))
    answer_threshold = forms.FloatField(min_value=0.0, max_value=1.0, label=_("Answer from"))

    def clean(self):
        cleaned = super().clean()
        check_thresholds(self)
        return cleaned


class LaunchForm(forms.Form):
    """A fine-tuning launch: the mode and backend the page chose. One left out takes the page's
    default; one the page never offers is refused (it queued a real run under a default)."""

    mode = forms.ChoiceField(
        required=False,
        choices=ChatTuning.Mode.choices,
        error_messages={
            "invalid_choice": _("Choose a mode: the fine-tuned model alone or with retrieval."),
        },
    )
    backend = forms.ChoiceField(
        required=False,
        choices=ChatTuning.Backend.choices,
        error_messages={"invalid_choice": _("Choose a backend: local or OpenAI.")},
    )

    def __init__(self, *args, default_mode: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.default_mode = default_mode

    def clean_mode(self) -> str:
        return self.cleaned_data["mode"] or self.default_mode

    def clean_backend(self) -> str:
        return self.cleaned_data["backend"] or ChatTuning.Backend.LOCAL


class DocumentPairForm(forms.Form):
    """Accept (with edits) or reject a pair. A question or answer not posted stays as it is."""

    action = forms.ChoiceField(choices=[("accept", _("Accept")), ("reject", _("Reject"))])
    question = forms.CharField(
        required=False, max_length=DocumentPair._meta.get_field("question").max_length
    )
    answer = forms.CharField(required=False)

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "accept": data["action"] == "accept",
            "question": data["question"] if "question" in self.data else None,
            "answer": data["answer"] if "answer" in self.data else None,
        }
