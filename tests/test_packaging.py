"""The package as its users get it, built from a copy of this tree as a fresh clone would have it.

- ``python -m build`` makes the sdist and, from it, the wheel; ``twine check --strict`` passes;
  the metadata names the distribution ``datacon-store`` with its license, URLs and a long
  description cut from README.md;
- the wheel installed into a new virtual environment (dependencies from the package index or
  pip's cache) runs the README's example against SQLite, and its ``datacon --version`` works;
- ``scripts/demo.sh`` installs the core package alone and prints the demo's output and one
  set-up line.

These build and install for real, so they need pip to reach the package index or its cache;
about half a minute in all.
"""

from __future__ import annotations

import email
import email.message
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from datacon import __version__
from tests.support import IN_CI, repo_root

pytestmark = [pytest.mark.slow, pytest.mark.sqlite]

DIST = "datacon-store"
README_END = "<!-- end of the package description -->"
# Distributions of a new virtual environment itself (python -m venv), not pulled in by datacon.
VENV_OWN = {"pip", "setuptools", "wheel"}
NOT_CORE = {"psycopg", "psycopg-binary", "psycopg-pool", "redis", "hiredis", "oracledb", "pytest", "hypothesis",
            "trio", "sphinx", "myst-parser", "mypy", "ruff", "tox", "build", "twine"}  # fmt: skip


def run(args: list[str | Path], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a command with no trace of the test run's own environment (venv, PYTHONPATH)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def require_tool(module: str) -> None:
    """The build tools come with the test extra (scripts/setup.sh); fail in CI if they are missing."""
    if shutil.which(module, path=str(Path(sys.executable).parent)) is None:
        reason = f"{module} is not installed in this environment (bash scripts/setup.sh installs it)"
        if IN_CI:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def copy_tree(dest: Path) -> Path:
    """The files a fresh clone of this worktree would have (tracked, and new but not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo_root(), capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = repo_root() / name
        if source.is_file():  # a tracked file deleted in the worktree is not in a clone either
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def readme_example() -> str:
    """The first Python block of README.md: the example the package description shows."""
    readme = (repo_root() / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^```python\n(.*?)^```$", readme, re.MULTILINE | re.DOTALL)
    assert match is not None, "README.md has no python example"
    return match.group(1)


def installed_distributions(python: Path) -> dict[str, list[str]]:
    """Every distribution in ``python``'s environment -> its unconditional requirements (names)."""
    script = (
        "import importlib.metadata as m, json, re\n"
        "norm = lambda n: re.sub(r'[-_.]+', '-', n).lower()\n"
        "print(json.dumps({norm(d.metadata['Name']): [norm(re.match(r'[A-Za-z0-9._-]+', r)[0])"
        " for r in d.requires or [] if 'extra ==' not in r] for d in m.distributions()}))\n"
    )
    done = run([python, "-c", script], cwd=python.parent)
    assert done.returncode == 0, done.stderr
    result: dict[str, list[str]] = json.loads(done.stdout)
    return result


def closure(dists: dict[str, list[str]], root: str) -> set[str]:
    """``root`` and every distribution it needs, transitively."""
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name not in seen and name in dists:
            seen.add(name)
            todo.extend(dists[name])
    return seen


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel) built by ``python -m build`` from a copy of the tree (the wheel from the sdist)."""
    require_tool("pyproject-build")
    root = tmp_path_factory.mktemp("packaging")
    tree = copy_tree(root / "tree")
    done = run([sys.executable, "-m", "build", "--outdir", root / "dist", tree], cwd=root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # The build backend's warnings (a deprecated setting, a license classifier...) fail the test:
    # scripts/demo.sh must install quietly, and their cause is ours to fix.
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sdists = sorted((root / "dist").glob("*.tar.gz"))
    wheels = sorted((root / "dist").glob("*.whl"))
    assert [p.name for p in sdists] == [f"datacon_store-{__version__}.tar.gz"]
    assert [p.name for p in wheels] == [f"datacon_store-{__version__}-py3-none-any.whl"]
    return sdists[0], wheels[0]


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_string(archive.read(name).decode("utf-8"))  # core metadata is UTF-8


def test_twine_check_passes(built: tuple[Path, Path]) -> None:
    require_tool("twine")
    sdist, wheel = built
    done = run([sys.executable, "-m", "twine", "check", "--strict", sdist, wheel], cwd=sdist.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_wheel_has_the_package_typing_marker_and_license(built: tuple[Path, Path]) -> None:
    _, wheel = built
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "datacon/py.typed" in names
    assert "datacon/backends/sqlite/__init__.py" in names
    assert f"datacon_store-{__version__}.dist-info/licenses/LICENSE" in names
    assert {n.split("/")[0] for n in names} == {"datacon", f"datacon_store-{__version__}.dist-info"}
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read(f"datacon_store-{__version__}.dist-info/entry_points.txt").decode()
    assert "datacon = datacon.cli:main" in entry_points


def test_sdist_holds_what_builds_the_wheel(built: tuple[Path, Path]) -> None:
    sdist, _ = built
    with tarfile.open(sdist) as archive:
        names = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    for needed in ("LICENSE", "README.md", "CHANGELOG.md", "setup.cfg", "setup.py", "pyproject.toml",
                   "datacon/py.typed", "datacon/__init__.py"):  # fmt: skip
        assert needed in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/"))]


def test_metadata_names_the_distribution_license_urls_and_tested_python(built: tuple[Path, Path]) -> None:
    meta = wheel_metadata(built[1])
    assert meta["Name"] == DIST
    assert meta["Version"] == __version__
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Requires-Python"] == ">=3.11"
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert set(urls) == {"Homepage", "Documentation", "Changelog", "Source", "Issues"}
    assert all(u.startswith("https://") for u in urls.values())
    classifiers = meta.get_all("Classifier") or []
    versions = [c for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert versions == ["Programming Language :: Python :: 3.11"]  # only what the test command runs
    assert not [c for c in classifiers if c.startswith("License ::")]  # superseded by License-Expression
    core = sorted(r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r)
    assert core == sorted(["attrs>=23.1", "cattrs>=23.2", "anyio>=4.4", "PyYAML>=6.0", "click>=8.1"])


def test_long_description_is_the_readme_for_users(built: tuple[Path, Path]) -> None:
    meta = wheel_metadata(built[1])
    assert meta["Description-Content-Type"] == "text/markdown"
    description = meta.get_payload()
    assert isinstance(description, str)
    readme = (repo_root() / "README.md").read_text(encoding="utf-8")
    assert description.strip() == readme.split(README_END)[0].strip()
    assert "$ pip install datacon-store" in description
    assert readme_example() in description
    assert "https://github.com/" in description  # the link to the docs, absolute
    # Nothing that only works from a clone, and no link that breaks off the repository.
    assert "scripts/" not in description
    assert not re.search(r"\]\((?!https?://)", description), "relative link in the package description"


def test_wheel_in_a_new_virtualenv_runs_the_readme_example(built: tuple[Path, Path], tmp_path: Path) -> None:
    _, wheel = built
    venv = tmp_path / "venv"
    done = run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    # The wheel by its path, so nothing of that name can come from an index; its dependencies
    # come from the index or pip's cache.
    done = run([python, "-m", "pip", "install", "--disable-pip-version-check", wheel], cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    work = tmp_path / "work"
    work.mkdir()
    (work / "example.py").write_text(readme_example(), encoding="utf-8")
    done = run([python, "example.py"], cwd=work, timeout=120)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"conv_[0-9a-f]{50}: a chain of 2 responses\n", done.stdout), done.stdout
    assert (work / "chat.db").is_file()

    # It ran the installed copy, not this tree; and the command is there.
    done = run([python, "-c", "import datacon; print(datacon.__file__)"], cwd=work)
    assert Path(done.stdout.strip()).is_relative_to(venv), done.stdout
    done = run([venv / "bin" / "datacon", "--version"], cwd=work)
    assert (done.returncode, done.stdout) == (0, f"datacon, version {__version__}\n"), done.stderr

    dists = installed_distributions(python)
    assert set(dists) - closure(dists, DIST) <= VENV_OWN  # the core's dependencies, nothing more
    assert not NOT_CORE & set(dists)


def test_demo_from_a_fresh_tree_installs_the_core_only_and_prints_the_demo(tmp_path: Path) -> None:
    clone = copy_tree(tmp_path / "clone")
    assert not (clone / ".venv").exists()
    here = tmp_path / "here"
    here.mkdir()

    first = run(["bash", clone / "scripts" / "demo.sh"], cwd=here)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stderr == ""
    setup_line, demo = first.stdout.split("\n", 1)
    assert setup_line == f"demo: installing datacon (the core package, no extras) into {clone / '.venv'}"
    assert demo.startswith("run 1: found 0 earlier conversation(s)\n"), demo
    assert re.search(r"^  response chain, oldest first: \S+ -> \S+ -> \S+$", demo, re.MULTILINE), demo
    # Every line is the demo's own (the one set-up line aside): no pip or setuptools output.
    for line in demo.splitlines():
        assert re.match(r"(run \d+: |stored conv_|  )", line), line
    assert (here / "datacon-demo.db").is_file()

    second = run(["bash", clone / "scripts" / "demo.sh"], cwd=here)
    assert (second.returncode, second.stderr) == (0, "")
    assert second.stdout.startswith("run 2: found 1 earlier conversation(s)\n"), second.stdout  # no set-up line

    dists = installed_distributions(clone / ".venv" / "bin" / "python")
    assert DIST in dists
    assert set(dists) - closure(dists, DIST) <= VENV_OWN
    assert not NOT_CORE & set(dists)


def test_install_lines_name_the_distribution() -> None:
    """Docs, README, changelog and messages tell users to install datacon-store, never ``datacon``.

    The name ``datacon`` on PyPI is somebody else's project: ``pip install datacon`` or
    ``'datacon[postgres]'`` would install it.
    """
    wrong = re.compile(r"pip install\s+['\"]?datacon(?![-\w])|(?<![-\w])datacon\[")
    root = repo_root()
    files = [root / "README.md", root / "CHANGELOG.md", *root.glob("docs/*.md"), *root.glob("datacon/**/*.py")]
    found = [
        f"{path.relative_to(root)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if wrong.search(line)
    ]
    assert not found, "\n".join(found)
