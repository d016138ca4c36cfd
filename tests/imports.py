"""What a script or module imports, read from its source (ast), followed through the `denoise` package."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "denoise"


def _direct(path: Path) -> tuple[set[str], set[str]]:
    """(package modules, other top-level packages) that one file imports, anywhere in it (lazy imports too)."""
    inside, outside = set(), set()
    in_package = path.parent == PACKAGE
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                (inside.add(parts[1]) if parts[0] == "denoise" and len(parts) > 1 else outside.add(parts[0]))
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level and in_package or module.split(".")[0] == "denoise":
                parts = module.split(".")[1:] if module.startswith("denoise") else ([module.split(".")[0]] if module else [])
                if parts:
                    inside.add(parts[0])
                else:  # from . import a, b / from denoise import a, b
                    inside.update(alias.name for alias in node.names if (PACKAGE / f"{alias.name}.py").exists())
            elif not node.level:
                outside.add(module.split(".")[0])
    return {m for m in inside if (PACKAGE / f"{m}.py").exists()}, outside


def package_modules(path: Path) -> set[str]:
    """The `denoise` modules that `path` imports, directly or through each other (with `__init__`, which
    every import of the package runs)."""
    seen, pending = set(), sorted(_direct(path)[0])
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending += sorted(_direct(PACKAGE / f"{name}.py")[0] - seen)
    return seen | ({"__init__"} if seen else set())


def external_packages(path: Path) -> set[str]:
    """The top-level packages outside `denoise` that `path` and the package modules it uses import."""
    files = [path] + [PACKAGE / f"{m}.py" for m in package_modules(path)]
    return set().union(*(_direct(f)[1] for f in files))


def rewrite_dvc_yaml(path: Path = ROOT / "dvc.yaml") -> None:
    """Rewrite each stage's code deps in dvc.yaml (its script, then the package modules it imports, in place
    of the code deps listed before), leaving every other line as it is."""
    import re

    import yaml

    stages = yaml.safe_load(path.read_text())["stages"]
    lines, out, stage = path.read_text().split("\n"), [], None
    k = 0
    while k < len(lines):
        line = lines[k]
        match = re.match(r"^  (\w+):$", line)
        stage = match.group(1) if match and match.group(1) in stages else stage
        out.append(line)
        k += 1
        if line.strip() == "deps:" and stage:
            kept = []
            while k < len(lines) and lines[k].startswith("      - "):
                if not lines[k][8:].startswith(("stages/", "src/")):
                    kept.append(lines[k])
                k += 1
            script = re.findall(r"\bstages/\w+\.py\b", stages[stage]["cmd"])[0]
            out += [f"      - {script}"] + [f"      - src/denoise/{m}.py" for m in sorted(package_modules(ROOT / script))] + kept
    path.write_text("\n".join(out))


if __name__ == "__main__":
    rewrite_dvc_yaml()
