"""Shared fixtures: a Chia-like CHIA_ROOT with a trustme CA, fake services over mutual TLS,
golden files, and (in tests/live) the real Chia stack."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
import yaml

from tests.fakes.services import SERVICES, FakeService, load_set

CERT_DIRS = ("full_node", "farmer", "harvester", "wallet", "daemon", "data_layer", "crawler", "timelord")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/*.prom from the current output (review the diff)")


@pytest.fixture(scope="session")
def pki() -> trustme.CA:
    """Stands in for Chia's private CA: signs the services' and the exporter's certificates."""
    return trustme.CA(organization_name="Chia test private CA")


class ChiaRoot:
    """A folder laid out like $CHIA_ROOT: config/config.yaml and config/ssl/* from the test CA."""

    def __init__(self, path: Path, ca: trustme.CA) -> None:
        self.path = path
        self.ca = ca
        ssl_dir = path / "config" / "ssl"
        (ssl_dir / "ca").mkdir(parents=True)
        ca.cert_pem.write_to_path(str(ssl_dir / "ca" / "private_ca.crt"))
        ca.private_key_pem.write_to_path(str(ssl_dir / "ca" / "private_ca.key"))
        for svc in CERT_DIRS:
            (ssl_dir / svc).mkdir()
            leaf = ca.issue_cert("chia.net")
            leaf.cert_chain_pems[0].write_to_path(str(ssl_dir / svc / f"private_{svc}.crt"))
            leaf.private_key_pem.write_to_path(str(ssl_dir / svc / f"private_{svc}.key"))

    def write_config(self, ports: dict[str, int], **extra) -> Path:
        """A config.yaml shaped like Chia's (only the keys the exporter reads, plus noise)."""
        def section(svc: str, port: int) -> dict:
            return {"rpc_port": port, "port": 8444, "selected_network": "mainnet", "logging": {"log_level": "INFO"},
                    "ssl": {"private_crt": f"config/ssl/{svc}/private_{svc}.crt",
                            "private_key": f"config/ssl/{svc}/private_{svc}.key",
                            "public_crt": f"config/ssl/{svc}/public_{svc}.crt"}}
        config = {
            "self_hostname": "127.0.0.1",
            "selected_network": "mainnet",
            "daemon_port": ports.get("daemon", 55400),
            "daemon_ssl": {"private_crt": "config/ssl/daemon/private_daemon.crt",
                           "private_key": "config/ssl/daemon/private_daemon.key"},
            "private_ssl_ca": {"crt": "config/ssl/ca/private_ca.crt", "key": "config/ssl/ca/private_ca.key"},
            "chia_ssl_ca": {"crt": "config/ssl/ca/chia_ca.crt", "key": "config/ssl/ca/chia_ca.key"},
        }
        for svc in ("full_node", "farmer", "harvester", "wallet", "data_layer", "timelord"):
            config[svc] = section(svc, ports.get(svc, 1))
        config["full_node"]["database_path"] = "db/blockchain_v2_CHALLENGE.sqlite"
        # A node database of known size beside the config, as on a full-node host.
        (self.path / "db").mkdir(exist_ok=True)
        (self.path / "db" / "blockchain_v2_mainnet.sqlite").write_bytes(b"\0" * 12288)
        (self.path / "db" / "blockchain_v2_mainnet.sqlite-wal").write_bytes(b"\0" * 4152)
        config.update(extra)
        path = self.path / "config" / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def server_context(self) -> ssl.SSLContext:
        """A service's side: its own certificate, client certificates required from our CA."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("chia.net").configure_cert(ctx)
        self.ca.configure_trust(ctx)
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


@pytest.fixture
def chia_root(tmp_path: Path, pki: trustme.CA) -> ChiaRoot:
    return ChiaRoot(tmp_path / "chia-root", pki)


class FakeFarm:
    """Every Chia service, faked from one fixture set, and a CHIA_ROOT that points at them."""

    def __init__(self, root: ChiaRoot, fixture_set: str) -> None:
        self.root = root
        self.bodies = load_set(fixture_set)
        self.services: dict[str, FakeService] = {}

    async def start(self) -> None:
        from tests.fakes.daemon import FakeDaemon  # the daemon speaks WebSocket, not HTTP POST

        ports: dict[str, int] = {}
        for name in SERVICES:
            bodies = self.bodies[name]
            if bodies.get("__down__"):
                ports[name] = unused_port()
                continue
            cls = FakeDaemon if name == "daemon" else FakeService
            svc = cls(name, bodies, self.root.server_context())
            await svc.start()
            self.services[name] = svc
            ports[name] = svc.port
        self.ports = ports
        daemon = self.services.get("daemon")
        if daemon is not None:  # requests routed through the daemon reach the same fakes
            from exporter.daemon_ws import DESTINATIONS

            daemon.routes = {DESTINATIONS[n]: s for n, s in self.services.items() if n != "daemon"}
        self.root.write_config(ports)

    async def stop(self) -> None:
        for svc in self.services.values():
            await svc.stop()


def unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def fake_farm_factory(chia_root: ChiaRoot):
    farms: list[FakeFarm] = []

    async def make(fixture_set: str = "chia-2.7.5") -> FakeFarm:
        farm = FakeFarm(chia_root, fixture_set)
        await farm.start()
        farms.append(farm)
        return farm

    yield make
    for farm in farms:
        await farm.stop()


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))
