"""Layer files: round trips, plain/PyTorch exports, and every malformed file refused."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from conv1d_cli.errors import ConfigError, DataFileError, OutputExistsError
from conv1d_cli.io.layerfile import CONFIG_KEY, save_layer
from conv1d_cli.layer import Conv1d, load_layer


def _config(path):
    with np.load(path, allow_pickle=False) as npz:
        return json.loads(str(npz[CONFIG_KEY]))


@pytest.mark.parametrize(
    "padding", [0, 3, "same", "valid", "causal", "full", (4, 1)], ids=lambda p: repr(p)
)
def test_layerfile_round_trip_keeps_everything(tmp_path, padding):
    layer = Conv1d(4, 6, 5, padding=padding, dilation=2, groups=2, padding_mode="reflect", seed=3)
    layer.sample_rate = 44100.0
    layer.description = "héllo ünïcode"
    path = tmp_path / "layer.npz"
    save_layer(layer, path)
    back = load_layer(path)
    np.testing.assert_array_equal(back.weight, layer.weight)
    np.testing.assert_array_equal(back.bias, layer.bias)
    assert back.weight.dtype == np.float32
    assert (back.stride, back.dilation, back.groups) == (1, 2, 2)
    assert back.padding == padding
    assert back.padding_mode == "reflect"
    assert back.sample_rate == 44100.0
    assert back.description == "héllo ünïcode"


def test_layerfile_round_trip_float64_no_bias_stride(tmp_path):
    layer = Conv1d(1, 2, 4, stride=3, bias=False, dtype="float64", seed=1)
    path = tmp_path / "l.npz"
    layer.save(path)
    back = Conv1d.load(path)
    assert back.bias is None and back.weight.dtype == np.float64 and back.stride == 3
    assert back.sample_rate is None and back.description == ""
    cfg = _config(path)
    assert cfg == {
        "format": "conv1d-layer",
        "version": 1,
        "stride": 3,
        "padding": 0,
        "dilation": 1,
        "groups": 1,
        "padding_mode": "zeros",
        "sample_rate": None,
        "description": "",
    }


def test_layerfile_binding_rate_round_trips_and_is_written_only_when_true(tmp_path):
    layer = Conv1d.from_weights(np.ones((2, 1, 4)), groups=2, padding="causal")
    layer.sample_rate, layer.sample_rate_binding = 48000, True
    save_layer(layer, tmp_path / "ir.npz")
    assert _config(tmp_path / "ir.npz")["sample_rate_binding"] is True
    back = load_layer(tmp_path / "ir.npz")
    assert back.sample_rate == 48000.0 and back.sample_rate_binding is True
    # An override relabels the recording; the rate stays binding.
    relabelled = load_layer(tmp_path / "ir.npz", sample_rate=44100)
    assert relabelled.sample_rate == 44100.0 and relabelled.sample_rate_binding is True
    layer.sample_rate_binding = False
    save_layer(layer, tmp_path / "lp.npz")
    assert "sample_rate_binding" not in _config(tmp_path / "lp.npz")
    assert load_layer(tmp_path / "lp.npz").sample_rate_binding is False


def test_layerfile_without_the_binding_field_loads_as_a_design_rate(tmp_path):
    # A config as every file written before the field existed holds it.
    cfg = {"format": "conv1d-layer", "version": 1, "stride": 1, "padding": 0, "dilation": 1,
           "groups": 1, "padding_mode": "zeros", "sample_rate": 8000.0}  # fmt: skip
    config = np.array(json.dumps(cfg))
    np.savez(tmp_path / "old.npz", weight=np.ones((1, 1, 3)), conv1d_config=config)
    layer = load_layer(tmp_path / "old.npz")
    assert layer.sample_rate == 8000.0 and layer.sample_rate_binding is False


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"sample_rate": 8000.0, "sample_rate_binding": "yes"},
         "sample_rate_binding must be true or false, got 'yes'"),
        ({"sample_rate": 8000.0, "sample_rate_binding": 1},
         "sample_rate_binding must be true or false, got 1"),
        ({"sample_rate": None, "sample_rate_binding": True},
         "sample_rate_binding is true but no sample_rate"),
        ({"sample_rate_binding": True}, "sample_rate_binding is true but no sample_rate"),
    ],
)  # fmt: skip
def test_layerfile_bad_binding_field_is_refused_naming_the_file(tmp_path, fields, message):
    path = tmp_path / "bad.npz"
    np.savez(path, weight=np.ones((1, 1, 3)), conv1d_config=np.array(json.dumps(fields)))
    with pytest.raises(DataFileError, match=message) as info:
        load_layer(path)
    assert str(path) in str(info.value)


def test_binding_needs_a_rate_on_the_layer_too():
    layer = Conv1d.from_weights(np.ones((1, 1, 3)))
    with pytest.raises(ConfigError, match="sample_rate_binding needs a sample_rate"):
        layer.sample_rate_binding = True
    layer.sample_rate, layer.sample_rate_binding = 8000, True
    with pytest.raises(ConfigError, match="sample_rate_binding needs a sample_rate"):
        layer.sample_rate = None


def test_layerfile_pair_padding_stored_as_json_list(tmp_path):
    layer = Conv1d.from_weights(np.ones((1, 1, 4)), padding=(2, 1))
    save_layer(layer, tmp_path / "l.npz")
    assert _config(tmp_path / "l.npz")["padding"] == [2, 1]


def test_layerfile_save_writes_exact_name_without_npz_suffix(tmp_path):
    save_layer(Conv1d(1, 1, 3, seed=0), tmp_path / "layer")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer"]
    assert load_layer(tmp_path / "layer").kernel_size == 3


def test_layerfile_save_refuses_existing_file_unless_overwrite(tmp_path):
    path = tmp_path / "l.npz"
    path.write_bytes(b"precious")
    with pytest.raises(OutputExistsError, match=r"already exists \(pass overwrite=True\)"):
        save_layer(Conv1d(1, 1, 3, seed=0), path)
    assert path.read_bytes() == b"precious"
    save_layer(Conv1d(1, 1, 3, seed=0), path, overwrite=True)
    assert load_layer(path).kernel_size == 3


def test_layerfile_save_failure_leaves_nothing(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(DataFileError, match="No space left"):
        save_layer(Conv1d(1, 1, 3, seed=0), tmp_path / "l.npz")
    assert list(tmp_path.iterdir()) == []


def test_layerfile_plain_npz_loads_with_torch_defaults(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, weight=np.ones((2, 3, 5), np.float32), bias=np.zeros(2, np.float32))
    layer = load_layer(path)
    assert (layer.stride, layer.padding, layer.dilation, layer.groups) == (1, 0, 1, 1)
    assert layer.padding_mode == "zeros" and layer.sample_rate is None
    assert layer.in_channels == 3 and layer.bias is not None


@pytest.mark.torch
def test_layerfile_torch_state_dict_export_matches_torch(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential()
    model.add_module("encoder", torch.nn.Sequential())
    model.encoder.add_module("conv", torch.nn.Conv1d(2, 3, 5, groups=1))
    model.encoder.add_module("norm", torch.nn.BatchNorm1d(3))
    path = tmp_path / "model.npz"
    np.savez(path, **{k: v.detach().numpy() for k, v in model.state_dict().items()})
    layer = load_layer(path, padding="same")
    x = np.random.default_rng(0).normal(size=(2, 40)).astype(np.float32)
    conv = model.encoder.conv
    expected = torch.nn.functional.conv1d(
        torch.from_numpy(x)[None], conv.weight, conv.bias, padding="same"
    )[0]
    np.testing.assert_allclose(layer(x), expected.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_layerfile_prefixed_keys_and_key_selection(tmp_path):
    path = tmp_path / "multi.npz"
    np.savez(
        path,
        **{
            "a.weight": np.ones((2, 1, 3)),
            "a.bias": np.zeros(2),
            "b.weight": np.ones((4, 2, 5)),
        },
    )
    with pytest.raises(DataFileError, match=r"several layers.*with key: 'a', 'b'") as e:
        load_layer(path)
    assert e.value.parameter == "key"  # the CLI names its --key option
    assert load_layer(path, key="a").bias is not None
    assert load_layer(path, key="b").weight.shape == (4, 2, 5)
    assert load_layer(path, key="b.weight").kernel_size == 5
    assert load_layer(path, key="b.").kernel_size == 5
    with pytest.raises(DataFileError, match=r"no weight for key 'c'.*'a', 'b'"):
        load_layer(path, key="c")


def test_layerfile_prefixed_single_conv_among_norm_weights_is_unambiguous(tmp_path):
    path = tmp_path / "sd.npz"
    np.savez(path, **{"encoder.conv.weight": np.ones((2, 1, 3)), "norm.weight": np.ones(2)})
    assert load_layer(path).weight.shape == (2, 1, 3)


def test_layerfile_overrides_replace_stored_values(tmp_path):
    layer = Conv1d(2, 2, 3, padding="same", seed=0)
    layer.sample_rate = 8000.0
    path = tmp_path / "l.npz"
    layer.save(path)
    back = load_layer(
        path,
        stride=2,
        padding=(1, 0),
        dilation=3,
        groups=2,
        padding_mode="circular",
        sample_rate=16000,
    )
    assert (back.stride, back.padding, back.dilation, back.groups) == (2, (1, 0), 3, 2)
    assert back.padding_mode == "circular" and back.sample_rate == 16000.0
    same = load_layer(path, stride=None, padding=None, sample_rate=None)
    assert same.padding == "same" and same.sample_rate == 8000.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"stride": 0}, "stride must be positive"),
        ({"padding_mode": "mirror"}, "padding_mode must be one of"),
        ({"groups": 3}, "divisible by groups"),
        ({"stride": 2, "padding": "same"}, "not supported for strided"),
        ({"sample_rate": -1}, "sample_rate must be a positive"),
    ],
)
def test_layerfile_bad_override_is_config_error(tmp_path, overrides, message):
    np.savez(tmp_path / "l.npz", weight=np.ones((2, 2, 3)))
    with pytest.raises(ConfigError, match=message):
        load_layer(tmp_path / "l.npz", **overrides)


def test_layerfile_unknown_override_is_type_error(tmp_path):
    with pytest.raises(TypeError, match="kernel_size"):
        load_layer(tmp_path / "x.npz", kernel_size=3)


def _write_bad(tmp_path, kind):
    path = tmp_path / f"{kind}.npz"
    good = tmp_path / "good.npz"
    save_layer(Conv1d(2, 4, 5, seed=1), good)
    raw = good.read_bytes()
    if kind == "missing":
        return path
    if kind == "directory":
        path.mkdir()
    elif kind == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif kind == "truncated-end":
        path.write_bytes(raw[:-30])
    elif kind == "not-zip":
        path.write_text("weight = [1, 2, 3]\n")
    elif kind == "empty-file":
        path.write_bytes(b"")
    elif kind == "npy":
        np.save(tmp_path / "w.npy", np.ones((1, 1, 3)))
        path = tmp_path / "w.npy"
    elif kind == "pickle":
        np.savez(path, weight=np.array([object(), 1], dtype=object))
    elif kind == "pickle-file":
        import pickle

        path.write_bytes(pickle.dumps({"weight": [1.0, 2.0]}))
    elif kind == "corrupt-entry":
        rng = np.random.default_rng(0)
        np.savez_compressed(path, weight=rng.normal(size=(4, 4, 300)))
        data = bytearray(path.read_bytes())
        data[200:260] = bytes(60)
        path.write_bytes(bytes(data))
    elif kind == "no-weight":
        np.savez(path, kernel=np.ones((1, 1, 3)))
    elif kind == "rank":
        np.savez(path, weight=np.ones((3, 3)))
    elif kind == "empty-dim":
        np.savez(path, weight=np.ones((1, 0, 3)))
    elif kind == "int":
        np.savez(path, weight=np.ones((1, 1, 3), np.int16))
    elif kind == "bool":
        np.savez(path, weight=np.ones((1, 1, 3), bool))
    elif kind == "complex":
        np.savez(path, weight=np.ones((1, 1, 3), np.complex64))
    elif kind == "nan":
        np.savez(path, weight=np.array([[[1.0, np.nan, 1.0]]]))
    elif kind == "inf-bias":
        np.savez(path, weight=np.ones((1, 1, 3)), bias=np.array([np.inf]))
    elif kind == "bias-length":
        np.savez(path, weight=np.ones((2, 1, 3)), bias=np.zeros(3))
    elif kind == "bias-int":
        np.savez(path, weight=np.ones((2, 1, 3)), bias=np.zeros(2, int))
    else:
        cfg = {
            "groups-divide": '{"groups": 3}',
            "padding-mode": '{"padding_mode": "mirror"}',
            "bad-json": "{stride: 1",
            "not-object": "[1, 2]",
            "unknown-field": '{"strides": 2}',
            "newer": '{"version": 2}',
            "bad-version": '{"version": "1"}',
            "other-format": '{"format": "keras"}',
            "stride-type": '{"stride": 1.5}',
            "stride-bool": '{"stride": true}',
            "padding-word": '{"padding": "middle"}',
            "padding-negative": '{"padding": [-1, 2]}',
            "padding-triple": '{"padding": [1, 2, 3]}',
            "same-strided": '{"padding": "same", "stride": 2}',
            "sample-rate": '{"sample_rate": 0}',
            "sample-rate-text": '{"sample_rate": "48k"}',
            "description": '{"description": 5}',
        }[kind]
        np.savez(path, weight=np.ones((4, 1, 3)), conv1d_config=np.array(cfg))
    return path


_BAD = {
    "missing": "no such file",
    "directory": "is a directory",
    "truncated": "cannot read layer file",
    "truncated-end": "cannot read layer file",
    "not-zip": r"not a layer file.*starts with b'weight'",
    "empty-file": "not a layer file",
    "npy": "single .npy array",
    "pickle": "pickled objects, which are never loaded",
    "pickle-file": "not a layer file",
    "corrupt-entry": "unreadable",
    "no-weight": r"no 'weight' entry \(found 'kernel'\)",
    "rank": r"must be 3-D .* got shape \(3, 3\)",
    "empty-dim": "no empty dimension",
    "int": "got integer dtype int16",
    "bool": "got boolean dtype",
    "complex": "got complex dtype complex64",
    "nan": r"1 non-finite value\(s\)",
    "inf-bias": r"bias holds 1 non-finite",
    "bias-length": r"bias must have shape \(2,\)",
    "bias-int": r"bias must have a real floating-point dtype \(float16/32/64;",
    "groups-divide": "groups=3 in the config does not divide the 4 output channels",
    "padding-mode": "padding_mode must be one of",
    "bad-json": "not valid JSON",
    "not-object": "must be a JSON object",
    "unknown-field": "unknown field.*'strides'",
    "newer": "format version 2 is newer",
    "bad-version": "version must be a positive integer",
    "other-format": "format must be 'conv1d-layer'",
    "stride-type": "stride must be an integer",
    "stride-bool": "stride must be an integer",
    "padding-word": "padding must be an integer, a \\[left, right\\] pair",
    "padding-negative": "padding.* must be >= 0",
    "padding-triple": "padding must be an integer or a",
    "same-strided": "contradicts the arrays.*not supported for strided",
    "sample-rate": "sample_rate must be a positive",
    "sample-rate-text": "sample_rate must be a positive number or null",
    "description": "description must be a string",
}


@pytest.mark.parametrize("kind", sorted(_BAD))
def test_layerfile_bad_file_raises_data_file_error_naming_file(tmp_path, kind):
    path = _write_bad(tmp_path, kind)
    with pytest.raises(DataFileError, match=_BAD[kind]) as info:
        load_layer(path)
    assert str(info.value).startswith(str(path))


def test_layerfile_never_unpickles(tmp_path, monkeypatch):
    path = _write_bad(tmp_path, "pickle")
    calls = []
    real = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: calls.append(k) or real(*a, **k))
    with pytest.raises(DataFileError):
        load_layer(path)
    assert calls and all(k.get("allow_pickle") is False for k in calls)


def test_layerfile_float16_weights_widen_to_float32(tmp_path):
    np.savez(tmp_path / "h.npz", weight=np.ones((1, 1, 3), np.float16))
    assert load_layer(tmp_path / "h.npz").weight.dtype == np.float32


@pytest.mark.parametrize(
    ("dtype", "kind"), [(np.int32, "integer"), (np.uint8, "unsigned integer"), (bool, "boolean")]
)
def test_layerfile_non_float_weight_message_says_what_is_accepted(tmp_path, dtype, kind):
    # float16 is accepted (widened): the message must not claim only float32/64 are.
    np.savez(tmp_path / "w.npz", weight=np.ones((1, 1, 3), dtype))
    with pytest.raises(DataFileError) as info:
        load_layer(tmp_path / "w.npz")
    assert str(info.value) == (
        f"{tmp_path / 'w.npz'}: weight must have a real floating-point dtype (float16/32/64; "
        f"float16 is read as float32), got {kind} dtype {np.dtype(dtype)}"
    )


def test_layerfile_float16_bias_widens_with_weight(tmp_path):
    np.savez(
        tmp_path / "h.npz",
        weight=np.ones((2, 1, 3), np.float16),
        bias=np.array([0.5, -1], np.float16),
    )
    layer = load_layer(tmp_path / "h.npz")
    assert layer.weight.dtype == layer.bias.dtype == np.float32
    assert layer.bias.tolist() == [0.5, -1.0]


def test_layerfile_is_plain_zip_without_pickles(tmp_path):
    save_layer(Conv1d(1, 1, 3, seed=0), tmp_path / "l.npz")
    with zipfile.ZipFile(tmp_path / "l.npz") as z:
        assert sorted(z.namelist()) == ["bias.npy", "conv1d_config.npy", "weight.npy"]


@pytest.mark.parametrize("module", ["io.coefficients", "layer", "io.layerfile"])
def test_layerfile_doctest_examples_remove_their_temp_dirs(module):
    # The examples run on every test run: tempfile.mkdtemp() in them left a directory
    # behind each time; TemporaryDirectory() plus cleanup() at the end does not.
    import importlib
    import inspect

    source = inspect.getsource(importlib.import_module(f"conv1d_cli.{module}"))
    assert "mkdtemp(" not in source
    assert source.count("tempfile.TemporaryDirectory()") == source.count("tmp.cleanup()")


def test_layerfile_rate_above_audio_limit_still_loads(tmp_path):
    # The audio cap of shapes.check_sample_rate is checked where audio is written
    # (apply); a layer file saved with any positive finite rate must load back.
    layer = Conv1d.from_weights(np.ones((1, 1, 2)))
    layer.sample_rate = 1e12
    save_layer(layer, tmp_path / "l.npz")
    assert load_layer(tmp_path / "l.npz").sample_rate == 1e12


def test_load_layer_from_a_pipe(tmp_path):
    """-w <(...) or a FIFO: the archive is read once into memory (zip needs to seek)."""
    import os
    import threading

    source = tmp_path / "l.npz"
    save_layer(Conv1d.from_weights(np.ones((2, 1, 3)), groups=2, padding="same"), source)
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as f:
            f.write(source.read_bytes())

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    layer = load_layer(fifo)
    writer.join(timeout=10)
    assert layer.weight.shape == (2, 1, 3) and layer.groups == 2 and layer.padding == "same"
