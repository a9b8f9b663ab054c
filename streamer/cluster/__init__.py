"""``streamer cluster``: the pipeline on a Ray cluster, one worker actor per GPU, behind one
endpoint (docs/deployment.md).

The driver (``driver.ClusterDriver``) starts and watches the worker actors
(``supervisor.Supervisor``; ``worker.StreamWorker`` runs one process's ``Service`` in the
actor's own process), assigns sources to them by capacity (``assignment.Assignment``), moves
the streams of a worker that dies or stops answering (``placement.Placement``), and serves,
on one ZeroMQ context (``front.ClusterOutlets``), the forwarder every worker publishes to
and every subscriber connects to (``forwarder.Forwarder``: fences stale epochs, one ``seq``
per topic, the state for late joiners) and the snapshot and control endpoints
(``control.ClusterController``). Light to import: Ray, numpy and torch load only where used.
"""
