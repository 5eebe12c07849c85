"""``vqe compress --method glvq`` end to end: trained, coded, lowered, scored on the golden model, and run
bit-exact on Verilator, the engine's nearest-prototype unit writing the class itself."""
from __future__ import annotations

import numpy as np
import pytest

import model.compress.lvq.method as lvq_method
from model.compress.pipeline import compress
from model.nets.inputs import load_inputs
from model.program.host import predicted_classes
from sim.run import run_program

#: Epochs of the test's GLVQ (the method's default is 20); one reaches about 0.76.
EPOCHS = 1
#: The int8 golden model's accuracy may fall this far below the float classifier's.
INT8_LOSS = 0.02


@pytest.fixture(scope="module")
def glvq():
    train = lvq_method.train
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lvq_method, "train", lambda *a, **k: train(*a, **k, epochs=EPOCHS))
        return compress("lenet300", "glvq", calibration=500, progress=False)


def test_glvq_program_on_the_golden_model(glvq):
    info, meta = glvq.meta["info"], glvq.meta
    assert info["float_accuracy"] > 0.7
    assert info["int8_accuracy"] >= info["float_accuracy"] - INT8_LOSS
    assert meta["input_shape"] == [784] and meta["outputs"][0]["class_step"] == "engine_class"
    assert [(m["kind"], m["in_features"], m["out_features"]) for m in meta["layers"]] == [("fc", 784, 64),
                                                                                          ("nearest", 64, 30)]
    assert meta["output_features"] == 1 and meta["engine"]["nearest_prototype"] is True
    assert info["lvq"]["nearest_prototype_unit"] is True


def test_glvq_bit_exact_on_verilator(glvq):
    x, labels, _ = load_inputs(glvq.meta, 3, 0, 1)
    r = run_program(glvq, x, labels, "verilator")
    assert r["bit_exact"] is True
    # vqe run's accuracy is the engine's output itself: the nearest prototype's label
    out = _golden(glvq, x)
    assert out.shape == (3, 1) and set(out[:, 0]) <= set(range(10))
    classes = predicted_classes(glvq.meta, out)
    assert np.array_equal(classes, out[:, 0])
    assert r["accuracy"] == pytest.approx(float((classes == labels).mean()))


def _golden(program, x):
    from model.golden.engine import GoldenEngine
    image, _, _ = program.dram_image(x)
    return GoldenEngine(program.config).run(image).outputs
