"""Importing the packages does no work: no output and no numba compilation."""

import subprocess
import sys

import pytest

PROBE = """
import sys
import numba.core.registry  # noqa: F401  (numba itself may be imported by submodules)
from numba.core.dispatcher import Dispatcher
compiled = []
orig = Dispatcher.compile
def spy(self, sig):
    compiled.append(self.py_func.__name__)
    return orig(self, sig)
Dispatcher.compile = spy
import importlib, pkgutil
import {pkg}
for mod in pkgutil.walk_packages({pkg}.__path__, '{pkg}.'):
    if mod.name.endswith('__main__') or '.benchmark' in mod.name:
        continue
    importlib.import_module(mod.name)
print('COMPILED=' + ','.join(compiled), file=sys.stderr)
"""


@pytest.mark.parametrize("pkg", ["pipeline", "kernels", "sample_data"])
def test_importing_package_and_submodules_prints_nothing_and_compiles_nothing(pkg):
    out = subprocess.run([sys.executable, "-c", PROBE.format(pkg=pkg)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert lines[-1] == "COMPILED=", lines
    assert lines[:-1] == [], lines
