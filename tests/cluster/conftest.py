"""The compose cluster (docker-compose.yaml) for the tests in this folder.

Built (cached by input hash) and started once per session on a free port, stopped
with its volumes at the end. Needs root, a Docker engine and Compose v2, which
`./deploy.sh test` installs; elsewhere these tests are skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster._cluster import Cluster, compose_missing
from tests.system import free_port


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    why = compose_missing()
    if why is not None:
        pytest.skip(why)
    c = Cluster(port=free_port(), logs=tmp_path_factory.mktemp("cluster-logs"))
    c.down()  # what an interrupted earlier run of this project left
    c.build()
    try:
        c.up()
        print(f"\ncluster: images {c.timings['build']:.0f}s, up and ready "
              f"{c.timings['up']:.0f}s, on :{c.port}")
        yield c
    finally:
        c.down()
