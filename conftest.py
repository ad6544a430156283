"""Root conftest: loads one fixture plugin per backend from tests/servers/ (each starts its server)."""

from pathlib import Path

pytest_plugins = [
    f"tests.servers.{path.stem}"
    for path in sorted((Path(__file__).parent / "tests" / "servers").glob("*.py"))
    if not path.stem.startswith("_")
]
