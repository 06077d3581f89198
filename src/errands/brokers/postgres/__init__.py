"""The PostgreSQL broker: jobs in one schema of a PostgreSQL database, shared by every process
on every host that reaches the server.

broker.py holds PostgresBroker and its thin verbs; their statements are in enqueue.py,
leases.py, maintenance.py, reads.py, topology.py and schedules.py; the SQL lives in queries.sql
and migrations/.
"""
