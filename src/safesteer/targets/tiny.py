"""Tiny pipelines of the real diffusers classes, with **random weights**, built from configs.

They run every code path of a family (prompt encoding, CFG, denoiser, VAE) offline in well
under a second for 2 steps at 32×32 (video: 5 frames at 16×16), so tests and the default job can
check that steering does exactly what it claims. Their images are noise: every number made with
them must say the weights were random. Sizes follow diffusers' own tests' dummy components;
tokenizers are real or locally trained (:mod:`safesteer.targets.tokenizers`).

Example:
    >>> pipe = tiny_pipeline("sd")
    >>> image = pipe("a photo of a cat", num_inference_steps=2, height=32, width=32).images[0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from safesteer.errors import InputError
from safesteer.targets import tokenizers

#: default call arguments that make each tiny pipeline fast (used by tests, generate, the job)
TINY_CALL_DEFAULTS: dict[str, dict[str, Any]] = {
    "sd": {"height": 32, "width": 32},
    "sdxl": {"height": 32, "width": 32},
    "sd3": {"height": 32, "width": 32, "max_sequence_length": 16},
    "flux": {"height": 32, "width": 32, "max_sequence_length": 16},
    "qwen_image": {"height": 32, "width": 32, "max_sequence_length": 16},
    "zimage": {"height": 32, "width": 32, "max_sequence_length": 128},
    "wan": {"height": 16, "width": 16, "num_frames": 5, "max_sequence_length": 16},
    "cogvideox": {"height": 16, "width": 16, "num_frames": 8, "max_sequence_length": 16},
    # resolution binning would render at 1024x1024 and resize: off for tiny runs
    "sana": {"height": 32, "width": 32, "max_sequence_length": 16, "use_resolution_binning": False},
}


def _clip_config(hidden: int, projection: int = 32) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=tokenizers.CLIP_BOS,
        eos_token_id=tokenizers.CLIP_EOS,
        pad_token_id=tokenizers.CLIP_EOS,
        hidden_size=hidden,
        intermediate_size=37,
        layer_norm_eps=1e-05,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=49408,
        max_position_embeddings=77,
        hidden_act="gelu",
        projection_dim=projection,
    )


def _t5_encoder(d_model: int = 32) -> Any:
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=1100,
        d_model=d_model,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        is_encoder_decoder=False,
        use_cache=False,
    )
    return T5EncoderModel(config).eval()


def _sd_vae(latent_channels: int = 4) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=latent_channels,
        sample_size=32,
    )


def _flow_vae(latent_channels: int) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        block_out_channels=(4,),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=1,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )


def _sd_unet(cross_attention_dim: int, **extra: Any) -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        norm_num_groups=32,
        **extra,
    )


def _ddim() -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def _sd() -> Any:
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel

    unet = _sd_unet(32)
    vae = _sd_vae()
    text_encoder = CLIPTextModel(_clip_config(32)).eval()
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizers.clip_tokenizer(),
        unet=unet,
        scheduler=_ddim(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _sdxl() -> Any:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    unet = _sd_unet(
        64,
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,  # 6 * 8 time ids + 32 pooled
    )
    vae = _sd_vae()
    text_encoder = CLIPTextModel(_clip_config(32)).eval()
    text_encoder_2 = CLIPTextModelWithProjection(_clip_config(32)).eval()
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        steps_offset=1,
        beta_schedule="scaled_linear",
        timestep_spacing="leading",
    )
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizers.clip_tokenizer(),
        tokenizer_2=tokenizers.clip_tokenizer(pad_token="!"),
        unet=unet,
        scheduler=scheduler,
        force_zeros_for_empty_prompt=True,
    )


def _sd3() -> Any:
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextModelWithProjection

    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=1,
        in_channels=4,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=32,  # CLIP 16 + 16 concatenated, T5 32
        pooled_projection_dim=32,
        out_channels=4,
    )
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_flow_vae(4),
        text_encoder=CLIPTextModelWithProjection(_clip_config(16, projection=16)).eval(),
        tokenizer=tokenizers.clip_tokenizer(),
        text_encoder_2=CLIPTextModelWithProjection(_clip_config(16, projection=16)).eval(),
        tokenizer_2=tokenizers.clip_tokenizer(),
        text_encoder_3=_t5_encoder(32),
        tokenizer_3=tokenizers.t5_tokenizer(),
    )


def _flux() -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8],
    )
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_flow_vae(1),
        text_encoder=CLIPTextModel(_clip_config(32)).eval(),
        tokenizer=tokenizers.clip_tokenizer(),
        text_encoder_2=_t5_encoder(32),
        tokenizer_2=tokenizers.t5_tokenizer(),
        transformer=transformer,
        image_encoder=None,
        feature_extractor=None,
    )


def _qwen_image() -> Any:
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImagePipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=16,
        out_channels=4,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=3,
        joint_attention_dim=16,
        guidance_embeds=False,
        axes_dims_rope=(8, 4, 4),
    )
    vae = AutoencoderKLQwenImage(
        base_dim=24,
        z_dim=4,
        dim_mult=[1, 2, 4],
        num_res_blocks=1,
        temperal_downsample=[False, True],
        latents_mean=[0.0] * 4,
        latents_std=[1.0] * 4,
    )
    config = Qwen2_5_VLConfig(
        text_config={
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
            "rope_theta": 1000000.0,
            "vocab_size": 49156,
            "bos_token_id": 1,
            "eos_token_id": 2,
        },
        vision_config={
            "depth": 2,
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_heads": 2,
            "out_hidden_size": 16,
        },
        # SmolLM2's 49,152 ids have no vision tokens: give them 4 extra ids no text produces
        image_token_id=49152,
        video_token_id=49153,
        vision_start_token_id=49154,
        vision_end_token_id=49155,
    )
    tokenizer = tokenizers.llama_tokenizer()
    pipe: Any = QwenImagePipeline(
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=Qwen2_5_VLForConditionalGeneration(config).eval(),
        tokenizer=tokenizer,
    )
    # the pipeline drops the template prefix by a count made for Qwen's tokenizer; recount it
    # for this tokenizer so that, as in Qwen-Image, only the user's prompt tokens remain
    prefix = pipe.prompt_template_encode.split("{}")[0]
    pipe.prompt_template_encode_start_idx = len(tokenizer(prefix).input_ids)
    return pipe


def _zimage() -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel
    from transformers import Qwen3Config, Qwen3Model

    transformer: Any = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=16,
        dim=32,
        n_layers=2,
        n_refiner_layers=1,
        n_heads=2,
        n_kv_heads=2,
        norm_eps=1e-5,
        qk_norm=True,
        cap_feat_dim=16,
        rope_theta=256.0,
        t_scale=1000.0,
        axes_dims=[8, 4, 4],
        axes_lens=[256, 32, 32],
    )
    with torch.no_grad():  # created with torch.empty upstream: fix them so outputs are finite
        transformer.x_pad_token.copy_(torch.ones_like(transformer.x_pad_token.data))
        transformer.cap_pad_token.copy_(torch.ones_like(transformer.cap_pad_token.data))
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        block_out_channels=[32, 64],
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=32,
        sample_size=32,
        scaling_factor=0.3611,
        shift_factor=0.1159,
    )
    config = Qwen3Config(
        hidden_size=16,
        intermediate_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=49152,
        max_position_embeddings=512,
    )
    return ZImagePipeline(
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=Qwen3Model(config).eval(),
        tokenizer=tokenizers.llama_tokenizer(),
    )


def _wan() -> Any:
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )

    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    return WanPipeline(
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder=_t5_encoder(32),
        tokenizer=tokenizers.t5_tokenizer(),
        transformer_2=None,
    )


def _cogvideox() -> Any:
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXPipeline,
        CogVideoXTransformer3DModel,
    )

    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=4,
        attention_head_dim=8,
        in_channels=4,
        out_channels=4,
        time_embed_dim=2,
        text_embed_dim=32,
        num_layers=1,
        sample_width=2,
        sample_height=2,
        sample_frames=9,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=16,
    )
    vae = AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    )
    return CogVideoXPipeline(
        tokenizer=tokenizers.t5_tokenizer(),
        text_encoder=_t5_encoder(32),
        vae=vae,
        transformer=transformer,
        scheduler=CogVideoXDDIMScheduler(),
    )


def _sana() -> Any:
    from diffusers import (
        AutoencoderDC,
        FlowMatchEulerDiscreteScheduler,
        SanaPipeline,
        SanaTransformer2DModel,
    )
    from transformers import Gemma2Config, Gemma2Model

    transformer = SanaTransformer2DModel(
        patch_size=1,
        in_channels=4,
        out_channels=4,
        num_layers=1,
        num_attention_heads=2,
        attention_head_dim=4,
        num_cross_attention_heads=2,
        cross_attention_head_dim=4,
        cross_attention_dim=8,
        caption_channels=8,
        sample_size=32,
    )
    vae = AutoencoderDC(
        in_channels=3,
        latent_channels=4,
        attention_head_dim=2,
        encoder_block_types=("ResBlock", "EfficientViTBlock"),
        decoder_block_types=("ResBlock", "EfficientViTBlock"),
        encoder_block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8),
        encoder_qkv_multiscales=((), (5,)),
        decoder_qkv_multiscales=((), (5,)),
        encoder_layers_per_block=(1, 1),
        decoder_layers_per_block=[1, 1],
        downsample_block_type="conv",
        upsample_block_type="interpolate",
        decoder_norm_types="rms_norm",
        decoder_act_fns="silu",
        scaling_factor=0.41407,
    )
    config = Gemma2Config(
        head_dim=16,
        hidden_size=8,
        intermediate_size=64,
        max_position_embeddings=8192,
        num_attention_heads=2,
        num_hidden_layers=1,
        num_key_value_heads=2,
        vocab_size=262144,
    )
    return SanaPipeline(
        tokenizer=tokenizers.gemma_tokenizer(),
        text_encoder=Gemma2Model(config).eval(),
        vae=vae,
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
    )


_BUILDERS: dict[str, Callable[[], Any]] = {
    "sd": _sd,
    "sdxl": _sdxl,
    "sd3": _sd3,
    "flux": _flux,
    "qwen_image": _qwen_image,
    "zimage": _zimage,
    "wan": _wan,
    "cogvideox": _cogvideox,
    "sana": _sana,
}

TINY_FAMILIES: tuple[str, ...] = tuple(_BUILDERS)


def tiny_pipeline(family: str, seed: int = 0) -> Any:
    """Build the real diffusers pipeline class of ``family`` with tiny **random** weights.

    ``family`` is one of :data:`TINY_FAMILIES` (``"sd"``, ``"sdxl"``, ``"sd3"``, ``"flux"``,
    ``"qwen_image"``, ``"zimage"``, ``"wan"``, ``"cogvideox"``, ``"sana"``). The same seed gives
    the same weights. Fast call arguments are in :data:`TINY_CALL_DEFAULTS`.

    Example:
        >>> pipe = tiny_pipeline("flux")
        >>> type(pipe).__name__
        'FluxPipeline'
    """
    key = family.removeprefix("tiny-").replace("-", "_")
    if key not in _BUILDERS:
        raise InputError(
            f"unknown tiny pipeline family {family!r}",
            hint=f"use one of {', '.join(TINY_FAMILIES)}",
        )
    torch.manual_seed(seed)
    pipe = _BUILDERS[key]()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_call_defaults(family: str) -> dict[str, Any]:
    """Fast call arguments for a tiny pipeline (size, frames, max_sequence_length).

    ``family`` may carry the ``tiny-`` prefix; ``encoder-<preset>`` (the encoder-conditioned
    pipeline) gets SD's.
    """
    key = family.removeprefix("tiny-").replace("-", "_")
    if key.startswith("encoder"):
        key = "sd"
    if key not in TINY_CALL_DEFAULTS:
        raise InputError(
            f"unknown tiny pipeline family {family!r}", hint=f"use one of {TINY_FAMILIES}"
        )
    return dict(TINY_CALL_DEFAULTS[key])
