"""``--method kmeans``: the registered method, an engine program whose ROM holds each layer's codebook."""
from __future__ import annotations

import time

from model.compress.kmeans.network import DEFAULT_K, finetune_distilled, to_torch, vq_compress
from model.compress.lowering import codebook_depth_for, lower_vq
from model.compress.registry import EngineJob, register_method
from model.program.writer import build_program


@register_method("kmeans", "k-means VQ per layer (lanes-dimensional sub-vectors), codewords fine-tuned",
                 options=("codebook_size", "finetune_epochs", "pes"))
def kmeans_program(job: EngineJob):
    """k-means-code the lowered network, lower it to int8 and lay it out (each layer's codebook in the ROM)."""
    o = job.options
    k = DEFAULT_K if o.codebook_size is None else o.codebook_size
    t0 = time.perf_counter()
    train = job.data.train
    kwargs = {} if o.finetune_epochs is None else {"finetune_epochs": o.finetune_epochs}
    labelled = train.labels is not None
    if not labelled:    # trained quantization by distillation instead, below
        kwargs["finetune_epochs"] = 0
    vq = vq_compress(job.task.net, dim=o.lanes, k=k, seed=o.seed, name=job.network,
                     train_data=(train.inputs, train.labels), progress=o.progress, **kwargs)
    if not labelled and o.finetune_epochs != 0:
        vq = finetune_distilled(vq, job.task.net, train, seed=o.seed, progress=o.progress)
    seconds = time.perf_counter() - t0
    lowered = lower_vq(vq, job.calib, o.lanes)
    lowered.name, lowered.method = job.network, "kmeans"
    return build_program(lowered, codebook_depth=codebook_depth_for(k), info=dict(
        job.info, vq_float_quality=job.coded_quality(to_torch(vq)), compress_seconds=seconds, codebook_size=k))
