"""The layering contract of ``aiolode``, checked on the source (function-level imports too).

Lowest layer first; no import may go upward, and siblings in one layer import each
other only where :data:`SIBLINGS` allows it (imports inside one package are free)::

    L0  errors types _validate _retry _concurrency checksum _keys _options
    L1  store
    L2  codecs compression layout manifest schema arrow
    L3  _history verify
    L4  dataset volume          (never import each other)
    L5  reader ingest _copy
    L6  testing

Names that do not exist yet are simply unused. A module of no layer is a
violation: a new package must be placed. ``aiolode/__init__.py`` is the façade
above every layer; importing it from inside the package is a violation.

The check runs an AST walk (no import of the code), so it sees imports inside
functions and under ``TYPE_CHECKING`` — where import cycles hide. The contract
test on the real package is report-only for now (``xfail(strict=False)`` listing
today's violations); the checker itself is tested on small fake packages, so it
fails when given a violation.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import aiolode

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

LAYERS: tuple[frozenset[str], ...] = (
    frozenset(
        {
            "errors",
            "types",
            "_validate",
            "_retry",
            "_concurrency",
            "checksum",
            "_keys",
            "_options",
            "_sealed",
            "_text",
        }
    ),
    frozenset({"store"}),
    frozenset({"codecs", "compression", "layout", "manifest", "schema", "arrow"}),
    frozenset({"_history", "verify"}),
    frozenset({"dataset", "volume"}),
    frozenset({"reader", "ingest", "_copy"}),
    frozenset({"testing"}),
)

#: Sibling imports inside one layer that the contract allows (importer, imported).
SIBLINGS: frozenset[tuple[str, str]] = frozenset(
    # L0: the error tree (and the value types) are what every bottom module speaks,
    # and error messages are written with _text.
    {(m, "_text") for m in LAYERS[0] - {"_text"}}
    | {(m, "errors") for m in LAYERS[0] - {"errors", "_text"}}
    | {(m, "types") for m in LAYERS[0] - {"errors", "types"}}
    # ... and the shared argument checks.
    | {(m, "_validate") for m in LAYERS[0] - {"errors", "types", "_validate"}}
    # L2: the Arrow bridge reads manifests and decodes through codecs/compressors.
    | {("arrow", "manifest"), ("arrow", "codecs"), ("arrow", "compression")}
    # L2: codecs encode into (and check against) a dataset's schema.
    | {("codecs", "schema")}
)


@dataclass
class Imports:
    """The aiolode modules one module imports, by where the import statement is."""

    top: set[str] = field(default_factory=set)
    #: Inside a function or method body.
    function: set[str] = field(default_factory=set)
    #: Under ``if TYPE_CHECKING:`` (module level).
    type_only: set[str] = field(default_factory=set)
    #: Import statements inside functions that name an aiolode module.
    function_count: int = 0

    @property
    def all(self) -> set[str]:
        """Every aiolode module imported, wherever."""
        return self.top | self.function | self.type_only


def _module_name(path: Path, src: Path, package: str) -> tuple[str, bool]:
    rel = path.relative_to(src).with_suffix("")
    parts = [package, *rel.parts]
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts = parts[:-1]
    return ".".join(parts), is_pkg


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_pkg: bool, known: set[str], package: str) -> None:
        self.module = module
        self.base = module if is_pkg else module.rpartition(".")[0]
        self.known = known
        self.package = package
        self.imports = Imports()
        self._depth = 0  # function nesting
        self._type_only = 0

    def _resolve(self, name: str) -> str:
        """The longest known module prefix of ``name`` (a dotted import target)."""
        parts = name.split(".")
        for i in range(len(parts), 0, -1):
            candidate = ".".join(parts[:i])
            if candidate in self.known:
                return candidate
        return name

    def _add(self, targets: Iterable[str]) -> None:
        found = {
            self._resolve(t)
            for t in targets
            if t == self.package or t.startswith(self.package + ".")
        }
        if not found:
            return
        if self._depth:
            self.imports.function |= found
            self.imports.function_count += 1
        elif self._type_only:
            self.imports.type_only |= found
        else:
            self.imports.top |= found

    def visit_Import(self, node: ast.Import) -> None:
        self._add(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.base.split(".")
            base = base[: len(base) - (node.level - 1)]
            origin = ".".join(base + ([node.module] if node.module else []))
        else:
            origin = node.module or ""
        # ``from x import y`` imports module x.y when there is one, else names of x.
        self._add(
            f"{origin}.{a.name}" if f"{origin}.{a.name}" in self.known else origin
            for a in node.names
        )

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self._type_only += 1
            for child in node.body:
                self.visit(child)
            self._type_only -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function
    visit_Lambda = _function


def module_imports(src: Path, package: str) -> dict[str, Imports]:
    """For every module of the package at ``src``, the package's modules it imports."""
    files = sorted(src.rglob("*.py"))
    names = {p: _module_name(p, src, package) for p in files}
    known = {name for name, _ in names.values()}
    out: dict[str, Imports] = {}
    for path, (name, is_pkg) in names.items():
        collector = _Collector(name, is_pkg, known, package)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        imports = collector.imports
        for group in (imports.top, imports.function, imports.type_only):
            group.discard(name)
        out[name] = imports
    return out


def _component(module: str, package: str) -> str:
    """``aiolode.dataset._commit`` -> ``dataset``; the package itself -> ``""``."""
    return module[len(package) + 1 :].split(".", 1)[0] if module != package else ""


def violations(
    imports: Mapping[str, Imports],
    package: str,
    layers: Sequence[frozenset[str]] = LAYERS,
    siblings: frozenset[tuple[str, str]] = SIBLINGS,
) -> list[str]:
    """Every import that breaks the contract, as ``"importer -> imported: why"``, sorted."""
    layer_of = {name: i for i, names in enumerate(layers) for name in names}
    out: set[str] = set()
    for module, imp in imports.items():
        src = _component(module, package)
        if src == "":
            continue  # the façade re-exports every layer
        if src not in layer_of:
            out.add(f"{module}: {src!r} is in no layer")
            continue
        for target in imp.all:
            dst = _component(target, package)
            where = (
                " (in a function)"
                if target in imp.function
                else " (TYPE_CHECKING)"
                if target in imp.type_only and target not in imp.top
                else ""
            )
            if dst == src:
                continue
            if dst == "":
                out.add(f"{module} -> {target}{where}: imports the façade")
            elif dst not in layer_of:
                out.add(f"{module} -> {target}{where}: {dst!r} is in no layer")
            elif layer_of[dst] > layer_of[src]:
                out.add(
                    f"{module} -> {target}{where}: upward, L{layer_of[src]} -> L{layer_of[dst]}"
                )
            elif layer_of[dst] == layer_of[src] and (src, dst) not in siblings:
                out.add(f"{module} -> {target}{where}: sibling in L{layer_of[src]}")
    return sorted(out)


def function_level_report(imports: Mapping[str, Imports]) -> dict[str, int]:
    """Per module, the import statements inside functions that name aiolode modules."""
    return {m: imp.function_count for m, imp in sorted(imports.items()) if imp.function_count}


# --------------------------------------------------------------- the checker
def _write(root: Path, files: Mapping[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


CLEAN = {
    "__init__.py": "from .store import Store\nfrom .dataset import Dataset\n",
    "errors.py": "class E(Exception): ...\n",
    "types.py": "from .errors import E\n",
    "store/__init__.py": "from ._base import Store\n",
    "store/_base.py": "from ..errors import E\nclass Store: ...\n",
    "manifest/__init__.py": "from .. import errors\n",
    "dataset/__init__.py": "from ._dataset import Dataset\n",
    "dataset/_dataset.py": (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "from ..store._base import Store\n"
        "import fakepkg.manifest\n"
        "if TYPE_CHECKING:\n"
        "    from ..verify import Report\n"
        "class Dataset:\n"
        "    async def verify(self) -> None:\n"
        "        from ..verify import check\n"
    ),
    "verify/__init__.py": "from ..manifest import errors\n",
}


def test_checker_passes_a_clean_package(tmp_path: Path) -> None:
    src = _write(tmp_path / "fakepkg", CLEAN)
    imports = module_imports(src, "fakepkg")
    assert imports["fakepkg.dataset._dataset"].top == {"fakepkg.store._base", "fakepkg.manifest"}
    assert imports["fakepkg.dataset._dataset"].type_only == {"fakepkg.verify"}
    assert imports["fakepkg.dataset._dataset"].function == {"fakepkg.verify"}
    # ``from .. import errors`` is the module errors, not the package's façade.
    assert imports["fakepkg.manifest"].top == {"fakepkg.errors"}
    assert violations(imports, "fakepkg") == []
    assert function_level_report(imports) == {"fakepkg.dataset._dataset": 1}


def test_checker_reports_every_kind_of_violation(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "fakepkg",
        {
            **CLEAN,
            # Upward, hidden in a function: the kind of edge cycles hide in.
            "store/_base.py": (
                "from ..errors import E\n"
                "class Store:\n"
                "    def f(self) -> None:\n"
                "        from ..dataset import Dataset\n"
                "        import fakepkg.reader._r\n"
            ),
            # Siblings that must never import each other, type-only counts too.
            "volume/__init__.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..dataset import x\n"
            ),
            "reader/__init__.py": "",
            "reader/_r.py": "",
            # Upward at module level; the façade from inside; an unplaced package.
            "errors.py": "from .checksum import C\nclass E(Exception): ...\n",
            "checksum.py": "from . import Store\n",
            "extras/__init__.py": "from ..errors import E\n",
        },
    )
    imports = module_imports(src, "fakepkg")
    assert violations(imports, "fakepkg") == [
        "fakepkg.checksum -> fakepkg: imports the façade",
        "fakepkg.errors -> fakepkg.checksum: sibling in L0",
        "fakepkg.extras: 'extras' is in no layer",
        "fakepkg.store._base -> fakepkg.dataset (in a function): upward, L1 -> L4",
        "fakepkg.store._base -> fakepkg.reader._r (in a function): upward, L1 -> L5",
        "fakepkg.volume -> fakepkg.dataset (TYPE_CHECKING): sibling in L4",
    ]
    assert function_level_report(imports) == {
        "fakepkg.dataset._dataset": 1,
        "fakepkg.store._base": 2,
    }


# ------------------------------------------------------------ the real package
SRC = Path(aiolode.__file__).parent

#: Known violations: none. The contract is enforced.
KNOWN_VIOLATIONS: tuple[str, ...] = ()


def test_aiolode_follows_the_layering_contract() -> None:
    imports = module_imports(SRC, "aiolode")
    found = violations(imports, "aiolode")
    counts = function_level_report(imports)
    print(f"{len(found)} layering violations:")
    for v in found:
        print(f"  {v}")
    print(f"function-level imports of aiolode modules ({sum(counts.values())} in all):")
    for module, n in counts.items():
        print(f"  {module}: {n}")
    assert found == [], "\n".join(found)
