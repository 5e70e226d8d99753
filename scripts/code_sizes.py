"""Sizes the project holds itself to (issue #22): modules under 500 lines, function bodies under 80.

    python scripts/code_sizes.py [ROOT] [--top N] [--widest PATH ...]

Prints the largest modules, the longest function bodies (lines from the first statement after the
docstring to the last line of the function: signature and docstring aside) and the functions with the
most parameters (all of them, or only those defined in the files given to --widest).
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def body_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of `fn`'s body without its docstring."""
    body = fn.body
    first = body[0] if body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        body = body[1:]
    if not body:
        return 0
    end = fn.end_lineno or body[-1].end_lineno or body[-1].lineno
    return end - body[0].lineno + 1


def parameters(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Parameters of `fn`, `self`/`cls` aside, `*args`/`**kwargs` counted once each."""
    a = fn.args
    names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    names += [p.arg for p in (a.vararg, a.kwarg) if p is not None]
    return len([n for n in names if n not in ("self", "cls")])


def functions(path: Path) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    item.name = f"{node.name}.{item.name}"
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found.append((node.name, node))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="vidattack", type=Path)
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--widest", nargs="*", type=Path, default=None, help="only these files' functions")
    args = parser.parse_args()
    files = sorted(args.root.rglob("*.py"))
    modules = sorted(((len(p.read_text().splitlines()), p) for p in files), reverse=True)
    bodies, widths = [], []
    for p in files:
        for name, fn in functions(p):
            bodies.append((body_lines(fn), f"{p}:{fn.lineno} {name}"))
            if args.widest is None or any(p.samefile(w) for w in args.widest):
                widths.append((parameters(fn), f"{p}:{fn.lineno} {name}"))
    print(f"largest modules ({len(files)} files):")
    for n, p in modules[: args.top]:
        print(f"  {n:5d} {p}")
    print("longest function bodies (signature and docstring aside):")
    for n, where in sorted(bodies, reverse=True)[: args.top]:
        print(f"  {n:5d} {where}")
    print("most parameters:")
    for n, where in sorted(widths, reverse=True)[: args.top]:
        print(f"  {n:5d} {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
