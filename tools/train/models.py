"""PyTorch modules whose state_dict keys are exactly the Hugging Face names:
CLIPModel (ViT image tower + causal text transformer) and LlavaForConditionalGeneration
(CLIP vision tower, linear-GELU-linear projector, LLaMA decoder). Same maths as transformers
v4.40.2 (see ../shared/fixtures/README.md), written here from those notes."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def act_fn(name):
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return lambda x: F.gelu(x)
    raise ValueError(name)


# ---- CLIP ---------------------------------------------------------------------------------

class ClipAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        b, t, d = x.shape
        hd = d // self.heads
        q = self.q_proj(x).view(b, t, self.heads, hd).transpose(1, 2) * hd ** -0.5
        k = self.k_proj(x).view(b, t, self.heads, hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.heads, hd).transpose(1, 2)
        a = q @ k.transpose(-1, -2)
        if mask is not None:
            a = a + mask
        a = a.softmax(-1)
        return self.out_proj((a @ v).transpose(1, 2).reshape(b, t, d))


class ClipMlp(nn.Module):
    def __init__(self, dim, inter, act):
        super().__init__()
        self.fc1 = nn.Linear(dim, inter)
        self.fc2 = nn.Linear(inter, dim)
        self.act = act_fn(act)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class ClipLayer(nn.Module):
    def __init__(self, dim, heads, inter, act, eps=1e-5):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(dim, eps=eps)
        self.self_attn = ClipAttention(dim, heads)
        self.layer_norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = ClipMlp(dim, inter, act)

    def forward(self, x, mask=None):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class ClipEncoder(nn.Module):
    def __init__(self, dim, heads, inter, n_layers, act):
        super().__init__()
        self.layers = nn.ModuleList([ClipLayer(dim, heads, inter, act) for _ in range(n_layers)])


class VisionEmbeddings(nn.Module):
    def __init__(self, dim, image_size, patch):
        super().__init__()
        self.patch = patch
        self.class_embedding = nn.Parameter(torch.randn(dim) * dim ** -0.5)
        self.patch_embedding = nn.Conv2d(3, dim, patch, patch, bias=False)
        n = (image_size // patch) ** 2 + 1
        self.position_embedding = nn.Embedding(n, dim)
        nn.init.normal_(self.position_embedding.weight, std=0.02)

    def forward(self, pixel_values):
        p = self.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(p.shape[0], 1, -1)
        return torch.cat([cls, p], 1) + self.position_embedding.weight[None]


class ClipVisionTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = VisionEmbeddings(c["hidden_size"], c["image_size"], c["patch_size"])
        self.pre_layrnorm = nn.LayerNorm(c["hidden_size"], eps=1e-5)
        self.encoder = ClipEncoder(c["hidden_size"], c["num_attention_heads"],
                                   c["intermediate_size"], c["num_hidden_layers"],
                                   c.get("hidden_act", "quick_gelu"))
        self.post_layernorm = nn.LayerNorm(c["hidden_size"], eps=1e-5)

    def hidden_states(self, pixel_values, upto=None):
        """[pre_layrnorm output, layer 1 out, ...] up to `upto` layers."""
        x = self.pre_layrnorm(self.embeddings(pixel_values))
        hs = [x]
        layers = self.encoder.layers if upto is None else self.encoder.layers[:upto]
        for l in layers:
            x = l(x)
            hs.append(x)
        return hs

    def forward(self, pixel_values):
        x = self.hidden_states(pixel_values)[-1]
        return self.post_layernorm(x[:, 0])


class ClipTextTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.eos = c["eos_token_id"]
        emb = nn.Module()
        emb.token_embedding = nn.Embedding(c["vocab_size"], c["hidden_size"])
        emb.position_embedding = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])
        nn.init.normal_(emb.token_embedding.weight, std=0.02)
        nn.init.normal_(emb.position_embedding.weight, std=0.01)
        self.embeddings = emb
        self.encoder = ClipEncoder(c["hidden_size"], c["num_attention_heads"],
                                   c["intermediate_size"], c["num_hidden_layers"],
                                   c.get("hidden_act", "quick_gelu"))
        self.final_layer_norm = nn.LayerNorm(c["hidden_size"], eps=1e-5)

    def forward(self, ids):
        """ids [B, T] padded with anything after the eos; pooled at the first eos."""
        b, t = ids.shape
        x = self.embeddings.token_embedding(ids) + self.embeddings.position_embedding.weight[:t]
        mask = torch.full((t, t), float("-inf")).triu(1)
        for l in self.encoder.layers:
            x = l(x, mask)
        x = self.final_layer_norm(x)
        pos = (ids == self.eos).int().argmax(-1)
        return x[torch.arange(b), pos]


class ClipModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        vc, tc = cfg["vision_config"], cfg["text_config"]
        self.vision_model = ClipVisionTransformer(vc)
        self.text_model = ClipTextTransformer(tc)
        self.visual_projection = nn.Linear(vc["hidden_size"], cfg["projection_dim"], bias=False)
        self.text_projection = nn.Linear(tc["hidden_size"], cfg["projection_dim"], bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(cfg["logit_scale_init_value"])))

    def encode_image(self, px):
        return self.visual_projection(self.vision_model(px))

    def encode_text(self, ids):
        return self.text_projection(self.text_model(ids))


# ---- LLaVA --------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_cos_sin(positions, hd, theta):
    inv = theta ** (-torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    ang = positions.float()[:, None] * inv[None]
    ang = torch.cat([ang, ang], -1)
    return ang.cos(), ang.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], -1)


class LlamaAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.h = c["num_attention_heads"]
        self.kvh = c["num_key_value_heads"]
        self.hd = d // self.h
        self.q_proj = nn.Linear(d, self.h * self.hd, bias=False)
        self.k_proj = nn.Linear(d, self.kvh * self.hd, bias=False)
        self.v_proj = nn.Linear(d, self.kvh * self.hd, bias=False)
        self.o_proj = nn.Linear(self.h * self.hd, d, bias=False)

    def forward(self, x, cos, sin, mask, cache=None):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.h, self.hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kvh, self.hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kvh, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k], 2)
                v = torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        rep = self.h // self.kvh
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        a = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + mask
        a = a.float().softmax(-1)
        return self.o_proj((a @ v).transpose(1, 2).reshape(b, t, self.h * self.hd))


class LlamaMlp(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, i = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(d, i, bias=False)
        self.up_proj = nn.Linear(d, i, bias=False)
        self.down_proj = nn.Linear(i, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.self_attn = LlamaAttention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.mlp = LlamaMlp(c)

    def forward(self, x, cos, sin, mask, cache=None):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class LlamaModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList([LlamaLayer(c) for _ in range(c["num_hidden_layers"])])
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])


class LlamaForCausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.model = LlamaModel(c)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def forward(self, embeds, key_pad=None, caches=None, start=0):
        """embeds [B, T, D]; key_pad [B, T] bool True where padded (right padding only).
        caches: a list of dicts (one per layer) for incremental decoding; positions start at
        `start` (the number of cached positions)."""
        b, t, _ = embeds.shape
        cos, sin = rope_cos_sin(torch.arange(start, start + t), self.c["hidden_size"] //
                                self.c["num_attention_heads"], self.c["rope_theta"])
        mask = torch.full((t, start + t), float("-inf")).triu(start + 1)[None, None]
        if key_pad is not None:
            mask = mask + torch.where(key_pad, float("-inf"), 0.0)[:, None, None, :]
            mask = mask.clamp(min=-1e9)
        x = embeds
        for i, l in enumerate(self.model.layers):
            x = l(x, cos, sin, mask, None if caches is None else caches[i])
        return self.lm_head(self.model.norm(x))


class Projector(nn.Module):
    def __init__(self, din, dout):
        super().__init__()
        self.linear_1 = nn.Linear(din, dout)
        self.linear_2 = nn.Linear(dout, dout)

    def forward(self, x):
        return self.linear_2(F.gelu(self.linear_1(x)))


class VisionTower(nn.Module):
    def __init__(self, vc):
        super().__init__()
        self.vision_model = ClipVisionTransformer(vc)


class LlavaModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        vc, tc = cfg["vision_config"], cfg["text_config"]
        self.cfg = cfg
        self.vision_tower = VisionTower(vc)
        self.multi_modal_projector = Projector(vc["hidden_size"], tc["hidden_size"])
        self.language_model = LlamaForCausalLM(tc)

    def vision_features(self, px):
        """hidden_states[vision_feature_layer] without the CLS row."""
        vm = self.vision_tower.vision_model
        n = len(vm.encoder.layers)
        layer = self.cfg["vision_feature_layer"]
        upto = n + 1 + layer if layer < 0 else layer
        hs = vm.hidden_states(px, upto=upto)
        return hs[upto][:, 1:]

    def image_embeds(self, px):
        return self.multi_modal_projector(self.vision_features(px))
