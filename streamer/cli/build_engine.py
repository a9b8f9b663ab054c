"""``streamer build-engine``: build the backend once (exports, compiled engines, prompt
embeddings); its artefacts land in ``engine.cache_dir`` so ``streamer run`` starts fast. On
a CPU with onnxruntime it also writes the compiled bundle (``bundle``) from which later
commands with the same settings start without torch.

Example (plain text)::

    $ streamer build-engine -c configs/default.yaml --backend tensorrt
"""

from __future__ import annotations

import argparse
import json

from configs import load_settings
from engine import ExpressionEngine


def build_engine_command(args: argparse.Namespace) -> int:
    engine = ExpressionEngine(load_settings(args.config, args.overrides).engine)
    artefact = getattr(engine.backend, "path", None)
    bundle = str(engine.bundle_path) if engine.bundle_path else None
    print(
        json.dumps({**engine.describe(), "artefact": str(artefact) if artefact else None, "bundle": bundle}, indent=2)
    )
    return 0
