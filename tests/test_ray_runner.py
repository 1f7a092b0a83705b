"""Ray scale-out on a local CPU cluster: same store, same images as a local run, resumable."""

from __future__ import annotations

import pytest

from safesteer.errors import InputError
from safesteer.evaluation.conditions import Condition
from safesteer.evaluation.protocol import PRESETS
from safesteer.evaluation.ray_runner import check_reachable, split_by_prompt
from safesteer.evaluation.runner import EvaluationSpec, evaluate
from safesteer.evaluation.store import ResultsStore
from safesteer.evaluation.workplan import PromptSet, plan_work


def test_split_by_prompt_keeps_every_item_once_and_groups_prompts():
    sets = [PromptSet.inline("a", "safety", ["x", "y"]), PromptSet.inline("b", "utility", ["z"])]
    conds = [Condition("none", "none"), Condition("p", "pack")]
    items = plan_work(conds, sets, alphas=(1, 3), images_per_prompt=2)
    shards = split_by_prompt(items)
    assert len(shards) == 3
    assert sorted(i.id for s in shards for i in s) == sorted(i.id for i in items)
    for s in shards:
        assert len({(i.prompt_set, i.prompt_index) for i in s}) == 1 and len(s) == 2 * (1 + 2)


@pytest.mark.slow
def test_local_ray_cluster_matches_a_local_run_and_resumes(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is the optional [ray] extra")
    spec = EvaluationSpec(
        pipeline="tiny-sd",
        out=str(tmp_path / "local"),
        baselines=("none",),
        prompt_sets=(PromptSet.inline("u", "utility", ["a red house", "a dog", "a lake"]),),
        settings=PRESETS["quick"].replace(classifiers=("open_nsfw",)),
        torch_threads=1,
    )
    local = evaluate(spec, progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = EvaluationSpec(**{**spec.__dict__, "out": str(tmp_path / "ray")})
        first = evaluate(on_ray, progress=False, ray_address="local", ray_workers=2, max_items=1)
        assert first.done_now == 1
        second = evaluate(on_ray, progress=False, ray_address="local", ray_workers=2)
        assert (second.done_before, second.done_now) == (1, local.total - 1)
    finally:
        ray.shutdown()
    a, b = ResultsStore(local.run_dir), ResultsStore(second.run_dir)
    ra, rb = a.completed(), b.completed()
    assert set(ra) == set(rb) and len(b.results_path.read_text().splitlines()) == len(rb)
    for k in ra:
        files_a = [(a.images_dir / f).read_bytes() for f in ra[k]["files"]]
        files_b = [(b.images_dir / f).read_bytes() for f in rb[k]["files"]]
        assert files_a == files_b
        assert ra[k]["verdicts"] == rb[k]["verdicts"]
    protocol = b.protocol()
    assert protocol.environment["ray_workers"] == "2"
    assert protocol.fingerprint() == a.protocol().fingerprint()  # how it ran is not what it ran


@pytest.mark.timeout(120)
def test_an_address_where_no_ray_head_answers_is_refused_not_waited_on():
    """``--ray 127.0.0.1:9`` waited forever; now: refused at once (closed port), or after the
    connection timeout (something listens but does not speak gRPC)."""
    import socket

    with pytest.raises(InputError, match=r"no Ray cluster answers at 127.0.0.1:9") as err:
        check_reachable("127.0.0.1:9", timeout=2)
    assert "ray start --head" in str(err.value)
    with socket.socket() as listener:  # accepts connections, says nothing
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(InputError, match=f"127.0.0.1:{port}"):
            check_reachable(f"127.0.0.1:{port}", timeout=1)
        with pytest.raises(InputError, match=f"ray://127.0.0.1:{port}"):
            check_reachable(f"ray://127.0.0.1:{port}", timeout=1)


@pytest.mark.timeout(60)
def test_a_grpc_server_passes_the_reachability_check():
    """Ray's GCS and client server are gRPC servers: their HTTP/2 greeting is the sign."""
    grpc = pytest.importorskip("grpc", reason="grpcio comes with the [ray] extra")
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        check_reachable(f"127.0.0.1:{port}", timeout=5)
        check_reachable(f"ray://127.0.0.1:{port}", timeout=5)
    finally:
        server.stop(0)
