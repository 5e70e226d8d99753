"""Give committed eval results the keys of this version (issue #22): a parameter naming a file is now
keyed by the file's bytes, not its absolute path, so a key no longer depends on the checkout.

    python scripts/rekey_results.py benchmarks/results/vbad-eval/*/targeted ...

For each eval folder (`configs.json`, `results.jsonl`, summaries), every configuration whose key
changes gets its new key everywhere in the folder, and its file parameters are written relative to the
repository (`/work/main/examples/x.mp4` -> `examples/x.mp4`: the part of the path that names a file of
this checkout). A file that cannot be found here is left as it is (its key cannot be recomputed) and
named on stderr. Files are replaced atomically; running it twice changes nothing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidattack.eval.grid import Config  # noqa: E402
from vidattack.files import write_atomic  # noqa: E402


def here(value: str) -> str | None:
    """`value` as a path relative to this checkout, when one of its tails names a file here."""
    parts = Path(value).parts
    for i in range(len(parts)):
        tail = Path(*parts[i:])
        if not tail.is_absolute() and (ROOT / tail).is_file():
            return str(tail)
    return None


def relative(values: dict[str, Any], missing: list[str]) -> dict[str, Any]:
    out = dict(values)
    for k, v in values.items():
        if isinstance(v, str) and ("/" in v or os.path.splitext(v)[1]):
            found = here(v)
            if found is None:
                missing.append(v)
            else:
                out[k] = found
    return out


def rekey(folder: Path) -> dict[str, str]:
    """Rewrite `folder`'s keys; returns old key -> new key for those that changed."""
    path = folder / "configs.json"
    doc = json.loads(path.read_text())
    changed: dict[str, str] = {}
    missing: list[str] = []
    for d in doc["configs"]:
        d["settings"] = relative(d.get("settings") or {}, missing)
        d["params"] = relative(d["params"], missing)
        new = Config.from_dict({k: v for k, v in d.items() if k != "key"}).key  # cwd: the repository
        if new != d["key"]:
            changed[d["key"]] = new
    for m in sorted(set(missing)):
        print(f"{folder}: {m} is not a file of this checkout; its key is left as it was", file=sys.stderr)
    if not changed:
        return changed
    for d in doc["configs"]:
        d["key"] = changed.get(d["key"], d["key"])
    write_atomic(path, (json.dumps(doc, indent=2) + "\n").encode())
    for other in sorted(folder.iterdir()):
        if other.name == "configs.json" or other.suffix not in (".jsonl", ".json", ".csv", ".md"):
            continue
        text = other.read_text()
        for old, new in changed.items():
            text = text.replace(old, new)
        write_atomic(other, text.encode())
    return changed


def main(argv: list[str]) -> int:
    os.chdir(ROOT)  # relative file parameters are keyed from the repository, as the benchmarks run
    for folder in map(Path, argv):
        if not (folder / "configs.json").is_file():
            print(f"{folder}: no configs.json, not an eval folder", file=sys.stderr)
            continue
        changed = rekey(folder if folder.is_absolute() else ROOT / folder)
        print(f"{folder}: {len(changed)} configurations rekeyed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
