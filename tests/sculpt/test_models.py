"""Sculpt models from every place users keep them, and one clear error for each way that goes wrong."""

from __future__ import annotations

import shutil
import time

import pytest
import torch
from safetensors.torch import save_file
from tiny_sculpt import (
    BOS,
    EOS,
    save_pipeline,
    tiny_text_encoder,
    tiny_tokenizer,
    tiny_unet,
    write_vocab_files,
)

from instrument.decoders import ModelLoadError
from instrument.sculpt import SculptOptions, Sculptor, SculptSettings, load_sculpt_model
from instrument.sculpt.prompts import PromptBook

SHAPE = (4, 8, 8)


def one_line_error(match: str, call, *args, **kwargs) -> str:
    with pytest.raises(ModelLoadError, match=match) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and len(message) < 500, message
    return message


def unet_output(unet) -> torch.Tensor:
    x = torch.randn(1, *SHAPE, generator=torch.Generator().manual_seed(0))
    emb = torch.randn(1, 77, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return unet(x, torch.tensor(500.0), encoder_hidden_states=emb).sample


def test_pipeline_folders(models):
    turbo = load_sculpt_model(str(models / "tiny-turbo"), device="cpu")
    assert (turbo.sampler, turbo.distilled, turbo.family.name) == ("ddim", True, "sd15")
    assert "tiny-turbo" in turbo.label and "local folder" in turbo.label
    plain = load_sculpt_model(str(models / "tiny-sd"), device="cpu")
    assert (plain.sampler, plain.distilled) == ("ddim", False)
    lcm = load_sculpt_model(str(models / "tiny-lcm"), device="cpu")
    assert (lcm.sampler, lcm.distilled) == ("lcm", True)
    assert torch.equal(unet_output(turbo.unet), unet_output(tiny_unet("sd15")))


@pytest.mark.parametrize("arch", ["sd15", "sd21"])
def test_single_file_checkpoints(models, tmp_path, arch):
    """A1111/ComfyUI-style whole checkpoints: the UNet and text encoder come out as they went in."""
    model = load_sculpt_model(str(models / f"tiny{arch[2:]}.safetensors"), device="cpu")
    assert model.family.name == "sd15" and "single file" in model.label
    assert torch.equal(unet_output(model.unet), unet_output(tiny_unet(arch)))
    book = PromptBook(model.text, tmp_path)
    pad = 0 if arch == "sd21" else EOS
    ids = torch.tensor([[BOS, EOS] + [pad] * 75])
    with torch.no_grad():
        expected = tiny_text_encoder(arch)(input_ids=ids)[0][0]
    assert torch.allclose(book.embedding(""), expected, atol=1e-5)
    assert tiny_tokenizer(arch)("", padding="max_length", max_length=77).input_ids == ids[0].tolist()


def test_single_file_prompt_needs_the_tokenizer_once(models, tmp_path, monkeypatch):
    model = load_sculpt_model(str(models / "tiny15.safetensors"), device="cpu")
    sculptor = Sculptor(model, SHAPE, options=SculptOptions(), prompt_cache_dir=tmp_path)
    sculptor(torch.zeros(SHAPE), SculptSettings(strength=0.5))  # the empty prompt: no tokenizer needed
    one_line_error("tokenizer.*empty prompt works", sculptor, torch.zeros(SHAPE),
                   SculptSettings(strength=0.5, prompts=("a marble statue",)))
    # the tokenizer in the hub cache (huggingface_hub's snapshot layout), as one online run leaves it
    repo = tmp_path / "hf_home" / "hub" / "models--stable-diffusion-v1-5--stable-diffusion-v1-5"
    write_vocab_files(repo / "snapshots" / "abc" / "tokenizer")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc")
    result = sculptor(torch.zeros(SHAPE), SculptSettings(strength=0.5, prompts=("a marble statue",)))
    assert bool(torch.isfinite(result.latent).all()) and sculptor.prompts.encoded == 2


def test_family_mismatch_is_refused(models):
    model = load_sculpt_model(str(models / "tiny-turbo"), device="cpu")
    message = one_line_error("sd15.*flux2", Sculptor, model, (32, 8, 8), family="flux2")
    assert "decoder" in message
    one_line_error("procedural", Sculptor, model, SHAPE, family="procedural")
    one_line_error("sd15 latent space, not sdxl", load_sculpt_model, str(models / "tiny-turbo"),
                   family="sdxl", device="cpu")
    with pytest.raises(ValueError, match="multiples of 2"):
        Sculptor(model, (4, 7, 8))


def test_broken_checkpoints_name_the_file(models, tmp_path):
    whole = (models / "tiny15.safetensors").read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(whole[: len(whole) // 2])
    assert str(truncated) in one_line_error("truncated", load_sculpt_model, str(truncated), device="cpu")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    one_line_error("empty", load_sculpt_model, str(empty), device="cpu")
    vae_only = tmp_path / "vae.safetensors"
    save_file({"first_stage_model.decoder.conv_in.weight": torch.zeros(8, 4, 3, 3)}, str(vae_only))
    one_line_error("no UNet", load_sculpt_model, str(vae_only), device="cpu")
    one_line_error("no such file", load_sculpt_model, str(tmp_path / "missing.safetensors"), device="cpu")

    folder = shutil.copytree(models / "tiny-turbo", tmp_path / "broken-pipeline")
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert str(folder / "unet") in one_line_error("could not load the UNet", load_sculpt_model, str(folder),
                                                  device="cpu")
    not_pipeline = tmp_path / "not-a-pipeline"
    not_pipeline.mkdir()
    one_line_error("unet/config.json", load_sculpt_model, str(not_pipeline), device="cpu")


def test_offline_hub_id_fails_at_once():
    started = time.monotonic()
    message = one_line_error("stabilityai/sd-turbo.*not in the Hugging Face cache.*network is off",
                             load_sculpt_model, device="cpu")
    assert time.monotonic() - started < 5, message


def test_unreachable_hub_fails_within_seconds(monkeypatch):
    """Not declared offline, but no network: a proxy on a closed local port refuses every connection."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    started = time.monotonic()
    message = one_line_error("someone/some-turbo.*download failed", load_sculpt_model, "someone/some-turbo",
                             device="cpu")
    assert time.monotonic() - started < 15, message


def test_hub_repo_from_the_cache_offline(tmp_path):
    """A repo in the hub cache loads with the network off, also when only its fp16 weights are there."""
    repo = tmp_path / "hf_home" / "hub" / "models--someone--tiny-turbo"
    snapshot = save_pipeline(repo / "snapshots" / "0123abcd", "sd15")
    for part, stem in (("unet", "diffusion_pytorch_model"), ("text_encoder", "model")):
        (snapshot / part / f"{stem}.safetensors").rename(snapshot / part / f"{stem}.fp16.safetensors")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    model = load_sculpt_model("someone/tiny-turbo", device="cpu")
    assert model.distilled and model.label == "someone/tiny-turbo (hub)"
    assert torch.equal(unet_output(model.unet), unet_output(tiny_unet("sd15")))
    book = PromptBook(model.text, tmp_path / "prompts")
    assert book.embedding("a marble statue").shape == (77, 64)


def test_the_instruments_latents_are_what_the_unet_denoises(models):
    """The decoder family's diffusion space is the space diffusers' img2img hands the UNet: the VAE's latent
    mean times its scaling_factor (0.18215 for SD 1.x and 2.x, SD-Turbo's too)."""
    from diffusers import AutoencoderKL

    from instrument.decoders import get_family, load_autoencoder

    model = load_sculpt_model(str(models / "tiny-turbo"), device="cpu")
    ae = load_autoencoder(str(models / "tiny-turbo"), device="cpu")  # the same pipeline folder: its vae/
    vae = AutoencoderKL.from_pretrained(str(models / "tiny-turbo"), subfolder="vae")
    assert ae.family == model.family == get_family("sd15")
    assert vae.config.scaling_factor == pytest.approx(ae.family.scale) == pytest.approx(0.18215)
    image = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        unet_space = vae.encode(image * 2 - 1).latent_dist.mean * vae.config.scaling_factor
    assert torch.allclose(ae.encode(image), unet_space, atol=1e-5)
    Sculptor(model, tuple(unet_space.shape[1:]), family=ae.family, options=SculptOptions())  # accepted


def test_a_broken_text_encoder_is_named_at_the_first_prompt(models, tmp_path):
    """The encoder loads when a text's embedding is not cached yet: that is when its error comes."""
    folder = shutil.copytree(models / "tiny-turbo", tmp_path / "broken-encoder")
    weights = folder / "text_encoder" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    sculptor = Sculptor(load_sculpt_model(str(folder), device="cpu"), SHAPE, options=SculptOptions(),
                        prompt_cache_dir=tmp_path / "prompts")
    settings = SculptSettings(strength=0.5, prompts=("a marble statue",))
    message = one_line_error("could not load the text encoder", sculptor, torch.zeros(SHAPE), settings)
    assert str(weights) in message
