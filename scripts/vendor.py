"""Copy the front-end libraries from node_modules into webapp/static/vendor and compile the
translation catalogs. scripts/setup.sh runs it after `npm ci`; safe to run again."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "webapp" / "static" / "vendor"
TRANSLATIONS = ROOT / "webapp" / "translations"

#: package name -> files inside the package to copy (by their base name) into static/vendor.
FILES: dict[str, list[str]] = {
    "htmx.org": ["dist/htmx.min.js", "dist/htmx.js"],
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
    """Compile every messages.po into the .mo file Flask-Babel reads."""
    if not TRANSLATIONS.exists():
        return
    pybabel = Path(sys.executable).parent / "pybabel"
    command = [str(pybabel)] if pybabel.exists() else [sys.executable, "-m", "babel.messages.frontend"]
    subprocess.run(command + ["compile", "-q", "-f", "-d", str(TRANSLATIONS)], check=True)
    print(f"vendor: compiled translations in {TRANSLATIONS.relative_to(ROOT)}")


if __name__ == "__main__":
    copy_vendor()
    compile_translations()
