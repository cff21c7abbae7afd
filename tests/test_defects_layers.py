"""Layers from one exported model: overrides in a chain, init from a state_dict key,
``Conv1d.from_torch``, and ``torch.save`` files given as layers."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from conv1d_cli.cli import cli
from conv1d_cli.core import conv1d
from conv1d_cli.errors import ConfigError, DataFileError, ShapeError
from conv1d_cli.io.layerfile import save_layer
from conv1d_cli.layer import Conv1d, load_layer

ROOT = Path(__file__).resolve().parent.parent
OVERRIDES = ["--stride", "2", "--padding", "4"]


def invoke(*args: object):
    result = CliRunner().invoke(cli, [*map(str, args)])
    # Whatever happens, never a traceback: only SystemExit (exit codes) may escape.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    return result


def error_line(result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.stderr)
    assert result.stdout == ""
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture
def model(tmp_path):
    """``numpy.savez(**state_dict)`` of encoder Conv1d(2, 4, 9) + decoder Conv1d(4, 2, 3)."""
    rng = np.random.default_rng(7)
    state = {
        "encoder.conv.weight": rng.standard_normal((4, 2, 9)).astype(np.float32),
        "encoder.conv.bias": rng.standard_normal(4).astype(np.float32),
        "decoder.conv.weight": rng.standard_normal((2, 4, 3)).astype(np.float32),
        "decoder.conv.bias": rng.standard_normal(2).astype(np.float32),
    }
    path = tmp_path / "model.npz"
    np.savez(path, **state)
    return path, state


@pytest.fixture
def signal_npy(tmp_path):
    x = np.random.default_rng(3).standard_normal((2, 1000)).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x)
    return path, x


def expected_chain(state, x):
    """What torch gives: encoder stride 2 padding 4, decoder padding 1."""
    h = conv1d(
        x.astype(np.float64),
        state["encoder.conv.weight"].astype(np.float64),
        state["encoder.conv.bias"].astype(np.float64),
        stride=2,
        padding=4,
    )
    return conv1d(
        h,
        state["decoder.conv.weight"].astype(np.float64),
        state["decoder.conv.bias"].astype(np.float64),
        padding=1,
    )


# -- 1. overrides with several -w are refused ---------------------------------------------


def test_apply_refuses_overrides_for_a_chain_and_shows_the_fix(tmp_path, model, signal_npy):
    path, _ = model
    x_path, _ = signal_npy
    out = tmp_path / "y.npy"
    enc, dec = f"{path}:encoder.conv", f"{path}:decoder.conv"
    result = invoke("apply", "-w", enc, "-w", dec, *OVERRIDES, x_path, "-o", out)
    line = error_line(result, 2)
    assert "--stride, --padding can override only a single -w layer file" in line
    assert f"conv1d init layer1.npz --weight {enc} --stride 2 --padding 4" in line
    assert f"-w layer1.npz -w {dec}" in line
    assert not out.exists()


@pytest.mark.parametrize(
    "option",
    [
        ["--stride", "2"],
        ["--padding", "same"],
        ["--padding", "1,2"],
        ["--dilation", "2"],
        ["--groups", "1"],
        ["--padding-mode", "reflect"],
    ],
)
def test_apply_refuses_each_override_with_two_layers(tmp_path, model, signal_npy, option):
    path, _ = model
    x_path, _ = signal_npy
    result = invoke(
        "apply", "-w", path, "--key", "encoder.conv", "-w", f"{path}:decoder.conv", *option,
        x_path, "-o", tmp_path / "y.npy",
    )  # fmt: skip
    line = error_line(result, 2)
    assert f"{option[0]} can override only a single -w layer file" in line
    # --key is shown as the layer it picks, so the suggested command runs as typed.
    assert f"--weight {path}:encoder.conv {option[0]} {option[1]}" in line


def test_apply_and_shape_share_the_refusal(model):
    path, _ = model
    layers = ["-w", f"{path}:encoder.conv", "-w", f"{path}:decoder.conv"]
    applied = error_line(invoke("apply", *layers, *OVERRIDES, "x.npy", "-o", "y.npy"), 2)
    shaped = error_line(invoke("shape", *layers, *OVERRIDES, "-L", 1000), 2)
    assert applied == shaped


def test_chain_of_init_files_matches_torch(tmp_path, model, signal_npy):
    """The fix the message shows gives what PyTorch gives, (2, 500)."""
    path, state = model
    x_path, x = signal_npy
    enc, dec, out = tmp_path / "enc.npz", tmp_path / "dec.npz", tmp_path / "y.npy"
    assert invoke("init", enc, "--weight", f"{path}:encoder.conv", *OVERRIDES).exit_code == 0
    result = invoke("init", dec, "--weight", path, "--key", "decoder.conv", "--padding", 1)
    assert result.exit_code == 0, result.stderr
    result = invoke("apply", "-w", enc, "-w", dec, x_path, "-o", out)
    assert result.exit_code == 0, result.stderr
    y = np.load(out)
    assert y.shape == (2, 500)
    np.testing.assert_allclose(y, expected_chain(state, x), rtol=1e-4, atol=1e-4)


# -- 2. init --weight MODEL.npz:KEY ------------------------------------------------------


@pytest.mark.parametrize("how", ["colon", "key"])
def test_init_weight_from_state_dict_key(tmp_path, model, how):
    path, state = model
    target = tmp_path / "enc.npz"
    weight = [f"{path}:encoder.conv"] if how == "colon" else [path, "--key", "encoder.conv"]
    result = invoke("init", target, "--weight", *weight, *OVERRIDES)
    assert result.exit_code == 0, result.stderr
    layer = load_layer(target)  # self-describing: no key, no overrides needed
    assert (layer.stride, layer.padding, layer.dilation, layer.groups) == (2, 4, 1, 1)
    assert layer.dtype == np.float32
    np.testing.assert_array_equal(layer.weight, state["encoder.conv.weight"])
    np.testing.assert_array_equal(layer.bias, state["encoder.conv.bias"])
    assert "encoder.conv" in layer.description


def test_init_weight_npz_bias_options(tmp_path, model):
    path, state = model
    enc = f"{path}:encoder.conv"
    assert invoke("init", tmp_path / "a.npz", "--weight", enc, "--no-bias").exit_code == 0
    assert load_layer(tmp_path / "a.npz").bias is None
    bias = tmp_path / "b.npy"
    np.save(bias, np.arange(4.0))
    assert invoke("init", tmp_path / "b.npz", "--weight", enc, "--bias-file", bias).exit_code == 0
    np.testing.assert_array_equal(load_layer(tmp_path / "b.npz").bias, np.arange(4.0))
    assert load_layer(tmp_path / "b.npz").dtype == np.float32  # the weight's dtype is kept
    np.save(bias, np.arange(3.0))
    line = error_line(invoke("init", tmp_path / "c.npz", "--weight", enc, "--bias-file", bias), 1)
    assert str(bias) in line and "(4,)" in line and "(3,)" in line
    # No bias in the file: --bias adds zeros, the default keeps none.
    np.savez(tmp_path / "nobias.npz", **{"conv.weight": state["decoder.conv.weight"]})
    assert invoke("init", tmp_path / "d.npz", "--weight", tmp_path / "nobias.npz").exit_code == 0
    assert load_layer(tmp_path / "d.npz").bias is None
    result = invoke("init", tmp_path / "e.npz", "--weight", tmp_path / "nobias.npz", "--bias")
    assert result.exit_code == 0, result.stderr
    np.testing.assert_array_equal(load_layer(tmp_path / "e.npz").bias, np.zeros(2))


def test_init_weight_npz_dtype_and_layer_file_settings(tmp_path):
    # A conv1d layer file keeps its own hyperparameters unless an option is typed.
    source = tmp_path / "src.npz"
    save_layer(Conv1d(2, 2, 5, padding="same", padding_mode="reflect", groups=2, seed=0), source)
    result = invoke("init", tmp_path / "a.npz", "--weight", source, "--dtype", "float64")
    assert result.exit_code == 0, result.stderr
    copy = load_layer(tmp_path / "a.npz")
    assert (copy.padding, copy.padding_mode, copy.groups, copy.dtype) == (
        "same", "reflect", 2, np.float64,
    )  # fmt: skip
    assert invoke("init", tmp_path / "b.npz", "--weight", source, "--padding", 0).exit_code == 0
    assert load_layer(tmp_path / "b.npz").padding_mode == "reflect"
    assert load_layer(tmp_path / "b.npz").padding == 0


def test_init_weight_npz_ambiguous_lists_candidates(tmp_path, model):
    path, _ = model
    line = error_line(invoke("init", tmp_path / "a.npz", "--weight", path), 1)
    assert str(path) in line and "'decoder.conv'" in line and "'encoder.conv'" in line
    line = error_line(invoke("init", tmp_path / "a.npz", "--weight", path, "--key", "mid"), 1)
    assert "no weight for key 'mid'" in line
    assert not (tmp_path / "a.npz").exists()


def test_init_weight_npz_invocation_errors(tmp_path, model):
    path, _ = model
    enc = f"{path}:encoder.conv"

    def init_error(*args: object) -> str:
        return error_line(invoke("init", tmp_path / "a.npz", *args), 2)

    assert "--channels" in init_error("--weight", enc, "--channels", 2)
    line = init_error("--weight", enc, "--stride", 2, "--padding", "same")
    assert "same" in line and "stride" in line
    line = init_error("--key", "encoder.conv", "--kernel-size", 3)
    assert "--key cannot be used with a random layer" in line
    np.save(tmp_path / "w.npy", np.ones((1, 1, 3)))
    line = init_error("--weight", tmp_path / "w.npy", "--key", "k")
    assert "--key applies to an .npz --weight" in line
    # The output may not replace the model it is read from (through FILE:KEY too).
    line = error_line(invoke("init", path, "--weight", enc, "--force"), 2)
    assert str(path) in line


def test_init_help_documents_the_npz_weight():
    result = invoke("init", "--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "--weight MODEL.npz:KEY" in text and "bias from KEY.bias" in text
    assert "--no-bias drops it" in text


# -- 3. Conv1d.from_torch ------------------------------------------------------------------


def _namespace(**overrides):
    base = {
        "weight": np.ones((2, 1, 3), np.float32),
        "bias": np.array([0.5, -0.5], np.float32),
        "stride": (1,),
        "padding": (1,),
        "dilation": (1,),
        "groups": 2,
        "padding_mode": "zeros",
    }
    return SimpleNamespace(**(base | overrides))


class _FakeTensor:
    """Enough of a torch Parameter: .numpy() refuses until detached."""

    def __init__(self, array, detached=False):
        self.array, self.detached = array, detached

    def detach(self):
        return _FakeTensor(self.array, detached=True)

    def cpu(self):
        return self

    def numpy(self):
        if not self.detached:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad")
        return self.array


def test_from_torch_duck_typed_without_torch(tmp_path):
    conv = _namespace(weight=_FakeTensor(np.full((2, 1, 3), 2.0, np.float32)), padding="same")
    layer = Conv1d.from_torch(conv)
    assert (layer.stride, layer.padding, layer.dilation, layer.groups) == (1, "same", 1, 2)
    assert layer.dtype == np.float32 and layer.bias.dtype == np.float32
    x = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]], np.float32)
    np.testing.assert_array_equal(layer(x), [[6.5, 12.5, 10.5], [1.5, 1.5, 1.5]])
    # The one-line export round-trips through a layer file.
    layer.save(tmp_path / "l.npz")
    again = load_layer(tmp_path / "l.npz")
    assert again.padding == "same" and again.groups == 2
    # A copy: changing the module afterwards does not change the layer.
    weight = np.ones((2, 1, 3), np.float32)
    layer = Conv1d.from_torch(_namespace(weight=weight, bias=None, stride=2, padding=0))
    weight[:] = 9
    assert layer.bias is None and layer.stride == 2 and (layer.weight == 1).all()
    assert Conv1d.from_torch(_namespace(weight=weight.astype(np.float16))).dtype == np.float32


@pytest.mark.parametrize(
    ("changes", "error", "needles"),
    [
        ({"stride": None}, ConfigError, ["no 'stride'", "torch.nn.Conv1d"]),
        ({"weight": np.ones((2, 3))}, ShapeError, ["3-D", "(2, 3)"]),
        ({"weight": np.ones((2, 1, 3, 3))}, ShapeError, ["3-D", "(2, 1, 3, 3)"]),
        ({"bias": np.ones(3)}, ShapeError, ["bias must have shape (2,)", "got shape (3,)"]),
        ({"stride": (2, 2)}, ConfigError, ["stride must be one integer", "(2, 2)"]),
        ({"padding_mode": "mirror"}, ConfigError, ["padding_mode", "mirror"]),
        ({"groups": 3}, ConfigError, ["groups"]),
        ({"weight": np.array([["a"]])}, ShapeError, ["weight", "real numeric"]),
    ],
)
def test_from_torch_bad_objects(changes, error, needles):
    conv = _namespace(**changes)
    if changes.get("stride", 0) is None:
        del conv.stride
    with pytest.raises(error) as info:
        Conv1d.from_torch(conv)
    message = str(info.value)
    assert "from_torch" in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_from_torch_missing_attributes_are_all_named():
    with pytest.raises(ConfigError, match="no 'weight', 'bias', 'stride'"):
        Conv1d.from_torch(object())


@pytest.mark.torch
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"stride": 2, "padding": 3},
        {"padding": "same", "dilation": 2},
        {"padding": "same", "padding_mode": "reflect"},
        {"padding": "valid", "bias": False},
        {"groups": 2, "padding": 2, "padding_mode": "circular"},
        {"stride": 3, "padding": 4, "padding_mode": "replicate", "dilation": 2},
        {"groups": 4, "kernel_size": 4, "padding": "same", "padding_mode": "circular"},
    ],
)
def test_from_torch_matches_torch_forward(tmp_path, kwargs):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    kwargs = {"kernel_size": 5} | kwargs
    conv = torch.nn.Conv1d(4, 8, **kwargs)
    x = torch.randn(3, 4, 40)
    with torch.no_grad():
        expected = conv(x).numpy()
    layer = Conv1d.from_torch(conv)  # a Parameter that requires grad: detached here
    assert layer.dtype == np.float32
    np.testing.assert_allclose(layer(x.numpy()), expected, rtol=1e-5, atol=1e-5)
    # The one-line export: the layer file alone reproduces the module.
    layer.save(tmp_path / "conv.npz")
    again = load_layer(tmp_path / "conv.npz")
    np.testing.assert_allclose(again(x.numpy()), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.torch
def test_from_torch_float64_module_stays_float64():
    torch = pytest.importorskip("torch")
    conv = torch.nn.Conv1d(1, 1, 3).double()
    assert Conv1d.from_torch(conv).dtype == np.float64


@pytest.mark.torch
def test_from_torch_refuses_conv2d():
    torch = pytest.importorskip("torch")
    with pytest.raises(ShapeError, match="3-D"):
        Conv1d.from_torch(torch.nn.Conv2d(1, 1, 3))


# -- 4. torch.save files given as layers --------------------------------------------------


def _hand_made_torch_zip(path: Path) -> Path:
    """The layout of torch.save: NAME/data.pkl, NAME/data/0, NAME/version."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/data.pkl", pickle.dumps({"weight": "never unpickled"}))
        archive.writestr("model/data/0", b"\0" * 16)
        archive.writestr("model/version", "3\n")
    return path


def _commands(path: Path, tmp_path: Path) -> list[list[object]]:
    return [
        ["apply", "-w", path, tmp_path / "x.npy", "-o", tmp_path / "y.npy"],
        ["init", tmp_path / "out.npz", "--weight", path],
        ["inspect", path],
        ["shape", "-w", path, "-L", 100],
    ]


@pytest.mark.parametrize("name", ["model.pt", "model.pth", "weights.npz", "noextension"])
def test_torch_zip_is_refused_with_how_to_export(tmp_path, name):
    path = _hand_made_torch_zip(tmp_path / name)
    np.save(tmp_path / "x.npy", np.zeros((1, 10)))
    for command in _commands(path, tmp_path):
        line = error_line(invoke(*command), 1)
        assert str(path) in line and "torch.save" in line, (command, line)
        assert "numpy.savez" in line and "Conv1d.from_torch" in line
        assert "data/0" not in line  # not a list of the zip's members
    assert not (tmp_path / "y.npy").exists() and not (tmp_path / "out.npz").exists()


def test_old_style_pickle_is_refused(tmp_path):
    path = tmp_path / "legacy.pt"
    path.write_bytes(pickle.dumps({"weight": [1.0]}, protocol=2))
    plain = tmp_path / "legacy"  # no extension: still found by its content
    plain.write_bytes(path.read_bytes())
    for candidate in (path, plain):
        for command in _commands(candidate, tmp_path)[1:]:
            line = error_line(invoke(*command), 1)
            assert "pickle" in line and "numpy.savez" in line, (command, line)
    with pytest.raises(DataFileError, match="never loads"):
        load_layer(path)


@pytest.mark.torch
@pytest.mark.parametrize("legacy", [False, True])
def test_real_torch_save_file_is_refused(tmp_path, legacy):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save(
        torch.nn.Conv1d(1, 1, 3).state_dict(), path, _use_new_zipfile_serialization=not legacy
    )
    for command in _commands(path, tmp_path)[1:]:
        line = error_line(invoke(*command), 1)
        assert "torch.save" in line and "numpy.savez" in line, (command, line)


def test_npz_with_a_pkl_named_entry_is_still_a_layer(tmp_path):
    # Only a data.pkl member marks torch.save; an npz entry named 'data.pkl' is 'data.pkl.npy'.
    path = tmp_path / "l.npz"
    np.savez(path, **{"weight": np.ones((1, 1, 3)), "data.pkl": np.zeros(1)})
    assert load_layer(path).kernel_size == 3


# -- 5. README -----------------------------------------------------------------------------


def test_readme_documents_init_from_a_model_key_from_torch_and_the_refusal():
    text = " ".join((ROOT / "README.md").read_text().split())
    assert "conv1d init enc.npz --weight model.npz:encoder.conv --stride 2 --padding 4" in text
    assert "Conv1d.from_torch(" in text
    assert "override only a single `-w`" in text
    assert "torch.save" in text


@pytest.mark.parametrize(
    "args",
    [
        ["shape", "-w", "/dev/zero", "--length", "10"],
        ["inspect", "/dev/zero"],
    ],
)
def test_an_endless_pipe_given_as_a_layer_is_refused_from_its_first_bytes(args):
    # Pipes given as layers are read whole (zip needs to seek): the first bytes are
    # sniffed before anything else is read, so /dev/zero cannot fill the memory.
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "conv1d_cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode in (1, 2), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("Error:") == 1
