"""The SQLite broker: errands' default, one file shared by the processes of one host.

broker.py holds SQLiteBroker; the SQL lives in queries.sql and migrations/.
"""
