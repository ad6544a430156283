"""Build script: the metadata is in setup.cfg; this only cuts PyPI's long description out of README.md.

README.md opens with what a user of the package needs (what it is, install, an example, the
docs); what follows its end marker is for people working on a clone (demo, tests, tox), which a
package index page should not tell its readers to run.
"""

from pathlib import Path

from setuptools import setup

README_END = "<!-- end of the package description -->"

readme = (Path(__file__).parent / "README.md").read_text(encoding="utf-8")
if README_END not in readme:
    raise SystemExit(f"README.md has no {README_END!r} line: the long description would be the whole file")
setup(long_description=readme.split(README_END, 1)[0].rstrip() + "\n")
