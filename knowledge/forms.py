from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from .models import FaqEntry


class SourceForm(forms.Form):
    """Add knowledge: a file or a web page address (exactly one)."""

    file = forms.FileField(
        required=False,
        help_text=_("FAQ CSV, JSON / JSONL, Markdown, text, PDF or Word (DOCX)."),
        widget=forms.ClearableFileInput(
            attrs={
                "accept": ".csv,.tsv,.json,.jsonl,.md,.markdown,.txt,.pdf,.docx,text/*,application/pdf"
            }
        ),
    )
    url = forms.URLField(
        required=False,
        assume_scheme="https",
        label=_("or a web page"),
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/faq"}),
    )

    def clean(self):
        cleaned = super().clean()
        if bool(cleaned.get("file")) == bool(cleaned.get("url")) and not self.errors:
            raise ValidationError(
                _("Choose a file to upload or enter a web address (one at a time).")
            )
        return cleaned


class FaqEntryForm(forms.ModelForm):
    url = forms.URLField(
        required=False,
        max_length=2000,
        assume_scheme="https",
        label=_("Link"),
        widget=forms.URLInput(attrs={"placeholder": _("optional link")}),
    )
    alternate_questions = forms.CharField(
        required=False,
        widget=forms.Textarea(
            attrs={"rows": 2, "placeholder": _("Other ways customers ask this, one per line")}
        ),
        label=_("Other phrasings"),
        help_text=_("One per line. Each phrasing is matched separately."),
    )

    class Meta:
        model = FaqEntry
        fields = ["question", "answer", "category", "url"]
        widgets = {
            "question": forms.TextInput(
                attrs={"placeholder": _("e.g. How long does delivery take?")}
            ),
            "answer": forms.Textarea(attrs={"rows": 3}),
            "category": forms.TextInput(attrs={"placeholder": _("optional")}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["alternate_questions"] = "\n".join(self.instance.alternate_questions)

    def clean_alternate_questions(self) -> list[str]:
        return [
            line.strip()
            for line in self.cleaned_data["alternate_questions"].splitlines()
            if line.strip()
        ]

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "question": data["question"],
            "answer": data["answer"],
            "category": data.get("category", ""),
            "url": data.get("url", ""),
            "alternate_questions": data["alternate_questions"],
        }
