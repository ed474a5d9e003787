import json
import shutil

import pytest
import torch

from bidsapp.audio import weights as W
from bidsapp.errors import BadDataError, MissingInputError, NotAvailableError


def test_untrained_file_and_sidecar(untrained_weights):
    meta = json.loads(W.sidecar_path(untrained_weights).read_text())
    assert meta["status"] == "untrained"
    assert meta["sha256"] == W.file_sha256(untrained_weights)
    assert meta["sample_rate"] == 16000
    assert len(meta["tags"]) == 50 == len(set(meta["tags"]))
    assert meta["tags"][:3] == ["guitar", "classical", "slow"]
    assert [layer["name"] for layer in meta["layers"]][::9] == ["conv1", "fc"]
    assert meta["training"]["seed"] == W.UNTRAINED_SEED
    assert meta["metrics"] is None
    assert W.weights_info(untrained_weights) == {
        "path": str(untrained_weights),
        "name": "resnet18_mtt50_untrained",
        "status": "untrained",
        "sha256": meta["sha256"],
        "training_data": None,
    }
    assert oct(untrained_weights.stat().st_mode & 0o777) == "0o644"


def test_trained_sidecar_records_its_training_data(tmp_path):
    state = W.untrained_state()
    default = W.save_weights(state, tmp_path / "a" / "w.safetensors", status="trained")
    assert W.weights_info(default)["training_data"].startswith("MagnaTagATune")
    rendered = W.save_weights(state, tmp_path / "b" / "w.safetensors", status="trained",
                              training_data={"dataset": "rendered corpus"})
    assert W.weights_info(rendered)["training_data"] == "rendered corpus"


def test_untrained_generation_is_deterministic_and_idempotent(untrained_weights, tmp_path):
    again = W.init_untrained(tmp_path)
    assert W.file_sha256(again) == W.file_sha256(untrained_weights)
    stamp = again.stat().st_mtime_ns
    W.init_untrained(tmp_path)
    assert again.stat().st_mtime_ns == stamp
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]


def test_init_untrained_replaces_a_corrupt_file(weights_copy):
    good = W.file_sha256(weights_copy)
    with open(weights_copy, "r+b") as stream:
        stream.seek(10_000)
        stream.write(b"\x00" * 64)
    W.init_untrained(weights_copy.parent)
    assert W.file_sha256(weights_copy) == good


def test_load_model_gives_the_stored_weights(untrained_weights):
    model = W.load_model(untrained_weights, device="cpu")
    state = W.load_state_dict(untrained_weights)
    assert not model.training
    torch.testing.assert_close(
        model.conv3_1.shortcut[0].weight, state["conv3_1.shortcut.0.weight"]
    )
    assert W.load_model(untrained_weights, device="cpu") is model


def test_corrupt_weights_are_bad_data(weights_copy):
    with open(weights_copy, "r+b") as stream:
        stream.seek(5_000_000)
        stream.write(b"\xff" * 16)
    with pytest.raises(BadDataError) as info:
        W.load_model(weights_copy, device="cpu")
    assert info.value.exit_code == 65
    assert str(weights_copy.name) in str(info.value)
    assert "init-untrained" in info.value.fix


def test_default_weights_path_prefers_trained(tmp_path, monkeypatch, weights_copy):
    monkeypatch.setenv(W.MODELS_DIR_ENV, str(tmp_path / "empty"))
    with pytest.raises(MissingInputError) as info:
        W.default_weights_path()
    assert "init-untrained" in info.value.fix
    monkeypatch.setenv(W.MODELS_DIR_ENV, str(weights_copy.parent))
    assert W.default_weights_path() == weights_copy
    assert W.weights_info()["status"] == "untrained"
    (weights_copy.parent / W.TRAINED_FILENAME).write_bytes(b"")
    assert W.default_weights_path().name == W.TRAINED_FILENAME


def test_command_line(untrained_weights, tmp_path, capsys):
    shutil.copy(untrained_weights, tmp_path / untrained_weights.name)
    shutil.copy(
        W.sidecar_path(untrained_weights), tmp_path / W.sidecar_path(untrained_weights).name
    )
    assert W.main(["init-untrained", str(tmp_path)]) == 0
    assert W.file_sha256(untrained_weights) in capsys.readouterr().out
    (tmp_path / "blocked").write_text("")
    assert W.main(["init-untrained", str(tmp_path / "blocked" / "models")]) == 73


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_gpu_is_not_available():
    # Exit 69 everywhere (training CLI, participant level), not 64: the command was right.
    assert W.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(NotAvailableError, match="--nv") as caught:
        W.resolve_device("cuda")
    assert caught.value.exit_code == 69
