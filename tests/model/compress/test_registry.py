"""The compression-method registry: lookup, option checks, and a new method needing no other change."""
import pytest

from model.compress import registry
from model.compress.pipeline import compress, compress_any, result_kind
from model.compress.registry import (CompressError, CompressOptions, check_options, get_method, method_names,
                                     register_method)


def test_the_methods_and_what_they_write():
    assert set(method_names("engine")) == {"kmeans", "pvq", "universal", "deepcomp", "lvq1", "glvq", "gmlvq",
                                           "pq", "rq", "lr2vq", "lattice"}
    assert set(method_names("model")) == {"pq", "rq", "lr2vq", "universal"}
    assert result_kind("kmeans", "lenet300") == "engine"
    assert result_kind("universal", "lenet5") == "engine"
    assert result_kind("universal", "minilm") == "model"
    # rq and pq: engine programs for the networks the engine runs, model level for the rest (and for an
    # option only the model-level fit takes)
    for method in ("rq", "pq"):
        assert result_kind(method, "lenet300") == result_kind(method, "lenet5") == "engine"
        assert result_kind(method, "minilm") == "model"
        assert result_kind(method, "lenet300", CompressOptions(quick=True)) == "model"
    assert result_kind("rq", "lenet300", CompressOptions(stages=3, codebook_size=16)) == "engine"


def test_unknown_method_names_the_choices():
    with pytest.raises(CompressError, match="unknown method 'nosuch'; choose one of .*kmeans.*lr2vq"):
        get_method("nosuch")


@pytest.mark.parametrize("method,kind,options,message", [
    ("kmeans", "engine", dict(stages=3), "--stages applies to --method rq only"),
    ("kmeans", "engine", dict(rank=2), "--rank applies to --method lr2vq only"),
    ("pvq", "engine", dict(codebook_size=64), "--codebook-size applies to --method glvq, gmlvq, kmeans, lr2vq, lvq1, pq, rq"),
    ("deepcomp", "engine", dict(bits_per_weight=2.0), "--bits-per-weight applies to --method pvq only"),
    ("pq", "model", dict(finetune_epochs=1), "--finetune-epochs applies to --method kmeans, pvq only"),
    ("universal", "engine", dict(quick=True), "--quick-eval applies to"),
])
def test_options_a_method_does_not_take_are_refused(method, kind, options, message):
    with pytest.raises(CompressError, match=message):
        check_options(get_method(method), kind, CompressOptions(**options))


def test_common_options_and_defaults_pass():
    for name in method_names():
        m = get_method(name)
        for kind in m.fns:
            if name == "universal" and kind == "engine":
                continue  # its own check loads the codebook: tested below
            check_options(m, kind, CompressOptions(lanes=8, seed=3, calibration=10, progress=False))


def test_checks_run_before_any_data_is_loaded():
    with pytest.raises(CompressError, match="recipe for lenet300 only, not 'lenet5'"):
        compress("lenet5", "deepcomp")
    with pytest.raises(CompressError, match="recipe for lenet300 only, not 'lenet5'"):
        compress("lenet5", "glvq")
    with pytest.raises(CompressError, match="dimension 4 but the engine has 8 lanes"):
        compress_any("lenet300", "universal", CompressOptions(lanes=8))
    with pytest.raises(CompressError, match="--lanes must be one of 1, 2, 4, 8, 16, got 3"):
        compress_any("lenet300", "kmeans", CompressOptions(lanes=3))
    with pytest.raises(CompressError, match="--stages must be 1..4 for an engine program"):
        compress("lenet300", "rq", stages=5)
    with pytest.raises(CompressError, match="unexpected keyword"):
        compress("lenet300", "kmeans", colour="blue")


def test_registering_is_checked(monkeypatch):
    monkeypatch.setattr(registry, "METHODS", dict(registry.METHODS))
    with pytest.raises(ValueError, match="kind must be"):
        register_method("x", "x", kind="hardware")
    with pytest.raises(ValueError, match="unknown options"):
        register_method("x", "x", options=("colour",))
    with pytest.raises(ValueError, match="already has its engine function"):
        register_method("kmeans", "again")(lambda job: None)


def test_a_new_method_is_one_registration(monkeypatch):
    monkeypatch.setattr(registry, "METHODS", dict(registry.METHODS))
    seen = []

    @register_method("median", "every weight set to its layer's median (a test method)", kind="model",
                     options=("quick",), describe=lambda r: f" of {r['layers']} layers")
    def median(network, options):
        seen.append((network, options.quick))
        return {"network": network, "layers": 3}

    assert "median" in method_names("model")
    assert compress_any("minilm", "median", CompressOptions(quick=True)) == {"network": "minilm", "layers": 3}
    assert seen == [("minilm", True)]
    assert get_method("median").describe({"layers": 3}) == " of 3 layers"
    with pytest.raises(CompressError, match="--stages applies to --method rq only"):
        compress_any("minilm", "median", CompressOptions(stages=2))
