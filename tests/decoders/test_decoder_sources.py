"""Every source kind loads through ``load_autoencoder`` with the network off and decodes the right shapes."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from tiny_models import tiny_kl, tiny_taesd

from instrument.decoders import load_autoencoder


def load_image(path) -> torch.Tensor:
    """[1, 3, H, W] in [0, 1]."""
    array = np.array(Image.open(path).convert("RGB"))
    return torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255


def psnr_8bit(decoded: torch.Tensor, original: torch.Tensor) -> float:
    quantised = (decoded.clamp(0, 1) * 255).round() / 255
    return float(10 * torch.log10(1 / ((quantised - original) ** 2).mean()))


@pytest.mark.parametrize("which", ["taef2_encoder.pth", "taef2_decoder.pth", "folder"])
def test_taef2_round_trip_matches_reference_psnr(shared, which):
    models = shared / "models"
    source = models if which == "folder" else models / which
    family = "flux2" if which == "folder" else None
    ae = load_autoencoder(str(source), family=family, device="cpu", dtype="fp32")
    assert (ae.arch, ae.family.name, ae.can_encode) == ("taesd", "flux2", True)
    assert "taef2" in ae.label
    image = load_image(shared / "images" / "dog.png")
    assert image.shape == (1, 3, 512, 512)
    with torch.no_grad():
        latent = ae.encode(image)
        assert latent.shape == (1, 32, 64, 64) and latent.dtype == torch.float32
        decoded = ae.decode(latent)
    assert decoded.shape == (1, 3, 512, 512)
    assert abs(psnr_8bit(decoded, image) - 31.5) <= 0.3


def test_taesd_decoder_only(shared, tmp_path):
    (tmp_path / "taef2_decoder.pth").write_bytes((shared / "models" / "taef2_decoder.pth").read_bytes())
    ae = load_autoencoder(str(tmp_path / "taef2_decoder.pth"), device="cpu")
    assert not ae.can_encode and "decoder only" in ae.label
    assert ae.decode(torch.zeros(1, 32, 4, 4)).shape == (1, 3, 32, 32)
    with pytest.raises(RuntimeError, match="no encoder"):
        ae.encode(torch.zeros(1, 3, 32, 32))


def reference_decode(vae, latent: torch.Tensor, scale: float) -> torch.Tensor:
    """What diffusers itself gives for a diffusion-space latent, mapped to [0, 1]."""
    with torch.no_grad():
        return ((vae.decode(latent / scale).sample + 1) / 2).clamp(0, 1)


def test_diffusers_folders(tmp_path):
    kl, tiny = tiny_kl(), tiny_taesd()
    kl.save_pretrained(tmp_path / "kl")
    tiny.save_pretrained(tmp_path / "tiny")
    latent = torch.randn(2, 4, 6, 5)

    ae = load_autoencoder(str(tmp_path / "kl"), device="cpu")
    assert (ae.arch, ae.family.name) == ("kl", "sd15")
    decoded = ae.decode(latent)
    assert decoded.shape == (2, 3, 48, 40)
    assert torch.allclose(decoded, reference_decode(kl, latent, 0.18215), atol=1e-5)
    assert ae.encode(torch.rand(1, 3, 48, 40)).shape == (1, 4, 6, 5)

    ae = load_autoencoder(str(tmp_path / "tiny"), device="cpu")
    assert ae.arch == "tiny"
    decoded = ae.decode(latent)
    assert decoded.shape == (2, 3, 48, 40)
    assert torch.allclose(decoded, reference_decode(tiny, latent, 1.0), atol=1e-5)
    assert ae.encode(torch.rand(1, 3, 48, 40)).shape == (1, 4, 6, 5)


def test_flux2_vae_folder(tmp_path):
    from diffusers import AutoencoderKLFlux2

    torch.manual_seed(0)
    vae = AutoencoderKLFlux2(block_out_channels=(8, 8, 16, 16), layers_per_block=1, norm_num_groups=8).eval()
    vae.save_pretrained(tmp_path / "flux2-vae")
    ae = load_autoencoder(str(tmp_path / "flux2-vae"), device="cpu")
    assert (ae.arch, ae.family.name) == ("kl", "flux2")
    latent = torch.randn(1, 32, 3, 2)
    assert torch.allclose(ae.decode(latent), reference_decode(vae, latent, 1.0), atol=1e-5)


def test_diffusers_folder_subfolder_and_two_level_model(tmp_path):
    kl = tiny_kl(levels=2)  # block_out_channels (8, 16): a 2x model
    kl.save_pretrained(tmp_path / "repo" / "vae")
    ae = load_autoencoder(str(tmp_path / "repo"), subfolder="vae", device="cpu")
    assert ae.downscale == 2
    assert ae.decode(torch.randn(1, 4, 8, 8)).shape == (1, 3, 16, 16)


def to_ldm_keys(state: dict[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """diffusers AutoencoderKL names -> the original (LDM / CompVis) names, with conv-shaped attention."""

    def up(m) -> int:  # diffusers counts decoder levels from the bottom, LDM from the top
        return levels - 1 - int(m[1])

    renames = [
        (r"encoder\.down_blocks\.(\d+)\.resnets\.", lambda m: f"encoder.down.{m[1]}.block."),
        (r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", lambda m: f"encoder.down.{m[1]}.downsample."),
        (r"decoder\.up_blocks\.(\d+)\.resnets\.", lambda m: f"decoder.up.{up(m)}.block."),
        (r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.", lambda m: f"decoder.up.{up(m)}.upsample."),
        (r"mid_block\.resnets\.(\d+)\.", lambda m: f"mid.block_{int(m[1]) + 1}."),
        (r"mid_block\.attentions\.0\.", lambda m: "mid.attn_1."),
        (r"conv_shortcut", lambda m: "nin_shortcut"),
        (r"conv_norm_out", lambda m: "norm_out"),
        (r"attn_1\.group_norm", lambda m: "attn_1.norm"),
        (r"attn_1\.to_([qkv])\.", lambda m: f"attn_1.{m[1]}."),
        (r"attn_1\.to_out\.0\.", lambda m: "attn_1.proj_out."),
    ]
    out = {}
    for key, value in state.items():
        for pattern, replace in renames:
            key = re.sub(pattern, replace, key)
        if "attn_1." in key and key.endswith("weight") and value.ndim == 2:
            value = value[:, :, None, None]
        out[key] = value.clone()
    return out


@pytest.mark.parametrize("layout", ["diffusers", "ldm", "ldm-ckpt"])
def test_single_file_vae(tmp_path, layout):
    kl = tiny_kl()
    state = kl.state_dict()
    if layout == "diffusers":
        path = tmp_path / "my_vae.safetensors"
        save_file(state, path)
    elif layout == "ldm":
        path = tmp_path / "my_vae.safetensors"
        save_file(to_ldm_keys(state, 4), path)
    else:  # a whole-model .ckpt: the VAE under first_stage_model., Lightning's {"state_dict": ...} wrapper
        path = tmp_path / "model.ckpt"
        ldm = {"first_stage_model." + k: v for k, v in to_ldm_keys(state, 4).items()}
        ldm["model.diffusion_model.input_blocks.0.0.weight"] = torch.zeros(2, 2)
        torch.save({"state_dict": ldm, "global_step": 1}, path)
    ae = load_autoencoder(str(path), device="cpu")
    assert (ae.arch, ae.family.name) == ("kl", "sd15")
    latent = torch.randn(1, 4, 4, 4)
    assert torch.allclose(ae.decode(latent), reference_decode(kl, latent, 0.18215), atol=1e-5)


def test_hub_repo_from_cache_offline(tmp_path, monkeypatch):
    """A repo already in the HF cache (huggingface_hub's snapshot layout) loads with HF_HUB_OFFLINE=1."""
    snapshot = tmp_path / "hf_home" / "hub" / "models--madebyollin--taesd" / "snapshots" / "0123abcd"
    tiny_taesd().save_pretrained(snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abcd")
    ae = load_autoencoder("madebyollin/taesd", device="cpu")
    assert ae.arch == "tiny" and ae.family.name == "sd15" and "hub" in ae.label
    assert ae.decode(torch.randn(1, 4, 4, 4)).shape == (1, 3, 32, 32)


def test_hub_download_once_then_offline(tmp_path, monkeypatch, caplog):
    """Not cached: one message naming the repo and the cache, one download; then the cache serves it."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    calls = []

    def fake_snapshot_download(repo_id, *, revision, cache_dir, allow_patterns, local_files_only):
        calls.append((repo_id, revision, tuple(allow_patterns), local_files_only))
        snapshot = cache_dir / f"models--{repo_id.replace('/', '--')}" / "snapshots" / (revision or "main")
        if not snapshot.exists():
            if local_files_only:
                raise LocalEntryNotFoundError("not cached")
            tiny_kl().save_pretrained(snapshot / "vae")
        return str(snapshot)

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    caplog.set_level("INFO")
    ae = load_autoencoder("someone/some-model/vae@v1", device="cpu")
    assert ae.arch == "kl" and ae.decode(torch.randn(1, 4, 2, 2)).shape == (1, 3, 16, 16)
    patterns = ("vae/config.json", "vae/diffusion_pytorch_model.safetensors")
    assert calls == [
        ("someone/some-model", "v1", patterns, True),
        ("someone/some-model", "v1", patterns, False),
    ]
    assert (
        "Downloading someone/some-model" in caplog.text and str(tmp_path / "hf_home" / "hub") in caplog.text
    )
    calls.clear()
    load_autoencoder("someone/some-model", subfolder="vae", revision="v1", device="cpu", offline=True)
    assert [c[-1] for c in calls] == [True]


def test_fp16_nan_falls_back_with_a_real_decoder(shared):
    """The real taef2 decoder in half precision, made to overflow: the frame comes back finite, in fp32."""
    ae = load_autoencoder(str(shared / "models" / "taef2_decoder.pth"), device="cpu", dtype="bf16")
    reference = load_autoencoder(str(shared / "models" / "taef2_decoder.pth"), device="cpu", dtype="fp32")
    plain = ae.decoder_module.forward
    ae.decoder_module.forward = lambda z: plain(z) * (torch.inf if z.dtype != torch.float32 else 1.0)
    latent = torch.randn(1, 32, 4, 4)
    frame = ae.decode(latent)
    assert ae.dtype == torch.float32 and torch.isfinite(frame).all()
    # The weights went through bf16 on the way, so "the same picture" is to within bf16 rounding.
    assert (frame - reference.decode(latent)).abs().max() < 0.01


def test_pipeline_folder_uses_its_vae(tmp_path):
    tiny_kl().save_pretrained(tmp_path / "pipeline" / "vae")
    (tmp_path / "pipeline" / "model_index.json").write_text("{}")
    ae = load_autoencoder(str(tmp_path / "pipeline"), device="cpu")
    assert ae.arch == "kl" and ae.source == str(tmp_path / "pipeline")
