"""The testing guide's example, copied into a fresh project of its own and run with pytest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

GUIDE = Path(__file__).parent.parent / "docs" / "testing.md"
_FILE_BLOCK = re.compile(
    r"^```\{code-block\} \w+\n:caption: ([\w.]+\.(?:py|toml))\n(.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


def guide_files() -> dict[str, str]:
    """The guide's code blocks that are files (``:caption: hello.py``), by name."""
    return dict(_FILE_BLOCK.findall(GUIDE.read_text(encoding="utf-8")))


@pytest.mark.slow
def test_guide_testing_example_passes_in_a_fresh_project(tmp_path: Path) -> None:
    files = guide_files()
    assert {"hello.py", "pyproject.toml", "test_hello.py"} <= files.keys()
    for name, code in files.items():
        (tmp_path / name).write_text(code, encoding="utf-8")
    # The user's environment: this interpreter and its packages, none of our settings.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"rootdir: {tmp_path}" in output
    assert "configfile: pyproject.toml" in output
    tests = len(re.findall(r"^async def test_", files["test_hello.py"], re.MULTILINE))
    assert re.search(rf"\b{tests} passed\b", output), output
    assert "warning" not in output.lower(), output
