"""The probe engine stands alone: nothing under lookout/probes/engine imports Django, a database or broker client,
or any part of Lookout outside the engine (but `lookout.__version__`), so it can be tested and benchmarked alone.

tests/test_import_graph.py also keeps the engine's own source from importing the rest of Lookout."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import lookout.probes.engine

ENGINE = Path(lookout.probes.engine.__file__).parent
SRC = ENGINE.parents[2]
# Django and its apps, and the clients of the database and the broker the engine never talks to.
FORBIDDEN_ROOTS = ("django", "rest_framework", "celery", "kombu", "psycopg")
# The packages any import of the engine loads on the way (lookout/__init__.py holds only __version__).
ENGINE_PARENTS = ("lookout", "lookout.probes")
IMPORT_ALL = """
import importlib, json, pkgutil, sys
import lookout.probes.engine as engine
for module in pkgutil.walk_packages(engine.__path__, "lookout.probes.engine."):
    importlib.import_module(module.name)
print(json.dumps(sorted(sys.modules)))
"""


def forbidden(module: str) -> bool:
    return module.split(".")[0].startswith(FORBIDDEN_ROOTS)


def test_importing_every_engine_module_loads_no_django_and_nothing_of_lookout_outside_the_engine():
    # A fresh process: what this one has imported says nothing, and a library importing Django counts too.
    done = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)

    assert "lookout.probes.engine.conditions" in loaded  # every module was imported, not only the package
    assert [module for module in loaded if forbidden(module)] == []
    assert [module for module in loaded if module.split(".")[0] == "lookout" and module not in ENGINE_PARENTS
            and not module.startswith("lookout.probes.engine")] == []


def test_no_engine_source_imports_django_or_a_database_or_broker_client_even_inside_a_function():
    sources = sorted(ENGINE.rglob("*.py"))
    assert ENGINE / "conditions.py" in sources
    found = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:  # a relative import stays in lookout
                names = [node.module or ""]
            else:
                continue
            found += [f"{path.relative_to(SRC)}:{node.lineno}: {name}" for name in names if forbidden(name)]

    assert found == []
