import json

import pytest
import torch
from safetensors.torch import save_file

from bidsapp.audio import weightfile as W
from bidsapp.errors import BadDataError, MissingInputError


def test_truncated_weights_are_bad_data(weights_copy):
    data = weights_copy.read_bytes()
    weights_copy.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadDataError) as info:
        W.load_state_dict(weights_copy)
    assert info.value.exit_code == 65


def test_unparsable_file_with_matching_sidecar_is_bad_data(tmp_path):
    path = tmp_path / "resnet18_mtt50.safetensors"
    path.write_bytes(b"not a safetensors file")
    W.sidecar_path(path).write_text(
        json.dumps({"status": "trained", "sha256": W.file_sha256(path)})
    )
    with pytest.raises(BadDataError, match="Cannot read") as info:
        W.load_state_dict(path)
    assert info.value.path == path


def test_wrong_architecture_is_bad_data(tmp_path):
    # A small, valid safetensors file of another network, with an honest sidecar.
    path = tmp_path / "other.safetensors"
    tensors = {"conv1.weight": torch.zeros(64, 1, 49), "fc.weight": torch.zeros(10, 512)}
    save_file({**tensors, "head.bias": torch.zeros(3)}, path)
    W.sidecar_path(path).write_text(
        json.dumps({"status": "trained", "sha256": W.file_sha256(path)})
    )
    with pytest.raises(BadDataError, match="does not fit") as info:
        W.load_state_dict(path)
    assert info.value.exit_code == 65
    assert "fc.weight has shape (10, 512), expected (50, 512)" in info.value.message
    assert "unexpected tensor head.bias" in info.value.message
    assert "missing" in info.value.message


def test_missing_sidecar_and_bad_sidecar(weights_copy):
    sidecar = W.sidecar_path(weights_copy)
    sidecar.write_text("{not json")
    with pytest.raises(BadDataError) as info:
        W.read_sidecar(weights_copy)
    assert info.value.path == sidecar
    sidecar.write_text(json.dumps({"sha256": "0"}))
    with pytest.raises(BadDataError, match="status"):
        W.read_sidecar(weights_copy)
    sidecar.unlink()
    with pytest.raises(MissingInputError) as info:
        W.read_sidecar(weights_copy)
    assert info.value.exit_code == 66
