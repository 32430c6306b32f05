"""The Bocage gateway agent.

Adapters (simulator, MQTT/ChirpStack, HTTP push, CSV replay) produce normalised readings;
filters validate and thin them; a batcher groups them per series into frames encoded by the
native codec; a crash-safe spool keeps the frames on disk until the forwarder has JetStream's
acknowledgement. See docs/edge.md.

Entry points: :class:`bocage.edge.agent.Agent`, :class:`bocage.edge.settings.EdgeSettings`,
:func:`bocage.edge.simulator.simulate`, ``bocage edge run``.
"""
