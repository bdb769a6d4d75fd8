"""Where a planned run is already done (:func:`find_done`).

A run is *done* when a COMPLETED run of its key wrote its results: in the file store
first (:func:`iwx.experiment.store.completed_runs`, as ``iwx.run``'s own reuse finds it),
else, with ``--mongo``, in MongoDB (``info.checkpoint_key``, which the mirror copies;
its results.json is read from GridFS when drawing). In a figure of kind ``training``, a
run not done so may be found in a longer run of the same training in the file store,
drawn cut at its updates (iwx/figures/longer.py).
"""

from __future__ import annotations

from iwx.figures.plan import Done, Plan


def find_done(plan: Plan) -> None:
    """Mark every planned run whose configuration completed (file store, then MongoDB);
    in a figure of kind ``training``, then a run that trained the same for longer in the
    file store (iwx/figures/longer.py), its series to be cut at the planned updates."""
    from iwx.experiment.store import completed_runs
    from iwx.figures.longer import find_longer

    in_files = completed_runs(plan.runs_dir)
    for p in plan.runs:
        p.done = None
        if p.key in in_files:
            p.done = Done("file store", plan.runs_dir, int(in_files[p.key].name))
    left = {p.key for p in plan.runs if p.done is None}
    if plan.mongo and left:
        found = completed_in_mongo(plan.mongo, left)
        for p in plan.runs:
            if p.done is None and p.key in found:
                p.done = Done("MongoDB", plan.mongo, found[p.key])
    if plan.figure.kind != "training":
        return
    for p in plan.missing():
        if p.updates and p.after is None:
            p.may_cut = True
            longer = find_longer(plan.runs_dir, bindings=p.bindings, seed=p.seed,
                                 updates=p.updates, completed=in_files)
            if longer is not None:
                p.done = Done("file store", plan.runs_dir, longer.run_id, cut=p.updates,
                              trained=longer.trained)


def completed_in_mongo(url: str, keys: set[str]) -> dict[str, int]:
    """{configuration key: newest COMPLETED MongoDB run of it that recorded results.json}."""
    from pymongo.errors import PyMongoError

    from iwx.experiment.store import StoreError, mongo_database

    client, db = mongo_database(url)
    try:
        docs = list(db["runs"].find({"status": "COMPLETED",
                                     "info.checkpoint_key": {"$in": sorted(keys)}},
                                    {"info.checkpoint_key": 1, "artifacts": 1}))
    except PyMongoError as exc:
        raise StoreError(f"reading runs from MongoDB at {url} failed: "
                         f"{type(exc).__name__}: {exc}") from None
    finally:
        client.close()
    found: dict[str, int] = {}
    for doc in sorted(docs, key=lambda d: d["_id"]):
        names = {a.get("name") for a in doc.get("artifacts") or [] if isinstance(a, dict)}
        key = (doc.get("info") or {}).get("checkpoint_key")
        if key in keys and "results.json" in names:
            found[key] = int(doc["_id"])
    return found
