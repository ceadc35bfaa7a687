"""Build hook: compile the optional C fast paths (aiolode/codecs/_jsonl_speedups.c).

They are optional: without a C compiler the wheel is pure Python and the codec
runs its Python code (the reference; the results are the same, only slower).
An editable install builds the module next to its source, where the editable
path finds it; a wheel carries it in its package directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = "src/aiolode/codecs/_jsonl_speedups.c"
MODULE = "aiolode.codecs._jsonl_speedups"


class SpeedupsHook(BuildHookInterface):
    PLUGIN_NAME = "custom"
    _work: str | None = None

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or os.environ.get("AIOLODE_PURE_PYTHON"):
            return
        editable = version == "editable"
        try:
            built = self._compile(editable)
        except Exception as exc:  # no compiler, no headers: the Python code is used
            self.app.display_warning(
                f"aiolode: the C fast paths were not built ({exc!r}); "
                "the pure-Python code will be used"
            )
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if not editable:
            build_data["force_include"][built] = f"aiolode/codecs/{os.path.basename(built)}"

    def _compile(self, inplace: bool) -> str:
        from setuptools import Distribution, Extension

        ext = Extension(MODULE, [SOURCE])  # the interpreter's own flags (-O3 here)
        dist = Distribution({"name": "aiolode", "ext_modules": [ext], "package_dir": {"": "src"}})
        cmd = dist.get_command_obj("build_ext")
        work = self._work = tempfile.mkdtemp(prefix="aiolode-build-")
        cmd.inplace = inplace
        cmd.build_lib = work
        cmd.build_temp = os.path.join(work, "tmp")
        old = os.getcwd()
        os.chdir(self.root)
        try:
            with warnings.catch_warnings():
                # setuptools warns that its commands are meant for setup.py; they work.
                warnings.simplefilter("ignore")
                cmd.ensure_finalized()
                cmd.run()
                (out,) = cmd.get_outputs()
        finally:
            os.chdir(old)
        return os.path.join(self.root, out) if inplace else str(out)

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._work is not None:  # the wheel holds its copy now
            shutil.rmtree(self._work, ignore_errors=True)
