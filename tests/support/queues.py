"""Every message of some RabbitMQ queues as it arrives, read by a consumer of the test's own (no acks)."""

import threading
import time

from kombu import Connection, Exchange, Queue

from lookout.config.celery_app import app as celery_app


class QueueMessages:
    """Each message's queue, headers, properties, body and arrival time, in `messages`; the queues are declared
    on start and deleted on close. `broker`: another URL than the app's (a proxy's, a stack's vhost)."""

    def __init__(self, queues: list[str], *, broker: str | None = None) -> None:
        self.messages: list[dict] = []
        self._broker = broker or celery_app.conf.broker_url
        self._queues = [Queue(name, Exchange(name, "direct"), routing_key=name) for name in queues]
        self._stop = threading.Event()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._consume, args=(ready,), daemon=True)
        self._thread.start()
        assert ready.wait(10), "the test's consumer did not connect"

    def _consume(self, ready: threading.Event) -> None:
        def on_message(body, message) -> None:
            self.messages.append({"queue": message.delivery_info["routing_key"], "headers": message.headers,
                                  "properties": message.properties, "body": body, "at": time.time()})

        with Connection(self._broker) as connection:
            with connection.Consumer(self._queues, callbacks=[on_message], no_ack=True, accept=["json"]):
                ready.set()
                while not self._stop.is_set():
                    try:
                        connection.drain_events(timeout=0.1)
                    except TimeoutError:
                        pass
            for queue in self._queues:
                queue(connection.default_channel).delete()

    def take(self) -> list[dict]:
        """The messages so far (after a moment for those in flight), and none of them again."""
        time.sleep(0.3)
        taken, self.messages = self.messages, []
        return taken

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
