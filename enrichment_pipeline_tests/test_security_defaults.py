"""Repository defaults that keep secrets and the UI safe, and installs reproducible.

Each test pins a mistake the project once shipped: a `.env` that git would commit, a webserver on
0.0.0.0 with no authentication, locks without hashes that mixed test tools into the runtime set.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
DEV_TOOLS = {"pytest", "pytest-asyncio", "hypothesis", "ruff", "schemathesis"}
PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)")


def _pins(lock: str) -> dict[str, str]:
    """{package: version} of a lock file; every requirement must carry at least one sha256 hash."""
    text = (ROOT / lock).read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text)
    pins = {}
    for entry in entries:
        match = PIN.match(entry)
        if not match:
            assert entry.lstrip().startswith("#") or not entry.strip(), entry[:80]
            continue
        assert "--hash=sha256:" in entry, f"{lock}: {match.group(1)} has no hash"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    assert pins, lock
    return pins


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout")
def test_dotenv_files_are_never_committed():
    for name in (".env", ".env.local", "deploy/.env"):
        done = subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT, check=False)
        assert done.returncode == 0, f"{name} is not ignored"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert not [t for t in tracked if Path(t).name.startswith(".env") and t != ".env.example"]


def test_runtime_lock_is_hashed_and_holds_no_test_tools():
    runtime = _pins("requirements.lock")
    assert not DEV_TOOLS & set(runtime)


def test_dev_lock_adds_only_what_the_runtime_lock_lacks():
    runtime, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")
    assert set(dev) >= DEV_TOOLS
    assert not set(dev) & set(runtime), "a package pinned twice could differ between the two sets"


@pytest.mark.parametrize("extra", [None, "dev"])
def test_locks_satisfy_pyproject(extra):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["optional-dependencies"][extra] if extra else project["dependencies"]
    pins = _pins("requirements.lock") | (_pins("requirements-dev.lock") if extra else {})
    for line in wanted:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} missing from the locks: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name])


def test_make_installs_with_hashes_and_can_regenerate_the_locks():
    makefile = (ROOT / "Makefile").read_text()
    install = [line for line in makefile.splitlines() if "pip install" in line and "requirements" in line]
    assert install and all("--require-hashes" in line for line in install), install
    assert re.search(r"^lock:", makefile, re.M)
    _pins("requirements-resolver.lock")


def test_ui_binds_loopback_and_the_proxy_authenticates():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"dagster dev .*-h 127\.0\.0\.1", makefile)
    deploy = (ROOT / "deploy" / "README.md").read_text()
    for line in deploy.splitlines():
        if "dagster-webserver" in line and " -h " in line and not line.lstrip().startswith("#"):
            assert "-h 127.0.0.1" in line or "container network only" in line, line
    proxy = (ROOT / "deploy" / "nginx-dagster-ui.conf").read_text()
    assert "auth_basic_user_file" in proxy and "proxy_pass http://127.0.0.1:3000" in proxy
    assert "listen 443 ssl" in proxy


def test_readme_has_a_security_section():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Security", 1)[1].split("\n## ", 1)[0]
    for topic in ("trusted", "secret", "127.0.0.1", "reverse proxy", "DBT_ENV_SECRET_", "sslmode"):
        assert topic in section, topic
