"""The long-running OSM-Net service that Blender and scripts talk to (`osmnet serve`).

server.py  ROUTER loop (never blocks on work)    jobs.py     job table, queue, worker balancing
handlers.py one function per request type        worker.py   workers: socket loop + compute threads
tasks.py   what a worker does with one job       engine.py   adapter over osmnet Generator/renderer
security.py loopback-by-default, CurveZMQ keys   cli.py      serve/worker/keys (osmnet.commands entry points)
memory.py  flat RSS under MB-sized messages
Wire format: blender_addon/core/protocol.py (docs/protocol.md). Nothing imports this package, so osmnet
itself never needs zmq. Import the parts directly (`from backend.server import Server`): this file
imports nothing, so loading the `serve` command's entry point costs nothing for other commands.
"""
