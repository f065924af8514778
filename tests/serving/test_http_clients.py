"""The traced HTTP clients chat_model_for_server makes are closed with the model (or at exit)."""

from __future__ import annotations

import gc

from r3graph.serving.client import chat_model_for_server


def test_the_models_http_clients_close_when_it_is_collected() -> None:
    model = chat_model_for_server("http://127.0.0.1:9", model="m")
    sync_client, async_client = model.http_client, model.http_async_client
    assert not sync_client.is_closed and not async_client.is_closed
    del model
    gc.collect()
    assert sync_client.is_closed and async_client.is_closed


async def test_inside_a_running_loop_the_async_client_closes_on_that_loop() -> None:
    import asyncio

    model = chat_model_for_server("http://127.0.0.1:9", model="m")
    async_client = model.http_async_client
    del model
    gc.collect()
    await asyncio.sleep(0)  # the close was scheduled on this loop
    await asyncio.sleep(0)
    assert async_client.is_closed
