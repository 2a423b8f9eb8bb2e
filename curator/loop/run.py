"""`run_loop`: the shared base round, then rounds of generate -> (edit) -> score -> shift -> select/mix ->
export -> train -> eval in every arm, all in one store, resumable.

Order. Round 0 ("base", shared by every arm): ingest the human training documents as generation 0, score
them (with the arms' scorers that do not need the base model), select them all as `base-r0`, export, train
the base model (from scratch: a BPE tokenizer trained on those documents and a GPT-2 config; or the given
`[base] checkpoint`, then export and train are skipped), evaluate. Then round by round, arm by arm (arm i
round r writes generation 100 * i + r; see `curator/loop/config.py`):

- generate: the arm's previous checkpoint (round 1: the base) continues prefixes of the human documents;
  sampling seed = `[generate] seed` (default `[loop] seed`) + r, the same in every arm (common random
  numbers: round 1 of every arm is the same texts, and later rounds differ only through what each arm chose
  to train on). Dedup steps compare within the arm's own line (`select(lineage=...)`), so the shared texts of
  another arm never count as duplicates;
- edit (when `[edit] enabled`): the base model, as prior, token-edits the human documents into the same
  generation (origin "edited"; seed `[edit] seed` + r), so the chain sees generated and edited candidates side by side;
- score: the arm's scorers over generations 0 and g (generation 0 is scored once per scorer config:
  scoring is incremental), so the shift report has score-based metrics against the human baseline and
  thresholds can be fixed against the human reference; an option value "base" is the base checkpoint;
- shift: the shift report of g against 0, committed as a "shift" run whose summary holds the rows;
- select: the chain, then the mix, as selection `<arm>-r<r>`; accumulate policies get
  `previous = <arm>-r<r-1>` (round 1: `base-r0`) so arms sharing the store never mix;
- export (Parquet, one shard, seed `[loop] seed`), train (`init`: "previous" fine-tunes the arm's previous
  checkpoint, "base" the base model, "scratch" a fresh model of the base's shape and tokenizer), eval
  (held-out perplexity on `<workdir>/heldout.jsonl`, and verifier accuracy with `[eval] verifier`).

Resume: see `curator/loop/steps.py`. A rerun refuses a store whose "loop" start run holds another config
hash (it names the keys that changed), and a store that holds another loop.

Determinism: every step is seeded, and torch runs on `[loop] threads` threads (default 1), restored when the
loop returns; the same config therefore gives the same selections and bit-identical checkpoints on CPU,
whether or not the loop was killed and resumed on the way.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StoreError, UsageError
from ..progress import NullReporter, Reporter
from ..store import Store
from .config import BASE_MODEL, ArmConfig, LoopConfig, TrainConfig, load_config
from .steps import Marks, clear_staging, context, now_iso, record, split_human, step_seconds, train_texts


@dataclass
class StepRecord:
    step: str
    seconds: float            # wall time (for a step done by an earlier invocation: read from its run)
    run_id: str
    resumed: bool             # done by an earlier invocation and read back from the store
    detail: str = ""


@dataclass
class RoundRecord:
    arm: str                  # "base" for the shared round 0
    round: int
    generation: int
    selection: str | None = None
    export_dir: str | None = None
    checkpoint: str | None = None
    perplexity: float | None = None   # held-out, token-weighted
    accuracy: float | None = None
    steps: list[StepRecord] = field(default_factory=list)

    @property
    def timings(self) -> dict[str, float]:
        return {s.step: s.seconds for s in self.steps}

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)


@dataclass
class LoopResult:
    name: str
    workdir: Path
    store: Path
    config_hash: str
    records: list[RoundRecord]        # base round first, then round by round, arm by arm
    seconds: float = 0.0              # wall time of this invocation
    steps_run: int = 0
    steps_resumed: int = 0

    def arm(self, name: str) -> list[RoundRecord]:
        """The arm's rounds in order, round 0 (the shared base) first."""
        return [r for r in self.records if r.arm in ("base", name)]

    def final(self, name: str) -> RoundRecord:
        return self.arm(name)[-1]


def run_loop(config: LoopConfig | dict[str, Any] | str | Path, *, progress: Reporter | None = None,
             echo: Callable[[str], Any] = print, quiet: bool = False) -> LoopResult:
    """Run (or resume) the loop of `config` (a `LoopConfig`, a dict or a TOML path); see the module docstring.

    Prints one line per step unless `quiet`; returns every round's record with per-step wall times."""
    cfg = config if isinstance(config, LoopConfig) else load_config(config)
    from .. import models

    torch = models.require("torch", "torch", "curator loop")
    before = torch.get_num_threads()
    models.set_threads(cfg.threads, "cpu")
    try:
        return _Runner(cfg, progress or NullReporter(), echo, quiet).run()
    finally:
        torch.set_num_threads(before)


class _Runner:
    def __init__(self, cfg: LoopConfig, progress: Reporter, echo: Callable[[str], Any], quiet: bool) -> None:
        self.cfg = cfg
        self.progress = progress
        self.echo = (lambda _line: None) if quiet else echo
        self.workdir = Path(cfg.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.store = Store(cfg.store, create=True)
        self.marks = Marks(self.store, cfg.name)
        self.result = LoopResult(cfg.name, self.workdir, Path(cfg.store), cfg.config_hash, [])

    # ---- orchestration -----------------------------------------------------------------------------
    def run(self) -> LoopResult:
        started = time.perf_counter()
        self._start()
        base = self._base_round()
        previous = {arm.name: base for arm in self.cfg.arms}
        for r in range(1, self.cfg.rounds + 1):
            for arm in self.cfg.arms:
                previous[arm.name] = self._arm_round(arm, r, previous[arm.name], base)
        self.result.seconds = time.perf_counter() - started
        done = self.result.steps_run + self.result.steps_resumed
        self.echo(f"loop {self.cfg.name}: {done} step(s), {self.result.steps_resumed} done earlier, in "
                  f"{self.result.seconds:.1f}s; store {self.cfg.store}")
        return self.result

    def _start(self) -> None:
        self.marks.refresh()
        others = sorted(self.marks.other_loops)
        if others:
            raise UsageError(f"store {self.cfg.store} already holds loop {others[0]!r}; one loop per store: give "
                             f"loop {self.cfg.name!r} another workdir or store")
        start = self.marks.start
        if start is None:
            args = {"name": self.cfg.name, "rounds": self.cfg.rounds, "arms": [a.name for a in self.cfg.arms],
                    "config": self.cfg.to_dict(), "config_hash": self.cfg.config_hash}
            with self.store.annotate(loop=self.cfg.name, step="start", started=now_iso()):
                record(self.store, "loop", args=args, generations=[],
                       summary={"config_hash": self.cfg.config_hash, "source": self.cfg.source})
            self.marks.refresh()
            self.echo(f"loop {self.cfg.name}: {self.cfg.rounds} round(s), arms {', '.join(a.name for a in self.cfg.arms)}"
                      f"; workdir {self.workdir}")
            return
        stored = json.loads(start["args"])
        if stored.get("config_hash") != self.cfg.config_hash:
            changed = _changed(_by_arm(stored.get("config") or {}), _by_arm(self.cfg.to_dict()))
            raise UsageError(
                f"loop {self.cfg.name!r} in store {self.cfg.store} was started with another config (hash "
                f"{stored.get('config_hash')}, now {self.cfg.config_hash}; changed: {', '.join(changed) or '?'}): "
                f"a resumed loop must run the same config; restore it, or give another workdir or store")
        self.echo(f"loop {self.cfg.name}: resuming in {self.workdir}")

    def _step(self, rec: RoundRecord, step: str, work: Callable[[], str]) -> dict[str, Any]:
        """Run `work` as step `step` of `rec` unless the store says it is done; returns the step's run."""
        run = self.marks.done(rec.arm, rec.round, step)
        if run is not None:
            seconds = step_seconds(run)
            rec.steps.append(StepRecord(step, seconds, run["run_id"], True, "done earlier"))
            self.result.steps_resumed += 1
            self.echo(f"{rec.arm:>12} r{rec.round:<2} {step:<8} {seconds:7.1f}s  done earlier ({run['run_id']})")
            return run
        t0 = time.perf_counter()
        with self.store.annotate(loop=self.cfg.name, arm=rec.arm, round=rec.round, step=step,
                                 generation=rec.generation, started=now_iso()):
            detail = work()
        seconds = time.perf_counter() - t0
        self.marks.refresh()
        run = self.marks.done(rec.arm, rec.round, step)
        if run is None:  # every step commits exactly one run; this is a bug, not a user error
            raise StoreError(f"loop step {rec.arm} r{rec.round} {step} finished without a committed run")
        rec.steps.append(StepRecord(step, seconds, run["run_id"], False, detail))
        self.result.steps_run += 1
        self.echo(f"{rec.arm:>12} r{rec.round:<2} {step:<8} {seconds:7.1f}s  {detail}")
        return run

    # ---- round 0 -----------------------------------------------------------------------------------
    def _base_round(self) -> RoundRecord:
        from ..ingest.pipeline import ingest
        from ..scoring import score
        from ..selectors.pipeline import select

        cfg = self.cfg
        rec = RoundRecord("base", 0, 0, selection="base-r0")
        self.result.records.append(rec)
        split = split_human(cfg, self.workdir)
        self.heldout = split.heldout
        self.human_train = split.train

        def do_ingest() -> str:
            r = ingest(self.store, [split.train], generation=0, origin="human", progress=self.progress)
            return (f"{r.rows_added} human document(s) into generation 0 ({split.heldout_docs} held out in "
                    f"{split.heldout.name})")

        self._step(rec, "ingest", do_ingest)
        scorers = self._base_scorers()
        if scorers:
            def do_score() -> str:
                out = score(self.store, scorers, generations=[0], progress=self.progress)
                return ", ".join(f"{s.scorer} {s.scored}" for s in out)

            self._step(rec, "score", do_score)

        def do_select() -> str:
            r = select(self.store, generation=0, name="base-r0", origins=("human",), seed=cfg.seed)
            return f"{r.rows} row(s)"

        self._step(rec, "select", do_select)
        if cfg.base.checkpoint is not None:
            rec.checkpoint = cfg.base.checkpoint
        else:
            out = self.workdir / "exports" / "base"
            run = self._step(rec, "export", lambda: self._export("base-r0", out))
            rec.export_dir = json.loads(run["summary"])["out"]
            ckpt = self.workdir / "ckpt" / "base"
            run = self._step(rec, "train", lambda: self._train(Path(rec.export_dir), ckpt, cfg.base.train,
                                                               base=None))
            rec.checkpoint = run["checkpoints"][-1]
        self._eval(rec)
        return rec

    def _base_scorers(self) -> list[Any]:
        """The arms' scorers that do not need the base model, each name once (the first arm's config)."""
        from ..scorers.registry import create

        seen: dict[str, Any] = {}
        for arm in self.cfg.arms:
            for name in arm.score.scorers:
                opts = arm.score.options_of(name)
                if name in seen or BASE_MODEL in [v for v in opts.values() if isinstance(v, str)]:
                    continue
                seen[name] = create(name, self._scorer_options(name, opts, None))
        return list(seen.values())

    def _scorer_options(self, name: str, opts: dict[str, Any], base_ckpt: str | None) -> dict[str, Any]:
        from ..scorers.registry import scorer_class

        out = {k: (base_ckpt if v == BASE_MODEL else v) for k, v in opts.items()}
        fields = getattr(scorer_class(name).Config, "__dataclass_fields__", {})
        if "threads" in fields and "threads" not in out:
            out["threads"] = self.cfg.threads  # an execution option: not part of the score's config hash
        return out

    # ---- arm rounds ----------------------------------------------------------------------------------
    def _arm_round(self, arm: ArmConfig, r: int, previous: RoundRecord, base: RoundRecord) -> RoundRecord:
        from ..generate import generate
        from ..scorers.registry import create
        from ..scoring import score
        from ..selectors.mixing import MixConfig
        from ..selectors.pipeline import build_steps, select

        cfg = self.cfg
        g = arm.generation(r)
        name = f"{arm.name}-r{r}"
        rec = RoundRecord(arm.name, r, g, selection=name)
        self.result.records.append(rec)
        gen = arm.generate

        def do_generate() -> str:
            seed = (gen.seed if gen.seed is not None else cfg.seed) + r
            res = generate(self.store, model=previous.checkpoint, generation=g, prompts_from=gen.prompts_from,
                           prefix_tokens=gen.prefix_tokens, samples_per_prompt=gen.samples_per_prompt,
                           temperature=gen.temperature, top_p=gen.top_p, top_k=gen.top_k,
                           max_new_tokens=gen.max_new_tokens, seed=seed, batch_size=gen.batch_size,
                           backend=gen.backend, device=gen.device, dtype=gen.dtype, threads=cfg.threads,
                           progress=self.progress)
            return f"{res.rows_added} sample(s) into generation {g} from {Path(previous.checkpoint).name}"

        self._step(rec, "generate", do_generate)
        if arm.edit.enabled:
            from ..transforms.token_edit import edit

            e = arm.edit

            def do_edit() -> str:
                seed = (e.seed if e.seed is not None else cfg.seed) + r
                res = edit(self.store, generation=0, into=g, model=base.checkpoint, threshold=e.threshold,
                           top_k=e.top_k, temperature=e.temperature, delete_below=e.delete_below, seed=seed,
                           batch_size=e.batch_size, max_length=e.max_length, threads=cfg.threads,
                           progress=self.progress)
                return f"{res.rows_added} edited document(s), {res.changed} of {res.eligible} eligible token(s) changed"

            self._step(rec, "edit", do_edit)
        if arm.score.scorers:
            def do_score() -> str:
                scorers = [create(n, self._scorer_options(n, arm.score.options_of(n), base.checkpoint))
                           for n in arm.score.scorers]
                out = score(self.store, scorers, generations=[0, g], progress=self.progress)
                return ", ".join(f"{s.scorer} {s.scored}" for s in out)

            self._step(rec, "score", do_score)
        self._step(rec, "shift", lambda: self._shift(g))

        def do_select() -> str:
            mix = MixConfig(policy=arm.mix.policy, human_fraction=arm.mix.human_fraction, size=arm.mix.size,
                            previous=previous.selection if arm.mix.policy.startswith("accumulate") else None)
            res = select(self.store, generation=g, name=name, steps=build_steps(arm.select_specs()),
                         mix_config=mix, seed=cfg.seed, origins=arm.select_options.origins,
                         lineage=[0] + [arm.generation(k) for k in range(1, r)])  # dedup within the arm only
            chain = " -> ".join(f"{s.selector} {s.rows_in}->{s.rows_out}" for s in res.steps) or "no chain"
            return f"{res.rows} row(s) ({chain}; mix {mix.policy})"

        self._step(rec, "select", do_select)
        out = self.workdir / "exports" / arm.name / f"r{r}"
        run = self._step(rec, "export", lambda: self._export(name, out))
        rec.export_dir = json.loads(run["summary"])["out"]
        ckpt = self.workdir / "ckpt" / arm.name / f"r{r}"
        init = {"previous": previous.checkpoint, "base": base.checkpoint, "scratch": None}[arm.train.init]
        run = self._step(rec, "train", lambda: self._train(Path(rec.export_dir), ckpt, arm.train, base=init))
        rec.checkpoint = run["checkpoints"][-1]
        self._eval(rec)
        return rec

    # ---- shared step bodies ----------------------------------------------------------------------------
    def _export(self, selection: str, out: Path) -> str:
        from ..export import export

        clear_staging(out)
        res = export(self.store, selection, fmt="parquet", shards=1, seed=self.cfg.seed, out=out,
                     overwrite=out.is_dir(), progress=self.progress)
        return f"{res.documents} document(s) of {selection} to {out}"

    def _train(self, export_dir: Path, out: Path, t: TrainConfig, *, base: str | None) -> str:
        from ..train import train

        clear_staging(out)
        init_config = tokenizer = None
        if base is None:
            init_config, tokenizer = self._scratch_model()
        res = train(self.store, export=export_dir, base=base, init_config=init_config, tokenizer=tokenizer, out=out,
                    steps=t.steps, epochs=t.epochs, batch_size=t.batch_size, block_size=t.block_size, lr=t.lr,
                    warmup=t.warmup, weight_decay=t.weight_decay, grad_accum=t.grad_accum,
                    seed=t.seed if t.seed is not None else self.cfg.seed, device=t.device, dtype=t.dtype,
                    threads=self.cfg.threads, overwrite=out.is_dir(), progress=self.progress)
        start = "from scratch" if base is None else f"from {Path(base).parent.name}/{Path(base).name}"
        return f"{res.steps} step(s) {start}, loss {res.first_loss:.3f} -> {res.last_loss:.3f}"

    def _scratch_model(self) -> tuple[dict[str, Any], str]:
        """A from-scratch GPT-2 config and the loop's tokenizer (trained on the human training documents once;
        with `[base] checkpoint`, that checkpoint's tokenizer)."""
        b = self.cfg.base
        config = {"model_type": "gpt2", "n_layer": b.n_layer, "n_embd": b.n_embd, "n_head": b.n_head,
                  "n_positions": b.n_positions, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
        if b.checkpoint is not None:
            return config, b.checkpoint
        folder = self.workdir / "tokenizer"
        if not (folder / "tokenizer.json").is_file():
            from ..tinylm import train_tokenizer

            # Deterministic: the same documents in the same order give the same merges.
            tok = train_tokenizer(train_texts(self.human_train), vocab_size=b.vocab_size)
            stage = folder.with_name(".tokenizer.partial")
            tok.save_pretrained(stage)
            if folder.exists():
                import shutil

                shutil.rmtree(folder)
            stage.rename(folder)
        return config, str(folder)

    def _shift(self, g: int) -> str:
        from ..shift import shift_report
        from ..store.query import connect

        con = connect(self.store)
        try:
            rows = shift_report(con, g, 0)
        finally:
            con.close()
        alarms = [r.metric for r in rows if r.status == "alarm"]
        record(self.store, "shift", args={"generation": g, "baseline": 0}, generations=[g],
               summary={"generation": g, "baseline": 0, "rows": [r.__dict__ for r in rows], "alarms": alarms})
        return f"{len(alarms)} of {len(rows)} metric(s) in alarm"

    def _eval(self, rec: RoundRecord) -> None:
        from ..evaluate import evaluate

        ev = self.cfg.eval

        def do_eval() -> str:
            res = evaluate(self.store, model=rec.checkpoint, heldout=self.heldout, verifier=ev.verifier,
                           eval_set=ev.eval_set, limit=ev.limit, max_new_tokens=ev.max_new_tokens,
                           batch_size=ev.batch_size, max_length=ev.max_length, stride=ev.stride,
                           threads=self.cfg.threads)
            acc = "" if res.accuracy is None else f", {res.verifier} accuracy {res.accuracy:.3f}"
            return f"held-out perplexity {res.perplexity:.2f}{acc}"

        run = self._step(rec, "eval", do_eval)
        summary = json.loads(run["summary"])
        rec.perplexity = summary.get("perplexity")
        rec.accuracy = summary.get("accuracy")


def _by_arm(config: dict[str, Any]) -> dict[str, Any]:
    """The config with its arms keyed by name, so a changed key reads `arms.curated.train.lr`."""
    arms = config.get("arms")
    if isinstance(arms, list):
        config = {**config, "arms": {a.get("name", str(i)): a for i, a in enumerate(arms) if isinstance(a, dict)}}
    return config


def _changed(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


__all__ = ["LoopResult", "RoundRecord", "StepRecord", "run_loop", "context"]
