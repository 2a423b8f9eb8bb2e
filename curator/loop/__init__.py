"""`curator loop`: rounds of generate -> score -> shift -> select/edit/mix -> export -> train -> eval, in several
arms side by side over the same human data, in one store, resumable after a kill at any step.

    config.py   the typed, frozen config (TOML or a dict), checked before anything runs
    steps.py    what a step is in the run log (context marks), resume rules, the human held-out split
    run.py      `run_loop(config) -> LoopResult`: the orchestration
"""
from .config import LoopConfig, load_config
from .run import LoopResult, RoundRecord, StepRecord, run_loop

__all__ = ["LoopConfig", "LoopResult", "RoundRecord", "StepRecord", "load_config", "run_loop"]
