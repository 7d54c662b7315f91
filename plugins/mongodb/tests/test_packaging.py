"""The installed package needs none of its test-only dependencies until a test server starts."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# In a fresh interpreter where importing secantus fails (as where it is not installed):
# every module imports, and starting the test server says what to install.
_WITHOUT_SECANTUS = textwrap.dedent(
    """
    import importlib, pkgutil, sys, tempfile
    from pathlib import Path
    sys.modules["secantus"] = None  # import secantus now raises ImportError
    import sessionhub_mongodb
    for module in pkgutil.iter_modules(sessionhub_mongodb.__path__):
        importlib.import_module(f"sessionhub_mongodb.{module.name}")
    from sessionhub_mongodb import _secantus
    from sessionhub_mongodb.testing import SecantusProcess, ServerUnavailable
    try:
        SecantusProcess(Path(tempfile.mkdtemp())).start()
    except ServerUnavailable as exc:
        print("start:", exc)
    sys.argv = ["_secantus", tempfile.mkdtemp(), "0"]
    try:
        _secantus.main()
    except SystemExit as exc:
        print("main:", exc)
    """
)


def test_every_module_imports_without_secantus():
    """Importing any module works without SecantusDB; starting one names the extra to install."""
    run = subprocess.run(
        [sys.executable, "-c", _WITHOUT_SECANTUS], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    hint = "pip install 'sessionhub-mongodb[testing]'"
    lines = run.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["start", "main"], run.stdout
    assert all(hint in line for line in lines), run.stdout
