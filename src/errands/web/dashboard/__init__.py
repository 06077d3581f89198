"""The web dashboard (`errands serve`, at /): server-rendered pages over the broker's paged
verbs, with htmx (vendored in static/) for its forms and server-sent events for live counts.
See docs/dashboard.md. Kept free of imports, so guards.py can use its sessions module alone."""
