"""The calibration card on the bot's Settings page (slider, live preview, advanced thresholds)
and its line on the Test page. The stored fit is built from synthetic scores: no model call."""

import pytest
from django.urls import reverse
from django.utils.html import escape

from bots.models import Bot
from training import calibration_curve
from training.selectors import calibration_note

from .support import calibration_set, synthetic_fit

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def fitted_bot(bot):
    fitted = synthetic_fit()
    answer, direct = calibration_curve.thresholds_for_caution(fitted, bot.calibration.caution)
    Bot.objects.filter(pk=bot.pk).update(answer_threshold=answer, direct_threshold=direct)
    calibration_set(bot, fit=fitted)
    bot.refresh_from_db()
    return bot


def url(name, bot):
    return reverse(f"training:calibration_{name}", args=[bot.pk])


def test_settings_page_shows_the_card_without_the_numeric_fields(owner_client, fitted_bot):
    html = owner_client.get(reverse("bots:edit", args=[fitted_bot.pk])).content.decode()
    assert 'id="calibration"' in html and 'type="range" name="caution"' in html
    assert escape(fitted_bot.calibration.fit["summary"]) in html
    assert f'hx-get="{url("preview", fitted_bot)}"' in html
    assert "Advanced: the numbers" in html and 'id="id_answer_threshold"' not in html
    assert 'action="' + url("thresholds", fitted_bot) + '"' in html  # works without JavaScript


def test_slider_preview_returns_the_sentence_for_that_caution(owner_client, fitted_bot):
    expected = calibration_curve.caution_preview(fitted_bot.calibration.fit, 1.0)
    assert (
        expected["summary"] != fitted_bot.calibration.fit["summary"]
    )  # the slider moves something
    response = owner_client.get(url("preview", fitted_bot), {"caution": "1"}, **HX)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert 'id="calibration-preview"' in html and escape(expected["summary"]) in html
    assert "not saved yet" in html
    fitted_bot.refresh_from_db()
    assert (
        fitted_bot.calibration.caution == calibration_curve.DEFAULT_CAUTION
    )  # a preview writes nothing
    # Without htmx: back to the Settings page, where the card is rendered.
    assert owner_client.get(url("preview", fitted_bot), {"caution": "0"}).status_code == 302


def test_saving_the_caution_moves_the_thresholds_along_the_curve(owner_client, fitted_bot):
    expected = calibration_curve.thresholds_for_caution(fitted_bot.calibration.fit, 1.0)
    assert expected != (fitted_bot.answer_threshold, fitted_bot.direct_threshold)
    response = owner_client.post(url("caution", fitted_bot), {"caution": "1"}, **HX)
    assert response.status_code == 200 and 'id="calibration"' in response.content.decode()
    fitted_bot.refresh_from_db()
    assert fitted_bot.calibration.caution == 1.0
    assert (fitted_bot.answer_threshold, fitted_bot.direct_threshold) == expected
    assert escape(fitted_bot.calibration.fit["summary"]) in response.content.decode()
    assert owner_client.post(url("caution", fitted_bot), {"caution": "2"}).status_code == 400


def test_hand_set_thresholds_switch_auto_off_and_a_button_back_on(owner_client, fitted_bot):
    data = {"answer_threshold": "0.7", "direct_threshold": "0.6"}  # inverted
    response = owner_client.post(url("thresholds", fitted_bot), data, **HX)
    assert "Must not be above" in response.content.decode()
    fitted_bot.refresh_from_db()
    assert fitted_bot.calibration.thresholds_auto is True

    data = {"answer_threshold": "0.33", "direct_threshold": "0.91"}
    response = owner_client.post(url("thresholds", fitted_bot), data, **HX)
    assert "Set by hand" in response.content.decode()
    fitted_bot.refresh_from_db()
    assert fitted_bot.calibration.thresholds_auto is False
    assert (fitted_bot.answer_threshold, fitted_bot.direct_threshold) == (0.33, 0.91)
    # The slider keeps the caution but leaves hand-set numbers alone.
    owner_client.post(url("caution", fitted_bot), {"caution": "0"}, **HX)
    fitted_bot.refresh_from_db()
    assert (fitted_bot.calibration.caution, fitted_bot.answer_threshold) == (0.0, 0.33)

    response = owner_client.post(url("auto", fitted_bot))
    assert response.status_code == 302 and response.url.endswith("#calibration")
    fitted_bot.refresh_from_db()
    assert fitted_bot.calibration.thresholds_auto is True
    assert (fitted_bot.answer_threshold, fitted_bot.direct_threshold) == (
        calibration_curve.thresholds_for_caution(fitted_bot.calibration.fit, 0.0)
    )


def test_thresholds_posted_to_the_settings_form_count_as_hand_set(owner_client, fitted_bot):
    data = {"name": fitted_bot.name, "slug": fitted_bot.slug, "mode": "rag",
            "fallback_message": "No idea", "provider": "local", "primary_colour": "#123456",
            "greeting": "Hi", "instructions": ""}  # fmt: skip
    assert owner_client.post(reverse("bots:edit", args=[fitted_bot.pk]), data).status_code == 302
    fitted_bot.refresh_from_db()
    assert fitted_bot.calibration.thresholds_auto is True  # not posted: kept, still fitted
    data["answer_threshold"] = "0.31"
    owner_client.post(reverse("bots:edit", args=[fitted_bot.pk]), data)
    fitted_bot.refresh_from_db()
    assert fitted_bot.answer_threshold == 0.31 and fitted_bot.calibration.thresholds_auto is False


def test_another_workspace_gets_404_on_every_calibration_url(other_client, fitted_bot):
    before = Bot.objects.values().get(pk=fitted_bot.pk)
    assert other_client.get(url("preview", fitted_bot), {"caution": "0"}, **HX).status_code == 404
    for name, data in [
        ("caution", {"caution": "1"}),
        ("thresholds", {"answer_threshold": "0.1", "direct_threshold": "0.2"}),
        ("auto", {}),
    ]:
        assert other_client.post(url(name, fitted_bot), data, **HX).status_code == 404
    assert Bot.objects.values().get(pk=fitted_bot.pk) == before


def test_the_test_page_line_says_where_the_thresholds_come_from(bot, fitted_bot):
    note = calibration_note(fitted_bot)
    assert note.startswith("Thresholds fitted to your FAQ on ") and "caution 0.70" in note
    assert "answers about" in note.lower() and "declines about" in note
    calibration_set(bot, thresholds_auto=False)
    bot.refresh_from_db()
    assert calibration_note(bot).startswith("Thresholds set by hand: answers from similarity")
    calibration_set(bot, thresholds_auto=True, fit={})
    bot.refresh_from_db()
    assert calibration_note(bot).startswith("Not fitted yet: add FAQ entries with other phrasings")
