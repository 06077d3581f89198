"""The App the HTTP examples talk to (docs/http.md).

    errands --app-dir examples serve tasks:app          # the API, on 127.0.0.1:8080
    errands --app-dir examples worker tasks:app         # a Python worker for math.add

`text.shout` is registered nowhere: the curl and Node examples work it through the pull API.
"""

import errands

app = errands.App()  # ERRANDS_BROKER_URL, else ./errands.db


@app.task(name="math.add")
def add(a: float, b: float) -> float:
    """Run by the Python worker; enqueued over HTTP by the examples."""
    return a + b
