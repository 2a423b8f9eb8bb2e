"""`curator loop`: a two-round, two-arm loop on a tiny model over Tiny Shakespeare, end to end on CPU; resume
after a kill during training and during scoring gives the same final selections and checkpoints; bad configs
and a changed config are refused with clear messages."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from curator.errors import UsageError
from curator.lineage import lineage, problems, walk
from curator.loop import load_config, run_loop
from curator.store import Store
from tests.conftest import REPO, shared_file

# A tiny model and a few hundred documents: the whole loop runs in seconds on one thread.
CONFIG = """\
[loop]
name = "t"
workdir = "{workdir}"
rounds = 2
seed = 0
threads = 1

[human]
path = "{data}"
max_documents = 240
heldout_fraction = 0.1

[base]
vocab_size = 300
n_layer = 1
n_embd = 32
n_head = 2
n_positions = 64

[base.train]
steps = 30
lr = 3e-3

[generate]
prefix_tokens = 4
max_new_tokens = 20
batch_size = 128

[score]
scorers = ["repetition_v1", "perplexity_v1"]

[score.perplexity_v1]
model = "base"
batch_size = 64

[train]
steps = 8
lr = 1e-3
batch_size = 8
block_size = 64

[eval]
batch_size = 64

[[arm]]
name = "replace"
[arm.mix]
policy = "replace"

[[arm]]
name = "curated"
[[arm.select]]
selector = "threshold_v1"
where = "repetition_v1.dup_line_frac <= 0.5"
[[arm.select]]
selector = "near_dedup_v1"
[arm.mix]
policy = "accumulate"
human_fraction = 0.5
[arm.edit]
enabled = true
threshold = 0.01
batch_size = 64
"""

ARMS = ("replace", "curated")
STEPS_BASE = ["ingest", "score", "select", "export", "train", "eval"]
STEPS_ARM = {"replace": ["generate", "score", "shift", "select", "export", "train", "eval"],
             "curated": ["generate", "edit", "score", "shift", "select", "export", "train", "eval"]}


def write_config(folder: Path, **changes: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = CONFIG.format(workdir=folder / "work", data=shared_file("tinyshakespeare.txt"))
    for old, new in changes.items():
        assert old in text
        text = text.replace(old, new)
    path = folder / "loop.toml"
    path.write_text(text)
    return path


def final_state(result) -> dict:
    """What must not depend on kills and resumes: every selection's rows and every checkpoint's weights."""
    store = Store(result.store)
    rows = store.read("selections", columns=["selection", "sample_id", "generation", "origin", "weight", "reason",
                                              "config_hash"])
    rows = sorted(tuple(r.values()) for r in rows.to_pylist())
    weights = {f"{r.arm}-r{r.round}": hashlib.sha256((Path(r.checkpoint) / "model.safetensors").read_bytes()).hexdigest()
               for r in result.records}
    return {"selections": rows, "weights": weights, "perplexity": [r.perplexity for r in result.records]}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    path = write_config(tmp_path_factory.mktemp("loop"))
    lines: list[str] = []
    result = run_loop(path, echo=lines.append)
    return path, result, lines


def test_two_rounds_two_arms_end_to_end(uninterrupted):
    path, result, lines = uninterrupted
    assert [(r.arm, r.round, r.generation) for r in result.records] == [
        ("base", 0, 0), ("replace", 1, 101), ("curated", 1, 201), ("replace", 2, 102), ("curated", 2, 202)]
    assert result.steps_resumed == 0 and result.steps_run == 6 + 2 * (7 + 8) + 0
    for rec in result.records:
        assert Path(rec.checkpoint, "model.safetensors").is_file()
        assert Path(rec.export_dir, "_manifest.json").is_file()
        assert rec.perplexity is not None and rec.perplexity > 1
        expected = STEPS_BASE if rec.arm == "base" else STEPS_ARM[rec.arm]
        assert [s.step for s in rec.steps] == expected
        assert all(s.seconds >= 0 and not s.resumed for s in rec.steps)
    assert result.records[0].selection == "base-r0" and result.final("curated").selection == "curated-r2"
    # One progress line per step (and a start and an end line).
    assert sum(" r" in line and "s  " in line for line in lines) == result.steps_run

    store = Store(result.store)
    for table in ("samples", "ngram_totals", "ngram_buckets", "ngram_top", "ngram_sample", "scores_repetition_v1",
                  "scores_perplexity_v1", "selections", "exports", "minhash", "edits", "edit_samples"):
        assert store.dataset(table).count_rows() > 0, table
    gens = set(store.read("samples", columns=["generation"]).column("generation").to_pylist())
    assert gens == {0, 101, 102, 201, 202}
    origins = store.read("samples", columns=["origin"], filter="generation = 201").column("origin").to_pylist()
    assert {"synthetic", "edited"} <= set(origins)
    # The held-out documents were never ingested.
    heldout = [json.loads(line)["text"] for line in (result.workdir / "heldout.jsonl").read_text().splitlines()]
    human = set(store.read("samples", columns=["text"], filter="generation = 0").column("text").to_pylist())
    assert heldout and not set(heldout) & human

    # Every step is one run carrying its context mark; the start run holds the whole config.
    runs = store.runs().to_pylist()
    marks = [json.loads(r["args"]).get("context") for r in runs]
    start = [r for r, m in zip(runs, marks) if m and m.get("step") == "start"]
    assert len(start) == 1 and start[0]["command"] == "loop"
    args = json.loads(start[0]["args"])
    assert args["name"] == "t" and args["rounds"] == 2 and args["arms"] == list(ARMS)
    assert args["config"]["human"]["max_documents"] == 240
    steps = [(m["arm"], m["round"], m["step"], m["generation"]) for m in marks if m and m.get("step") != "start"]
    assert len(steps) == len(set(steps)) == result.steps_run
    assert ("curated", 2, "select", 202) in steps and ("base", 0, "train", 0) in steps
    shift = [r for r, m in zip(runs, marks) if m and m.get("step") == "shift"]
    assert all(r["command"] == "shift" and json.loads(r["summary"])["rows"] for r in shift)
    evals = [r for r, m in zip(runs, marks) if m and m.get("step") == "eval"]
    assert all(json.loads(r["summary"])["perplexity"] > 1 for r in evals)
    # Accumulate takes its earlier rows from the arm's own previous selection only.
    select = [json.loads(r["args"]) for r, m in zip(runs, marks) if m and m.get("step") == "select"]
    assert {a["name"]: a["mix"]["previous"] for a in select} == {
        "base-r0": None, "replace-r1": None, "curated-r1": "base-r0", "replace-r2": None, "curated-r2": "curated-r1"}
    rows = store.read("selections", columns=["selection", "generation"])
    for name, gens in (("replace-r2", {102}), ("curated-r2", {0, 202, 201})):
        got = set(rows.filter(pa.compute.equal(rows["selection"], name)).column("generation").to_pylist())
        assert got <= gens and (name != "replace-r2" or got == gens), (name, got)


def test_lineage_of_every_checkpoint_reaches_the_human_data(uninterrupted):
    _, result, _ = uninterrupted
    store = Store(result.store)
    trees = lineage(store)
    assert [t["label"] for t in trees] == [str(Path(r.checkpoint).resolve()) for r in result.records]
    for tree in trees:
        assert problems(tree) == []
        nodes = list(walk(tree))
        assert any(n["kind"] == "ingest" and n.get("origin") == "human" for n in nodes), tree["label"]
    # The last checkpoint of an arm descends from every round of that arm and from the base model.
    final = trees[-1]
    labels = {n["label"] for n in walk(final)}
    for rec in result.arm("curated"):
        assert str(Path(rec.checkpoint).resolve()) in labels
    gens = {n.get("generation") for n in walk(final) if n["kind"] == "generation"}
    assert {0, 201, 202} <= gens
    assert any(n["kind"] == "edit" for n in walk(final))

    from click.testing import CliRunner

    from curator.cli import cli

    out = CliRunner().invoke(cli, ["--store", str(result.store), "log", "--lineage"])
    assert out.exit_code == 0, out.output
    assert "ingest" in out.output and "selection curated-r2" in out.output and "(see above)" in out.output
    out = CliRunner().invoke(cli, ["--store", str(result.store), "log", "--lineage", "--format", "json"])
    assert out.exit_code == 0 and len(json.loads(out.output)) == len(result.records)


def test_rerun_of_a_finished_loop_only_reads(uninterrupted):
    path, result, _ = uninterrupted
    before = Store(result.store).version()
    again = run_loop(path, quiet=True)
    assert again.steps_run == 0 and again.steps_resumed == result.steps_run
    assert Store(result.store).version() == before
    assert [r.perplexity for r in again.records] == [r.perplexity for r in result.records]
    assert all(s.resumed for r in again.records for s in r.steps)


# The first hits are in the shared base round; "@n" kills at the n-th hit: train-step@40 falls in round 1's
# third training run (base 30 steps, then 8 per arm and round), scoring-batch@5 in a later round's scoring.
@pytest.mark.parametrize("crash_at", ["train-step", "scoring-batch", "train-step@40", "scoring-batch@5"])
def test_resume_after_a_kill_gives_the_same_result(uninterrupted, tmp_path, crash_at):
    path = write_config(tmp_path)
    env = {**os.environ, "CURATOR_CRASH_AT": crash_at, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "curator.cli", "-q", "loop", "--config", str(path)], cwd=REPO,
                          env=env, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stdout + proc.stderr  # killed itself at the crash point
    resumed = run_loop(path, quiet=True)
    assert resumed.steps_resumed >= 1  # the steps committed before the kill were not redone
    assert final_state(resumed) == final_state(uninterrupted[1])


def test_changed_config_is_refused(uninterrupted, tmp_path):
    path, result, _ = uninterrupted
    changed = path.parent / "changed.toml"
    changed.write_text(path.read_text().replace("lr = 1e-3", "lr = 2e-3"))
    with pytest.raises(UsageError, match=r"started with another config .*changed: .*arms\.curated\.train\.lr"):
        run_loop(changed, quiet=True)
    other = path.parent / "other.toml"
    other.write_text(path.read_text().replace('name = "t"', 'name = "u"'))
    with pytest.raises(UsageError, match=r"already holds loop 't'"):
        run_loop(other, quiet=True)


@pytest.mark.parametrize("old, new, message", [
    ("seed = 0\n", "seed = 0\nsed = 1\n", r"\[loop\]: unknown key 'sed'; valid keys: name, workdir"),
    ("[eval]", "[evaluate]", r"\[evaluate\]: unknown table or key 'evaluate'"),
    ('name = "replace"\n', 'name = "replace"\nmixx = 1\n', r"\[\[arm\]\] 'replace': unknown key 'mixx'"),
    ("[arm.mix]\npolicy = \"replace\"", "[arm.mix]\npolicy = \"swap\"", r"'replace' mix: unknown mixing policy 'swap'"),
    ("rounds = 2", "rounds = 100", r"\[loop\] rounds: expected an integer from 1 to 99.*got 100"),
    ('"repetition_v1", "perplexity_v1"', '"repetition_v9", "perplexity_v1"', r"score repetition_v9: unknown scorer"),
    ('selector = "near_dedup_v1"', 'selector = "near_dup_v1"', r"'curated' select: unknown selector 'near_dup_v1'"),
    ("steps = 8", "steps = 'eight'", r"\[\[arm\]\] 'replace' train steps: expected an integer or nothing"),
    ("batch_size = 64\n\n[[arm]]", "batch_size = 64\nbeams = 2\n\n[[arm]]", r"\[eval\]: unknown key 'beams'"),
    ('name = "replace"', 'name = "base"', r"arm name 'base' is reserved"),
    ('init = "previous"\n', 'init = "warm"\n', None),
])
def test_bad_config_names_the_file_and_the_key(tmp_path, old, new, message):
    if message is None:  # the train table has no init line; add one
        path = write_config(tmp_path, **{"steps = 8\n": 'steps = 8\ninit = "warm"\n'})
        message = r"train\]? init: unknown init 'warm'; valid choices: previous, base, scratch"
    else:
        path = write_config(tmp_path, **{old: new})
    with pytest.raises(UsageError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_dict_config_and_defaults(tmp_path):
    data = shared_file("tinyshakespeare.txt")
    cfg = load_config({"loop": {"workdir": str(tmp_path / "w")}, "human": {"path": str(data)},
                       "arm": [{"name": "a"}, {"name": "b", "train": {"init": "base"}, "select": []}]})
    assert cfg.name == "loop" and cfg.rounds == 1 and cfg.threads == 1
    assert cfg.store == str(tmp_path / "w" / "store")
    assert [a.generation(3) for a in cfg.arms] == [103, 203]
    assert cfg.arm("b").train.init == "base" and cfg.arm("a").train.init == "previous"
    with pytest.raises(UsageError, match=r"loop config <dict>: \[human\] path: required"):
        load_config({"loop": {}, "human": {}})
    with pytest.raises(UsageError, match=r"arm name 'a' used twice"):
        load_config({"human": {"path": str(data)}, "arm": [{"name": "a"}, {"name": "a"}]})
