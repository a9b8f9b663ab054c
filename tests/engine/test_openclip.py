"""open_clip without transformers and timm until a model needs them (engine/openclip.py).
Each check runs in a fresh interpreter: what is imported depends on what came before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TIMM_TOWER = {
    "embed_dim": 32,
    "vision_cfg": {"timm_model_name": "vit_tiny_patch16_224", "timm_model_pretrained": False, "image_size": 224},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def _run(code: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # a download fails at once, with or without network
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_offline_engine_imports_neither_transformers_nor_timm() -> None:
    out = _run(
        "import json, sys\n"
        "from configs import load_settings\n"
        "from engine.models import load_clip\n"
        "clip = load_clip(load_settings('offline').engine.model)\n"
        "mods = sorted(m for m in ('transformers', 'timm', 'huggingface_hub') if m in sys.modules)\n"
        "print(json.dumps({'dim': clip.embed_dim, 'mods': mods}))"
    )
    assert out["mods"] == []
    assert out["dim"] > 0


def test_a_timm_tower_still_builds(tmp_path: Path) -> None:
    cfg = tmp_path / "TimmTower.json"
    cfg.write_text(json.dumps(TIMM_TOWER))
    out = _run(
        "import json, sys, torch\n"
        "from configs.engine import ModelSettings\n"
        "from engine.models import load_clip\n"
        "before = 'timm' in sys.modules\n"
        f"clip = load_clip(ModelSettings(name='TimmTower', pretrained=None, config_file={str(cfg)!r}))\n"
        "x = clip.model.encode_image(torch.zeros(1, 3, 224, 224))\n"
        "print(json.dumps({'before': before, 'after': 'timm' in sys.modules, 'shape': list(x.shape),"
        " 'visual': type(clip.model.visual).__name__}))"
    )
    assert out == {"before": False, "after": True, "shape": [1, 32], "visual": "TimmModel"}


def test_a_pretrained_tag_gets_the_hub_back_before_it_downloads() -> None:
    out = _run(
        "import json, sys\n"
        "from configs.core.errors import ModelLoadError\n"
        "from configs.engine import ModelSettings\n"
        "from engine.models import load_clip\n"
        "import open_clip.pretrained as p\n"
        "before = p._has_hf_hub\n"
        "try:\n"
        "    load_clip(ModelSettings(name='ViT-B-32', pretrained='openai', cache_dir='/nonexistent/cache'))\n"
        "    error = ''\n"
        "except ModelLoadError as e:\n"
        "    error = str(e)\n"
        "print(json.dumps({'before': before, 'after': p._has_hf_hub, 'hub': 'huggingface_hub' in sys.modules,"
        " 'hf_missing': 'huggingface_hub' in error and 'not installed' in error}))"
    )
    # the hub was there for the download (its error is not "package not installed")
    assert out == {"before": False, "after": True, "hub": True, "hf_missing": False}


def test_a_hugging_face_text_tower_gets_transformers_back() -> None:
    out = _run(
        "import json, sys\n"
        "from engine.openclip import enable_towers, open_clip\n"
        "oc = open_clip()\n"
        "import open_clip.hf_model as hf\n"
        "before = hf.transformers is None\n"
        "enable_towers({'text_cfg': {'hf_model_name': 'roberta-base'}, 'vision_cfg': {}})\n"
        "print(json.dumps({'before': before, 'after': hf.transformers is sys.modules.get('transformers'),"
        " 'auto': hasattr(hf, 'AutoModel'), 'timm': 'timm' in sys.modules}))"
    )
    assert out == {"before": True, "after": True, "auto": True, "timm": False}
