"""The encoder side of a BLIP-2 / InstructBLIP model, in the three stages the feature needs.

The feature (docs/training.md): image -> ViT -> Q-Former (32 queries) -> ``language_projection``
(LAVIS ``t5_proj``) -> concatenated IN FRONT of the instruction's token embeddings -> the
Flan-T5 ENCODER -> the output of its ``final_layer_norm`` -> mean over all tokens -> float32
-> L2-normalise. The reference captured that output with a forward hook on
``final_layer_norm``; so does ``encode``: with dropout on (the reference's train mode) the
encoder's ``last_hidden_state`` would carry one more dropout than the hooked output.

Example (plain text: needs a model)::

    parts = TeacherParts(Blip2ForConditionalGeneration.from_pretrained(path))
    states = parts(pixels, ids, mask)          # [N, 32 + L, d_model]
    feats = teacher_feature(states)            # [N, d_model], unit rows
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TeacherParts(nn.Module):
    """The pieces of a BLIP-2-style model that the feature needs (no decoder)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        lm = model.language_model
        self.instruct = model.config.model_type == "instructblip"
        self.vision_model = model.vision_model
        self.qformer = model.qformer
        self.language_projection = model.language_projection
        self.query_tokens = model.query_tokens
        self.embed_tokens = lm.get_input_embeddings()
        self.encoder = lm.get_encoder()

    def vision(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels [N, 3, S, S] -> image embeddings [N, P, d_vision], as float32 (the reference
        casts the ViT output to float before the Q-Former)."""
        return self.vision_model(pixel_values=pixels).last_hidden_state.float()

    def visual_tokens(
        self,
        image: torch.Tensor,
        q_ids: torch.Tensor | None = None,
        q_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Image embeddings -> Q-Former -> projection: visual tokens [N, Q, d_model]."""
        n = image.shape[0]
        qdtype = self.query_tokens.dtype
        image = image.to(qdtype)
        image_mask = torch.ones(image.shape[:-1], dtype=torch.long, device=image.device)
        queries = self.query_tokens.expand(n, -1, -1)
        nq = queries.shape[1]
        if self.instruct:
            if q_ids is None or q_mask is None:
                raise ValueError("InstructBLIP needs the instruction's Q-Former tokens (q_ids, q_mask)")
            query_mask = torch.ones((n, nq), dtype=torch.long, device=image.device)
            out = self.qformer(
                input_ids=q_ids.expand(n, -1),
                attention_mask=torch.cat([query_mask, q_mask.expand(n, -1)], dim=1),
                query_embeds=queries,
                encoder_hidden_states=image,
                encoder_attention_mask=image_mask,
            ).last_hidden_state[:, :nq]
        else:
            out = self.qformer(
                query_embeds=queries, encoder_hidden_states=image, encoder_attention_mask=image_mask
            ).last_hidden_state
        return self.language_projection(out)

    def encode(self, visual: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[visual tokens ; instruction embeddings] -> T5 encoder -> ``final_layer_norm``
        output [N, Q + L, d_model]. The visual tokens keep their type: under the reference's
        bf16 autocast the fp32 tokens and the bf16 embeddings concatenate to fp32, as in LAVIS."""
        n, nq = visual.shape[:2]
        text = self.embed_tokens(ids).expand(n, -1, -1)
        embeds = torch.cat([visual, text], dim=1)
        attention = torch.cat([torch.ones((n, nq), dtype=mask.dtype, device=mask.device), mask.expand(n, -1)], dim=1)
        captured: list[torch.Tensor] = []
        hook = self.encoder.final_layer_norm.register_forward_hook(lambda m, i, o: captured.append(o))
        try:
            self.encoder(inputs_embeds=embeds, attention_mask=attention)
        finally:
            hook.remove()
        if len(captured) != 1:
            raise RuntimeError(f"T5 encoder: final_layer_norm ran {len(captured)} times, expected once")
        return captured[0]

    def forward(
        self,
        pixels: torch.Tensor,
        ids: torch.Tensor,
        mask: torch.Tensor,
        q_ids: torch.Tensor | None = None,
        q_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """pixels [N, 3, S, S] + one shared instruction [1, L] -> encoder states [N, Q + L, d]
        (one precision throughout; ``Blip2Teacher`` runs the stages under a precision plan)."""
        return self.encode(self.visual_tokens(self.vision(pixels), q_ids, q_mask), ids, mask)


def teacher_feature(encoder_states: torch.Tensor) -> torch.Tensor:
    """The reference's reduction: mean over all tokens (in the states' own type, bf16 under
    the reference's precision) -> float32 -> L2-normalise."""
    return F.normalize(encoder_states.mean(dim=1).float(), dim=-1)
