"""Reading the translation catalogues (locale/<lang>/LC_MESSAGES/django.po), for the catalogue
tests and the browser tests that look for English left on translated pages."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def catalogue(path: Path) -> list[dict]:
    """The entries of a .po file: msgid (and msgid_plural), its msgstr(s) and flags. Obsolete
    entries (#~) are left out, as gettext leaves them out of the compiled catalogue."""
    entries = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        entry: dict = {"flags": [], "msgstr": {}}
        key = None
        for line in block.splitlines():
            if line.startswith("#~"):
                entry = {}
                break
            if line.startswith("#,"):
                entry["flags"] += [flag.strip() for flag in line[2:].split(",")]
            elif line.startswith("#") or not line.strip():
                continue
            elif line.startswith('"'):
                value = json.loads(line)
                if key in ("msgid", "msgid_plural", "msgctxt"):
                    entry[key] += value
                else:
                    entry["msgstr"][key] += value
            else:
                key, _space, quoted = line.partition(" ")
                value = json.loads(quoted)
                if key in ("msgid", "msgid_plural", "msgctxt"):
                    entry[key] = value
                else:
                    entry["msgstr"][key] = value
        if entry.get("msgid"):  # the header has an empty msgid
            entries.append(entry)
    return entries


def po_path(language: str, root: Path = ROOT) -> Path:
    return root / "locale" / language / "LC_MESSAGES" / "django.po"
