"""SD 1.5 + LCM-LoRA: a LoRA file fused into the UNet, in the layouts LoRAs are published in."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from tiny_sculpt import tiny_unet

from instrument.decoders import ModelLoadError
from instrument.sculpt import load_sculpt_model

SHAPE = (4, 8, 8)


def unet_output(unet) -> torch.Tensor:
    x = torch.randn(1, *SHAPE, generator=torch.Generator().manual_seed(0))
    emb = torch.randn(1, 77, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return unet(x, torch.tensor(500.0), encoder_hidden_states=emb).sample


def tiny_lora(rank: int = 4):
    """(the tiny UNet with a random LoRA adapter active, the adapter's PEFT state dict)."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = tiny_unet()
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    torch.manual_seed(9)
    for name, parameter in unet.named_parameters():
        if "lora_B" in name:  # (PEFT starts B at zero: a LoRA that changes nothing)
            torch.nn.init.normal_(parameter, std=0.2)
    return unet, get_peft_model_state_dict(unet)


def save_lora(path, state: dict, layout: str, rank: int = 4):
    """Write ``state`` as diffusers' training scripts do, or as kohya / A1111 (the LCM-LoRA's own layout)."""
    if layout == "diffusers":
        from diffusers import StableDiffusionPipeline
        from diffusers.utils import convert_state_dict_to_diffusers

        layers = convert_state_dict_to_diffusers(state)
        StableDiffusionPipeline.save_lora_weights(path.parent, unet_lora_layers=layers, weight_name=path.name)
        return path
    kohya = {}
    for key, value in state.items():
        module, _, kind = key.rpartition(".lora_")
        name = "lora_unet_" + module.replace(".", "_")
        kohya[f"{name}.{'lora_down' if kind.startswith('A') else 'lora_up'}.weight"] = value.contiguous()
        kohya[f"{name}.alpha"] = torch.tensor(float(rank))
    save_file(kohya, str(path))
    return path


@pytest.mark.parametrize("layout", ["diffusers", "kohya"])
def test_lcm_lora_is_fused_into_the_unet(models, tmp_path, layout):
    with_adapter, state = tiny_lora()
    expected = unet_output(with_adapter)
    path = save_lora(tmp_path / "tiny-lcm-lora.safetensors", state, layout)
    model = load_sculpt_model(str(models / "tiny-sd"), lora=str(path), device="cpu")
    assert (model.sampler, model.distilled) == ("lcm", True)
    assert "LoRA tiny-lcm-lora.safetensors" in model.label
    assert not any("lora" in name for name, _ in model.unet.named_parameters())  # fused: a plain UNet again
    got = unet_output(model.unet)
    assert torch.allclose(got, expected, atol=1e-4 * float(expected.abs().max()))
    assert not torch.allclose(got, unet_output(tiny_unet()), atol=1e-3)


def test_lora_errors_name_the_file(models, tmp_path):
    where = dict(device="cpu")
    with pytest.raises(ModelLoadError, match="no such LoRA file"):
        load_sculpt_model(str(models / "tiny-sd"), lora=str(tmp_path / "missing.safetensors"), **where)
    other = tmp_path / "other.safetensors"
    save_file({"unet.no_such_block.to_q.lora.down.weight": torch.zeros(4, 32),
               "unet.no_such_block.to_q.lora.up.weight": torch.zeros(32, 4)}, str(other))
    with pytest.raises(ModelLoadError, match="other.safetensors"):
        load_sculpt_model(str(models / "tiny-sd"), lora=str(other), **where)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ModelLoadError, match="broken.safetensors"):
        load_sculpt_model(str(models / "tiny-sd"), lora=str(broken), **where)
    with pytest.raises(ModelLoadError, match="latent-consistency/lcm-lora-sdv1-5.*network is off"):
        load_sculpt_model(str(models / "tiny-sd"), lora="latent-consistency/lcm-lora-sdv1-5", **where)
