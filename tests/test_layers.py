"""Imports follow the story: base -> task -> reward -> rollout -> trainer -> stage -> course.

Every module of r1lib belongs to one layer (:data:`LAYERS`, decided by what the module is for, not by
what it happens to import today). A module may import its own layer and the layers below it, never
one above, not even inside a function; and no import cycle runs through the imports made when a
module loads (a function-level import is the usual way to break one, and is allowed for that, as long
as it does not go upward). The checks read the source with :mod:`ast` and import nothing.

Edges that break the rule today are listed in :data:`KNOWN_UPWARD_IMPORTS`, each with its reason;
fixing one makes its entry stale, and the test then asks for the entry to go.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "r1lib"

STORY = ("base", "task", "reward", "rollout", "trainer", "stage", "course")

# Module names relative to r1lib ("" is r1lib itself; a package stands for its __init__.py).
LAYERS: dict[str, tuple[str, ...]] = {
    # What everything stands on: formats, files, data plumbing, configurations, devices, models.
    "base": (
        "",                 # the package: a docstring and a version, nothing imported
        "format",           # the <think>/<answer> output format, parsed without backtracking
        "checkpoint",       # atomic, pickle-free checkpoints
        "records",          # prompt/completion records, jsonl, encoders, collators, length buckets
        "stream",           # seeded, checkpointable streams of training items
        "configs",          # every training configuration, and nothing else
        "profiles",         # named presets of configs (cpu, smoke, gpu): choosing one never loads a trainer
        "estimates",        # memory and time estimates, and what the device can do
        "models",           # loading a causal LM and its tokenizer, LoRA
        "decoder",          # the lean KV-cached decoder under the rollout
        "logprobs",         # per-token log-probabilities and entropies in chunks
        "tiny",             # the tiny world's package (empty: its modules sit in several layers)
        "tiny.tokenizer",   # the tiny world's tokenizer
        "tiny.model",       # the tiny world's model shape
        "shipped",          # the tiny world's trained stages shipped in data/stages, with their hashes
    ),
    # A task: examples, a prompt for each, a verifier for answers.
    "task": (
        "tasks", "tasks.base", "tasks.registry", "tasks.splits", "tasks.mixture",
        "tasks.arithmetic", "tasks.countdown", "tasks.mathcheck", "tasks.gsm8k", "tasks.math500",
        "tasks.chain", "tasks.search", "tasks.general",
        "tasks.bilingual",  # being written in another branch (imported by rewards)
        "tiny.world",       # the tiny world's reasoning tasks
        "tiny.corpus",      # the pretraining corpus: documents generated from the tiny tasks
    ),
    # Scoring an answer by rule.
    "reward": (
        "rewards",
    ),
    # Sampling from a model, and what is built from samples.
    "rollout": (
        "rollout",          # batched sampling of G completions per prompt
        "evaluate",         # pass@k, cons@k and behaviours, from samples
        "rejection",        # sample -> verify -> filter -> pick
        "cold_start",       # R1-Zero's verified samples rewritten into one readable format
    ),
    # Training: the one loop and every algorithm on it.
    "trainer": (
        "trainer",          # the one training loop
        "compute",          # the FLOP ledger every trainer reports into
        "causal_lm",        # one causal-LM training step, behind pretraining, SFT and distillation
        "sft",
        "grpo", "grpo.loss", "grpo.scoring", "grpo.trainer",
        "distill", "distill.losses", "distill.traces", "distill.trainer",
        "reward_model",     # the Bradley-Terry scorer and its trainer (one module, so the trainer's layer)
        "dpo",              # DPO's implicit reward model and its trainer
        "tiny.reward_model",  # the tiny world's scorer, built from a saved tiny LM
    ),
    # Whole stages of the recipe, run from their own command lines.
    "stage": (
        "pipeline",         # multi-stage R1: its settings, stages and report, one module each
        "pipeline.config",  # every stage's settings and the profiles' pipelines
        "pipeline.bookkeeping",  # stage folders, stage.json and pipeline.jsonl: skipping and resuming
        "pipeline.stages",  # the Pipeline that runs the stages
        "pipeline.report",  # the stage-by-stage table
        "pipeline.__main__",  # python -m r1lib.pipeline
        "scale",            # the way out to TRL and accelerate on a cluster
        "tiny.pretrain",    # pretraining the tiny base
    ),
    # The course: its experiments and what its notebooks show.
    "course": (
        "course", "course.equal_compute", "course.reward_hacking",
        "course.limits",    # notebook 09's measurements of R1's limits
        "course.predecessors",  # what a notebook reads from earlier ones: their run, the shipped stage, or training
        "experiment",       # a profile turned into a model, a task and rewards, for a notebook
        "solutions",        # the notebooks' %%solution switch
        "doctor",           # the setup check: looks at every layer below
        "plots",            # the notebooks' figures
        "widgets",          # the notebooks' live views (trainer callbacks)
    ),
}

# (importer, imported) -> why it is tolerated for now. Each one goes when it is fixed.
KNOWN_UPWARD_IMPORTS: dict[tuple[str, str], str] = {}


# ---------------------------------------------------------------------------- reading the source

@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    file: str
    line: int
    at_load: bool  # executed when the importer loads (not inside a function or an ``if TYPE_CHECKING``)

    def where(self) -> str:
        return f"{self.file}:{self.line}" + ("" if self.at_load else " (inside a function or TYPE_CHECKING)")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def layer_of() -> dict[str, str]:
    assert tuple(LAYERS) == STORY, "LAYERS has one entry per step of STORY, in its order"
    layers: dict[str, str] = {}
    for layer, names in LAYERS.items():
        for name in names:
            module = f"r1lib.{name}" if name else "r1lib"
            assert module not in layers, f"{module} is placed twice, in {layers[module]} and {layer}"
            layers[module] = layer
    return layers


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _resolve(name: str, known: set[str]) -> str:
    """The longest prefix of ``name`` that is a known module (``r1lib.tasks.base.Example`` -> ``r1lib.tasks.base``)."""
    while name not in known and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(module: str, path: Path, known: set[str]) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    file = str(path.relative_to(PACKAGE.parent))
    found: list[Import] = []

    def visit(node: ast.AST, at_load: bool) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            at_load = False
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, at_load)
            return
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # ``from . import decoder`` imports a module; ``from .rollout import rollout`` a name.
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]
        for target in dict.fromkeys(targets):  # one edge per statement and module
            if target == "r1lib" or target.startswith("r1lib."):
                found.append(Import(module, _resolve(target, known), file, node.lineno, at_load))
        for child in ast.iter_child_nodes(node):
            visit(child, at_load)

    visit(tree, True)
    return found


def all_imports() -> list[Import]:
    modules = discover()
    known = set(modules) | set(layer_of())
    return [i for module, path in modules.items() for i in imports_of(module, path, known)]


def upward(imports: list[Import], layers: dict[str, str]) -> list[Import]:
    rank = {layer: n for n, layer in enumerate(STORY)}
    return [i for i in imports if i.importer in layers and i.target in layers
            and rank[layers[i.target]] > rank[layers[i.importer]]]


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]


def load_graph(imports: list[Import]) -> dict[str, set[str]]:
    """Who loads whom when a module is imported: its imports at load time, and the packages above
    each imported module (importing ``r1lib.tasks.base`` runs ``r1lib/tasks/__init__.py`` first),
    except the importer's own packages, which are already loading."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        if not i.at_load:
            continue
        own = set(_ancestors(i.importer))
        for target in [*_ancestors(i.target), i.target]:
            if target != i.importer and target not in own:
                graph.setdefault(i.importer, set()).add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as one cycle's members."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """``graph`` between r1lib's top-level units: a subpackage (all its modules as one) or a module."""
    def unit(module: str) -> str:
        return ".".join(module.split(".")[:2])

    collapsed: dict[str, set[str]] = {}
    for importer, targets in graph.items():
        for target in targets:
            if unit(importer) != unit(target) and target != "r1lib":
                collapsed.setdefault(unit(importer), set()).add(unit(target))
    return collapsed


def cycle_path(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    """One concrete cycle through the first member, inside its component (breadth-first)."""
    start, inside = members[0], set(members)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph.get(v, set()) & inside):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w not in previous:
                    previous[w] = v
                    following.append(w)
        frontier = following
    return members


# ---------------------------------------------------------------------------- the tests

def test_every_module_has_a_layer():
    layers = layer_of()
    missing = sorted(set(discover()) - set(layers))
    assert not missing, (
        "place each new module in LAYERS of tests/test_layers.py, at the step of the story "
        f"({' -> '.join(STORY)}) that says what it is for:\n  " + "\n  ".join(missing))


def test_layer_map_names_real_modules():
    stale = sorted(set(layer_of()) - set(discover()))
    assert not stale, "LAYERS names modules that no longer exist:\n  " + "\n  ".join(stale)


def test_a_package_is_no_higher_than_its_modules():
    """Importing a module runs its packages' ``__init__`` first, so a package above one of its own
    modules would drag its layer into every importer of that module."""
    layers, rank = layer_of(), {layer: n for n, layer in enumerate(STORY)}
    problems = [f"{package} ({layers[package]}) holds {module} ({layer})" for module, layer in layers.items()
                for package in _ancestors(module) if rank[layers[package]] > rank[layer]]
    assert not problems, "\n".join(problems)


def test_imports_follow_the_story():
    layers = layer_of()
    problems = [f"{i.where()}: {i.importer} ({layers[i.importer]}) imports {i.target} "
                f"({layers[i.target]}, above)" for i in upward(all_imports(), layers)
                if (i.importer, i.target) not in KNOWN_UPWARD_IMPORTS]
    assert not problems, (
        f"a module imports a layer above its own ({' -> '.join(STORY)}); move the shared piece down, or "
        "the module up:\n  " + "\n  ".join(problems))


def test_known_upward_imports_are_still_there():
    present = {(i.importer, i.target) for i in upward(all_imports(), layer_of())}
    fixed = sorted(set(KNOWN_UPWARD_IMPORTS) - present)
    assert not fixed, "fixed, so remove from KNOWN_UPWARD_IMPORTS:\n  " + "\n  ".join(map(str, fixed))


def describe_cycle(graph: dict[str, set[str]], members: list[str], imports: list[Import]) -> str:
    """One cycle of a component, each step with the line that makes it, and the component's size."""
    path = cycle_path(graph, members)
    steps = []
    for importer, target in zip(path, path[1:]):
        line = next((i.where() for i in imports if i.at_load and i.importer == importer
                     and (i.target == target or target in _ancestors(i.target))), "?")
        steps.append(f"{importer} -> {target} ({line})")
    more = f" (one of the cycles among {len(members)} modules: {', '.join(members)})" if len(members) > 2 else ""
    return "; ".join(steps) + more


def test_no_import_cycles():
    imports = all_imports()
    graph = load_graph(imports)
    found = [describe_cycle(graph, members, imports) for members in cycles(graph)]
    assert not found, ("import cycles among the imports made when a module loads (break one with a "
                       "function-level import, or move the shared piece down):\n  " + "\n  ".join(found))


def test_no_import_cycles_between_subpackages():
    """Taken whole, no subpackage loads another that loads it back (the tiny world needs the tasks,
    so the tasks never need the tiny world)."""
    graph = package_graph(load_graph(all_imports()))
    found = [" -> ".join(cycle_path(graph, members)) + f" (among {', '.join(members)})" for members in cycles(graph)]
    assert not found, "import cycles between r1lib's subpackages and modules:\n  " + "\n  ".join(found)


# ---------------------------------------------------------------------------- the checks, checked

@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    root = tmp_path / "r1lib"
    (root / "sub").mkdir(parents=True)
    monkeypatch.setitem(globals(), "PACKAGE", root)
    return root


def test_the_reader_sees_relative_lazy_and_package_imports(fake_package):
    (fake_package / "__init__.py").write_text("")
    (fake_package / "a.py").write_text("from . import b\nfrom .sub.c import thing\n")
    (fake_package / "b.py").write_text("def f():\n    import r1lib.a\n")
    (fake_package / "sub" / "__init__.py").write_text("from .c import thing\nfrom .. import a\n")
    (fake_package / "sub" / "c.py").write_text("from ..b import f\n")
    imports = all_imports()
    edges = {(i.importer, i.target, i.at_load) for i in imports}
    assert edges == {
        ("r1lib.a", "r1lib.b", True), ("r1lib.a", "r1lib.sub.c", True), ("r1lib.b", "r1lib.a", False),
        ("r1lib.sub", "r1lib.sub.c", True), ("r1lib.sub", "r1lib.a", True), ("r1lib.sub.c", "r1lib.b", True),
    }
    graph = load_graph(imports)
    assert graph["r1lib.a"] == {"r1lib.b", "r1lib.sub", "r1lib.sub.c"}  # sub/__init__ runs first
    assert graph["r1lib.sub.c"] == {"r1lib.b"}  # its own package is already loading: no edge
    # a -> sub (its __init__) -> a is a cycle at load time; b -> a is lazy and makes none.
    assert cycles(graph) == [["r1lib.a", "r1lib.sub"]]
    assert cycle_path(graph, ["r1lib.a", "r1lib.sub"]) == ["r1lib.a", "r1lib.sub", "r1lib.a"]
    assert package_graph(graph) == {"r1lib.a": {"r1lib.b", "r1lib.sub"}, "r1lib.sub": {"r1lib.a", "r1lib.b"}}


def test_upward_imports_are_found_lazy_or_not():
    layers = {"r1lib.low": "base", "r1lib.high": "trainer"}
    imports = [Import("r1lib.low", "r1lib.high", "r1lib/low.py", 3, False),
               Import("r1lib.high", "r1lib.low", "r1lib/high.py", 1, True)]
    assert upward(imports, layers) == imports[:1]
