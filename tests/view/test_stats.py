"""pass@k and the per-task aggregates, checked against brute-force references."""

from __future__ import annotations

import itertools
import math
import statistics
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hermes_core.view.stats import pass_at_k, passed, run_stats, sample_std, task_stats, tokens


def brute_pass_at_k(outcomes: list[bool], k: int) -> Fraction:
    """The fraction of all k-subsets of the rollouts that contain at least one pass."""
    subsets = list(itertools.combinations(range(len(outcomes)), k))
    hits = sum(1 for s in subsets if any(outcomes[i] for i in s))
    return Fraction(hits, len(subsets))


@given(st.lists(st.booleans(), min_size=1, max_size=10), st.data())
def test_pass_at_k_equals_enumeration_of_subsets(outcomes: list[bool], data: st.DataObject) -> None:
    k = data.draw(st.integers(1, len(outcomes)))
    got = pass_at_k(len(outcomes), sum(outcomes), k)
    assert got == pytest.approx(float(brute_pass_at_k(outcomes, k)), abs=1e-12)


@given(st.integers(1, 400), st.data())
@settings(max_examples=200)
def test_pass_at_k_matches_binomial_formula_for_large_n(n: int, data: st.DataObject) -> None:
    c = data.draw(st.integers(0, n))
    k = data.draw(st.integers(1, n))
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), abs=1e-9)
    assert 0.0 <= pass_at_k(n, c, k) <= 1.0


def test_pass_at_k_edges_and_bad_input() -> None:
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 5, 1) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 4) == 1.0
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)
    for n, c, k in ((3, 4, 1), (3, 1, 0), (3, 1, 4), (0, 0, 1), (3, -1, 1)):
        with pytest.raises(ValueError):
            pass_at_k(n, c, k)


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=30))
def test_sample_std_matches_statistics(values: list[float]) -> None:
    got = sample_std(values)
    if len(values) < 2:
        assert got is None
    else:
        assert got == pytest.approx(statistics.stdev(values), rel=1e-9, abs=1e-6)


def _rec(task: str, reward: float | None, **kw) -> dict:
    return {"rollout_id": f"{task}#{kw.pop('g', 0)}", "task_id": task, "reward": reward, **kw}


rewards_st = st.lists(st.one_of(st.none(), st.sampled_from([0.0, 0.25, 0.5, 1.0])), min_size=1, max_size=8)


@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), rewards_st, min_size=1))
def test_task_stats_against_a_direct_computation(groups: dict[str, list[float | None]]) -> None:
    records = []
    for task, rewards in groups.items():
        for g, r in enumerate(rewards):
            records.append(_rec(task, r, g=g, infra_error=r is None, n_tool_errors=g % 2,
                                usage={"prompt_tokens": 10, "completion_tokens": g}, duration=1.0 + g,
                                error="boom" if r is None else None))
    stats = task_stats(records)
    assert list(stats) == list(groups)
    for task, rewards in groups.items():
        t = stats[task]
        scored = [r for r in rewards if r is not None]
        assert t.rollouts == len(rewards)
        assert t.scored == len(scored)
        assert t.infra_errors == len(rewards) - len(scored) == t.errors
        assert t.tool_errors == sum(g % 2 for g in range(len(rewards)))
        assert t.tokens == sum(10 + g for g in range(len(rewards)))
        assert t.time["total"] == pytest.approx(statistics.mean(1.0 + g for g in range(len(rewards))))
        assert t.time["setup"] is None  # no timings in these records
        if scored:
            assert t.mean_reward == pytest.approx(statistics.mean(scored))
            assert t.pass_rate == pytest.approx(sum(r == 1.0 for r in scored) / len(scored))
            outcomes = [r == 1.0 for r in scored]
            assert set(t.pass_at_k) == set(range(1, len(scored) + 1))
            for k, v in t.pass_at_k.items():
                assert v == pytest.approx(float(brute_pass_at_k(outcomes, k)))
            assert t.pass_at_k[1] == pytest.approx(t.pass_rate)
        else:
            assert t.mean_reward is None and t.pass_rate is None and t.pass_at_k == {}


def test_run_stats_averages_pass_at_k_over_tasks_and_bounds_k_by_group_size() -> None:
    records = [_rec("a", 1.0, g=0), _rec("a", 0.0, g=1), _rec("a", 0.0, g=2),
               _rec("b", 0.0, g=0), _rec("b", 0.0, g=1), _rec("b", 0.0, g=2),
               _rec("c", 1.0, g=0), _rec("c", None, g=1, infra_error=True), _rec("c", 1.0, g=2)]
    rs = run_stats(records, group_size=3)
    assert rs.ks == [1, 2, 3]
    assert rs.tasks["a"].pass_at_k == pytest.approx({1: 1 / 3, 2: 2 / 3, 3: 1.0})
    assert rs.tasks["c"].pass_at_k == {1: 1.0, 2: 1.0}  # 2 scored rollouts: no pass@3
    assert rs.overall.pass_at_k[1] == pytest.approx((1 / 3 + 0 + 1) / 3)
    assert rs.overall.pass_at_k[3] == pytest.approx((1.0 + 0.0) / 2)  # only tasks with >= 3 scored
    assert rs.overall.rollouts == 9 and rs.overall.scored == 8 and rs.overall.infra_errors == 1
    assert run_stats(records, group_size=2).ks == [1, 2]
    assert max(run_stats(records, group_size=2).tasks["a"].pass_at_k) == 2


def test_time_split_tokens_and_malformed_fields_are_tolerated() -> None:
    records = [
        _rec("a", 1.0, timings={"setup": 1.0, "agent": 4.0, "verifier": 0.5}, duration=5.5, usage={"total_tokens": 7}),
        _rec("a", 0.0, g=1, timings={"setup": 3.0, "agent": "x"}, duration=None, usage=None, reward_extra=1),
        _rec("a", float("nan"), g=2, usage={"prompt_tokens": "bad"}, n_tool_errors=None, tool_errors=[{}, {}]),
        _rec("a", True, g=3),  # a bool is not a reward
    ]
    t = task_stats(records)["a"]
    assert t.time == {"total": 5.5, "setup": 2.0, "agent": 4.0, "verifier": 0.5}
    assert t.scored == 2 and t.tokens == 7 and t.tool_errors == 2
    assert t.token_rollouts == 2 and t.mean_tokens == 3.5  # usage=None reports nothing
    assert task_stats([_rec("b", 1.0, usage={})])["b"].mean_tokens is None  # the oracle reports no usage
    assert tokens({"prompt_tokens": 3, "completion_tokens": 4}) == 7
    assert tokens({}) == 0 and tokens(None) == 0
    assert passed(1.0) and passed(1.0 - 1e-12) and not passed(0.99) and not passed(None)
