"""UPS subscriptions and event reports (PS3.4 CC.2.3-CC.2.4, PS3.18 11.10-11.13).

``subscriptions`` holds the subscription state table, ``triggers`` turns workitem changes into
events, ``outbox`` stores them durably in the change's transaction, and the dispatchers in
``websocket`` and ``dimse`` deliver them. ``component.Events`` ties them together and is
attached to the server as ``server.events``.
"""
