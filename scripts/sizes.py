"""List the largest modules, the longest function bodies and the widest signatures of a source tree.

A function body's length is counted the way the project's size rule means it: from the first statement
after the docstring to the function's last line, so the signature and the docstring do not count (a
nested function counts inside its parent and on its own line too). Modules count every line.

    python scripts/sizes.py                   # vidattack/: the 10 largest of each, those over the limits marked
    python scripts/sizes.py vidattack tests --top 20
    python scripts/sizes.py --check           # exit 1 when a module or a body is over its limit
    python scripts/sizes.py --widest vidattack/cli/perturb.py vidattack/pipeline/run.py
                                              # also the functions with most parameters (in those files;
                                              # --widest alone: in every file)
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_MODULE_LINES = 500
MAX_BODY_LINES = 80


@dataclass(frozen=True)
class Body:
    """One function or method: where it is and how many lines its body takes."""

    path: Path
    qualname: str
    line: int
    lines: int
    params: int


def body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement after the docstring to the function's last line."""
    body = node.body
    first = body[0]
    if len(body) > 1 and isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        body = body[1:] if isinstance(first.value.value, str) else body
    end = node.end_lineno if node.end_lineno is not None else body[-1].lineno
    return end - body[0].lineno + 1


def parameters(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Parameters of a function, `self`/`cls` aside, `*args` and `**kwargs` counted once each."""
    a = node.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    names += [p.arg for p in (a.vararg, a.kwarg) if p is not None]
    return len([n for n in names if n not in ("self", "cls")])


def function_bodies(path: Path) -> Iterator[Body]:
    """Every function and method of the module at `path`, nested ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))

    def walk(node: ast.AST, prefix: str) -> Iterator[Body]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                yield Body(path, name, child.lineno, body_lines(child), parameters(child))
                yield from walk(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def python_files(roots: list[Path]) -> list[Path]:
    """The `.py` files under `roots` (files named directly are taken as they are), sorted."""
    found: set[Path] = set()
    for root in roots:
        found.update([root] if root.is_file() else root.rglob("*.py"))
    return sorted(p for p in found if ".venv" not in p.parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="*", type=Path, default=[Path("vidattack")])
    parser.add_argument("--top", type=int, default=10, help="how many of each to list (default 10)")
    parser.add_argument("--check", action="store_true", help="exit 1 when anything is over its limit")
    parser.add_argument(
        "--widest",
        nargs="*",
        type=Path,
        default=None,
        help="also list the most parameters (only in these files)",
    )
    args = parser.parse_args(argv)
    files = python_files(args.roots)
    if not files:
        print(f"error: no Python files under {' '.join(map(str, args.roots))}", file=sys.stderr)
        return 2
    modules = sorted(((len(p.read_text(encoding="utf-8").splitlines()), p) for p in files), reverse=True)
    bodies = sorted((b for p in files for b in function_bodies(p)), key=lambda b: -b.lines)
    print(f"largest modules (limit {MAX_MODULE_LINES} lines):")
    for n, p in modules[: args.top]:
        print(f"  {n:5d}  {p}{'  OVER' if n > MAX_MODULE_LINES else ''}")
    print(f"longest function bodies (limit {MAX_BODY_LINES} lines, signature and docstring aside):")
    for b in bodies[: args.top]:
        print(f"  {b.lines:5d}  {b.path}:{b.line} {b.qualname}{'  OVER' if b.lines > MAX_BODY_LINES else ''}")
    if args.widest is not None:
        chosen = {w.resolve() for w in args.widest}
        wide = [b for b in bodies if not chosen or b.path.resolve() in chosen]
        print("most parameters (self aside):")
        for b in sorted(wide, key=lambda b: -b.params)[: args.top]:
            print(f"  {b.params:5d}  {b.path}:{b.line} {b.qualname}")
    over = [p for n, p in modules if n > MAX_MODULE_LINES] + [b for b in bodies if b.lines > MAX_BODY_LINES]
    print(f"{len(over)} over the limits")
    return 1 if args.check and over else 0


if __name__ == "__main__":
    sys.exit(main())
