"""The job table's decisions (no sockets): queue order, least-loaded workers, local-only jobs."""
from __future__ import annotations

from backend.jobs import Job, JobTable, WorkerState


def table_with(*workers) -> JobTable:
    t = JobTable(max_queue=3)
    for w in workers:
        t.add_worker(w)
    t.touch_client(b"c", local=True, now=0.0)
    return t


def worker(name, slots=1, local=True, caps=("generate", "render")):
    return WorkerState(name.encode(), name, "cpu", "m", slots, local, 0.0, caps)


def job(i, kind="generate", local_only=False):
    return Job(f"j{i}", b"c", kind, {}, [], local_only)


def test_jobs_start_in_queue_order_on_the_least_loaded_worker():
    t = table_with(worker("a", slots=2), worker("b", slots=1))
    for i in range(4):
        t.add(job(i))
    got = [(j.id, w.name) for j, w in t.assignments(now=1.0)]
    assert [g[0] for g in got] == ["j0", "j1", "j2"]  # 3 slots in all; j3 waits
    assert sorted(w for _, w in got) == ["a", "a", "b"]
    assert [t.jobs[k].id for k in t.queue] == ["j3"]


def test_ties_go_to_the_worker_that_got_work_longest_ago():
    a, b = worker("a"), worker("b")
    a.last_assigned, b.last_assigned = 5.0, 2.0
    t = table_with(a, b)
    t.add(job(0))
    assert [w.name for _, w in t.assignments(now=6.0)] == ["b"]


def test_a_job_reading_a_server_path_waits_for_a_same_machine_worker_without_blocking_others():
    t = table_with(worker("remote", local=False))
    t.add(job(0, local_only=True))
    t.add(job(1))
    assert [(j.id, w.name) for j, w in t.assignments(now=1.0)] == [("j1", "remote")]
    assert [t.jobs[k].id for k in t.queue] == ["j0"]


def test_render_jobs_only_go_to_workers_that_can_render():
    t = table_with(worker("gen-only", caps=("generate",)))
    t.add(job(0, kind="render"))
    assert list(t.assignments(now=1.0)) == []
    t.add_worker(worker("renderer"))
    assert [(j.id, w.name) for j, w in t.assignments(now=2.0)] == [("j0", "renderer")]


def test_a_finished_running_job_frees_its_slot_only_when_the_worker_says_so():
    t = table_with(worker("a"))
    t.add(job(0))
    (j, w), = t.assignments(now=1.0)
    t.finish(j.key)  # cancelled: gone for the client at once ...
    assert j.key not in t.jobs and t.draining == {j.key: b"a"} and w.free == 0
    assert t.of_client(j.client, "j0") is None
    t.release(b"a", j.key)  # ... the worker is free once it reports the job stopped
    assert w.free == 1 and not t.draining and w.jobs_done == 1


def test_a_lost_worker_returns_its_live_jobs_and_forgets_draining_ones():
    t = table_with(worker("a", slots=2))
    j0, j1 = job(0), job(1)
    t.add(j0)
    t.add(j1)
    list(t.assignments(now=1.0))
    t.finish(j1.key)
    assert t.remove_worker(b"a") == [j0.key]
    assert not t.draining and not t.workers


def test_the_queue_has_a_limit_and_silent_clients_are_found():
    t = table_with()
    for i in range(3):
        t.add(job(i))
    assert t.queue_full()
    assert [c.identity for c in t.silent_clients(now=20.0, timeout=10.0)] == [b"c"]
    assert t.silent_clients(now=5.0, timeout=10.0) == []
