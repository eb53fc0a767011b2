"""Compile locale/*/LC_MESSAGES/django.po into .mo with GNU msgfmt (run by `make install`).

The .mo files are committed, so a fresh machine speaks every language without gettext; with
`msgfmt` (Debian: gettext) installed, edited catalogues are compiled again."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    msgfmt = shutil.which("msgfmt")
    catalogues = sorted((ROOT / "locale").glob("*/LC_MESSAGES/*.po"))
    if msgfmt is None:
        print("msgfmt is missing (apt-get install gettext): using the committed .mo files.")
        return 0
    for po in catalogues:
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        subprocess.run([msgfmt, "--check-format", "-o", str(mo), str(po)], check=True)
        print(f"compiled {mo.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
