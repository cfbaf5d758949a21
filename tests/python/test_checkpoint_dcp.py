"""chute.checkpoint.StorageWriter / StorageReader with torch.distributed.checkpoint: two
ranks (gloo) save and load through moto and a local directory."""

import json
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

from object_store import create_s3_bucket, free_port, s3_options

RANK = textwrap.dedent("""
    import json, sys
    import torch, torch.distributed as dist, torch.distributed.checkpoint as dcp
    import chute.checkpoint
    url, options = sys.argv[1], json.loads(sys.argv[2]) or None
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    state = {"shared": torch.arange(10.0), f"rank{rank}": torch.full((300_000,), float(rank)),
             "step": 7, "names": ["a", "b"]}
    dcp.save(state, storage_writer=chute.checkpoint.StorageWriter(url, storage_options=options))
    loaded = {"shared": torch.zeros(10), f"rank{rank}": torch.zeros(300_000), "step": 0, "names": []}
    dcp.load(loaded, storage_reader=chute.checkpoint.StorageReader(url, storage_options=options,
                                                                   part_size="256KiB"))
    assert torch.equal(loaded["shared"], torch.arange(10.0)), loaded["shared"]
    assert bool((loaded[f"rank{rank}"] == rank).all()) and loaded["step"] == 7 and loaded["names"] == ["a", "b"]
    dist.destroy_process_group()
    print("ok")
""")


def _run_ranks(url, options):
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), WORLD_SIZE="2")
    ranks = [subprocess.Popen([sys.executable, "-c", RANK, url, json.dumps(options)], env=dict(env, RANK=str(r)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    for r in ranks:
        out, err = r.communicate(timeout=300)
        assert r.returncode == 0 and out.strip() == "ok", err[-3000:]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_two_ranks_save_and_load(where, tmp_path, request):
    if where == "local":
        url, options = str(tmp_path / "dcp"), None
        _run_ranks(url, options)
        files = sorted(os.listdir(url))
    else:
        import boto3

        server = request.getfixturevalue("s3_server")
        bucket = f"d-{uuid.uuid4().hex[:12]}"
        create_s3_bucket(server.endpoint, bucket)
        options = s3_options(server.endpoint)
        _run_ranks(f"s3://{bucket}/run/step-5", options)
        s3 = boto3.client("s3", endpoint_url=server.endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
        files = sorted(o["Key"].removeprefix("run/step-5/")
                       for o in s3.list_objects_v2(Bucket=bucket, Prefix="run/step-5/")["Contents"]
                       if not o["Key"].endswith("/"))
    assert files == [".metadata", "__0_0.distcp", "__1_0.distcp"]  # each rank wrote its own file
