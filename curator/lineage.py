"""The lineage of every checkpoint back to the human data, read from the `runs` table alone.

    checkpoint <- train run <- export <- selection (its generations) <- generate / edit run(s)
               <- the model that generated (a checkpoint: the same again) <- ... <- ingest (generation 0)

How the links are found (each is what the command itself recorded):
- a checkpoint is the last entry of a train run's `checkpoints` (the newest such run, when a path was
  trained twice); a fine-tune's base is the first entry, and is followed as a checkpoint too;
- train -> export: the train run's parent (its `export_id`); export -> selections: the export run's parents
  (the select runs whose rows it exported);
- selection -> generations: the generations of its rows (`summary.counts`); a generation -> the runs that
  wrote samples into it before the select run (ingest and generate: `args.generation`; edit: `args.into`);
- generate / edit -> the model: its `checkpoints` entry; an edit also descends from the generation it edited.

A node appears once per tree: where the same checkpoint or generation is reached again (every arm's first
round descends from the base model) the tree says so (`"ref": true`, "(see above)") instead of repeating it,
so trees stay linear in the number of rounds. A link that cannot be followed is a node of kind "missing";
a model that no train run of this store wrote (a `[base] checkpoint`, a model trained elsewhere) is kind
"external". `problems(tree)` lists the missing links; a complete lineage has none and reaches an ingest of
human data.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

WRITERS = ("ingest", "generate", "edit")


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _path(p: str) -> str:
    try:
        return str(Path(p).resolve())
    except OSError:
        return p


class _Index:
    def __init__(self, runs: list[dict[str, Any]]) -> None:
        self.runs = runs
        self.by_id = {r["run_id"]: r for r in runs}
        self.trained: dict[str, dict[str, Any]] = {}     # checkpoint path -> newest train run
        self.evals: dict[str, dict[str, Any]] = {}       # checkpoint path -> newest eval run
        self.writers: dict[int, list[dict[str, Any]]] = {}
        for r in runs:
            r["_args"], r["_summary"] = _json(r["args"]), _json(r["summary"])
            if r["command"] == "train" and r["checkpoints"]:
                self.trained[_path(r["checkpoints"][-1])] = r
            elif r["command"] == "eval" and r["checkpoints"]:
                self.evals[_path(r["checkpoints"][-1])] = r
            elif r["command"] in WRITERS:
                g = r["_args"].get("into" if r["command"] == "edit" else "generation")
                if isinstance(g, int) and (r["_summary"].get("rows_added") or 0) > 0:
                    self.writers.setdefault(g, []).append(r)


def lineage(store: Any, *, checkpoint: str | None = None) -> list[dict[str, Any]]:
    """One tree per checkpoint trained in the store (in training order), or only the one at `checkpoint`."""
    index = _Index(store.runs().to_pylist())
    paths = sorted(index.trained, key=lambda p: index.trained[p]["seq"])
    if checkpoint is not None:
        want = _path(checkpoint)
        if want not in index.trained:
            from .errors import UsageError

            raise UsageError(f"no train run in store {store.root} wrote checkpoint {checkpoint!r}; "
                             f"checkpoints: {', '.join(paths) or 'none'}")
        paths = [want]
    return [_checkpoint(index, p, set()) for p in paths]


def _node(kind: str, label: str, run: dict[str, Any] | None = None, **details: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"kind": kind, "label": label}
    if run is not None:
        node["run_id"] = run["run_id"]
        node["version"] = run["seq"]
        ctx = run["_args"].get("context")
        if ctx:
            node["context"] = {k: ctx[k] for k in ("loop", "arm", "round", "step", "generation") if k in ctx}
    node.update({k: v for k, v in details.items() if v is not None})
    node["children"] = []
    return node


def _seen(seen: set[tuple[str, Any]], key: tuple[str, Any], kind: str, label: str) -> dict[str, Any] | None:
    if key in seen:
        return {"kind": kind, "label": label, "ref": True, "children": []}
    seen.add(key)
    return None


def _checkpoint(index: _Index, path: str, seen: set[tuple[str, Any]]) -> dict[str, Any]:
    path = _path(path)
    ref = _seen(seen, ("checkpoint", path), "checkpoint", path)
    if ref is not None:
        return ref
    run = index.trained.get(path)
    if run is None:
        return _node("external", path, note="not trained in this store")
    ev = index.evals.get(path)
    node = _node("checkpoint", path, perplexity=ev["_summary"].get("perplexity") if ev else None,
                 accuracy=ev["_summary"].get("accuracy") if ev else None)
    s = run["_summary"]
    train = _node("train", f"train {run['run_id']}", run, steps=s.get("steps"), first_loss=s.get("first_loss"),
                  last_loss=s.get("last_loss"))
    node["children"].append(train)
    export_id = s.get("export_id") or (run["parents"][0] if run["parents"] else None)
    export = index.by_id.get(export_id)
    if export is None or export["command"] != "export":
        train["children"].append(_node("missing", f"export {export_id} (no such export run)"))
    else:
        train["children"].append(_export(index, export, seen))
    base = run["_args"].get("base")
    if base:
        train["children"].append(_checkpoint(index, base, seen))
    else:
        train["children"].append(_node("scratch", "from scratch", init_config=run["_args"].get("init_config")))
    return node


def _export(index: _Index, run: dict[str, Any], seen: set[tuple[str, Any]]) -> dict[str, Any]:
    s = run["_summary"]
    node = _node("export", s.get("out") or run["_args"].get("out") or run["run_id"], run,
                 documents=s.get("documents"), format=s.get("format"))
    for parent in run["parents"]:
        select = index.by_id.get(parent)
        if select is None or select["command"] != "select":
            node["children"].append(_node("missing", f"selection run {parent} (not in the store)"))
        else:
            node["children"].append(_selection(index, select, seen))
    if not run["parents"]:
        node["children"].append(_node("missing", "the selection's run (the export names none)"))
    return node


def _selection(index: _Index, run: dict[str, Any], seen: set[tuple[str, Any]]) -> dict[str, Any]:
    name = run["_args"].get("name") or run["_summary"].get("selection")
    ref = _seen(seen, ("selection", run["run_id"]), "selection", name)
    if ref is not None:
        return ref
    counts = run["_summary"].get("counts") or []
    node = _node("selection", name, run, rows=run["_summary"].get("rows"), counts=counts)
    for g in sorted({int(c["generation"]) for c in counts}):
        node["children"].append(_generation(index, g, run["seq"], seen))
    return node


def _generation(index: _Index, g: int, before: int, seen: set[tuple[str, Any]]) -> dict[str, Any]:
    ref = _seen(seen, ("generation", g), "generation", f"generation {g}")
    if ref is not None:
        return ref
    node = _node("generation", f"generation {g}", generation=g)
    writers = [w for w in index.writers.get(g, []) if w["seq"] < before]
    if not writers:
        node["children"].append(_node("missing", f"the run that wrote generation {g} (none before version {before})"))
    for w in writers:
        a, s = w["_args"], w["_summary"]
        if w["command"] == "ingest":
            node["children"].append(_node("ingest", ", ".join(a.get("paths") or []), w, origin=a.get("origin"),
                                          rows=s.get("rows_added")))
        else:  # generate or edit: a model, and the generation it read (prompts or documents) if any
            generate = w["command"] == "generate"
            details = {"seed": a.get("seed"), "temperature": a.get("temperature")} if generate else \
                {"changed": s.get("changed")}
            child = _node(w["command"], f"{w['command']} {w['run_id']}", w, rows=s.get("rows_added"), **details)
            model = (w["checkpoints"] or [a.get("model")])[-1]
            role = "generating" if generate else "prior"
            child["children"].append(_checkpoint(index, model, seen) if model else
                                     _node("missing", f"the {role} model (not recorded)"))
            source = a.get("prompts_from" if generate else "generation")
            if source is not None:
                child["children"].append(_generation(index, int(source), w["seq"], seen))
            node["children"].append(child)
    return node


def problems(tree: dict[str, Any]) -> list[str]:
    """The links of a tree that could not be followed (empty for a complete lineage)."""
    out = [tree["label"]] if tree["kind"] == "missing" else []
    for child in tree["children"]:
        out += problems(child)
    return out


def walk(tree: dict[str, Any]):
    """Every node of a tree, depth first."""
    yield tree
    for child in tree["children"]:
        yield from walk(child)


def format_trees(trees: list[dict[str, Any]]) -> str:
    """Plain-text trees, one per checkpoint, separated by a blank line."""
    if not trees:
        return "no checkpoints: no train run in this store"
    return "\n\n".join("\n".join(_lines(t, "", "", True)) for t in trees)


def _describe(node: dict[str, Any]) -> str:
    kind, label = node["kind"], node["label"]
    if node.get("ref"):
        return f"{kind} {label} (see above)" if kind != "generation" else f"{label} (see above)"
    bits = []
    ctx = node.get("context")
    if kind == "checkpoint":
        if node.get("perplexity") is not None:
            bits.append(f"held-out perplexity {node['perplexity']:.2f}")
        if node.get("accuracy") is not None:
            bits.append(f"accuracy {node['accuracy']:.3f}")
    elif kind == "train":
        if node.get("last_loss") is not None:
            bits.append(f"{node.get('steps')} steps, loss {node['first_loss']:.3f} -> {node['last_loss']:.3f}")
    elif kind == "export":
        bits.append(f"{node.get('documents')} documents, {node.get('format')}")
    elif kind == "selection":
        parts = [f"gen {c['generation']} {c['origin']} {c['rows']}" for c in node.get("counts", [])]
        bits.append(", ".join(parts) or "empty")
    elif kind in ("ingest", "generate", "edit"):
        if node.get("origin"):
            bits.append(f"origin {node['origin']}")
        bits.append(f"{node.get('rows')} rows")
        if node.get("seed") is not None:
            bits.append(f"seed {node['seed']}")
    if ctx and ctx.get("arm") is not None:
        bits.append(f"{ctx['arm']} r{ctx.get('round')}")
    if node.get("version") is not None:
        bits.append(f"v{node['version']}")
    head = {"generation": "", "train": "", "generate": "", "edit": "", "missing": "MISSING ", "scratch": ""}.get(
        kind, f"{kind} ")
    return f"{head}{label}" + (f"  [{'; '.join(bits)}]" if bits else "")


def _lines(node: dict[str, Any], lead: str, child_lead: str, root: bool) -> list[str]:
    out = [lead + _describe(node)]
    kids = node["children"]
    for i, kid in enumerate(kids):
        last = i == len(kids) - 1
        out += _lines(kid, child_lead + ("└─ " if last else "├─ "), child_lead + ("   " if last else "│  "), False)
    return out
