"""Run under `torchrun`: each rank iterates its training stream for two epochs, as `ifcn-train` does (one
collective per step, so unequal step counts would hang), and writes the (shard, item) numbers of every crop it got
to `OUT-RANK.json`. Used by `tests/test_train_ddp.py` to count that every item is seen once per epoch."""

from __future__ import annotations

import argparse
import json

import torch

from ifcn.shards.check import check_shards
from ifcn.shards.manifest import resolve_shards
from ifcn.trainer.core.device import all_reduce_sum
from ifcn.trainer.data import AugmentConfig, TrainStream, make_loader, steps_per_epoch
from ifcn.trainer.distributed import init_distributed, shutdown


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", action="append", required=True, help="One per case.")
    parser.add_argument("--workers", action="append", type=int, required=True, help="Loader workers, one per case.")
    parser.add_argument("--batch-size", type=int, default=3)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    ctx = init_distributed("cpu")
    cases = []
    for spec, workers in zip(args.shards, args.workers, strict=True):
        infos = check_shards(resolve_shards(spec), "interactive")
        steps = steps_per_epoch(sum(i.items for i in infos), ctx.world_size, args.batch_size)
        stream = TrainStream(infos, "interactive", AugmentConfig(32), args.batch_size, steps, seed=0,
                             world_size=ctx.world_size, rank=ctx.rank, workers=workers, shuffle_items=6,
                             chunk_items=4)
        epochs = []
        for epoch in range(2):
            stream.set_epoch(epoch)
            seen: list[list[int]] = []
            for batch in make_loader(stream):
                seen += batch["item"].tolist()
                all_reduce_sum(torch.ones(1))
            epochs.append(seen)
        cases.append({"items": [i.items for i in infos], "steps": steps, "epochs": epochs})
    with open(f"{args.out}-{ctx.rank}.json", "w") as f:
        json.dump(cases, f)
    shutdown()


if __name__ == "__main__":
    main()
