"""The metrics stream: many subscribers, late joiners, detaching, slow readers, cancel."""

from __future__ import annotations

import threading
import time

import pytest

from ipc.messages import MetricsSample, ProcessMemory
from ipc.metrics import CANCEL_REQUEST, MetricsPublisher, MetricsSubscriber, metrics_socket_path


def sample(done: int) -> MetricsSample:
    return MetricsSample(
        run_id="20261129-120000-abcd",
        time=time.time(),
        elapsed_s=float(done),
        status="running",
        shards_done=done,
        shards_total=100,
        patients_done=done * 10,
        patients_total=1000,
        visits_written=done * 200,
        patients_per_s=10.0,
        visits_per_s=200.0,
        eta_s=1.0,
        processes=[
            ProcessMemory(role="supervisor", pid=1, rss_bytes=100),
            ProcessMemory(role="writer", pid=2, rss_bytes=50),
        ],
        channel_slots=4,
        channel_in_use=1,
        channel_peak=2,
        bytes_written=done * 1000,
    )


@pytest.fixture
def publisher(tmp_path):
    requests = []
    with MetricsPublisher(tmp_path / "metrics.sock", on_request=requests.append) as published:
        published.requests = requests
        yield published


def wait_for(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_every_subscriber_gets_every_sample_in_order(publisher):
    subscribers = [MetricsSubscriber(publisher.path) for _ in range(3)]
    wait_for(lambda: publisher.subscriber_count == 3)
    for done in range(5):
        publisher.publish(sample(done))
    for subscriber in subscribers:
        assert [subscriber.next().shards_done for _ in range(5)] == [0, 1, 2, 3, 4]
        subscriber.close()


def test_a_late_subscriber_gets_the_latest_sample_at_once(publisher):
    publisher.publish(sample(7))
    publisher.publish(sample(8))
    with MetricsSubscriber(publisher.path) as late:
        first = late.next(timeout_s=2)
    assert first.shards_done == 8
    assert first.rss_total_bytes == 150
    assert first.fraction_done == 0.08


def test_detaching_does_not_disturb_the_others(publisher):
    staying = MetricsSubscriber(publisher.path)
    leaving = MetricsSubscriber(publisher.path)
    wait_for(lambda: publisher.subscriber_count == 2)
    publisher.publish(sample(1))
    leaving.close()
    publisher.publish(sample(2))
    publisher.publish(sample(3))
    assert [staying.next().shards_done for _ in range(3)] == [1, 2, 3]
    wait_for(lambda: publisher.subscriber_count == 1)
    staying.close()


def test_a_subscriber_that_stops_reading_is_dropped_without_slowing_the_run(publisher):
    stuck = MetricsSubscriber(publisher.path)  # never reads
    reader = MetricsSubscriber(publisher.path)
    wait_for(lambda: publisher.subscriber_count == 2)
    received = []
    thread = threading.Thread(target=lambda: received.extend(s.shards_done for s in reader))
    thread.start()
    started = time.monotonic()
    for done in range(3000):  # ~1.5 MB: far more than a socket buffer holds
        publisher.publish(sample(done))
    elapsed = time.monotonic() - started
    wait_for(lambda: publisher.subscriber_count == 1)
    publisher.close()
    thread.join(5)
    assert elapsed < 2.0, f"publishing took {elapsed:.2f} s"
    assert received == list(range(3000))
    stuck.close()
    reader.close()


def test_a_subscriber_can_ask_the_run_to_cancel(publisher):
    with MetricsSubscriber(publisher.path) as subscriber:
        subscriber.request_cancel()
        wait_for(lambda: publisher.requests == [CANCEL_REQUEST])


def test_closing_the_publisher_ends_every_subscription(publisher):
    subscriber = MetricsSubscriber(publisher.path)
    wait_for(lambda: publisher.subscriber_count == 1)
    publisher.publish(sample(1))
    publisher.close()
    assert subscriber.next().shards_done == 1
    assert subscriber.next() is None
    assert not publisher.path.exists()
    subscriber.close()


def test_next_times_out_when_nothing_is_published(publisher):
    with MetricsSubscriber(publisher.path) as subscriber, pytest.raises(TimeoutError):
        subscriber.next(timeout_s=0.2)


def test_long_run_directories_fall_back_to_a_short_socket_path(tmp_path):
    short = metrics_socket_path(tmp_path)
    assert short == tmp_path / "metrics.sock"
    deep = tmp_path / ("d" * 120)
    fallback = metrics_socket_path(deep)
    assert len(str(fallback)) <= 100 and fallback.name == "metrics.sock"
    fallback.parent.rmdir()


def test_the_private_directory_of_a_long_path_goes_with_its_publisher(tmp_path):
    fallback = metrics_socket_path(tmp_path / ("d" * 120))
    publisher = MetricsPublisher(fallback)
    assert fallback.parent.is_dir()
    publisher.close()
    assert not fallback.parent.exists(), "the temporary directory was left behind"
