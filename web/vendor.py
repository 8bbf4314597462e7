"""Copy the pinned npm packages' browser builds into the relay package and record their hashes.

Run by ``web/refresh`` after ``npm ci``; reads ``web/package-lock.json`` and
``web/node_modules``, writes ``relay/service/web/vendor/`` (the built files, their
licences and ``manifest.json``). ``tests/unit/test_web_vendor.py`` checks that the
shipped files still match the manifest and the manifest the lock file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENDOR = HERE.parent / "relay" / "service" / "web" / "vendor"

# package -> (file in the package, name shipped, licence file in the package)
SHIPPED = {
    "mqtt": ("dist/mqtt.min.js", "mqtt.min.js", "LICENSE.md"),
    "@msgpack/msgpack": ("dist.umd/msgpack.min.js", "msgpack.min.js", "LICENSE"),
}


def main() -> int:
    lock = json.loads((HERE / "package-lock.json").read_text())
    VENDOR.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for package, (source, shipped, licence) in SHIPPED.items():
        locked = lock["packages"][f"node_modules/{package}"]
        root = HERE / "node_modules" / package
        installed = json.loads((root / "package.json").read_text())["version"]
        if installed != locked["version"]:
            print(f"{package}: node_modules has {installed}, the lock {locked['version']}; run npm ci")
            return 1
        shutil.copyfile(root / source, VENDOR / shipped)
        shutil.copyfile(root / licence, VENDOR / f"{shipped}.LICENSE")
        manifest[shipped] = {
            "package": package,
            "version": locked["version"],
            "integrity": locked["integrity"],
            "source": source,
            "sha256": hashlib.sha256((VENDOR / shipped).read_bytes()).hexdigest(),
        }
    (VENDOR / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"wrote {', '.join(manifest)} to {VENDOR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
