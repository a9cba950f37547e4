"""`analysis` and `benchmarks` use the library's public API and `eqtuners.internal`,
never its private modules (as optimistix and diffrax use `equinox.internal`)."""

import ast
from pathlib import Path

import eqtuners.internal

ROOT = Path(__file__).parent.parent


def private_imports(path: Path) -> list[str]:
    """The `eqtuners._...` modules (or names) that the file at `path` imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
            if node.module == "eqtuners":
                modules += [f"eqtuners.{alias.name}" for alias in node.names]
        else:
            continue
        found += [
            m
            for m in modules
            if m.startswith("eqtuners.") and m.split(".")[1].startswith("_")
        ]
    return found


def test_analysis_and_benchmarks_import_no_private_module_of_the_library():
    files = sorted([*ROOT.glob("analysis/**/*.py"), *ROOT.glob("benchmarks/**/*.py")])
    assert len(files) > 10
    offenders = {
        str(f.relative_to(ROOT)): found for f in files if (found := private_imports(f))
    }
    assert offenders == {}


def test_the_check_sees_each_form_of_a_private_import(tmp_path):
    path = tmp_path / "example.py"
    path.write_text(
        "import eqtuners._tree\n"
        "from eqtuners._sharpness import lanczos\n"
        "from eqtuners import _train, train\n"
        "from eqtuners.internal import tree_dot\n"
    )
    assert private_imports(path) == [
        "eqtuners._tree",
        "eqtuners._sharpness",
        "eqtuners._train",
    ]


def test_internal_names_resolve():
    for name in ("tree_dot", "checked_float", "measurement_set", "lanczos"):
        assert callable(getattr(eqtuners.internal, name))
