"""The golden model's convolution and pooling against PyTorch's, on random windowed programs.

The reference here shares nothing with the golden model but the lowered
layers: PyTorch's conv2d / max_pool2d / avg_pool2d on NCHW maps, the contract's
requantization, and the HWC packing of the maps done by hand.
"""
import numpy as np
import pytest
import torch

from model.codecs.layers.base import layer_act
from model.codecs.vectors import random_vectors
from model.contract.fixedpoint import requantize, wrap_acc
from model.contract.layout import vector_align
from model.golden.engine import GoldenEngine
from model.program.synthetic import random_windowed_lowered
from model.program.writer import build_program


@pytest.mark.parametrize("seed", range(24))
def test_windowed_golden_matches_torch(seed):
    rng=np.random.default_rng(seed)
    lanes=int(rng.choice([1,2,4,8]))
    low, n_in = random_windowed_lowered(rng, lanes, 16, pvq_k_max=0)
    prog = build_program(low, codebook_depth=16, config_max_features=4096)
    assert prog.config.windows
    x = random_vectors(rng, 3, n_in)
    image, oa, ow = prog.dram_image(x)
    g = GoldenEngine(prog.config).run(image)
    # independent reference with torch conv on the lowered layers
    h = torch.tensor(x.astype(np.int64))
    align=vector_align(lanes)
    for L in low.layers:
        if getattr(L,"kind","fc")=="fc":
            W = torch.tensor(L.codebook[L.indices].reshape(L.out_features,-1)[:, :L.in_features].astype(np.int64))
            acc = h.reshape(len(h),-1) @ W.T + torch.tensor(np.asarray(L.bias))
            h = torch.tensor(requantize(wrap_acc(acc.numpy()), np.asarray(L.mult)[None], np.asarray(L.shift)[None], L.relu,
                                        layer_act(L)[None], getattr(L, "floor", False)).astype(np.int64))
            continue
        win=L.window; C=win.channels(lanes)
        m = h.reshape(len(h), win.in_height, win.in_width, C).permute(0,3,1,2).double()
        if L.kind=="maxpool":
            pb = win.out_height*win.stride_y - win.in_height; pr = win.out_width*win.stride_x - win.in_width
            mp = torch.nn.functional.pad(m, (0, max(pr,0), 0, max(pb,0)), value=-1e9)
            o = torch.nn.functional.max_pool2d(mp, (win.kernel_h, win.kernel_w), (win.stride_y, win.stride_x))[:, :, :win.out_height, :win.out_width]
            h = o.permute(0,2,3,1).reshape(len(h),-1).long()
            continue
        if L.kind=="avgpool":
            # Sums over zero padding (the last windows may hang past the map), then the layer's requantization.
            mp = torch.nn.functional.pad(m, (win.pad_left, 50, win.pad_top, 50))
            o = torch.nn.functional.avg_pool2d(mp, (win.kernel_h, win.kernel_w), (win.stride_y, win.stride_x))
            sums = (o[:, :, :win.out_height, :win.out_width] * win.taps()).round().long()
            q = requantize(sums.permute(0,2,3,1).numpy(), L.mult, L.shift, L.relu, L.act, L.floor)
            h = torch.tensor(q.reshape(len(h),-1).astype(np.int64))
            continue
        W = L.codebook[L.indices].reshape(L.out_features,-1)[:, :L.in_features].astype(np.float64)
        W = torch.tensor(W).reshape(L.out_features, win.kernel_h, win.kernel_w, C).permute(0,3,1,2)
        mp = torch.nn.functional.pad(m, (win.pad_left, 50, win.pad_top, 50))
        o = torch.nn.functional.conv2d(mp, W, stride=(win.stride_y, win.stride_x))[:, :, :win.out_height, :win.out_width]
        acc = o.permute(0,2,3,1).long().numpy() + np.asarray(L.bias)
        q = requantize(wrap_acc(acc), np.asarray(L.mult), np.asarray(L.shift), L.relu, layer_act(L),
                       getattr(L, "floor", False))
        cp = -(-L.out_features//align)*align
        full = np.zeros(q.shape[:3]+(cp,),dtype=np.int64); full[..., :L.out_features]=q
        h = torch.tensor(full.reshape(len(h),-1))
    assert np.array_equal(g.outputs, h.numpy().astype(np.int8))
