"""The PostgreSQL broker: jobs in one schema of a PostgreSQL database, shared by every process
on every host that reaches the server.

broker.py holds PostgresBroker, schedules.py its schedules; the SQL lives in queries.sql and
migrations/.
"""
