"""Where a job's files live: ``jobs/<job_id>/uploads`` (inline parameters) and ``.../results``.

Stored file names are chosen here, never taken from the client, so a part name can't reach
outside the job's directory.
"""
from __future__ import annotations

import logging
import secrets
import shutil
from pathlib import Path

log = logging.getLogger("diavo.uws")


class JobFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def upload_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "uploads"

    def result_dir(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "results"

    def save_uploads(self, job_id: str, files: dict[str, bytes]) -> dict[str, str]:
        """Write inline parameter parts; returns part name -> stored file name."""
        stored: dict[str, str] = {}
        if not files:
            return stored
        folder = self.upload_dir(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        for part, data in files.items():
            name = secrets.token_hex(6)
            (folder / name).write_bytes(data)
            stored[part] = name
        return stored

    def upload_path(self, job_id: str, stored_name: str) -> Path:
        return self.upload_dir(job_id) / stored_name

    def load_uploads(self, job_id: str, stored: dict[str, str]) -> dict[str, bytes]:
        return {part: self.upload_path(job_id, name).read_bytes() for part, name in stored.items()}

    def drop_uploads(self, job_id: str, stored_names: list[str]) -> None:
        for name in stored_names:
            self.upload_path(job_id, name).unlink(missing_ok=True)

    def fresh_result_dir(self, job_id: str) -> Path:
        folder = self.result_dir(job_id)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def clear_results(self, job_id: str) -> None:
        shutil.rmtree(self.result_dir(job_id), ignore_errors=True)

    def remove(self, job_id: str) -> None:
        folder = self.job_dir(job_id)
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)

    def remove_orphans(self, known: set[str]) -> int:
        """Delete job directories without a record (left by a crash mid-deletion)."""
        count = 0
        for folder in self.root.iterdir():
            if folder.is_dir() and folder.name not in known:
                shutil.rmtree(folder, ignore_errors=True)
                count += 1
        if count:
            log.info("removed %d job directories without a job record", count)
        return count
