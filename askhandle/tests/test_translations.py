"""The dashboard speaks Dutch, German, French and Spanish without a word of English: every msgid
of locale/<lang>/LC_MESSAGES/django.po has a translation that is not fuzzy, and the catalogues
hold every string the sources mark (what `makemessages` would extract today)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from django.conf import settings

from .support import ROOT, catalogue, po_path

LANGUAGES = [code for code, _name in settings.LANGUAGES if code != settings.LANGUAGE_CODE]
# What `makemessages` is run with (README): the virtualenv and the benchmark scripts are no
# dashboard; --no-location keeps the catalogues free of line numbers.
MAKEMESSAGES = ["--ignore=.venv", "--ignore=benchmarks", "--no-location"]
# Copied for the extraction: everything makemessages reads (.py, .html, .txt), nothing it skips.
NOT_SOURCES = shutil.ignore_patterns(
    ".venv", ".run", ".git", "benchmarks", "locale", "__pycache__", "*.egg-info", "node_modules"
)


def test_the_reader_sees_plurals_fuzzy_flags_and_continued_lines(tmp_path):
    po = tmp_path / "django.po"
    po.write_text(
        'msgid ""\nmsgstr ""\n"Language: nl\\n"\n\n'
        '#, python-format\nmsgid "%(n)s day"\nmsgid_plural "%(n)s days"\n'
        'msgstr[0] "%(n)s dag"\nmsgstr[1] ""\n\n'
        '#, fuzzy\nmsgid "Save"\nmsgstr "Opslaan"\n\n'
        'msgid ""\n"Long "\n"text"\nmsgstr ""\n"Lange "\n"tekst"\n\n'
        '#~ msgid "Gone"\n#~ msgstr "Weg"\n',
        encoding="utf-8",
    )
    day, save, long = catalogue(po)
    assert day["msgid_plural"] == "%(n)s days"
    assert day["msgstr"] == {"msgstr[0]": "%(n)s dag", "msgstr[1]": ""}
    assert save["flags"] == ["fuzzy"]
    assert long["msgid"] == "Long text" and long["msgstr"] == {"msgstr": "Lange tekst"}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_string_has_a_translation_that_is_not_fuzzy(language):
    entries = catalogue(po_path(language))
    assert len(entries) > 900, "the dashboard's strings are missing from the catalogue"
    untranslated = [e["msgid"] for e in entries if not all(e["msgstr"].values())]
    fuzzy = [e["msgid"] for e in entries if "fuzzy" in e["flags"]]
    assert not untranslated, f"{language}: {len(untranslated)} untranslated: {untranslated[:10]}"
    assert not fuzzy, f"{language}: {len(fuzzy)} fuzzy (check and unflag): {fuzzy[:10]}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_plural_forms_keep_their_placeholders(language):
    """A translated plural may drop the count from its singular ("The other phrasing ..."),
    but never a name the code fills in: the page would then raise KeyError."""
    placeholder = re.compile(r"%\((\w+)\)")
    for entry in catalogue(po_path(language)):
        if "msgid_plural" not in entry:
            continue
        names = set(placeholder.findall(entry["msgid"] + entry["msgid_plural"]))
        for form, text in entry["msgstr"].items():
            assert set(placeholder.findall(text)) <= names, (language, entry["msgid"], form)


@pytest.mark.skipif(
    shutil.which("xgettext") is None,
    reason="xgettext (GNU gettext) is not installed: cannot extract the marked strings to "
    "compare with the catalogues (apt-get install gettext)",
)
def test_the_catalogues_hold_every_string_the_sources_mark(tmp_path):
    """makemessages, run on a copy of the sources, finds no msgid the committed catalogues
    lack. Run `python manage.py makemessages -l nl -l de -l fr -l es --ignore=.venv
    --ignore=benchmarks --no-location` and translate what it adds when this fails."""
    copy = tmp_path / "src"
    shutil.copytree(ROOT, copy, ignore=NOT_SOURCES)
    (copy / "locale").mkdir()  # where makemessages writes (a fresh catalogue)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "askhandle.settings"}
    env.pop("PYTEST_VERSION", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "nl", *MAKEMESSAGES],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    extracted = {(e.get("msgctxt"), e["msgid"]) for e in catalogue(po_path("nl", copy))}
    committed = {(e.get("msgctxt"), e["msgid"]) for e in catalogue(po_path("nl"))}
    assert len(extracted) > 900, result.stdout + result.stderr  # it read the sources
    missing = sorted(msgid for _context, msgid in extracted - committed)
    assert not missing, f"{len(missing)} marked strings are not in the catalogues: {missing[:10]}"
    # Every language has the same set: a string added to one is added to all.
    for language in LANGUAGES:
        ids = {(e.get("msgctxt"), e["msgid"]) for e in catalogue(po_path(language))}
        assert ids == committed, f"{language} differs from nl: {sorted(ids ^ committed)[:10]}"
