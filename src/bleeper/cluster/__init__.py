"""Cluster mode: several Bleeper servers sharing one PostgreSQL database and a NATS cluster.

PostgreSQL holds everything that must last (messages, inboxes, accounts, groups, roles, urgent state); NATS
carries lossy signals between nodes and, in JetStream key/value buckets, the live claims (node leases, guest
names). Read in this order: bus.py (the NATS connection), lease.py (a node's lease and fencing), registry.py
(names and presence across nodes), delivery.py (messages and events, in one order, caught up from the
database), node.py (the node that assembles them for the server).
"""


class ClusterError(Exception):
    """A node cannot join its cluster; the message says why and what to check."""
