"""Aggregation of device updates (nodes.protocol.aggregate) against numpy and Flower 1.41's own
strategies on the same arrays.

Tolerances: RunningSum accumulates in float32 with fused multiply-adds, so its mean is compared with
a float64 numpy mean at rtol 1e-5 / atol 1e-6 (values of order 1, at most 40 updates: the float32
rounding bound is about 40 * 6e-8 = 2.4e-6 relative). UpdateStore reproduces Flower's float32
arithmetic in the same order and is compared exactly, except Krum's distances (float64 here,
float32 in Flower), which only choose the updates. The server optimisers compute their last step
in float64 and are compared with Flower at rtol 1e-6.
"""

import multiprocessing
import tracemalloc

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.serverapp import strategy as flwr_strategies
from flwr.supercore.task_identity import TaskIdentity

from nodes.protocol import aggregate
from nodes.protocol.aggregate import (AggregationStateError, RunningSum, UpdateStore, is_streaming, load_state,
                                      save_state, server_step)

SPEC = {"conv.weight": ((4, 3, 5), "float32"), "conv.bias": ((4,), "float32"), "fc": ((7, 6), "float32")}


def make_updates(count, seed=0, spec=SPEC, scale=1.0):
    rng = np.random.default_rng(seed)
    return [{name: (rng.standard_normal(shape) * scale).astype(np.float32) for name, (shape, _) in spec.items()}
            for _ in range(count)]


def weighted_mean64(updates, weights):
    total = float(sum(weights))
    return {name: sum(w * u[name].astype(np.float64) for u, w in zip(updates, weights)) / total
            for name in updates[0]}


# ---- Flower's side ------------------------------------------------------------------------------

@pytest.fixture
def flower_identity():
    saved = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, SUPERLINK_NODE_ID
    yield
    TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = saved


def flower_replies(updates, weights):
    """Train replies as Flower's strategies receive them (fresh ones each time: Flower pops arrays)."""
    replies = []
    for index, (arrays, weight) in enumerate(zip(updates, weights)):
        instruction = Message(RecordDict(), index + 1, "train", group_id="1")
        instruction.metadata.__dict__["_message_id"] = f"instruction-{index}"
        content = RecordDict({"arrays": ArrayRecord({k: Array(np.array(v)) for k, v in arrays.items()}),
                              "metrics": MetricRecord({"num-examples": weight})})
        replies.append(Message(content, reply_to=instruction))
    return replies


def flower_aggregate(strategy, updates, weights, server_round=1):
    arrays, _ = strategy.aggregate_train(server_round, flower_replies(updates, weights))
    return {k: v.numpy() for k, v in arrays.items()}


# ---- RunningSum ---------------------------------------------------------------------------------

def test_running_sum_is_the_weighted_mean_across_instances(tmp_path):
    updates = make_updates(40)
    weights = [int(w) for w in np.random.default_rng(1).integers(1, 500, size=40)]
    first, second = RunningSum(tmp_path, SPEC), RunningSum(tmp_path, dict(reversed(SPEC.items())))
    for index, (update, weight) in enumerate(zip(updates, weights)):
        (first if index % 2 else second).fold(update, weight)
        if index == 10:
            first.close()  # a process that drops its mapping and comes back
            first = RunningSum(tmp_path, SPEC)
    assert first.count == second.count == 40
    assert first.total_weight == sum(weights)
    mean = RunningSum(tmp_path, SPEC).mean(sum(weights))
    expected = weighted_mean64(updates, weights)
    for name, (shape, _) in SPEC.items():
        assert mean[name].dtype == np.float32 and mean[name].shape == shape
        np.testing.assert_allclose(mean[name], expected[name], rtol=1e-5, atol=1e-6)


def test_running_sum_agrees_with_flowers_fedavg(tmp_path, flower_identity):
    updates, weights = make_updates(9, seed=3), [5, 1, 7, 3, 3, 9, 2, 8, 4]
    running = RunningSum(tmp_path, SPEC)
    for update, weight in zip(updates, weights):
        running.fold(update, weight)
    ours = running.mean(sum(weights))
    theirs = flower_aggregate(flwr_strategies.FedAvg(), updates, weights)
    for name in SPEC:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-5, atol=1e-6)


def _fold_in_a_child(directory, spec, update, weight):
    RunningSum(directory, spec).fold(update, weight)


def test_running_sum_folds_from_separate_processes(tmp_path):
    updates, weights = make_updates(3, seed=4), [2.0, 3.0, 5.0]
    RunningSum(tmp_path, SPEC).fold(updates[0], weights[0])  # this process maps the file first
    context = multiprocessing.get_context("spawn")
    for update, weight in zip(updates[1:], weights[1:]):
        child = context.Process(target=_fold_in_a_child, args=(tmp_path, SPEC, update, weight))
        child.start()
        child.join(60)
        assert child.exitcode == 0
    running = RunningSum(tmp_path, SPEC)
    assert running.count == 3
    mean = running.mean(10.0)
    expected = weighted_mean64(updates, weights)
    for name in SPEC:
        np.testing.assert_allclose(mean[name], expected[name], rtol=1e-5, atol=1e-6)


def test_folding_memory_does_not_grow_with_the_number_of_updates(tmp_path):
    spec = {"w": ((1_000_000,), "float32")}  # 4 MB per update
    size = 4_000_000
    rng = np.random.default_rng(0)

    def peak_for(count, directory):
        running = RunningSum(directory, spec)
        tracemalloc.start()
        try:
            for _ in range(count):
                update = {"w": rng.random(1_000_000, dtype=np.float32)}  # made and dropped per fold
                running.fold(update, 2.0)
                del update
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    few, many = peak_for(3, tmp_path / "few"), peak_for(40, tmp_path / "many")
    assert many < 2 * size, f"peak {many} B while folding 40 updates of {size} B"
    assert many < few + size // 4


def test_mean_refuses_a_total_weight_that_disagrees(tmp_path):
    running = RunningSum(tmp_path, SPEC)
    running.fold(make_updates(1)[0], 3)
    with pytest.raises(AggregationStateError, match="total weight"):
        running.mean(4)


def test_mean_of_nothing_is_refused(tmp_path):
    with pytest.raises(AggregationStateError):
        RunningSum(tmp_path, SPEC).mean(1)


def test_an_interrupted_fold_makes_the_sum_unusable(tmp_path, monkeypatch):
    running = RunningSum(tmp_path, SPEC)
    running.fold(make_updates(1)[0], 1)

    def dies(*args):
        raise KeyboardInterrupt  # the process is killed mid-fold

    monkeypatch.setattr(aggregate, "_axpy", dies)
    with pytest.raises(KeyboardInterrupt):
        running.fold(make_updates(1, seed=2)[0], 1)
    monkeypatch.undo()
    with pytest.raises(AggregationStateError, match="interrupted"):
        RunningSum(tmp_path, SPEC).mean(2)
    with pytest.raises(AggregationStateError, match="interrupted"):
        running.fold(make_updates(1)[0], 1)


@pytest.mark.parametrize("change", ["missing", "extra", "shape"])
def test_a_mismatched_update_is_refused_before_touching_the_sum(tmp_path, change):
    running = RunningSum(tmp_path, SPEC)
    good = make_updates(1)[0]
    running.fold(good, 1)
    bad = dict(good)
    if change == "missing":
        del bad["fc"]
    elif change == "extra":
        bad["other"] = np.zeros(1, np.float32)
    else:
        bad["fc"] = np.zeros((6, 7), np.float32)
    with pytest.raises(ValueError):
        running.fold(bad, 1)
    assert running.count == 1
    np.testing.assert_allclose(running.mean(1)["fc"], good["fc"])


@pytest.mark.parametrize("weight", [0, -1, float("nan"), float("inf")])
def test_bad_weights_are_refused(tmp_path, weight):
    with pytest.raises(ValueError):
        RunningSum(tmp_path, SPEC).fold(make_updates(1)[0], weight)


def test_another_models_sum_is_refused(tmp_path):
    RunningSum(tmp_path, SPEC).fold(make_updates(1)[0], 1)
    with pytest.raises(AggregationStateError):
        RunningSum(tmp_path, {**SPEC, "fc": ((6, 7), "float32")})


def test_float64_and_non_contiguous_inputs_are_folded_as_float32(tmp_path):
    update = make_updates(1)[0]
    odd = {**update, "fc": np.asfortranarray(update["fc"].astype(np.float64))}
    running = RunningSum(tmp_path, SPEC)
    running.fold(odd, 2)
    np.testing.assert_allclose(running.mean(2)["fc"], update["fc"], rtol=1e-6)


def test_numpy_fallback_without_scipy(tmp_path, monkeypatch):
    monkeypatch.setattr(aggregate, "_saxpy", None)
    monkeypatch.setattr(aggregate, "_FOLD_CHUNK", 7)  # several steps per tensor
    updates, weights = make_updates(5), [1, 2, 3, 4, 5]
    running = RunningSum(tmp_path, SPEC)
    for update, weight in zip(updates, weights):
        running.fold(update, weight)
    expected = weighted_mean64(updates, weights)
    for name in SPEC:
        np.testing.assert_allclose(running.mean(15)[name], expected[name], rtol=1e-5, atol=1e-6)


def test_folding_restores_blas_threads(tmp_path):
    from threadpoolctl import threadpool_info

    before = [info["num_threads"] for info in threadpool_info()]
    RunningSum(tmp_path, SPEC).fold(make_updates(1)[0], 1)
    assert [info["num_threads"] for info in threadpool_info()] == before


def test_is_streaming():
    for name in ("fedavg", "fedprox", "fedadam", "fedyogi", "fedadagrad", "fedavgm", "fedopt", "FedAvg"):
        assert is_streaming(name)
    for name in ("fedmedian", "fedtrimmedavg", "krum", "multikrum", "bulyan"):
        assert not is_streaming(name)
    with pytest.raises(ValueError):
        is_streaming("qfedavg")


# ---- UpdateStore --------------------------------------------------------------------------------

def stored(tmp_path, updates, weights, block_bytes=4096):
    """A store holding ``updates``; a tiny block size forces many column blocks."""
    store = UpdateStore(tmp_path, SPEC, block_bytes=block_bytes)
    keys = {}
    for index, (update, weight) in enumerate(zip(updates, weights)):
        store.add(f"node-{index}", update)
        keys[f"node-{index}"] = weight
    return store, keys


CASES = [
    ("fedmedian", {}, lambda: flwr_strategies.FedMedian()),
    ("fedtrimmedavg", {}, lambda: flwr_strategies.FedTrimmedAvg()),
    ("fedtrimmedavg", {"beta": 0.3}, lambda: flwr_strategies.FedTrimmedAvg(beta=0.3)),
    ("fedavg", {}, lambda: flwr_strategies.FedAvg()),
]


@pytest.mark.parametrize("count", [1, 2, 7, 10])
@pytest.mark.parametrize("name, params, flower", CASES)
def test_update_store_equals_flower(tmp_path, flower_identity, name, params, flower, count):
    updates = make_updates(count, seed=count)
    weights = list(range(3, 3 + count))
    store, keys = stored(tmp_path, updates, weights)
    ours = store.aggregate(name, params, keys)
    theirs = flower_aggregate(flower(), updates, weights)
    for key in SPEC:
        assert ours[key].dtype == theirs[key].dtype == np.float32
        np.testing.assert_array_equal(ours[key], theirs[key])


def krum_updates(count, outliers, seed=0):
    """Honest updates around one point and ``outliers`` far away, in a shuffled order."""
    rng = np.random.default_rng(seed)
    centre = make_updates(1, seed=seed)[0]
    updates = [{k: (v + 0.1 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in centre.items()}
               for _ in range(count - outliers)]
    updates += [{k: (v + 10 + 5 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in centre.items()}
                for _ in range(outliers)]
    order = rng.permutation(count)
    return [updates[i] for i in order]


@pytest.mark.parametrize("name, params, flower", [
    ("krum", {"num_malicious_nodes": 2}, lambda: flwr_strategies.Krum(num_malicious_nodes=2)),
    ("krum", {}, lambda: flwr_strategies.Krum()),
    ("multikrum", {"num_malicious_nodes": 2, "num_nodes_to_select": 4},
     lambda: flwr_strategies.MultiKrum(num_malicious_nodes=2, num_nodes_to_select=4)),
    ("multikrum", {"num_malicious_nodes": 1, "num_nodes_to_select": 9},
     lambda: flwr_strategies.MultiKrum(num_malicious_nodes=1, num_nodes_to_select=9)),
    ("bulyan", {"num_malicious_nodes": 2}, lambda: flwr_strategies.Bulyan(num_malicious_nodes=2)),
    ("bulyan", {}, lambda: flwr_strategies.Bulyan()),
])
def test_krum_family_equals_flower(tmp_path, flower_identity, name, params, flower):
    updates = krum_updates(11, outliers=2, seed=5)
    weights = [4, 9, 1, 6, 2, 8, 3, 7, 5, 10, 11]
    store, keys = stored(tmp_path, updates, weights)
    ours = store.aggregate(name, params, keys)
    theirs = flower_aggregate(flower(), updates, weights)
    for key in SPEC:
        np.testing.assert_array_equal(ours[key], theirs[key])


def test_krum_picks_an_honest_update(tmp_path):
    updates = krum_updates(8, outliers=2, seed=9)
    store, keys = stored(tmp_path, updates, [1] * 8)
    chosen = store.aggregate("krum", {"num_malicious_nodes": 2}, keys)
    assert any(all(np.array_equal(chosen[k], u[k]) for k in SPEC) for u in updates)
    assert float(np.abs(chosen["fc"]).mean()) < 5  # not one of the far-away ones


def test_bulyan_needs_enough_updates(tmp_path):
    store, keys = stored(tmp_path, make_updates(6), [1] * 6)
    with pytest.raises(ValueError, match="4\\*num_malicious_nodes"):
        store.aggregate("bulyan", {"num_malicious_nodes": 1}, keys)


def test_trimmed_mean_beta_is_checked(tmp_path):
    store, keys = stored(tmp_path, make_updates(3), [1] * 3)
    with pytest.raises(ValueError):
        store.aggregate("fedtrimmedavg", {"beta": 0.5}, keys)


def test_update_store_memory_is_bounded_by_its_block(tmp_path):
    spec = {"w": ((500_000,), "float32")}  # 2 MB per update, 40 of them: 80 MB on disk
    store = UpdateStore(tmp_path, spec, block_bytes=1 << 20)
    rng = np.random.default_rng(0)
    for index in range(40):
        store.add(f"u{index}", {"w": rng.random(500_000, dtype=np.float32)})
    keys = {f"u{index}": 1 for index in range(40)}
    for name in ("fedmedian", "fedtrimmedavg", "krum", "fedavg"):
        tracemalloc.start()
        try:
            store.aggregate(name, {}, keys)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        # the result (2 MB) plus a few blocks of 1 MB; never the 80 MB of updates
        assert peak < 2_000_000 + 4 * (1 << 20), f"{name}: peak {peak} B"


def test_update_store_keys_replace_and_discard(tmp_path):
    updates = make_updates(3)
    store, keys = stored(tmp_path, updates, [1, 1, 1])
    assert store.keys() == ["node-0", "node-1", "node-2"]
    store.add("node-0", updates[1])  # a retried upload replaces the stored one
    np.testing.assert_array_equal(store.aggregate("fedavg", {}, {"node-0": 1})["fc"], updates[1]["fc"])
    store.discard("node-2")
    with pytest.raises(KeyError):
        store.aggregate("fedmedian", {}, keys)
    assert not list((tmp_path / "updates").glob(".incoming.*"))


@pytest.mark.parametrize("key", ["../evil", "a/b", "", ".hidden", "x" * 129, 5])
def test_update_keys_cannot_escape_the_directory(tmp_path, key):
    with pytest.raises(ValueError):
        UpdateStore(tmp_path, SPEC).add(key, make_updates(1)[0])


def test_update_store_refuses_mismatched_updates(tmp_path):
    store = UpdateStore(tmp_path, SPEC)
    with pytest.raises(ValueError):
        store.add("a", {"fc": np.zeros((7, 6), np.float32)})
    with pytest.raises(ValueError):
        store.aggregate("fedavg", {}, {})
    with pytest.raises(ValueError):
        store.aggregate("qfedavg", {}, {"a": 1})


# ---- server optimisers --------------------------------------------------------------------------

SERVER_CASES = [
    ("fedadam", {}, lambda: flwr_strategies.FedAdam()),
    ("fedadam", {"eta": 0.05, "beta_1": 0.8, "beta_2": 0.9, "tau": 1e-2},
     lambda: flwr_strategies.FedAdam(eta=0.05, beta_1=0.8, beta_2=0.9, tau=1e-2)),
    ("fedyogi", {}, lambda: flwr_strategies.FedYogi()),
    ("fedadagrad", {"eta": 0.3}, lambda: flwr_strategies.FedAdagrad(eta=0.3)),
    ("fedavgm", {"server_momentum": 0.9, "server_learning_rate": 0.5},
     lambda: flwr_strategies.FedAvgM(server_momentum=0.9, server_learning_rate=0.5)),
    ("fedavgm", {}, lambda: flwr_strategies.FedAvgM()),
]


@pytest.mark.parametrize("name, params, flower", SERVER_CASES)
def test_server_step_equals_flower_over_three_rounds(tmp_path, flower_identity, name, params, flower):
    strategy = flower()
    global_arrays = make_updates(1, seed=100)[0]
    flower_global = {k: v.copy() for k, v in global_arrays.items()}
    if name == "fedavgm":
        strategy.current_arrays = ArrayRecord({k: Array(v.copy()) for k, v in global_arrays.items()})
    for server_round in (1, 2, 3):
        updates, weights = make_updates(4, seed=server_round, scale=0.5), [3, 1, 4, 2]
        if name != "fedavgm":
            strategy.current_arrays = {k: v.copy() for k, v in flower_global.items()}
        theirs = flower_aggregate(strategy, updates, weights, server_round=server_round)
        mean = flower_aggregate(flwr_strategies.FedAvg(), updates, weights)
        state = load_state(tmp_path)  # persisted between rounds, as the round service does
        ours = server_step(name, params, global_arrays, mean, state, server_round=server_round)
        save_state(tmp_path, state)
        for key in SPEC:
            assert ours[key].dtype == np.float32
            np.testing.assert_allclose(ours[key], theirs[key].astype(np.float32), rtol=1e-6, atol=1e-7)
        global_arrays, flower_global = ours, {k: np.asarray(v) for k, v in theirs.items()}


def test_server_step_counts_rounds_itself(tmp_path):
    global_arrays, mean = make_updates(2)
    first = server_step("fedadam", {}, global_arrays, mean, {}, server_round=1)
    state = {}
    assert all(np.array_equal(first[k], v) for k, v in
               server_step("fedadam", {}, global_arrays, mean, state).items())
    assert state["step"] == 1
    server_step("fedadam", {}, first, mean, state)
    assert state["step"] == 2


@pytest.mark.parametrize("name", ["fedavg", "fedprox", "fedmedian", "krum"])
def test_server_step_returns_the_mean_for_plain_strategies(name):
    global_arrays, mean = make_updates(2)
    state = {}
    result = server_step(name, {}, global_arrays, mean, state)
    for key in SPEC:
        np.testing.assert_array_equal(result[key], mean[key])


def test_server_state_round_trips_without_pickle(tmp_path):
    assert load_state(tmp_path) == {}
    arrays = make_updates(2)
    state = {"m": arrays[0], "v": arrays[1], "momentum": arrays[0], "step": 4}
    save_state(tmp_path, state)
    loaded = load_state(tmp_path)
    assert loaded["step"] == 4
    for group in ("m", "v", "momentum"):
        for key in SPEC:
            np.testing.assert_array_equal(loaded[group][key], state[group][key])
    with np.load(tmp_path / "server_state.npz", allow_pickle=False) as npz:
        assert "step" in npz.files
    assert not list(tmp_path.glob(".server_state.*"))


def test_server_step_refuses_mismatched_tensors():
    global_arrays, mean = make_updates(2)
    del mean["fc"]
    with pytest.raises(ValueError):
        server_step("fedadam", {}, global_arrays, mean, {})
