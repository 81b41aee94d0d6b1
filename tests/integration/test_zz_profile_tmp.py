import time
from collections import defaultdict
from typing import Any
from sqlalchemy import Engine, event
from annotation_reconciler.local.synthetic import PortalSpec
from annotation_reconciler.scope import Scope
from support.world import make_world


def test_profile(engine: Engine, s3: Any, db_url: str) -> None:
    world = make_world(engine, s3, db_url, PortalSpec(datasets=1, runs_per_dataset=50, annotations_per_voxel_spacing=5))
    keys = world.portal.metadata_keys[::100]
    world.delete(*keys)
    r = world.reconciler()
    times = defaultdict(float)
    counts = defaultdict(int)
    eng = r.engine
    @event.listens_for(eng, "before_cursor_execute")
    def b(conn, cursor, statement, params, context, executemany):
        conn.info["t"] = time.perf_counter()
    @event.listens_for(eng, "after_cursor_execute")
    def a(conn, cursor, statement, params, context, executemany):
        k = " ".join(statement.split())[:110]
        times[k] += time.perf_counter() - conn.info["t"]; counts[k] += 1
    t = time.perf_counter()
    res = r.scan_shard(Scope(dataset_id=world.portal.dataset_ids[0]))
    print("\nscan", time.perf_counter() - t, len(res.quarantined), res.annotations)
    for k, v in sorted(times.items(), key=lambda x: -x[1])[:12]:
        print(f"{v*1000:8.1f} ms {counts[k]:3d}  {k}")
