"""The target verdict: a measured ratio against attention, or a bound when attention never reached 0.90."""

from __future__ import annotations

from benchmarks.mqar.report import annotate, table

TARGET = "T256-kv16-d128-L2-H2-V1024"


def _run(model: str, steps_to_90: int | None, steps_run: int, best: float, setting: str = TARGET) -> dict:
    return {
        "setting": setting, "model": model, "mixer": "attention" if model.startswith("attention") else "liquid",
        "train": {"seed": 0, "data_seed": None, "lr": 3e-3, "batch_size": 32},
        "steps_to": {"0.50": None, "0.90": steps_to_90},
        "steps_run": steps_run, "best_accuracy": best, "final_accuracy": best, "parameters": 1, "state_size": 1,
        "seconds_per_step": 0.1, "train_seconds": 1.0, "stop_reason": "max_steps",
    }  # fmt: skip


def _verdicts(runs: list[dict]) -> dict[str, dict]:
    return {v["model"]: v for v in annotate({"runs": runs})["target"]["verdicts"]}


def test_bound_when_attention_did_not_reach_the_target() -> None:
    runs = [_run("attention", None, 3700, 0.4), _run("fast", 2000, 2100, 0.95), _run("slow", 6000, 6000, 0.91)]
    verdicts = _verdicts(runs)
    assert verdicts["fast"]["steps_ratio_upper_bound"] == round(2000 / 3700, 2)
    assert verdicts["fast"]["target_met"] and not verdicts["slow"]["target_met"]  # 6000 / 3700 > 1.5
    assert "< 0.54" in table({"runs": runs})


def test_measured_ratio_wins_over_a_bound() -> None:
    runs = [_run("attention", 1000, 1100, 0.95), _run("ok", 1500, 1600, 0.95), _run("late", 1600, 1700, 0.95)]
    verdicts = _verdicts(runs)
    assert verdicts["ok"]["steps_ratio_vs_attention"] == 1.5 and verdicts["ok"]["target_met"]
    assert verdicts["late"]["steps_ratio_upper_bound"] is None and not verdicts["late"]["target_met"]
    other = _verdicts([_run("attention", None, 3700, 0.4), _run("low", None, 4000, 0.6)])
    assert not other["low"]["target_met"]  # below 0.90 is a miss whatever the steps


def test_a_mixture_run_is_compared_with_attention_on_the_same_mixture_of_any_head_count() -> None:
    mixed = TARGET + "-mix[64:4:5,128:8:1,256:16:1]"
    runs = [_run("attention", 3000, 3100, 0.95), _run("attention-h1", 1000, 1100, 0.95, mixed),
            _run("mixed", 1400, 1500, 0.95, mixed), _run("plain", 3600, 3700, 0.95)]  # fmt: skip
    verdicts = _verdicts(runs)
    assert verdicts["mixed"]["steps_ratio_vs_attention"] == 1.4 and verdicts["mixed"]["target_met"]
    assert verdicts["plain"]["steps_ratio_vs_attention"] == 1.2  # against the plain-setting attention, not 1000


def test_a_run_that_never_reached_the_target_shows_a_lower_bound() -> None:
    runs = [_run("attention", 1000, 1100, 0.95), _run("capped", None, 1500, 0.7)]
    verdicts = _verdicts(runs)
    assert verdicts["capped"]["steps_ratio_lower_bound"] == 1.5 and not verdicts["capped"]["target_met"]
    assert "> 1.5" in table({"runs": runs})
    assert "> " not in table({"runs": [_run("attention", None, 1100, 0.5), _run("capped", None, 1500, 0.7)]})
    early = _verdicts([_run("attention", 1000, 1100, 0.95), _run("cut", None, 1200, 0.8)])["cut"]
    assert early["steps_ratio_lower_bound"] == 1.2 and not early["target_met"] and not early["decided"]
    assert verdicts["capped"]["decided"]


def _with_history(run: dict, seed: int) -> dict:
    run = {**run, "setting": TARGET, "train": {**run["train"], "seed": seed}}
    run["history"] = [{"step": 50 * i, "accuracy": min(1.0, 0.1 * i)} for i in range(1, 11)]
    return run


def test_the_plot_has_one_same_run_panel_per_seed_with_both_mixers(tmp_path) -> None:
    from PIL import Image

    from benchmarks.mqar.report import _target_seeds, plot

    runs = [_with_history(_run(m, 400, 500, 1.0), seed) for seed in (0, 1) for m in ("attention", "liquid")]
    runs.append(_with_history(_run("attention", 400, 500, 1.0), 2))  # attention alone at seed 2: no comparison
    assert _target_seeds(runs) == (TARGET.replace("-H2", "-H*"), [0, 1])
    plot({"runs": runs}, tmp_path / "two.png")
    plot({"runs": runs[:2]}, tmp_path / "one.png")
    two, one = Image.open(tmp_path / "two.png").size, Image.open(tmp_path / "one.png").size
    assert two[1] > 1.8 * one[1]  # a second row of per-seed panels only when there are several seeds


def test_a_run_on_other_batches_is_not_compared_with_this_seeds_attention() -> None:
    other = _run("other-data", 900, 1000, 0.95)
    other["train"] = {**other["train"], "data_seed": 3}
    same = _run("same-data", 900, 1000, 0.95)
    same["train"] = {**same["train"], "data_seed": 0}  # data seed = seed: the default batches
    verdicts = _verdicts([_run("attention", 1000, 1100, 0.95), other, same])
    assert verdicts["other-data"]["steps_ratio_vs_attention"] is None and not verdicts["other-data"]["target_met"]
    assert verdicts["same-data"]["steps_ratio_vs_attention"] == 0.9


def test_a_data_seed_equal_to_the_seed_is_the_default_run() -> None:
    from benchmarks.mqar.sweep import run_key
    from benchmarks.mqar.train import TrainConfig

    default, explicit, other = _run("m", 1, 1, 1.0), _run("m", 1, 1, 1.0), _run("m", 1, 1, 1.0)
    explicit["train"] = {**explicit["train"], "data_seed": 0}
    other["train"] = {**other["train"], "data_seed": 3}
    assert run_key(default) == run_key(explicit) != run_key(other)
    assert TrainConfig(seed=2).batch_seed == TrainConfig(seed=2, data_seed=2).batch_seed == 2
    assert TrainConfig(seed=2, data_seed=5).batch_seed == 5
