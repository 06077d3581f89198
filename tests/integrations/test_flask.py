"""Flask: the Errands extension gives views the App, sync and async views enqueue, and an App
can come from the Flask config for producers that send by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

import errands
from errands.integrations.flask import Errands, get_app


def shop_site(app: errands.App) -> Flask:
    """A Flask app whose views enqueue receipts, with the extension set up by init_app."""
    site = Flask("shop")
    Errands(errands_app=app).init_app(site)
    send_receipt = app.get_task("shop.send_receipt")

    @site.post("/orders/<int:order_id>")
    def place_order(order_id: int) -> dict[str, str]:
        return {"job": send_receipt.enqueue(order_id).id}

    @site.post("/async-orders/<int:order_id>")
    async def place_order_async(order_id: int) -> dict[str, str]:
        job = await get_app().enqueue_async("shop.send_receipt", order_id)
        return {"job": job.id}

    return site


def test_a_view_enqueues_and_the_job_runs(app: errands.App) -> None:
    response = shop_site(app).test_client().post("/orders/42")

    assert response.status_code == 200
    job = app.job(response.get_json()["job"])
    assert job.refresh().state == "available"
    assert app.run_until_idle() == 1
    assert job.result(timeout=5) == "receipt for order 42 sent"


def test_an_async_view_enqueues_through_get_app(app: errands.App) -> None:
    pytest.importorskip("asgiref")  # Flask runs async views with asgiref (flask[async])
    response = shop_site(app).test_client().post("/async-orders/7")

    assert response.status_code == 200
    assert app.run_until_idle() == 1
    assert app.job(response.get_json()["job"]).result(timeout=5) == "receipt for order 7 sent"


def test_the_constructor_form_attaches_the_app(app: errands.App) -> None:
    site = Flask("shop")
    Errands(site, app)

    with site.app_context():
        assert get_app() is app


def test_an_app_is_built_from_the_config_for_sending_by_name(tmp_path: Path) -> None:
    site = Flask("shop")
    site.config["ERRANDS_BROKER_URL"] = f"sqlite:///{tmp_path / 'jobs.db'}"
    Errands(site)

    @site.post("/orders/<int:order_id>")
    def place_order(order_id: int) -> str:
        return get_app().enqueue("shop.send_receipt", order_id).id

    job_id = site.test_client().post("/orders/3").get_data(as_text=True)
    with site.app_context():
        sender = get_app()
    try:
        [job] = sender.portal.call(sender.call_broker, lambda b: b.get([job_id]))
        assert (job.task, job.state) == ("shop.send_receipt", "available")
    finally:
        sender.close()


def test_get_app_without_the_extension_says_what_is_missing() -> None:
    site = Flask("bare")

    with site.app_context(), pytest.raises(RuntimeError, match="init_app"):
        get_app()


def test_without_an_app_or_a_url_the_extension_refuses() -> None:
    with pytest.raises(RuntimeError, match="ERRANDS_BROKER_URL"):
        Errands(Flask("bare"))
