"""Framework integrations: Starlette and FastAPI (`errands.integrations.starlette`), Django
(`errands.integrations.django`) and Flask (`errands.integrations.flask`).

Each module imports its framework, so import only the one you use; docs/integrations.md shows
them.
"""
