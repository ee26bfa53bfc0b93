"""The README's commands and code run as written."""

import re
import subprocess
import sys

from helpers import ROOT


def readme_blocks(language: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_readme_python_blocks_run_in_order(capsys):
    namespace: dict = {}
    for block in readme_blocks("python"):
        exec(compile(block, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "u_bar[0] =" in out and "vjp check of upwind passed" in out
    assert set(namespace["cot"]) == {"d", "u"} and namespace["out"]["d"].shape == (256,)
    assert (namespace["upwind"].is_linear("d"), namespace["upwind"].is_linear("u")) == (True, False)


def test_readme_opens_with_the_demo_and_the_test_command():
    first = readme_blocks("bash")[0].strip().splitlines()
    assert "dpgen demo" in first[0] and "pytest" in first[1]
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = first[1].split("#")[0].strip()
    assert test_command in ci, "CI must run the README's test command"


def test_cli_entry_point_is_installed():
    proc = subprocess.run([sys.executable, "-m", "dpgen", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "build" in proc.stdout and "check" in proc.stdout
