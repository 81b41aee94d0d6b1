"""The toolchain is locked: the CDK app's Python packages by infra/cdk-requirements.txt (hashes), the CDK CLI by
infra/cdk-cli/package-lock.json (integrity hashes), reinstalled when either changes; Node versions checked."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from importlib.metadata import distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "infra" / "cdk-requirements.txt"
CLI = ROOT / "infra" / "cdk-cli"


def locked() -> dict[str, tuple[str, list[str]]]:
    """{name: (version, hashes)} of the Python lock."""
    text = LOCK.read_text().replace("\\\n", " ")
    found = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        pin = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)\s", line + " ")
        assert pin, f"not pinned: {line}"
        found[pin.group(1).lower().replace("_", "-").replace(".", "-")] = (
            pin.group(2),
            re.findall(r"--hash=sha256:([0-9a-f]{64})", line),
        )
    return found


def closure(*names: str) -> dict[str, str]:
    """The installed distributions ``names`` need, with their versions (what the lock must pin)."""
    seen: dict[str, str] = {}
    todo = list(names)
    while todo:
        dist = distribution(todo.pop())
        key = dist.metadata["Name"].lower().replace("_", "-").replace(".", "-")
        if key in seen:
            continue
        seen[key] = dist.version
        for raw in dist.requires or []:
            requirement = Requirement(raw)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def test_the_cdk_packages_are_locked_with_hashes_and_installed_from_the_lock() -> None:
    pins = locked()
    assert all(hashes for _version, hashes in pins.values()), pins
    top = dict(
        line.split("==") for line in (ROOT / "infra" / "cdk-requirements.in").read_text().splitlines() if "==" in line
    )
    assert set(top) == {"aws-cdk-lib", "constructs", "cdk-nag"}
    assert {name: pins[name][0] for name in top} == top
    # every package the CDK app imports, at the version the lock pins: this environment was built from it
    assert closure(*top) == {name: version for name, (version, _hashes) in pins.items()}


def test_the_cdk_cli_is_locked_with_integrity_hashes() -> None:
    package = json.loads((CLI / "package.json").read_text())
    lock = json.loads((CLI / "package-lock.json").read_text())
    version = package["dependencies"]["aws-cdk"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), "an exact version, no range"
    assert lock["lockfileVersion"] >= 2 and lock["packages"][""]["dependencies"] == package["dependencies"]
    entries = {k: v for k, v in lock["packages"].items() if k}
    assert entries["node_modules/aws-cdk"]["version"] == version
    assert all(v["integrity"].startswith("sha512-") for v in entries.values()), entries


def make_dry(directory: Path, target: str) -> str:
    done = subprocess.run(["make", "-n", "-s", target], cwd=directory, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_changed_cli_lock_reinstalls_the_cli(tmp_path: Path) -> None:
    """make's rule: the installed CLI is older than package.json or package-lock.json -> npm ci again."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copytree(CLI, tmp_path / "infra" / "cdk-cli")
    cdk = tmp_path / ".cdk-cli" / "node_modules" / ".bin" / "cdk"
    cdk.parent.mkdir(parents=True)
    cdk.touch()
    assert make_dry(tmp_path, ".cdk-cli/node_modules/.bin/cdk") == ""  # installed after its lock: nothing to do
    later = time.time() + 10
    lock = tmp_path / "infra" / "cdk-cli" / "package-lock.json"

    os.utime(lock, (later, later))  # a new version locked
    commands = make_dry(tmp_path, ".cdk-cli/node_modules/.bin/cdk")
    assert "npm ci" in commands and "npm install" not in commands, commands


def node_major() -> str:
    done = subprocess.run(["node", "-p", "process.versions.node.split('.')[0]"], capture_output=True, text=True)
    assert done.returncode == 0, "node is needed for the CDK"
    return done.stdout.strip()


@pytest.mark.parametrize("allowed", ["1 2", "CURRENT"])
def test_node_versions_are_checked(allowed: str) -> None:
    versions = node_major() if allowed == "CURRENT" else allowed
    done = subprocess.run(
        ["make", "-s", "node-check", f"NODE_VERSIONS={versions}"], cwd=ROOT, capture_output=True, text=True
    )
    if allowed == "CURRENT":
        assert done.returncode == 0, done.stdout + done.stderr
    else:
        assert done.returncode != 0 and f"is not one jsii supports ({versions})" in done.stdout, done.stdout


def test_the_supported_node_versions_are_stated_alike_everywhere() -> None:
    makefile = (ROOT / "Makefile").read_text()
    majors = re.search(r"^NODE_VERSIONS \?= ([\d ]+)$", makefile, re.MULTILINE)
    assert majors and majors.group(1).split() == ["22", "24"]
    engines = json.loads((CLI / "package.json").read_text())["engines"]["node"]
    assert engines == " || ".join(f"^{m}.0.0" for m in majors.group(1).split())
    assert "Node.js 22 or 24" in (ROOT / "README.md").read_text()
