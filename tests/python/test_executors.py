"""Where optimize and map run: a worker process that dies is reported with its inputs (no
hang), and on a Ray cluster of two nodes (started here on 127.0.0.1) both give the same
bytes as a run on this machine."""

import os
import sys
import uuid

import numpy as np
import pytest

import chute
from object_store import create_s3_bucket, s3_options


def _sample(i):
    return {"i": i, "x": np.full(100 + 37 * (i % 13), i % 251, dtype=np.uint8), "name": f"sample {i}"}


def _dies_on_17(i):
    if i == 17:
        os.kill(os.getpid(), 9)
    return {"i": i}


def _files(path):
    return {name: open(os.path.join(path, name), "rb").read() for name in sorted(os.listdir(path))}


def test_a_killed_worker_is_reported_with_its_inputs(tmp_path):
    with pytest.raises(chute.OptimizeError, match=r"stopped on inputs\[16:18\]: its worker process was killed by "
                                                  r"signal 9 .*resume=True"):
        chute.optimize(_dies_on_17, range(40), str(tmp_path / "ds"), num_parts=20, num_workers=2, progress=False)

    def write(i, staging):
        _dies_on_17(i)

    with pytest.raises(chute.MapError, match=r"stopped on inputs\[17\] = 17: its worker process was killed"):
        chute.map(write, range(40), str(tmp_path / "files"), num_workers=2, progress=False)


def _cannot_start():
    raise RuntimeError("no storage here")


def test_a_worker_that_fails_to_start_is_reported():
    from chute.executors import JobLost, ProcessExecutor

    with pytest.raises(JobLost, match=r"its worker failed to start:(.|\n)*RuntimeError: no storage here"):
        list(ProcessExecutor(2).run(_cannot_start, (), str, [1, 2, 3]))


def test_ray_is_an_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'chute\[ray\]'"):
        chute.optimize(_sample, range(4), str(tmp_path / "ds"), executor="ray", progress=False)
    with pytest.raises(ImportError, match=r"pip install 'chute\[ray\]'"):
        chute.RayExecutor()


@pytest.fixture(scope="module")
def ray_cluster():
    # Ray picks the address of a network interface for its nodes unless told that this is
    # a single-machine cluster: everything stays on 127.0.0.1.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    yield ray
    ray.shutdown()
    cluster.shutdown()


def _noted(marks):
    def sample(i):
        import ray

        open(os.path.join(marks, ray.get_runtime_context().get_node_id()), "a").close()
        return _sample(i)

    return sample


def test_optimize_on_ray_gives_the_same_bytes(ray_cluster, tmp_path, s3_server):
    settings = dict(chunk_bytes="3KB", compression="zstd", block_bytes="1KB", num_parts=6, progress=False)
    local = chute.optimize(_sample, range(300), str(tmp_path / "local"), num_workers=2, **settings)
    marks = tmp_path / "nodes"
    marks.mkdir()
    on_ray = chute.optimize(_noted(str(marks)), range(300), str(tmp_path / "ray"), executor="ray", **settings)
    assert len(os.listdir(marks)) == 2  # both nodes ran parts
    assert _files(on_ray) == _files(local) and len(_files(local)) > 12

    bucket = f"ray-{uuid.uuid4().hex[:12]}"
    create_s3_bucket(s3_server.endpoint, bucket)
    options = s3_options(s3_server.endpoint)
    url = chute.optimize(_sample, range(300), f"s3://{bucket}/ds", executor=chute.RayExecutor(num_workers=2),
                         storage_options=options, **settings)
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    # Arrow's S3 client leaves an empty "ds/" directory marker when it deletes an object.
    stored = {o["Key"].removeprefix("ds/"): s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
              for o in s3.list_objects_v2(Bucket=bucket, Prefix="ds/")["Contents"] if not o["Key"].endswith("/")}
    assert stored == _files(local)
    ds = chute.StreamingDataset(url, storage_options=options, cache_dir=str(tmp_path / "cache"))
    assert [s["i"] for s in ds] == list(range(300))


def test_failures_on_ray_name_the_input(ray_cluster, tmp_path):
    def fails_on_7(i):
        if i == 7:
            raise ValueError("bad input")
        return {"i": i}

    with pytest.raises(chute.OptimizeError, match=r"fn failed on inputs\[7\] = 7: ValueError: bad input"):
        chute.optimize(fails_on_7, range(20), str(tmp_path / "ds"), executor="ray", progress=False)


def test_map_on_ray(ray_cluster, tmp_path):
    def write(i, staging):
        with open(os.path.join(staging, f"{i}.txt"), "w") as f:
            f.write(f"input {i}")

    out = chute.map(write, range(30), str(tmp_path / "out"), executor="ray", progress=False)
    assert sorted(n for n in os.listdir(out) if n.endswith(".txt")) == sorted(f"{i}.txt" for i in range(30))
    assert open(os.path.join(out, "7.txt")).read() == "input 7"
