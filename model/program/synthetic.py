"""Random integer networks, for testing the engine against the golden model.

They exercise what real networks may not: shapes that do not divide by the
lane count, small and odd codebooks, extreme requantization parameters, biases
that make accumulators wrap.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from model.codecs.layers.vq import make_compact
from model.contract.fixedpoint import ACT_MAX, ACT_MIN, MULT_BITS, SHIFT_MAX
from model.contract.ints import ceil_div


def random_pvq_vectors(rng: np.random.Generator, shape: tuple, lanes: int, k: int) -> np.ndarray:
    """Uniformly random points of the pyramid P(lanes, k): an array of ``shape + (lanes,)``."""
    from model.codecs.pvq import pvq_count, pvq_decode_many
    n = int(np.prod(shape))
    index = rng.integers(0, pvq_count(lanes, k), size=n, dtype=np.uint64)
    return pvq_decode_many(index, lanes, k).reshape(*shape, lanes)


def random_activation(rng: np.random.Generator, n_out: int) -> dict:
    """A layer's random activation: none, ReLU, leaky ReLU (per-row slopes) or the floor (per-row floors)."""
    from model.contract.fixedpoint import ACT_PARAM_MAX, ACT_PARAM_MIN
    kind = rng.integers(0, 4)
    if kind == 0:
        return {"relu": False, "floor": False, "act": np.zeros(n_out, dtype=np.int64)}
    if kind == 1:
        return {"relu": True, "floor": False, "act": np.zeros(n_out, dtype=np.int64)}
    if kind == 2:
        return {"relu": True, "floor": False, "act": rng.integers(ACT_PARAM_MIN, ACT_PARAM_MAX + 1, size=n_out)}
    return {"relu": False, "floor": True, "act": rng.integers(ACT_MIN, ACT_MAX + 1, size=n_out)}


def random_sparse_layer(rng: np.random.Generator, n_in: int, n_out: int, k_max: int, relu: bool):
    """A random pruned, weight-shared layer (``mode="huffman"``) as ``model.compress.deepcomp.recipe`` lowers one.

    ``k`` scalar int8 centroids with centroid 0 the zero, a dense index matrix
    with a random density (sometimes very low, so long gaps need fillers, and
    sometimes rows with no weight at all).
    """
    k = int(rng.integers(1, k_max + 1))
    centroids = np.zeros((k, 1), dtype=np.int64)
    if k > 1:
        values = rng.integers(ACT_MIN, ACT_MAX, size=k - 1)
        centroids[1:, 0] = values + (values >= 0)       # non-zero: only centroid 0 is the zero
    density = float(rng.choice([0.02, 0.1, 0.3, 0.7, 1.0]))
    keep = rng.random((n_out, n_in)) < density
    indices = np.where(keep, rng.integers(1, max(k, 2), size=(n_out, n_in)), 0) if k > 1 \
        else np.zeros((n_out, n_in), dtype=np.int64)
    return SimpleNamespace(
        mode="huffman", in_features=n_in, out_features=n_out, codebook=centroids, indices=indices,
        bias=rng.integers(-(1 << 20), 1 << 20, size=n_out),
        # One requantization per sparse layer (model.contract.layout: it is stored once).
        mult=np.full(n_out, rng.integers(0, 1 << MULT_BITS)),
        shift=np.full(n_out, rng.integers(10, 22)), relu=relu)


def random_coded_rows(rng: np.random.Generator, n_out: int) -> dict:
    """Random bias, requantization and activation of ``n_out`` dense rows (outputs mostly in range)."""
    return dict(bias=rng.integers(-(1 << 20), 1 << 20, size=n_out), mult=rng.integers(0, 1 << MULT_BITS, size=n_out),
                shift=rng.integers(12, 25, size=n_out), **random_activation(rng, n_out))


def random_rvq_layer(rng: np.random.Generator, lanes: int, n_in: int, n_out: int, codebook_depth: int,
                     stages_max: int):
    """A random residual-VQ layer (``mode="rvq"``): 1 to ``stages_max`` stages of random int8 codebooks whose
    sections together fit ``codebook_depth`` ROM entries, random stage indices."""
    stages = int(rng.integers(1, stages_max + 1))
    size = int(rng.integers(1, max(1, codebook_depth // stages) + 1))
    s = ceil_div(n_in, lanes)
    return SimpleNamespace(mode="rvq", in_features=n_in, out_features=n_out, section_size=size,
                           codebook=rng.integers(ACT_MIN, ACT_MAX + 1, size=(stages * size, lanes), dtype=np.int64),
                           indices=rng.integers(0, size, size=(n_out, s, stages)), **random_coded_rows(rng, n_out))


def random_pq_layer(rng: np.random.Generator, lanes: int, n_in: int, n_out: int, codebook_depth: int):
    """A random product-VQ layer (``mode="pq"``): a random power-of-two block width, block codebooks whose
    sections together fit ``codebook_depth`` ROM entries (one block at most as large as the depth)."""
    s = ceil_div(n_in, lanes)
    width = 1 << int(rng.integers(0, 8))
    blocks = ceil_div(s, width)
    while blocks > codebook_depth:
        width, blocks = width * 2, ceil_div(s, width * 2)
    size = int(rng.integers(1, codebook_depth // blocks + 1))
    return SimpleNamespace(mode="pq", in_features=n_in, out_features=n_out, section_size=size, block_subvectors=width,
                           codebook=rng.integers(ACT_MIN, ACT_MAX + 1, size=(blocks * size, lanes), dtype=np.int64),
                           indices=rng.integers(0, size, size=(n_out, s)), **random_coded_rows(rng, n_out))


def random_e8p_layer(rng: np.random.Generator, n_in: int, n_out: int):
    """A random E8P lattice layer (``mode="e8p"``, 8 lanes): random 16-bit codeword indices."""
    from model.codecs.e8p import E8P_CODEWORDS, e8p_codewords
    return SimpleNamespace(mode="e8p", in_features=n_in, out_features=n_out, codebook=e8p_codewords(),
                           indices=rng.integers(0, E8P_CODEWORDS, size=(n_out, ceil_div(n_in, 8))),
                           **random_coded_rows(rng, n_out))


def random_lowered(rng: np.random.Generator, lanes: int, shapes: list[int], codebook_depth: int,
                   codebook_sizes: list[int] | None = None, name: str = "random", pvq_k_max: int = 0,
                   huffman_k_max: int = 0, rvq_stages_max: int = 0, pq: bool = False, lattice: bool = False):
    """A random lowered network with layer widths ``shapes`` (input first).

    With ``pvq_k_max``, about half the layers are PVQ-coded with a random K.
    With ``huffman_k_max``, about half the layers (of those left) are sparse
    Huffman-coded layers with up to ``huffman_k_max`` centroids.  With
    ``rvq_stages_max`` or ``pq``, each layer is first drawn as residual VQ (1
    to ``rvq_stages_max`` stages) or product VQ with one chance in three each; with ``lattice`` (8
    lanes), an E8P lattice layer with the third chance.
    Every layer's ROM sections fit ``codebook_depth`` entries.
    Duck-types :class:`model.compress.lowering.LoweredNetwork`.
    """
    layers = []
    for i, (n_in, n_out) in enumerate(zip(shapes[:-1], shapes[1:])):
        if rvq_stages_max or pq or lattice:
            draw = int(rng.integers(0, 3))
            if draw == 2 and lattice:
                layers.append(random_e8p_layer(rng, n_in, n_out))
                continue
            if draw == 0 and rvq_stages_max:
                layers.append(random_rvq_layer(rng, lanes, n_in, n_out, codebook_depth, rvq_stages_max))
                continue
            if draw == 1 and pq:
                layers.append(random_pq_layer(rng, lanes, n_in, n_out, codebook_depth))
                continue
        if huffman_k_max and rng.integers(0, 2):
            layers.append(random_sparse_layer(rng, n_in, n_out, huffman_k_max,
                                              bool(rng.integers(0, 2)) if i < len(shapes) - 2 else False))
            continue
        if pvq_k_max and rng.integers(0, 2):
            k = int(rng.integers(1, pvq_k_max + 1))
            s = ceil_div(n_in, lanes)
            layers.append(SimpleNamespace(
                mode="pvq", in_features=n_in, out_features=n_out, pvq_k=k,
                pvq_y=random_pvq_vectors(rng, (n_out, s), lanes, k),
                pvq_scale=rng.integers(0, 256, size=(n_out, s)),
                codebook=np.zeros((0, lanes), dtype=np.int64), indices=None,
                bias=rng.integers(-(1 << 20), 1 << 20, size=n_out),
                mult=rng.integers(0, 1 << MULT_BITS, size=n_out),
                shift=rng.integers(16, 28, size=n_out),
                **random_activation(rng, n_out)))
            continue
        k = codebook_sizes[i] if codebook_sizes else int(rng.integers(1, codebook_depth + 1))
        s = ceil_div(n_in, lanes)
        # Shifts around the "useful" range keep outputs from saturating every time.
        shift = rng.integers(max(0, 12), min(SHIFT_MAX, 24) + 1, size=n_out)
        layer = SimpleNamespace(
            in_features=n_in, out_features=n_out,
            codebook=rng.integers(ACT_MIN, ACT_MAX + 1, size=(k, lanes), dtype=np.int64),
            indices=rng.integers(0, k, size=(n_out, s)),
            bias=rng.integers(-(1 << 20), 1 << 20, size=n_out),
            mult=rng.integers(0, 1 << MULT_BITS, size=n_out),
            shift=shift,
            **random_activation(rng, n_out),
        )
        if rng.integers(0, 3) == 0:   # a third of the VQ layers in compact rows, with one activation
            layer.act = np.full(n_out, layer.act[0])
            make_compact(layer)
        layers.append(layer)
    return SimpleNamespace(name=name, method="random", lanes=lanes, input_scale=1 / 127,
                           output_scale=1.0, layers=layers, info={})


def random_nearest_layer(rng: np.random.Generator, lanes: int, n_in: int, n_prototypes: int, codebook_depth: int):
    """A random nearest-prototype layer (``kind="nearest"``, VQ rows): random int8 codewords, prototype rows of
    random indices with random labels 0..``ACT_MAX``; with one chance in two, some rows repeat earlier ones
    under other labels, so equal distances (ties to the lowest row) happen.  ``n_in`` a multiple of ``lanes``."""
    k = int(rng.integers(1, codebook_depth + 1))
    indices = rng.integers(0, k, size=(n_prototypes, n_in // lanes))
    if rng.integers(0, 2) and n_prototypes > 1:
        copies = rng.integers(1, n_prototypes, size=int(rng.integers(1, n_prototypes)))
        indices[copies] = indices[rng.integers(0, copies)]   # each copy repeats a lower row
    zeros = np.zeros(n_prototypes, dtype=np.int64)
    return SimpleNamespace(kind="nearest", in_features=n_in, out_features=n_prototypes,
                           codebook=rng.integers(ACT_MIN, ACT_MAX + 1, size=(k, lanes), dtype=np.int64),
                           indices=indices, bias=rng.integers(0, ACT_MAX + 1, size=n_prototypes),
                           mult=zeros, shift=zeros, act=zeros, relu=False, floor=False)


def random_nearest_lowered(rng: np.random.Generator, lanes: int, codebook_depth: int, max_width: int = 40,
                           **modes):
    """A random network ending in a nearest-prototype layer: 0 to 2 FC layers (:func:`random_lowered` with
    ``modes``, e.g. ``pvq_k_max``; the last one's width a multiple of ``lanes``), then 1 to 40 prototypes.
    Returns the network and its input size."""
    widths = [int(rng.integers(1, max_width))] + [int(rng.integers(1, max_width)) for _ in range(rng.integers(0, 3))]
    widths[-1] = lanes * max(1, widths[-1] // lanes)
    net = random_lowered(rng, lanes, widths, codebook_depth, **modes) if len(widths) > 1 else \
        SimpleNamespace(name="random", method="random", lanes=lanes, input_scale=1 / 127, output_scale=1.0,
                        layers=[], info={})
    net.layers.append(random_nearest_layer(rng, lanes, widths[-1], int(rng.integers(1, 41)), codebook_depth))
    return net, widths[0]


def random_avgpool(rng: np.random.Generator, groups: int, h: int, w: int, kh: int, kw: int, align: int):
    """A random average-pooling layer of a ``kh x kw`` kernel over an ``h x w`` map of ``groups`` lane-word
    groups: random stride and padding (windows over padding and past the map's end), requantization and
    activation.  Returns the layer and its output map's height and width."""
    from model.contract.window import Window
    sy, sx = int(rng.integers(1, kh + 1)), int(rng.integers(1, kw + 1))
    pt, pl = int(rng.integers(0, kh)), int(rng.integers(0, kw))
    oh, ow = -(-(h + pt) // sy), -(-(w + pl) // sx)     # every window starts inside or on the padding
    # mult / 2**shift around 1 / taps, sometimes far off, so outputs are mostly in range but saturate too.
    shift = int(rng.integers(12, 20)) + (kh * kw - 1).bit_length()
    act = random_activation(rng, 1)
    return SimpleNamespace(kind="avgpool", window=Window(groups, w, h, ow, oh, kw, kh, sx, sy, pl, pt),
                           in_features=kh * kw * groups * align, out_features=groups * align,
                           mult=int(rng.integers(0, 1 << MULT_BITS)), shift=min(shift, SHIFT_MAX),
                           relu=act["relu"], floor=act["floor"], act=int(act["act"][0])), oh, ow


def random_add(rng: np.random.Generator, features: int, save: bool = False):
    """A random residual add (``ADD``) of two vectors of ``features`` values: random requantization
    (mult / 2**shift around 1, sometimes far off, so sums mostly fit int8 but saturate too) and
    activation; ``save`` writes its output to the skip buffer too (the next block's skip)."""
    act = random_activation(rng, 1)
    return SimpleNamespace(kind="add", in_features=features, out_features=features,
                           mult=int(rng.integers(0, 1 << MULT_BITS)), shift=int(rng.integers(14, 18)),
                           relu=act["relu"], floor=act["floor"], act=int(act["act"][0]), save=save)


#: Most layers with rows (and so codebooks) a `random_residual_lowered` network has: the saved layer, two
#: blocks of three, the output layer.
RESIDUAL_MAX_ROW_LAYERS = 8


def random_residual_lowered(rng: np.random.Generator, lanes: int, max_width: int, codebook_depth: int,
                            pvq_k_max: int = 0, huffman_k_max: int = 0, name: str = "random-residual", **modes):
    """A random fully-connected network of residual blocks: a layer whose output is saved (``FLAG_SAVE``),
    one or two blocks of 1 to 3 layers back to its width, each closed by an ``ADD`` (the first saved again
    when a second block follows), then an output layer.  Widths below ``max_width``, any lane count;
    ``modes`` (``rvq_stages_max``, ``pq``) as :func:`random_lowered` draws them."""
    width = int(rng.integers(1, max_width))
    n_in, n_out = int(rng.integers(1, max_width)), int(rng.integers(1, max_width))

    def chain(shapes):
        return random_lowered(rng, lanes, shapes, codebook_depth, pvq_k_max=pvq_k_max,
                              huffman_k_max=huffman_k_max, **modes).layers

    layers = chain([n_in, width])
    layers[-1].save = True
    blocks = int(rng.integers(1, 3))
    for block in range(blocks):
        inner = [int(rng.integers(1, max_width)) for _ in range(int(rng.integers(0, 3)))]
        layers += chain([width, *inner, width])
        layers.append(random_add(rng, width, save=block < blocks - 1))
    layers += chain([width, n_out])
    return SimpleNamespace(name=name, method="random", lanes=lanes, input_scale=1 / 127, output_scale=1.0,
                           layers=layers, info={})


def random_windowed_lowered(rng: np.random.Generator, lanes: int, codebook_depth: int, pvq_k_max: int = 0,
                            name: str = "random-conv", residual: bool = False, **modes):
    """A random convolution, pooling (max or average) and fully-connected network (HWC maps, channels padded).

    Random map sides, channels, kernels, strides and pads (padding taps and
    windows partly outside the map included); each convolution VQ- or, with
    ``pvq_k_max``, PVQ-coded (``modes``: ``rvq_stages_max``, ``pq``, as
    :func:`random_lowered` draws them).  With ``residual``, a residual block follows
    the first convolution: it is saved, a "same" convolution (stride 1, its
    kernel's padding) of its channels follows, then an ``ADD``.  Returns the
    lowered network (duck-typing :class:`model.compress.lowering.LoweredNetwork`)
    and its input map size.
    """
    from model.contract.layout import vector_align
    from model.contract.window import Window
    align = vector_align(lanes)
    groups = int(rng.integers(1, 3))
    h, w = int(rng.integers(1, 7)), int(rng.integers(2, 8))
    layers = []

    def conv(groups, h, w, c_out, relu):
        kh, kw = int(rng.integers(1, min(h, 3) + 1)), int(rng.integers(1, min(w, 3) + 1))
        sy, sx, pt, pl = (int(v) for v in (rng.integers(1, 3), rng.integers(1, 3), rng.integers(0, kh),
                                           rng.integers(0, kw)))
        oh, ow = (h + 2 * pt - kh) // sy + 1, (w + 2 * pl - kw) // sx + 1
        win = Window(groups, w, h, ow, oh, kw, kh, sx, sy, pl, pt)
        n_in = kh * kw * groups * align
        layer = random_lowered(rng, lanes, [n_in, c_out], codebook_depth, pvq_k_max=pvq_k_max, **modes).layers[0]
        if relu:    # the pooling layer after it sees what a ReLU leaves
            layer.relu, layer.floor = True, False
        layer.kind, layer.window = "conv", win
        return layer, oh, ow

    c1 = int(rng.integers(1, 2 * align + 1))
    layer, h1, w1 = conv(groups, h, w, c1, True)
    layers.append(layer)
    g1 = ceil_div(c1, align)
    if residual:
        layer.save = True
        k = int(rng.choice([1, 3]))
        block = random_lowered(rng, lanes, [k * k * g1 * align, c1], codebook_depth, pvq_k_max=pvq_k_max).layers[0]
        block.kind, block.window = "conv", Window(g1, w1, h1, w1, h1, k, k, 1, 1, k // 2, k // 2)
        layers += [block, random_add(rng, h1 * w1 * g1 * align)]
        layers[-1].relu, layers[-1].floor = True, False   # the pooling layer after it sees what a ReLU leaves
    kh, kw = int(rng.integers(1, min(h1, 2) + 1)), int(rng.integers(1, min(w1, 3) + 1))
    ph, pw = -(-h1 // kh), -(-w1 // kw)    # ceil mode: the last windows may hang over the map
    if rng.integers(0, 2):
        layers.append(SimpleNamespace(kind="maxpool", window=Window(g1, w1, h1, pw, ph, kw, kh, kw, kh),
                                      in_features=kh * kw * g1 * align, out_features=g1 * align, relu=False))
    else:
        pool, ph, pw = random_avgpool(rng, g1, h1, w1, kh, kw, align)
        layers.append(pool)
    c2 = int(rng.integers(1, 2 * align + 1))
    layer, h2, w2 = conv(g1, ph, pw, c2, bool(rng.integers(0, 2)))
    layers.append(layer)
    n_flat = h2 * w2 * ceil_div(c2, align) * align
    layers += random_lowered(rng, lanes, [n_flat, int(rng.integers(1, 12))], codebook_depth).layers
    lowered = SimpleNamespace(name=name, method="random", lanes=lanes, input_scale=1 / 127, output_scale=1.0,
                              layers=layers, info={})
    return lowered, h * w * groups * align
