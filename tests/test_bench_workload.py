"""The benchmark's simulated buyers still find their way through the real bot: if a flow or a
button changes, this fails here rather than deep inside a benchmark run."""

from __future__ import annotations

import pytest

from bench import workload
from bench.store import add_bench_orders


def test_each_plan_mixes_claims_and_friends_and_counts_its_updates():
    claimer, inviter = workload.plan(0, 2), workload.plan(1, 2)
    names = [step.name for step in claimer]
    assert names.index("claim for myself") < names.index("send to a friend")
    assert [s.name for s in inviter].index("send to a friend") < [
        s.name for s in inviter].index("claim for myself")
    sent = sum(1 for step in claimer + inviter if step.kind != "wait")
    assert workload.update_count(2, 2) == sent == 30
    with pytest.raises(ValueError):
        workload.plan(0, workload.MAX_ROUNDS + 1)


def test_names_made_of_letters_are_distinct_valid_names():
    names = {workload.letters(n) for n in range(2000)}
    assert len(names) == 2000
    assert all(name.isalpha() and len(name) >= 2 for name in names)


async def test_simulated_buyers_go_through_every_step_of_the_real_bot(harness):
    orders = workload.bench_orders(2)
    tokens = await add_bench_orders(harness.store, orders)
    driver = workload.Driver(harness.emulator, timeout=10)
    try:
        # Three rounds: each buyer claims twice (the second time in a typed name) and sends a
        # ticket to a friend once, or the other way round.
        buyers = workload.make_buyers(harness.emulator, orders, tokens, 3)
        sent, _, _ = await workload.run_buyers(driver, buyers, 3, workload.ticketbot_step)
    finally:
        driver.detach()
    assert driver.errors == []
    assert sent == workload.update_count(2, 3) == len(driver.samples)
    assert all(sample.latency >= 0 for sample in driver.samples)
    assert {step.name for step in workload.plan(0, 3) if step.kind != "wait"} == {
        sample.step for sample in driver.samples}
    assert "Completed (3)" in buyers[0].user.find("My order").text
