"""The partition of a user's graph between engine and host (model/nets/graph/partition.py): maximal engine chains,
every lowering rule inside a chain (a residual block included), the host's graph in float, rebuilt from records."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from model.nets.graph.partition import Chain, HostPart, host_graph
from model.nets.user import load_model

from user_models import SHAPE, export


class SoftmaxInTheMiddle(nn.Module):
    """A residual block, a softmax over the features (the host), then Linear layers; a final sigmoid."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem, self.conv = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(256, 16), nn.Linear(16, 3)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(self.conv(x) + x)
        x = torch.softmax(torch.flatten(x, 1), dim=1)
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(x))))


@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
def test_chains_host_parts_and_the_host_graph(tmp_path, fmt):
    model = SoftmaxInTheMiddle().eval()
    user = load_model(export(model, tmp_path / f"mid.{fmt}"))
    plan = user.plan(4)
    kinds = [type(s) for s in plan.segments]
    assert kinds == [Chain, HostPart, Chain, HostPart], [s.name for s in plan.segments]
    first, _, second, _ = plan.segments
    # The residual block lowers inside the first chain: its stem saves the skip, an ADD adds it back.
    assert [type(m).__name__ for m in first.net][1:] == ["EngineConv", "ReLU", "EngineSave", "EngineConv",
                                                         "EngineAdd", "ReLU"]
    # The chain ends on the flattened map (CHW), which the host reads back from the engine's HWC vector through
    # its index: a permutation.
    assert first.output_shape == (256,) and sorted(first.output_index) == list(range(256))
    assert not np.array_equal(first.output_index, np.arange(256))
    assert second.output_index is None and second.output_shape == (3,)
    assert any("oftmax" in op for op in plan.segments[1].ops) and any("igmoid" in op for op in plan.segments[3].ops)
    x = np.random.default_rng(1).uniform(0, 1, (5, *SHAPE)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    # The host's graph in float, each chain lowered, is the model.
    np.testing.assert_allclose(plan.float_net()(torch.from_numpy(x)).numpy(), ref, atol=1e-5)
    # Rebuilt from what a program records, with the chains' calls: the same.
    records = [dict(c.record(), kind="engine", name=c.name) for c in plan.chains]
    rebuilt = host_graph(user.graph, records)
    calls = {c.name: (lambda t, c=c: torch.from_numpy(plan.host.run(x, capture=(c.nodes[-1],))[1][c.nodes[-1]]))
             for c in plan.chains}
    out, captured = rebuilt.run(x, calls, capture=(first.input,))
    np.testing.assert_allclose(out, ref, atol=1e-6)
    np.testing.assert_array_equal(captured[first.input], x)
