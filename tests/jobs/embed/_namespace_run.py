"""Runs sertool commands against stores on small or read-only filesystems, inside a private mount namespace.

usage: unshare --user --map-root-user --mount --propagation private python _namespace_run.py SPEC.json

The mounts exist only in this process's namespace and vanish with it, whatever happens. SPEC holds
`template` (a store with its tiny models, no embeddings), `work` (an empty directory to mount on),
`out` (where copies of the stores and result.json go) and `args` (the embed options). Each scenario
runs the real CLI (`CliRunner`), copies the store out after a failure and after the rerun, and
records exit codes and stderr in result.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from sertool.cli import app


def mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)


def resize(where: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True)


def leave_free(fs_root: Path, free: int) -> None:
    """Fill the filesystem at `fs_root` with a file, then shrink that file to leave exactly `free` bytes."""
    filler = fs_root / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for block in (b"\0" * (1 << 20), b"\0" * 4096):
            try:
                while os.write(fd, block) == len(block):
                    pass
            except OSError:  # ENOSPC: on to the smaller block
                pass
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - free))


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def cli(*args: str) -> dict:
    res = CliRunner().invoke(app, list(args))
    return {"rc": res.exit_code, "stderr": res.stderr, "stdout": res.stdout}


def copy_out(store: Path, dst: Path) -> None:
    shutil.copytree(store, dst, ignore=shutil.ignore_patterns("models"))


def full_then_resume(name: str, store: Path, full_fs: Path, embed: list[str], out: Path) -> dict:
    """Embed until the filesystem at `full_fs` is full, copy the store out, grow it, embed again."""
    failed = cli("--store", str(store), "embed", *embed)
    copy_out(store, out / f"{name}-failed")
    resize(full_fs, "256m")
    resumed = cli("--store", str(store), "embed", *embed)
    copy_out(store, out / f"{name}-resumed")
    return {"failed": failed, "resumed": resumed}


def main(spec: dict) -> dict:
    template, work, out = Path(spec["template"]), Path(spec["work"]), Path(spec["out"])
    embed: list[str] = spec["args"]
    result: dict = {}
    # 1. The arrays' filesystem fills up (the catalog's has room): the shard writes get ENOSPC.
    mount_tmpfs(work / "a", "256m")
    store = work / "a" / "store"
    shutil.copytree(template, store)
    mount_tmpfs(store / "embeddings.zarr", spec["frames_room"])
    result["frames"] = full_then_resume("frames", store, store / "embeddings.zarr", embed, out)
    # 2. The catalog's filesystem fills up (the arrays' has room): DuckDB's writes get ENOSPC.
    mount_tmpfs(work / "b", "64m")
    store = work / "b" / "store"
    shutil.copytree(template, store)
    mount_tmpfs(store / "embeddings.zarr", "256m")
    leave_free(work / "b", spec["catalog_room"])
    result["catalog"] = full_then_resume("catalog", store, work / "b", embed, out)
    # 3. A read-only store (a read-only bind mount: root ignores permission bits, not a read-only mount).
    mount_tmpfs(work / "c", "256m")
    store = work / "c" / "store"
    shutil.copytree(out / "frames-resumed", store)
    shutil.copytree(template / "models", store / "models")
    subprocess.run(["mount", "--bind", str(store), str(store)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(store)], check=True)
    before = tree_hash(store)
    corpus = work / "c" / "corpus"
    result["readonly"] = {
        "embed": cli("--store", str(store), "embed", *embed, "--splits", "Train"),
        "ingest": cli("--store", str(store), "ingest", "synthetic", str(corpus), "--clips", "20"),
        "split": cli("--store", str(store), "store", "split", "ablation"),
        "info": cli("--store", str(store), "store", "info"),
        "query": cli("--store", str(store), "store", "query", "select count(*) from embeddings", "--format", "csv"),
        "unchanged": tree_hash(store) == before,
    }
    return result


if __name__ == "__main__":
    spec = json.loads(Path(sys.argv[1]).read_text())
    (Path(spec["out"]) / "result.json").write_text(json.dumps(main(spec)))
