from django import forms


class CautionForm(forms.Form):
    caution = forms.FloatField(min_value=0.0, max_value=1.0)


class ThresholdsForm(forms.Form):
    """The advanced section's hand-set thresholds."""

    direct_threshold = forms.FloatField(min_value=0.0, max_value=1.0, label="Word-for-word from")
    answer_threshold = forms.FloatField(min_value=0.0, max_value=1.0, label="Answer from")

    def clean(self):
        cleaned = super().clean()
        direct, answer = cleaned.get("direct_threshold"), cleaned.get("answer_threshold")
        if direct is not None and answer is not None and answer > direct:
            self.add_error("answer_threshold", "Must not be above the direct-answer threshold.")
        return cleaned
