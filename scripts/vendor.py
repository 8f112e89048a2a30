"""Copy the front-end libraries from node_modules into webapp/static/vendor and compile the
translation catalogs. scripts/setup.sh runs it after `npm ci`; safe to run again."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "webapp" / "static" / "vendor"
TRANSLATIONS = ROOT / "webapp" / "translations"

#: package name -> files inside the package to copy (by their base name) into static/vendor.
FILES: dict[str, list[str]] = {
    "htmx.org": ["dist/htmx.min.js", "dist/htmx.js"],
    "swagger-ui-dist": ["swagger-ui-bundle.js", "swagger-ui.css"],  # the /api/docs page
}


def copy_vendor() -> None:
    """Copy each pinned library's dist files; fail loudly when `npm ci` has not run."""
    VENDOR.mkdir(parents=True, exist_ok=True)
    for package, files in FILES.items():
        package_dir = ROOT / "node_modules" / package
        manifest = package_dir / "package.json"
        if not manifest.exists():
            sys.exit(f"vendor: {package} is missing from node_modules; run `npm ci` first")
        version = json.loads(manifest.read_text(encoding="utf-8"))["version"]
        for relative in files:
            source = package_dir / relative
            shutil.copyfile(source, VENDOR / source.name)
        print(f"vendor: {package} {version} -> {VENDOR.relative_to(ROOT)}")


def compile_translations() -> None:
    """Compile every messages.po into the .mo file Flask-Babel reads (fuzzy entries left out)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    for po_path in sorted(TRANSLATIONS.glob("*/LC_MESSAGES/messages.po")):
        with po_path.open("rb") as source:
            catalog = read_po(source, locale=po_path.parent.parent.name)
        with po_path.with_suffix(".mo").open("wb") as target:
            write_mo(target, catalog, use_fuzzy=False)
        entries = [message for message in catalog if message.id]
        done = sum(1 for message in entries if message.string)
        print(f"vendor: compiled {po_path.relative_to(ROOT)} ({done}/{len(entries)} translated)")


if __name__ == "__main__":
    copy_vendor()
    compile_translations()
