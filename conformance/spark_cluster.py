"""A real Spark standalone cluster on loopback: one master and N workers, started with the
``spark-class`` launcher pyspark ships, stopped at the end (tests and benchmarks).

Each daemon is a child process with its own log; the cluster is ready when the master's log says
it leads and every worker's log says it registered. Memory is kept small (workers offer 1 core
and ``worker_memory`` each), so two workers fit beside the test suite on a laptop.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from conformance.server_process import free_port

READY_TIMEOUT_S = 120.0


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


@dataclass
class SparkCluster:
    work: Path
    workers: int = 2
    worker_memory: str = "1g"
    cores_per_worker: int = 1
    port: int = 0
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        return {**os.environ, "SPARK_HOME": str(spark_home()), "SPARK_LOCAL_IP": "127.0.0.1",
                "SPARK_LOG_DIR": str(self.work / "logs"), "PYSPARK_PYTHON": sys.executable,
                "SPARK_NO_DAEMONIZE": "1"}

    def _launch(self, name: str, *args: str) -> Path:
        log = self.work / f"{name}.log"
        cmd = [str(spark_home() / "bin" / "spark-class"), *args]
        self.procs.append(subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                                           env=self._env(), start_new_session=True))
        return log

    def start(self) -> SparkCluster:
        self.work.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        master_log = self._launch("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                  "--port", str(self.port), "--webui-port", str(free_port()))
        self._wait(master_log, "I have been elected leader")
        logs = [self._launch(f"worker{i}", "org.apache.spark.deploy.worker.Worker", self.url, "--host", "127.0.0.1",
                             "--cores", str(self.cores_per_worker), "--memory", self.worker_memory,
                             "--webui-port", str(free_port()), "--work-dir", str(self.work / f"worker{i}"))
                for i in range(self.workers)]
        for log in logs:
            self._wait(log, "Successfully registered with master")
        return self

    def _wait(self, log: Path, text: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if log.is_file() and text in log.read_text(errors="replace"):
                return
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(0.2)
        self.stop()
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"Spark daemon not ready ({text!r} not in {log}):\n{tail}")

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
        self.procs.clear()


#: What a driver needs to reach executors on loopback (small executors: 1 core, 512 MB).
def driver_conf(cluster: SparkCluster) -> dict[str, str]:
    return {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
            "spark.executor.memory": "512m", "spark.executor.cores": "1",
            "spark.cores.max": str(cluster.workers * cluster.cores_per_worker)}
