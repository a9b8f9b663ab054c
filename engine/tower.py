"""A graph-friendly re-statement of open_clip's CLIP ViT image tower, and its fp8 variant.

``FastVisionTower`` runs the same weights as open_clip's ``VisionTransformer`` (shared, not
copied) with plain ops: one fused QKV linear, ``F.scaled_dot_product_attention``, and linears
chosen by a factory. Compilers see straight-line code instead of ``nn.MultiheadAttention``'s
fast-path branches, and the linears can be swapped for fp8 ones (``Fp8Linear``).

fp8 (opt-in, ``engine.precision: fp8``): weights are quantised per tensor to e4m3; the
activation entering each linear gets a STATIC scale calibrated on the first batch the engine
scores (amax x ``margin``), so under ``torch.compile`` the cast fuses into the LayerNorm /
GELU that produces the activation (docs/BENCHMARKS.md: eager casts cost more than fp8 saves).
Accuracy on real weights cannot be checked without them: fp8 is off by default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

E4M3_MAX = 448.0


class Linear(nn.Module):
    """``F.linear`` over weights owned elsewhere (no copy)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.weight = weight
        self.bias = bias
        self.amax: float = 0.0
        self.observe = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observe:  # calibration pass for fp8: remember the largest input magnitude
            self.amax = max(self.amax, float(x.detach().abs().max()))
        return F.linear(x, self.weight, self.bias)


class Fp8Linear(nn.Module):
    """y = x @ W.T + b with x and W in float8 e4m3, per-tensor static scales, fp16/bf16/fp32 out."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, act_amax: float, margin: float = 2.0) -> None:
        super().__init__()
        if weight.shape[0] % 16 or weight.shape[1] % 16:
            raise ValueError(f"fp8 GEMMs need dimensions divisible by 16, got weight {list(weight.shape)}")
        w = weight.detach().float()
        w_scale = w.abs().max().clamp(min=1e-12) / E4M3_MAX
        # _scaled_mm wants the second operand column-major: keep W [N, K] row-major and pass W.t().
        self.register_buffer("w_fp8", (w / w_scale).to(torch.float8_e4m3fn))
        self.register_buffer("w_scale", w_scale.reshape(()).clone())
        x_scale = torch.tensor(max(act_amax, 1e-6) * margin / E4M3_MAX, device=w.device)
        self.register_buffer("x_scale", x_scale)
        self.register_buffer("x_inv_scale", 1.0 / x_scale)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        xq = (x2 * self.x_inv_scale).clamp(-E4M3_MAX, E4M3_MAX).to(torch.float8_e4m3fn)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        y = torch._scaled_mm(
            xq, self.w_fp8.t(), scale_a=self.x_scale, scale_b=self.w_scale, bias=bias, out_dtype=x.dtype
        )
        return y.reshape(*shape[:-1], y.shape[-1])


class FastBlock(nn.Module):
    """open_clip ``ResidualAttentionBlock`` (self-attention, batch first) with plain ops."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        attn = block.attn
        if not isinstance(attn, nn.MultiheadAttention) or not attn.batch_first or attn.in_proj_weight is None:
            raise TypeError("FastBlock supports batch-first nn.MultiheadAttention with a fused in-projection")
        self.heads = attn.num_heads
        self.ln_1, self.ln_2 = block.ln_1, block.ln_2
        self.ls_1, self.ls_2 = block.ls_1, block.ls_2
        self.qkv = Linear(attn.in_proj_weight, attn.in_proj_bias)
        self.out = Linear(attn.out_proj.weight, attn.out_proj.bias)
        self.fc1 = Linear(block.mlp.c_fc.weight, block.mlp.c_fc.bias)
        self.act = block.mlp.gelu
        self.fc2 = Linear(block.mlp.c_proj.weight, block.mlp.c_proj.bias)

    def linears(self) -> dict[str, nn.Module]:
        return {"qkv": self.qkv, "out": self.out, "fc1": self.fc1, "fc2": self.fc2}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(self.ln_1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + self.ls_1(self.out(a.transpose(1, 2).reshape(b, t, d)))
        return x + self.ls_2(self.fc2(self.act(self.fc1(self.ln_2(x)))))


class FastVisionTower(nn.Module):
    """Same maths as open_clip's CLIP ``VisionTransformer`` (class-token pooling, no
    attention pooling, no patch dropout at inference); raises TypeError for other towers."""

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        if getattr(visual, "attn_pool", None) is not None or getattr(visual, "pool_type", "tok") != "tok":
            raise TypeError("FastVisionTower supports class-token pooled CLIP ViTs only")
        if getattr(visual, "final_ln_after_pool", False) or not hasattr(visual, "conv1"):
            raise TypeError("FastVisionTower: unsupported open_clip vision tower layout")
        self.conv1 = visual.conv1
        self.class_embedding = visual.class_embedding
        self.positional_embedding = visual.positional_embedding
        self.ln_pre, self.ln_post = visual.ln_pre, visual.ln_post
        self.proj = visual.proj
        self.blocks = nn.ModuleList(FastBlock(b) for b in visual.transformer.resblocks)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.conv1(pixels).flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x)
        for blk in self.blocks:
            x = blk(x)
        pooled = self.ln_post(x[:, 0])
        return pooled @ self.proj if self.proj is not None else pooled

    @torch.inference_mode()
    def quantise_fp8(self, calibration: torch.Tensor, margin: float = 2.0) -> FastVisionTower:
        """Swap every block linear for an ``Fp8Linear`` whose activation scale comes from the
        largest input magnitude seen on ``calibration`` (preprocessed pixels)."""
        plain = [lin for blk in self.blocks for lin in blk.linears().values()]
        for lin in plain:
            lin.observe, lin.amax = True, 0.0
        self(calibration)
        for blk in self.blocks:
            for name, lin in blk.linears().items():
                setattr(blk, name, Fp8Linear(lin.weight, lin.bias, lin.amax, margin))
        return self
