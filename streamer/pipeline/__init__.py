"""The running pipeline: threads with bounded queues from sources to subscribers
(docs/design.md shows them).

Example (plain text)::

    from streamer.pipeline import Pipeline, StreamSpec
    Pipeline(settings, [StreamSpec("cam0", "clip.mp4")], publisher).run()
"""

from streamer.pipeline.pipeline import NullPublisher, Pipeline, StreamSpec

__all__ = ["NullPublisher", "Pipeline", "StreamSpec"]
