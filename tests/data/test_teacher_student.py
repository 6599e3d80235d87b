import pytest
import torch

from genmeasures.data import load_dataset
from genmeasures.errors import OptionError
from tests.data.helpers import assert_error


def test_shapes_and_determinism():
    a = load_dataset("teacher-student:n=200,d=8,num_classes=3,hidden=5")
    b = load_dataset("teacher-student", n=200, d=8, num_classes=3, hidden=5)
    assert a.inputs.shape == (200, 8) and a.inputs.dtype == torch.float32
    assert a.num_classes == 3 and a.targets.min() >= 0 and a.targets.max() < 3
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert a.fingerprint() == b.fingerprint()
    assert a.spec == "teacher-student:d=8,hidden=5,n=200,num_classes=3,split=train"
    # the teacher uses every class on a default-size task
    assert torch.bincount(load_dataset("teacher-student").targets, minlength=4).min() > 50


def test_inputs_are_standard_normal():
    x = load_dataset("teacher-student:n=4000,d=4").inputs
    assert abs(float(x.mean())) < 0.05
    assert abs(float(x.std()) - 1.0) < 0.05


def test_test_split_and_data_seed_draw_new_inputs():
    train = load_dataset("teacher-student:n=100")
    test = load_dataset("teacher-student:n=100,split=test")
    other = load_dataset("teacher-student:n=100,data_seed=1")
    assert not torch.equal(train.inputs, test.inputs)
    assert not torch.equal(train.inputs, other.inputs)
    assert not torch.equal(test.inputs, other.inputs)
    assert train.fingerprint() != test.fingerprint()


def test_source_and_target_tasks_are_related():
    source = load_dataset("teacher-student:n=2000")
    assert source.fingerprint() == load_dataset("teacher-student:n=2000,shift=0.0").fingerprint()
    target = load_dataset("teacher-student:n=2000,shift=0.5")
    far = load_dataset("teacher-student:n=2000,shift=3.0")
    assert torch.equal(source.inputs, target.inputs)
    agree = (source.targets == target.targets).float().mean().item()
    agree_far = (source.targets == far.targets).float().mean().item()
    assert 0.45 < agree < 1.0
    assert agree_far < agree
    other_teacher = load_dataset("teacher-student:n=2000,teacher_seed=1")
    assert (source.targets == other_teacher.targets).float().mean().item() < agree


def test_label_noise():
    clean = load_dataset("teacher-student:n=2000")
    noisy = load_dataset("teacher-student:n=2000,label_noise=0.5")
    agree = (clean.targets == noisy.targets).float().mean().item()
    assert 0.5 < agree < 0.75  # half kept, a quarter of the rest agree by chance


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("teacher-student:num_classes=1", "num_classes must be >= 2, got 1"),
        ("teacher-student:n=0", "n must be >= 1, got 0"),
        ("teacher-student:split=val", "split must be one of train|test, got 'val'"),
        ("teacher-student:shift=-1", "shift must be >= 0, got -1"),
        ("teacher-student:label_noise=2", "label_noise must be in [0, 1], got 2"),
        ("teacher-student:width=3", "'width'"),
    ],
)
def test_bad_options(spec, fragment):
    with pytest.raises(OptionError) as excinfo:
        load_dataset(spec)
    assert_error(excinfo, fragment, "teacher-student")
