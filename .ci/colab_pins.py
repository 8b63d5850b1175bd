"""Colab's preinstalled package versions: write them as pip constraints, and check a venv against them.

  python .ci/colab_pins.py write ../shared/colab/pip-freeze.txt .ci/colab-constraints.txt
  python .ci/colab_pins.py check .ci/colab-constraints.txt   # run with the venv's python
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

HEADER = """\
# Colab's preinstalled packages at Colab's versions, as pip constraints (`pip install -c`).
# Source: googlecolab/backend-info, pip-freeze.txt of the CPU image, commit a724079 of 2026-08-19
# ("Upgrade to Python 3.13"; Python 3.13.15, Ubuntu 22.04.5), copied in ../shared/colab/.
# Regenerate: python .ci/colab_pins.py write ../shared/colab/pip-freeze.txt .ci/colab-constraints.txt
# Left out: packages Colab installs from a URL rather than an index ({skipped}).
"""


def canonical(name: str) -> str:
    """PEP 503 name: what pip compares."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """{canonical name: version} of every `name==version` line."""
    pins = {}
    for line in path.read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep and not line.startswith("#"):
            pins[canonical(name.strip())] = version.strip()
    return pins


def write(freeze: Path, constraints: Path) -> None:
    lines = freeze.read_text().splitlines()
    pinned = sorted((l for l in lines if "==" in l and not l.startswith("#")), key=str.lower)
    skipped = sorted(l.split(" @ ")[0] for l in lines if " @ " in l)
    constraints.write_text(HEADER.format(skipped=", ".join(skipped)) + "\n".join(pinned) + "\n")


def check(constraints: Path) -> int:
    """Every installed package that Colab preinstalls must be at Colab's version."""
    pins = read_pins(constraints)
    changed = []
    for dist in metadata.distributions():
        name = canonical(dist.metadata["Name"])
        if name in pins and dist.version != pins[name]:
            changed.append(f"{name} {dist.version} (Colab has {pins[name]})")
    if changed:
        print("Installing the project replaced packages Colab preinstalls:\n  " + "\n  ".join(changed))
        return 1
    kept = sum(canonical(d.metadata["Name"]) in pins for d in metadata.distributions())
    print(f"{kept} installed packages that Colab preinstalls, all at Colab's versions")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["write"] and len(argv) == 3:
        write(Path(argv[1]), Path(argv[2]))
        return 0
    if argv[:1] == ["check"] and len(argv) == 2:
        return check(Path(argv[1]))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
