"""Masked autoencoders on timm ViTs (the model knows tensors, not Zarr).

`MaskedAutoencoder` follows facebookresearch/mae `models_mae.py` method by method (patchify,
unpatchify, random_masking, forward_encoder, forward_decoder, forward_loss) with a timm
VisionTransformer as the encoder (`self.encoder`, so its keys are timm's behind "encoder.")
and timm `Block`s in the decoder, named as in MAE (decoder_embed, mask_token, decoder_pos_embed,
decoder_blocks, decoder_norm, decoder_pred) so MAE release checkpoints load key for key.

objective="diffmae" is DiffMAE (Wei et al. 2023, "Diffusion Models as Masked Autoencoders"),
joint-decoder variant: the encoder sees the clean visible patches; the masked patches enter the
decoder as noisy pixels x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps at a random timestep t per
image (cosine schedule, 1000 steps) plus a timestep embedding, and the decoder predicts the
clean patches x_0; the loss is the MSE on the masked patches. (Training only: no sampler.)

Random numbers come from `sample_noise` (optionally with a torch.Generator) and enter `forward`
as tensors, so a torch.compile'd model has no graph breaks and a training loop can make every
step's mask reproducible."""
from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import numpy as np
import timm
import torch
import torch.nn as nn
from timm.layers import resample_abs_pos_embed, to_2tuple
from timm.models import clean_state_dict
from timm.models.vision_transformer import Block, VisionTransformer
from timm.optim import param_groups_weight_decay

from .plumbing import load_checkpoint

from .masking import mask_scores, twin_index
from ..vocab import MODELS, Objective, values

OBJECTIVES = values(Objective)
DIFFUSION_STEPS = 1000
_DECODER_KEYS = ("mask_token", "decoder_", "noise_embed", "time_embed")
_layer_norm = partial(nn.LayerNorm, eps=1e-6)  # MAE's (and timm ViT's) eps, in the decoder too


def build_encoder(model: str, img_size: int | Sequence[int], num_classes: int = 0, drop_path_rate: float = 0.0,
                  global_pool: str = "token", fc_norm: bool | None = None) -> VisionTransformer:
    """A randomly initialised timm ViT for `img_size` (an int or (H, W), multiples of the patch size).

    `model` is a short name from MODELS or any timm ViT name; global_pool and fc_norm are timm's
    (fc_norm None: a norm after average pooling instead of before, as MAE fine-tunes). Never downloads weights."""
    name = MODELS.get(model, model)
    if not name.startswith("vit_") or not timm.is_model(name):
        raise ValueError(f"unknown model {model!r}: choose one of {', '.join(MODELS)} (or a timm vit_* name)")
    h, w = (int(v) for v in to_2tuple(img_size))
    patch = int(name.split("patch")[1].split("_")[0]) if "patch" in name else 16
    if h % patch or w % patch or h <= 0 or w <= 0:
        raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {patch}: "
                         f"re-convert the store with --size a multiple of {patch}")
    size = h if h == w else (h, w)
    return timm.create_model(name, pretrained=False, img_size=size, num_classes=num_classes,
                             drop_path_rate=drop_path_rate, global_pool=global_pool, fc_norm=fc_norm)


def sincos_pos_embed(dim: int, grid: tuple[int, int], cls_token: bool = True) -> torch.Tensor:
    """MAE's fixed 2D sine-cosine position embedding, (1, [1 +] h*w, dim), cls position zero.

    As MAE's util/pos_embed.py: the first dim/2 channels encode the patch's column, the last
    dim/2 its row (so a released MAE encoder and our decoder share one convention)."""
    h, w = grid
    gy, gx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")

    def one_axis(d: int, pos: np.ndarray) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(d // 2, dtype=np.float64) / (d / 2.0))
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    emb = np.concatenate([one_axis(dim // 2, gx), one_axis(dim // 2, gy)], axis=1)  # (h*w, dim)
    if cls_token:
        emb = np.concatenate([np.zeros((1, dim)), emb], axis=0)
    return torch.from_numpy(emb).float().unsqueeze(0)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps (B,) -> (B, dim), as in DDPM/ADM."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return nn.functional.pad(emb, (0, dim % 2))


def cosine_alpha_bar(steps: int = DIFFUSION_STEPS, s: float = 0.008) -> torch.Tensor:
    """Cumulative signal level abar_t of the cosine schedule (Nichol & Dhariwal 2021), t = 0..steps-1."""
    t = torch.arange(steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    abar = (f / f[0])[1:]
    return abar.clamp(min=1e-5, max=1.0).float()


class MaskedAutoencoder(nn.Module):
    def __init__(self, model: str = "vit_base", img_size: int | Sequence[int] = 224, mask_ratio: float = 0.75,
                 decoder_dim: int = 512, decoder_depth: int = 8, decoder_heads: int = 16,
                 norm_pix_loss: bool = True, objective: str = "mae", masking: str = "random",
                 column_parts: Sequence[int] | None = None):
        """masking: which patches to hide (masking.STRATEGIES); column_parts: the body part of each
        patch column (layout.patch_column_parts), needed by masking="parts"."""
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask ratio {mask_ratio} must be in [0, 1)")
        if decoder_dim % decoder_heads:
            raise ValueError(f"decoder dim {decoder_dim} is not divisible by {decoder_heads} heads")
        self.mask_ratio = mask_ratio
        self.masking = masking
        self.column_parts = list(column_parts) if column_parts is not None else None
        self.norm_pix_loss = norm_pix_loss
        self.objective = objective
        self.encoder = build_encoder(model, img_size, global_pool="")
        enc = self.encoder
        self.patch = enc.patch_embed.patch_size[0]
        self.grid = tuple(enc.patch_embed.grid_size)
        num_patches = self.grid[0] * self.grid[1]
        dim = enc.embed_dim
        # MAE: the encoder's position embedding is a fixed 2D sin-cos table
        enc.pos_embed.data.copy_(sincos_pos_embed(dim, self.grid))
        enc.pos_embed.requires_grad_(False)

        self.decoder_embed = nn.Linear(dim, decoder_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_pos_embed = nn.Parameter(sincos_pos_embed(decoder_dim, self.grid), requires_grad=False)
        self.decoder_blocks = nn.ModuleList(
            [Block(decoder_dim, decoder_heads, 4.0, qkv_bias=True, norm_layer=_layer_norm) for _ in range(decoder_depth)])
        self.decoder_norm = _layer_norm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, self.patch ** 2 * 3, bias=True)
        if objective == "diffmae":
            self.noise_embed = nn.Linear(self.patch ** 2 * 3, decoder_dim, bias=True)  # noisy pixels -> tokens
            self.time_embed = nn.Sequential(nn.Linear(decoder_dim, decoder_dim), nn.SiLU(),
                                            nn.Linear(decoder_dim, decoder_dim))
            self.register_buffer("alpha_bar", cosine_alpha_bar(), persistent=False)
        self.initialize_weights()
        assert num_patches == enc.patch_embed.num_patches
        mask_scores(masking, 1, self.grid, mask_ratio, column_parts=self.column_parts)  # checks the strategy

    # --- initialisation (MAE's) ---
    def initialize_weights(self) -> None:
        w = self.encoder.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
        nn.init.normal_(self.encoder.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(self._init_weights)
        self.encoder.patch_embed.proj.weight.data.copy_(w)  # apply() does not touch Conv2d; keep the xavier init

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    def no_weight_decay(self) -> set[str]:
        """timm's list of what fine-tuning leaves undecayed besides biases and norms (the encoder's
        tokens and position table), and the decoder's tokens and table."""
        return {f"encoder.{name}" for name in self.encoder.no_weight_decay()} | {"mask_token", "decoder_pos_embed"}

    def param_groups(self, weight_decay: float, decay_tokens: bool = True) -> list[dict]:
        """AdamW groups as MAE pretrains: no decay on 1-D parameters (biases, norms) only. MAE's
        main_pretrain.py calls timm 0.3.2's `add_weight_decay(model, weight_decay)` with no skip
        list, so its class and mask tokens ((1, 1, D), not 1-D) are decayed; its position tables
        are frozen (requires_grad False) and in no group, as ours are. decay_tokens=False is the
        rule of runs made before (tokens undecayed by no_weight_decay()), kept so they resume
        with the optimizer state they saved. The decayed group comes first, as before."""
        skip = () if decay_tokens else self.no_weight_decay()
        return param_groups_weight_decay(self, weight_decay, no_weight_decay_list=skip)[::-1]

    # --- MAE methods ---
    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, L, p*p*3)."""
        p, (h, w) = self.patch, self.grid
        x = imgs.reshape(imgs.shape[0], 3, h, p, w, p)
        x = torch.einsum("nchpwq->nhwpqc", x)
        return x.reshape(imgs.shape[0], h * w, p * p * 3)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(N, L, p*p*3) -> (N, 3, H, W)."""
        p, (h, w) = self.patch, self.grid
        x = x.reshape(x.shape[0], h, w, p, p, 3)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(x.shape[0], 3, h * p, w * p)

    def random_masking(self, x: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None):
        """Per-sample masking by argsort of `noise` (N, L): the lowest scores are kept (uniform scores,
        drawn here if None, are MAE's random masking; masking.py draws the structured ones).
        x: (N, L, D). Returns the kept tokens, the mask (0 keep, 1 remove) and ids_restore."""
        n, length, d = x.shape
        len_keep = int(length * (1 - mask_ratio))
        if noise is None:
            noise = torch.rand(n, length, device=x.device)
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        x_masked = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))
        mask = torch.ones(n, length, device=x.device)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        return x_masked, mask, ids_restore

    def forward_encoder(self, imgs: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None):
        enc = self.encoder
        x = enc.patch_embed(imgs)
        x = x + enc.pos_embed[:, 1:, :]
        x, mask, ids_restore = self.random_masking(x, mask_ratio, noise)
        cls = enc.cls_token + enc.pos_embed[:, :1, :]
        x = torch.cat([cls.expand(x.shape[0], -1, -1), x], dim=1)
        x = enc.blocks(x)
        x = enc.norm(x)
        return x, mask, ids_restore

    def forward_decoder(self, x: torch.Tensor, ids_restore: torch.Tensor, masked_tokens: torch.Tensor | None = None):
        """Decode the encoder output; masked positions get `masked_tokens` (N, L, D_dec) if given
        (DiffMAE's embedded noisy patches), else the learned mask token (MAE)."""
        x = self.decoder_embed(x)
        n, length = ids_restore.shape
        visible = x[:, 1:, :]
        fill = self.mask_token.expand(n, length + 1 - x.shape[1], -1)
        x_ = torch.cat([visible, fill], dim=1)
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))  # unshuffle
        if masked_tokens is not None:
            is_masked = (torch.arange(length, device=x.device)[None, :].expand(n, -1)
                         >= visible.shape[1])
            is_masked = torch.gather(is_masked, 1, ids_restore).unsqueeze(-1)
            x_ = torch.where(is_masked, masked_tokens, x_)
        x = torch.cat([x[:, :1, :], x_], dim=1)
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        x = self.decoder_pred(x)
        return x[:, 1:, :]

    def target(self, imgs: torch.Tensor) -> torch.Tensor:
        """The reconstruction target: patches, normalised per patch when norm_pix_loss."""
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        return target

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error on the removed patches. imgs (N, 3, H, W); pred (N, L, p*p*3); mask (N, L)."""
        target = self.target(imgs)
        loss = (pred.float() - target) ** 2
        loss = loss.mean(dim=-1)
        return (loss * mask).sum() / mask.sum()

    def loss_mask(self, mask: torch.Tensor, copies: torch.Tensor | None) -> torch.Tensor:
        """The patches the loss reconstructs: the hidden ones, except, in an image whose bottom
        half is a copy of the top (`copies`, (N,) bool), a hidden patch whose twin is visible
        (masking.py: at most one, when the hidden count is odd); copying it is no lesson."""
        twin = twin_index(self.grid)
        if copies is None or twin is None:
            return mask
        twin = twin.to(mask.device)
        return torch.where(copies.to(torch.bool)[:, None], mask * mask[:, twin], mask)

    def sample_noise(self, n: int, device: torch.device | str, generator: torch.Generator | None = None,
                     timestep: int | None = None, halves: torch.Tensor | None = None,
                     copies: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Every random number a forward pass needs: the masking noise, and for DiffMAE the timestep
        and the Gaussian noise. Drawn outside `forward` so a compiled model sees tensors only.
        halves/copies (N,) bool: the sample stacks two actor halves / its bottom half is a copy
        of the top (masking.py); copies go into the result for the loss (`loss_mask`)."""
        length, dim = self.grid[0] * self.grid[1], self.patch ** 2 * 3
        noise = {"mask": mask_scores(self.masking, n, self.grid, self.mask_ratio, generator, device, self.column_parts,
                                     halves, copies)}
        if copies is not None:
            noise["copies"] = torch.as_tensor(copies, device=device).to(torch.bool)
        if self.objective == "diffmae":
            if timestep is None:
                noise["t"] = torch.randint(0, DIFFUSION_STEPS, (n,), device=device, generator=generator)
            else:
                noise["t"] = torch.full((n,), int(timestep), device=device, dtype=torch.long)
            noise["eps"] = torch.randn(n, length, dim, device=device, generator=generator)
        return noise

    def add_noise(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """DiffMAE forward process on patches: x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps."""
        abar = self.alpha_bar[t].view(-1, 1, 1)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * eps.to(x0.dtype)

    def forward(self, imgs: torch.Tensor, noise: dict[str, torch.Tensor] | None = None):
        """imgs: normalised float (N, 3, H, W); noise: from `sample_noise` (drawn here if None).
        Returns (loss, pred (N, L, p*p*3), mask (N, L): 1 where the loss reconstructs, `loss_mask`)."""
        if noise is None:
            noise = self.sample_noise(imgs.shape[0], imgs.device)
        latent, mask, ids_restore = self.forward_encoder(imgs, self.mask_ratio, noise["mask"])
        masked_tokens = None
        if self.objective == "diffmae":
            t = noise["t"]
            x_t = self.add_noise(self.target(imgs), t, noise["eps"])
            temb = self.time_embed(timestep_embedding(t, self.mask_token.shape[-1]))
            masked_tokens = self.noise_embed(x_t.to(latent.dtype)) + temb[:, None, :].to(latent.dtype)
        pred = self.forward_decoder(latent, ids_restore, masked_tokens)
        mask = self.loss_mask(mask, noise.get("copies"))
        loss = self.forward_loss(imgs, pred, mask)
        return loss, pred, mask


# --- weights ---

def _read_state_dict(path: Path, fix: str) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no weights file at {path}: pass a .pth/.pt/.safetensors file to --init")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        sd = load_file(str(path), device="cpu")
    else:
        sd = load_checkpoint(path, fix)  # weights only: pickles with arbitrary objects are refused
    for key in ("model", "state_dict", "module"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{path} holds no state dict of tensors")
    return clean_state_dict(sd)  # DDP's "module." and torch.compile's "_orig_mod." prefixes go


def _is_decoder_key(key: str) -> bool:
    return key.startswith(_DECODER_KEYS)


def load_weights(module: nn.Module, path: Path, fix: str = "pass a complete weights file") -> dict:
    """Load MAE release .pth ({"model": sd}), timm .pth/.safetensors or our checkpoint-last.pt into a
    MaskedAutoencoder (ImageNet keys go to .encoder) or a bare timm encoder ("encoder." stripped).
    Position embeddings are resampled when grid sizes differ; shape mismatches are skipped.
    Returns {"loaded", "missing", "unexpected", "mismatched"} key lists (module's key names).
    An unreadable file raises one line naming it, ending in `fix` (what to do)."""
    src = _read_state_dict(path, fix)
    is_mae = isinstance(module, MaskedAutoencoder)
    ours = any(k.startswith("encoder.") for k in src)
    mapped: dict[str, torch.Tensor] = {}
    for k, v in src.items():
        if is_mae:
            key = k if (ours or _is_decoder_key(k)) else f"encoder.{k}"
        else:
            if ours and not k.startswith("encoder."):
                key = f"<decoder>.{k}"  # decoder weights have no place in a bare encoder
            else:
                key = k[len("encoder."):] if k.startswith("encoder.") else k
        mapped[key] = v
    target = module.state_dict()
    encoder = module.encoder if is_mae else module
    prefix = "encoder." if is_mae else ""
    loadable, mismatched = {}, []
    for key, value in mapped.items():
        if key not in target:
            continue
        want = target[key].shape
        if value.shape != want and key in (f"{prefix}pos_embed", "decoder_pos_embed") and value.ndim == 3:
            value = _resample_pos_embed(value, want, encoder)
        if value.shape != want:
            mismatched.append(key)
            continue
        loadable[key] = value.to(target[key].dtype)
    module.load_state_dict(loadable, strict=False)
    return {"loaded": sorted(loadable), "missing": sorted(k for k in target if k not in loadable and k not in mismatched),
            "unexpected": sorted(k for k in mapped if k not in target), "mismatched": sorted(mismatched)}


def _resample_pos_embed(value: torch.Tensor, want: torch.Size, encoder: VisionTransformer) -> torch.Tensor:
    prefix = getattr(encoder, "num_prefix_tokens", 1)
    old = value.shape[1] - prefix
    side = int(round(math.sqrt(old)))
    if side * side != old:
        raise ValueError(f"cannot resample a position embedding of {old} patches (not a square grid)")
    new_grid = list(encoder.patch_embed.grid_size)
    if want[1] - prefix != new_grid[0] * new_grid[1] or value.shape[2] != want[2]:
        return value  # not resamplable: reported as mismatched
    return resample_abs_pos_embed(value.float(), new_size=new_grid, old_size=[side, side],
                                  num_prefix_tokens=prefix)
