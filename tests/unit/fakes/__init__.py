"""In-memory fakes of each service's store port (``services/<name>/ports.py``).

Each fake implements the same ``Protocol`` as the MongoDB store, so the use cases run
against it unchanged: no server, the whole unit suite in seconds. Events the use cases
save land in the fake's ``outbox`` (a list of ``OutboxMessage``), in order.
"""
