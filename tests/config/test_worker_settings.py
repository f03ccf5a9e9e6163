"""Celery settings of the worker that bear on each task's cost."""

import threading

from lookout.config.celery_app import app


def test_every_task_thread_shares_the_processs_database_result_backend():
    # Under gevent every task runs in a thread (greenlet) of its own: a per-thread backend was one new backend
    # per probe. The database backend holds no connection, so one serves them all.
    seen = [app.backend]
    threads = [threading.Thread(target=lambda: seen.append(app.backend)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert app.conf.result_backend == "django-db"
    assert len({id(backend) for backend in seen}) == 1
