"""The per-stream stages between a decoded frame and a scored face: tracking
(``tracking.py``), crops (``align.py``), abstentions (``abstain.py``), which tracks to
score (``scheduler.py``), re-linking a returning face (``relink.py``) and expression
episodes (``episodes.py``). Each is a small class or pure function that owns no thread;
``streamer.pipeline`` runs them."""
